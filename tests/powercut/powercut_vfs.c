/*
 * The power-cut VFS shim (powercut_vfs.h). Each tracked file has a node
 * (shared by every handle on the same path) holding the list of changes
 * made since its last sync: a write keeps its offset, the new bytes, the
 * bytes it replaced and the file size before it; a truncate keeps the
 * size before and the bytes it cut. Undoing the list backwards gives the
 * synced image exactly; replaying a chosen part of it forwards gives one
 * state the disk could have been in when the power went.
 */
#include "powercut_vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#define PC_PAGE 4096
#define PC_SECTOR 512

enum { OP_WRITE, OP_TRUNC };

struct pc_op {
	int kind;
	int64_t off;       /* write: offset; trunc: the new size */
	int64_t len;       /* write: bytes written; trunc: bytes cut */
	int64_t old_size;  /* the file's size before */
	unsigned char *old; /* write: min(len, old_size - off) bytes replaced;
			       trunc: the len bytes cut */
	unsigned char *data; /* write: the new bytes */
};

struct pc_node {
	char *path;
	int refs;
	struct pc_op *ops;
	size_t n, cap;
	struct pc_node *next;
};

struct pc_file {
	sqlite3_file base;
	struct pc_node *node; /* NULL: not tracked (temporary files) */
	sqlite3_file *real;   /* follows this struct in the same allocation */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static sqlite3_vfs pc_vfs;
static sqlite3_vfs *unix_vfs;
static struct pc_node *nodes;
static uint64_t n_ops, arm_at; /* crash when n_ops reaches arm_at (0: never) */
static bool crashed, lying;

static void op_free(struct pc_op *op)
{
	free(op->old);
	free(op->data);
}

static void node_clear(struct pc_node *n)
{
	for (size_t i = 0; i < n->n; i++)
		op_free(&n->ops[i]);
	n->n = 0;
}

static struct pc_node *node_get(const char *path)
{
	struct pc_node *n;

	for (n = nodes; n; n = n->next)
		if (strcmp(n->path, path) == 0)
			return n;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->path = strdup(path))) {
		free(n);
		return NULL;
	}
	n->next = nodes;
	nodes = n;
	return n;
}

static struct pc_op *node_push(struct pc_node *n)
{
	if (n->n == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 64;
		struct pc_op *o = realloc(n->ops, cap * sizeof(*o));

		if (!o)
			return NULL;
		n->ops = o;
		n->cap = cap;
	}
	memset(&n->ops[n->n], 0, sizeof(n->ops[0]));
	return &n->ops[n->n++];
}

/* Under mu. True when this mutating call is the crash point or after it. */
static bool tick_crash(void)
{
	n_ops++;
	if (!crashed && arm_at && n_ops >= arm_at)
		crashed = true;
	return crashed;
}

/* --- io methods ------------------------------------------------------------- */

static int pc_close(sqlite3_file *f)
{
	struct pc_file *p = (struct pc_file *)f;
	int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;

	pthread_mutex_lock(&mu);
	if (p->node)
		p->node->refs--;
	pthread_mutex_unlock(&mu);
	return rc;
}

static int pc_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xRead(p->real, buf, amt, off);
}

/* Reads what [off, off+len) holds now into a new buffer (zeros past EOF). */
static unsigned char *read_old(struct pc_file *p, int64_t off, int64_t len)
{
	unsigned char *b = calloc(1, (size_t)(len > 0 ? len : 1));

	if (b && len > 0)
		p->real->pMethods->xRead(p->real, b, (int)len, off); /* short read: zero-filled */
	return b;
}

static int pc_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct pc_file *p = (struct pc_file *)f;
	sqlite3_int64 size = 0;
	struct pc_op *op;
	int rc;

	pthread_mutex_lock(&mu);
	if (tick_crash()) {
		pthread_mutex_unlock(&mu);
		return SQLITE_IOERR_WRITE;
	}
	if (p->node) {
		if ((rc = p->real->pMethods->xFileSize(p->real, &size)) != SQLITE_OK ||
		    !(op = node_push(p->node))) {
			pthread_mutex_unlock(&mu);
			return rc != SQLITE_OK ? rc : SQLITE_IOERR_NOMEM;
		}
		op->kind = OP_WRITE;
		op->off = off;
		op->len = amt;
		op->old_size = size;
		op->old = read_old(p, off, size > off ? (size - off < amt ? size - off : amt) : 0);
		op->data = malloc((size_t)amt);
		if (!op->old || !op->data) {
			op_free(op);
			p->node->n--;
			pthread_mutex_unlock(&mu);
			return SQLITE_IOERR_NOMEM;
		}
		memcpy(op->data, buf, (size_t)amt);
	}
	rc = p->real->pMethods->xWrite(p->real, buf, amt, off);
	pthread_mutex_unlock(&mu);
	return rc;
}

static int pc_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct pc_file *p = (struct pc_file *)f;
	sqlite3_int64 cur = 0;
	struct pc_op *op;
	int rc;

	pthread_mutex_lock(&mu);
	if (tick_crash()) {
		pthread_mutex_unlock(&mu);
		return SQLITE_IOERR_TRUNCATE;
	}
	if (p->node && p->real->pMethods->xFileSize(p->real, &cur) == SQLITE_OK && cur > size) {
		if (!(op = node_push(p->node))) {
			pthread_mutex_unlock(&mu);
			return SQLITE_IOERR_NOMEM;
		}
		op->kind = OP_TRUNC;
		op->off = size;
		op->len = cur - size;
		op->old_size = cur;
		if (!(op->old = read_old(p, size, cur - size))) {
			p->node->n--;
			pthread_mutex_unlock(&mu);
			return SQLITE_IOERR_NOMEM;
		}
	}
	rc = p->real->pMethods->xTruncate(p->real, size);
	pthread_mutex_unlock(&mu);
	return rc;
}

/* The data is "on the platter": forget the undo list. No real fsync. */
static int pc_sync(sqlite3_file *f, int flags)
{
	struct pc_file *p = (struct pc_file *)f;

	pthread_mutex_lock(&mu);
	if (tick_crash()) {
		pthread_mutex_unlock(&mu);
		return SQLITE_IOERR_FSYNC;
	}
	if (p->node && !lying)
		node_clear(p->node);
	pthread_mutex_unlock(&mu);
	return SQLITE_OK;
}

static int pc_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xFileSize(p->real, size);
}

static int pc_lock(sqlite3_file *f, int lock)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xLock(p->real, lock);
}

static int pc_unlock(sqlite3_file *f, int lock)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xUnlock(p->real, lock);
}

static int pc_check_lock(sqlite3_file *f, int *out)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xCheckReservedLock(p->real, out);
}

static int pc_file_control(sqlite3_file *f, int op, void *arg)
{
	struct pc_file *p = (struct pc_file *)f;

	/* The unix VFS grows files behind xWrite's back for a size hint (with
	 * a chunk size); nothing may reach the disk unrecorded. */
	if (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE)
		return SQLITE_OK;
	if (op == SQLITE_FCNTL_VFSNAME) {
		*(char **)arg = sqlite3_mprintf("powercut");
		return SQLITE_OK;
	}
	return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int pc_sector_size(sqlite3_file *f)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xSectorSize(p->real);
}

static int pc_device_chars(sqlite3_file *f)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xDeviceCharacteristics(p->real);
}

static int pc_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xShmMap(p->real, pg, sz, extend, pp);
}

static int pc_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xShmLock(p->real, off, n, flags);
}

static void pc_shm_barrier(sqlite3_file *f)
{
	struct pc_file *p = (struct pc_file *)f;

	p->real->pMethods->xShmBarrier(p->real);
}

static int pc_shm_unmap(sqlite3_file *f, int del)
{
	struct pc_file *p = (struct pc_file *)f;

	return p->real->pMethods->xShmUnmap(p->real, del);
}

static const sqlite3_io_methods pc_io = {
	.iVersion = 2, /* no xFetch: every page goes through xRead */
	.xClose = pc_close,
	.xRead = pc_read,
	.xWrite = pc_write,
	.xTruncate = pc_truncate,
	.xSync = pc_sync,
	.xFileSize = pc_file_size,
	.xLock = pc_lock,
	.xUnlock = pc_unlock,
	.xCheckReservedLock = pc_check_lock,
	.xFileControl = pc_file_control,
	.xSectorSize = pc_sector_size,
	.xDeviceCharacteristics = pc_device_chars,
	.xShmMap = pc_shm_map,
	.xShmLock = pc_shm_lock,
	.xShmBarrier = pc_shm_barrier,
	.xShmUnmap = pc_shm_unmap,
};

/* --- vfs methods ---------------------------------------------------------- */

static int pc_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct pc_file *p = (struct pc_file *)f;
	int rc;

	p->real = (sqlite3_file *)(p + 1);
	p->node = NULL;
	rc = unix_vfs->xOpen(unix_vfs, name, p->real, flags, out);
	if (rc != SQLITE_OK) {
		p->base.pMethods = NULL;
		return rc;
	}
	if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL |
			      SQLITE_OPEN_SUPER_JOURNAL))) {
		pthread_mutex_lock(&mu);
		p->node = node_get(name);
		if (p->node)
			p->node->refs++;
		pthread_mutex_unlock(&mu);
	}
	p->base.pMethods = &pc_io;
	return SQLITE_OK;
}

static int pc_delete(sqlite3_vfs *vfs, const char *name, int dirsync)
{
	struct pc_node *n;

	pthread_mutex_lock(&mu);
	if (tick_crash()) {
		pthread_mutex_unlock(&mu);
		return SQLITE_IOERR_DELETE;
	}
	for (n = nodes; n; n = n->next)
		if (strcmp(n->path, name) == 0)
			node_clear(n);
	pthread_mutex_unlock(&mu);
	return unix_vfs->xDelete(unix_vfs, name, dirsync);
}

static int pc_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return unix_vfs->xAccess(unix_vfs, name, flags, out);
}

static int pc_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return unix_vfs->xFullPathname(unix_vfs, name, n, out);
}

static void *pc_dlopen(sqlite3_vfs *vfs, const char *name)
{
	return unix_vfs->xDlOpen(unix_vfs, name);
}

static void pc_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	unix_vfs->xDlError(unix_vfs, n, msg);
}

static void (*pc_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return unix_vfs->xDlSym(unix_vfs, h, sym);
}

static void pc_dlclose(sqlite3_vfs *vfs, void *h)
{
	unix_vfs->xDlClose(unix_vfs, h);
}

static int pc_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return unix_vfs->xRandomness(unix_vfs, n, out);
}

static int pc_sleep(sqlite3_vfs *vfs, int us)
{
	return unix_vfs->xSleep(unix_vfs, us);
}

static int pc_current_time(sqlite3_vfs *vfs, double *out)
{
	return unix_vfs->xCurrentTime(unix_vfs, out);
}

static int pc_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return unix_vfs->xGetLastError(unix_vfs, n, out);
}

static int pc_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return unix_vfs->xCurrentTimeInt64(unix_vfs, out);
}

int pc_vfs_register(bool make_default)
{
	if (!unix_vfs) {
		unix_vfs = sqlite3_vfs_find("unix");
		if (!unix_vfs)
			return SQLITE_ERROR;
		pc_vfs = (sqlite3_vfs){
			.iVersion = 2,
			.szOsFile = (int)sizeof(struct pc_file) + unix_vfs->szOsFile,
			.mxPathname = unix_vfs->mxPathname,
			.zName = "powercut",
			.xOpen = pc_open,
			.xDelete = pc_delete,
			.xAccess = pc_access,
			.xFullPathname = pc_full_pathname,
			.xDlOpen = pc_dlopen,
			.xDlError = pc_dlerror,
			.xDlSym = pc_dlsym,
			.xDlClose = pc_dlclose,
			.xRandomness = pc_randomness,
			.xSleep = pc_sleep,
			.xCurrentTime = pc_current_time,
			.xGetLastError = pc_last_error,
			.xCurrentTimeInt64 = pc_current_time64,
		};
	}
	return sqlite3_vfs_register(&pc_vfs, make_default);
}

void pc_arm(uint64_t nth)
{
	pthread_mutex_lock(&mu);
	arm_at = nth ? n_ops + nth : 0;
	pthread_mutex_unlock(&mu);
}

bool pc_crashed(void)
{
	bool c;

	pthread_mutex_lock(&mu);
	c = crashed;
	pthread_mutex_unlock(&mu);
	return c;
}

uint64_t pc_ops(void)
{
	uint64_t n;

	pthread_mutex_lock(&mu);
	n = n_ops;
	pthread_mutex_unlock(&mu);
	return n;
}

/* --- the power cut ----------------------------------------------------------- */

static int pwrite_all(int fd, const unsigned char *b, int64_t len, int64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, b, (size_t)len, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		len -= w;
		off += w;
	}
	return 0;
}

/* Undoes n's changes, newest first: the file as it was at its last sync. */
static int undo_all(int fd, const struct pc_node *n)
{
	int rc;

	for (size_t i = n->n; i-- > 0;) {
		const struct pc_op *op = &n->ops[i];

		if (op->kind == OP_WRITE) {
			int64_t had = op->old_size > op->off ? op->old_size - op->off : 0;

			if (had > op->len)
				had = op->len;
			if (had && (rc = pwrite_all(fd, op->old, had, op->off)) < 0)
				return rc;
			if (ftruncate(fd, op->old_size) < 0)
				return -errno;
		} else {
			if (ftruncate(fd, op->old_size) < 0)
				return -errno;
			if ((rc = pwrite_all(fd, op->old, op->len, op->off)) < 0)
				return rc;
		}
	}
	return 0;
}

/*
 * Which pages reach the disk. Modes, drawn per file: 0 none, 1 all,
 * 2 each page with probability 1/2 (any order), 3 an in-order prefix of
 * the pages. Every (write, page) pair is one decision.
 */
static bool keep_page(int mode, uint32_t *rng, size_t idx, size_t prefix)
{
	switch (mode) {
	case 0:
		return false;
	case 1:
		return true;
	case 2:
		return pc_rand(rng) & 1;
	default:
		return idx < prefix;
	}
}

static int replay_some(int fd, const struct pc_node *n, uint32_t *rng, struct pc_cut_stats *s)
{
	int mode = (int)(pc_rand(rng) % 4);
	size_t pages = 0, idx = 0, prefix, last_kept_op = SIZE_MAX;
	int64_t last_off = 0, last_len = 0;
	const unsigned char *last_data = NULL;
	int rc;

	for (size_t i = 0; i < n->n; i++)
		if (n->ops[i].kind == OP_WRITE)
			pages += (size_t)((n->ops[i].off + n->ops[i].len + PC_PAGE - 1) / PC_PAGE -
					  n->ops[i].off / PC_PAGE);
		else
			pages++;
	prefix = pages ? pc_rand(rng) % (pages + 1) : 0;
	for (size_t i = 0; i < n->n; i++) {
		const struct pc_op *op = &n->ops[i];

		if (op->kind == OP_TRUNC) {
			if (keep_page(mode, rng, idx++, prefix)) {
				if (ftruncate(fd, op->off) < 0)
					return -errno;
				s->pages_kept++;
			} else {
				s->pages_lost++;
			}
			continue;
		}
		for (int64_t pos = op->off; pos < op->off + op->len;) {
			int64_t end = (pos / PC_PAGE + 1) * PC_PAGE;

			if (end > op->off + op->len)
				end = op->off + op->len;
			if (keep_page(mode, rng, idx++, prefix)) {
				if ((rc = pwrite_all(fd, op->data + (pos - op->off), end - pos, pos)) < 0)
					return rc;
				s->pages_kept++;
				last_kept_op = i;
				last_off = pos;
				last_len = end - pos;
				last_data = op->data + (pos - op->off);
			} else {
				s->pages_lost++;
			}
			pos = end;
		}
	}
	/* The last page written may be torn: some of its sectors are still
	 * what the synced image (or an earlier write) had. */
	if (last_kept_op != SIZE_MAX && pc_rand(rng) % 3 == 0) {
		bool torn = false;

		for (int64_t sec = 0; sec < last_len; sec += PC_SECTOR) {
			int64_t l = last_len - sec < PC_SECTOR ? last_len - sec : PC_SECTOR;

			if (pc_rand(rng) & 1)
				continue;
			/* Undo this sector: put back what the op replaced there. */
			{
				const struct pc_op *op = &n->ops[last_kept_op];
				int64_t at = last_off + sec, rel = at - op->off;
				int64_t had = op->old_size > at ? op->old_size - at : 0;
				unsigned char zero[PC_SECTOR] = {0};

				if (had > l)
					had = l;
				if (had && (rc = pwrite_all(fd, op->old + rel, had, at)) < 0)
					return rc;
				if (l > had && (rc = pwrite_all(fd, zero, l - had, at + had)) < 0)
					return rc;
				torn = true;
			}
		}
		s->torn += torn;
		(void)last_data;
	}
	/* Rarely, one unsynced sector is garbage (a write cut mid-sector). */
	if (last_kept_op != SIZE_MAX && pc_rand(rng) % 10 == 0) {
		unsigned char junk[PC_SECTOR];
		int64_t l = last_len < PC_SECTOR ? last_len : PC_SECTOR;

		for (size_t k = 0; k < sizeof(junk); k++)
			junk[k] = (unsigned char)pc_rand(rng);
		if ((rc = pwrite_all(fd, junk, l, last_off)) < 0)
			return rc;
		s->garbled++;
	}
	return 0;
}

int pc_powercut(uint32_t *rng, struct pc_cut_stats *stats)
{
	struct pc_cut_stats s = {0};
	int rc = 0;

	pthread_mutex_lock(&mu);
	for (struct pc_node *n = nodes; n && rc == 0; n = n->next)
		if (n->refs > 0) {
			fprintf(stderr, "powercut: %s still open\n", n->path);
			rc = -EBUSY;
		}
	for (struct pc_node *n = nodes; n && rc == 0; n = n->next) {
		int fd;

		if (!n->n)
			continue;
		s.files++;
		s.ops += n->n;
		fd = open(n->path, O_RDWR | O_CLOEXEC);
		if (fd < 0) { /* deleted meanwhile: nothing to put back */
			node_clear(n);
			continue;
		}
		if ((rc = undo_all(fd, n)) == 0)
			rc = replay_some(fd, n, rng, &s);
		close(fd);
		node_clear(n);
	}
	crashed = false;
	arm_at = 0;
	pthread_mutex_unlock(&mu);
	if (stats)
		*stats = s;
	return rc;
}

void pc_set_lying_disk(bool l)
{
	pthread_mutex_lock(&mu);
	lying = l;
	pthread_mutex_unlock(&mu);
}

void pc_reset(void)
{
	pthread_mutex_lock(&mu);
	for (struct pc_node *n = nodes; n; n = n->next)
		node_clear(n);
	crashed = false;
	arm_at = 0;
	pthread_mutex_unlock(&mu);
}
