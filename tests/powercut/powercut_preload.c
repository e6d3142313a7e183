/*
 * A power cut for a whole process (the soak's stations and hub,
 * docs/reliability.md): an LD_PRELOAD library that records, for the files
 * under $AGRI_POWERCUT_DIR, every write and truncate since that file's
 * last fsync/fdatasync (with the bytes it replaced), as powercut_vfs.c
 * does for SQLite alone, but at the system-call level, for everything the
 * process writes there. On SIGPWR a thread of its own stops every write,
 * puts back what the disk would have lost (all unsynced pages, or a
 * random half of them, by $AGRI_POWERCUT_MODE: "all" or "some"; default
 * some) and ends the process with _exit(137), as a power cut would: no
 * atexit, no flush, no clean close.
 *
 *   LD_PRELOAD=libagri_powercut.so AGRI_POWERCUT_DIR=/var/lib/x prog ...
 *   kill -PWR <pid>
 *
 * Not modelled: directory entries (a file created or renamed is taken as
 * durable: the project's own atomic writes fsync the directory), mmap'd
 * writes (SQLite's -shm is rebuilt from the WAL after a restart).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define FDS_MAX 4096

struct op {
	off_t off, len, old_size; /* a truncate: off = new size, len = bytes cut */
	bool trunc;
	unsigned char *old, *data;
};

struct node {
	dev_t dev;
	ino_t ino;
	char path[PATH_MAX];
	struct op *ops;
	size_t n, cap;
	struct node *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct node *nodes;
static struct node *by_fd[FDS_MAX];
static char dir[PATH_MAX];
static size_t dir_len;
static bool dying;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);

static void resolve(void)
{
	real_write = dlsym(RTLD_NEXT, "write");
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
	real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_close = dlsym(RTLD_NEXT, "close");
	real_open = dlsym(RTLD_NEXT, "open");
	real_open64 = dlsym(RTLD_NEXT, "open64");
	real_openat = dlsym(RTLD_NEXT, "openat");
}

/* Under mu: a dying process writes nothing more, ever. */
static void wait_if_dying(void)
{
	while (dying) {
		pthread_mutex_unlock(&mu);
		pause();
		pthread_mutex_lock(&mu);
	}
}

static void track(int fd, const char *path)
{
	struct stat sb;
	struct node *n;

	if (fd < 0 || fd >= FDS_MAX || !dir_len || !path)
		return;
	if (path[0] == '/' ? strncmp(path, dir, dir_len) != 0 : !strstr(path, dir))
		return;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return;
	pthread_mutex_lock(&mu);
	for (n = nodes; n; n = n->next)
		if (n->dev == sb.st_dev && n->ino == sb.st_ino)
			break;
	if (!n && (n = calloc(1, sizeof(*n)))) {
		n->dev = sb.st_dev;
		n->ino = sb.st_ino;
		snprintf(n->path, sizeof(n->path), "%s", path);
		n->next = nodes;
		nodes = n;
	}
	by_fd[fd] = n;
	pthread_mutex_unlock(&mu);
}

static struct op *push(struct node *n)
{
	if (n->n == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 64;
		struct op *o = realloc(n->ops, cap * sizeof(*o));

		if (!o)
			return NULL;
		n->ops = o;
		n->cap = cap;
	}
	memset(&n->ops[n->n], 0, sizeof(n->ops[0]));
	return &n->ops[n->n++];
}

static void clear(struct node *n)
{
	for (size_t i = 0; i < n->n; i++) {
		free(n->ops[i].old);
		free(n->ops[i].data);
	}
	n->n = 0;
}

/* Under mu: remembers a write of len bytes at off on fd's file. */
static void note_write(int fd, const void *buf, size_t len, off_t off)
{
	struct node *n = fd >= 0 && fd < FDS_MAX ? by_fd[fd] : NULL;
	struct stat sb;
	struct op *op;
	off_t had;

	if (!n || fstat(fd, &sb) < 0 || !(op = push(n)))
		return;
	op->off = off;
	op->len = (off_t)len;
	op->old_size = sb.st_size;
	had = sb.st_size > off ? sb.st_size - off : 0;
	if (had > (off_t)len)
		had = (off_t)len;
	op->old = calloc(1, (size_t)had + 1);
	op->data = malloc(len + 1);
	if (!op->old || !op->data) {
		free(op->old);
		free(op->data);
		n->n--;
		return;
	}
	if (had && pread(fd, op->old, (size_t)had, off) != had)
		memset(op->old, 0, (size_t)had);
	memcpy(op->data, buf, len);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t r;

	pthread_mutex_lock(&mu);
	wait_if_dying();
	note_write(fd, buf, len, off);
	r = real_pwrite(fd, buf, len, off);
	pthread_mutex_unlock(&mu);
	return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t r;

	pthread_mutex_lock(&mu);
	wait_if_dying();
	note_write(fd, buf, len, off);
	r = real_pwrite64(fd, buf, len, off);
	pthread_mutex_unlock(&mu);
	return r;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	ssize_t r;

	if (fd < 0 || fd >= FDS_MAX || !by_fd[fd] || !real_write)
		return (real_write ? real_write : (ssize_t(*)(int, const void *, size_t))
			dlsym(RTLD_NEXT, "write"))(fd, buf, len);
	pthread_mutex_lock(&mu);
	wait_if_dying();
	note_write(fd, buf, len, lseek(fd, 0, SEEK_CUR));
	r = real_write(fd, buf, len);
	pthread_mutex_unlock(&mu);
	return r;
}

static int do_trunc(int (*fn)(int, off_t), int fd, off_t size)
{
	struct node *n = fd >= 0 && fd < FDS_MAX ? by_fd[fd] : NULL;
	struct stat sb;
	struct op *op;
	int r;

	pthread_mutex_lock(&mu);
	wait_if_dying();
	if (n && fstat(fd, &sb) == 0 && sb.st_size > size && (op = push(n))) {
		op->trunc = true;
		op->off = size;
		op->len = sb.st_size - size;
		op->old_size = sb.st_size;
		if ((op->old = malloc((size_t)op->len + 1)) &&
		    pread(fd, op->old, (size_t)op->len, size) != op->len)
			memset(op->old, 0, (size_t)op->len);
		if (!op->old)
			n->n--;
	}
	r = fn(fd, size);
	pthread_mutex_unlock(&mu);
	return r;
}

int ftruncate(int fd, off_t size)
{
	return do_trunc(real_ftruncate, fd, size);
}

int ftruncate64(int fd, off_t size)
{
	return do_trunc(real_ftruncate64, fd, size);
}

static int do_sync(int (*fn)(int), int fd)
{
	struct node *n = fd >= 0 && fd < FDS_MAX ? by_fd[fd] : NULL;
	int r;

	pthread_mutex_lock(&mu);
	wait_if_dying();
	r = fn(fd);
	if (r == 0 && n)
		clear(n);
	pthread_mutex_unlock(&mu);
	return r;
}

int fsync(int fd)
{
	return do_sync(real_fsync, fd);
}

int fdatasync(int fd)
{
	return do_sync(real_fdatasync, fd);
}

int close(int fd)
{
	if (fd >= 0 && fd < FDS_MAX && by_fd[fd]) {
		pthread_mutex_lock(&mu);
		by_fd[fd] = NULL; /* the node keeps its unsynced writes */
		pthread_mutex_unlock(&mu);
	}
	return real_close(fd);
}

#define OPEN_BODY(call)                                                       \
	mode_t mode = 0;                                                      \
	int fd;                                                               \
	if (flags & (O_CREAT | O_TMPFILE)) {                                  \
		va_list ap;                                                   \
		va_start(ap, flags);                                          \
		mode = (mode_t)va_arg(ap, int);                               \
		va_end(ap);                                                   \
	}                                                                     \
	fd = call;                                                            \
	if (fd >= 0 && (flags & O_ACCMODE) != O_RDONLY)                       \
		track(fd, path);                                              \
	return fd;

int open(const char *path, int flags, ...)
{
	OPEN_BODY(real_open(path, flags, mode))
}

int open64(const char *path, int flags, ...)
{
	OPEN_BODY(real_open64(path, flags, mode))
}

int openat(int dfd, const char *path, int flags, ...)
{
	OPEN_BODY(real_openat(dfd, path, flags, mode))
}

/* --- the cut -------------------------------------------------------------- */

static uint32_t rng_next(uint32_t *s)
{
	uint32_t x = *s ? *s : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static void cut(void)
{
	const char *m = getenv("AGRI_POWERCUT_MODE");
	bool some = !m || strcmp(m, "all") != 0;
	uint32_t rng = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	unsigned long kept = 0, lost = 0;

	for (struct node *n = nodes; n; n = n->next) {
		int fd;

		if (!n->n || (fd = real_open(n->path, O_RDWR | O_CLOEXEC)) < 0)
			continue;
		/* back to the synced image, newest change first */
		for (size_t i = n->n; i-- > 0;) {
			struct op *op = &n->ops[i];

			if (op->trunc) {
				if (real_ftruncate(fd, op->old_size) == 0 && op->old)
					real_pwrite(fd, op->old, (size_t)op->len, op->off);
			} else {
				off_t had = op->old_size > op->off ? op->old_size - op->off : 0;

				if (had > op->len)
					had = op->len;
				if (had)
					real_pwrite(fd, op->old, (size_t)had, op->off);
				real_ftruncate(fd, op->old_size);
			}
		}
		/* then some of the changes, page by page, in order */
		for (size_t i = 0; some && i < n->n; i++) {
			struct op *op = &n->ops[i];

			if (op->trunc) {
				if (rng_next(&rng) & 1)
					real_ftruncate(fd, op->off);
				continue;
			}
			for (off_t pos = op->off; pos < op->off + op->len;) {
				off_t end = (pos / PAGE + 1) * PAGE;

				if (end > op->off + op->len)
					end = op->off + op->len;
				if (rng_next(&rng) & 1) {
					real_pwrite(fd, op->data + (pos - op->off), (size_t)(end - pos), pos);
					kept++;
				} else {
					lost++;
				}
				pos = end;
			}
		}
		real_close(fd);
	}
	fprintf(stderr, "<2>POWER CUT: unsynced pages kept=%lu lost=%lu\n", kept, lost);
}

static void *watcher(void *arg)
{
	sigset_t set;
	int sig;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGPWR);
	for (;;) {
		if (sigwait(&set, &sig) == 0 && sig == SIGPWR) {
			pthread_mutex_lock(&mu); /* every writer is outside a write now */
			dying = true;
			cut();
			_exit(137);
		}
	}
	return NULL;
}

__attribute__((constructor)) static void init(void)
{
	const char *d = getenv("AGRI_POWERCUT_DIR");
	sigset_t set;
	pthread_t t;

	resolve();
	if (!d || !*d)
		return;
	if (!realpath(d, dir))
		snprintf(dir, sizeof(dir), "%s", d);
	dir_len = strlen(dir);
	/* SIGPWR goes to the watcher only: blocked here, before any other
	 * thread exists, so every thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGPWR);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_create(&t, NULL, watcher, NULL);
	pthread_detach(t);
}
