/*
 * OS helpers: clocks, capped whole-file reads, atomic writes, mkdir -p,
 * config-relative paths, secrets, jittered backoff.
 */
#include "agri/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agri/time.h"

static int64_t real_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The wall-clock seam. AGRI_CLOCK="<RFC 3339 start>@<speed>" (e.g.
 * "2026-04-01T00:00:00.000Z@1440") makes util_now_ms() run from start at
 * speed times real time, counted from the process's first call: the demo
 * and simulations run stations, gateway and agri-sim on one accelerated
 * clock. Intervals and timeouts use util_mono_ms() and stay real.
 */
static struct {
	bool init, on;
	int64_t start_ms, real0_ms;
	double speed;
} clock_seam;

int64_t util_now_ms(void)
{
	if (!clock_seam.init) {
		const char *env = getenv("AGRI_CLOCK");
		const char *at = env ? strchr(env, '@') : NULL;

		clock_seam.init = true;
		if (at && agri_time_parse_n(env, (size_t)(at - env), &clock_seam.start_ms) == 0 &&
		    (clock_seam.speed = strtod(at + 1, NULL)) > 0) {
			clock_seam.on = true;
			clock_seam.real0_ms = util_mono_ms();
		}
	}
	if (!clock_seam.on)
		return real_now_ms();
	return clock_seam.start_ms +
	       (int64_t)((double)(util_mono_ms() - clock_seam.real0_ms) * clock_seam.speed);
}

double util_clock_speed(void)
{
	util_now_ms();
	return clock_seam.on ? clock_seam.speed : 1.0;
}

int64_t util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	nanosleep(&ts, NULL); /* a signal cuts it short: the caller re-checks */
}

int util_read_file(const char *path, size_t max, char **buf, size_t *len)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EISDIR;
		goto out;
	}
	if ((size_t)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	data[got] = '\0';
	*buf = data;
	*len = got;
	data = NULL;
out:
	free(data);
	close(fd);
	return rc;
}

int util_write_file_atomic(const char *path, const void *data, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *p = data;
	char *slash;
	int fd, dfd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int util_mkdirs(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int util_path_relative_to(char *out, size_t len, const char *base_file,
			  const char *rel)
{
	const char *slash;
	int n;

	if (rel[0] == '/' || !(slash = strrchr(base_file, '/')))
		n = snprintf(out, len, "%s", rel);
	else
		n = snprintf(out, len, "%.*s/%s", (int)(slash - base_file),
			     base_file, rel);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int util_read_secret(const char *path, char *out, size_t len)
{
	char *buf;
	size_t n;
	int rc;

	rc = util_read_file(path, 4096, &buf, &n);
	if (rc < 0)
		return rc;
	n = strcspn(buf, "\r\n");
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	if (n == 0)
		rc = -EINVAL;
	else if (n >= len)
		rc = -ENAMETOOLONG;
	else {
		memcpy(out, buf, n);
		out[n] = '\0';
	}
	memset(buf, 0, n);
	free(buf);
	return rc;
}

uint32_t util_rand32(uint32_t *state)
{
	uint32_t x = *state ? *state : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

int64_t util_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms,
			uint32_t *rng)
{
	int64_t d = base_ms;

	for (int i = 0; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	/* [0.5, 1.0) of d: spreads reconnects of many stations */
	return d / 2 + (int64_t)(util_rand32(rng) % (uint32_t)(d / 2 + 1));
}

int util_tcp_nodelay_to(const char *url)
{
	const char *hostport = strstr(url, "://"), *colon;
	bool tls = strncmp(url, "ssl://", 6) == 0 || strncmp(url, "mqtts://", 8) == 0 ||
		   strncmp(url, "wss://", 6) == 0;
	int port = tls ? 8883 : 1883, n = 0, one = 1;
	struct dirent *de;
	DIR *d;

	hostport = hostport ? hostport + 3 : url;
	colon = strrchr(hostport, ':');
	if (colon && !strchr(colon, ']'))
		port = atoi(colon + 1);
	d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = atoi(de->d_name), type = 0, peer;
		socklen_t tl = sizeof(type);

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || fd == dirfd(d))
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
		    getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
			continue;
		if (ss.ss_family == AF_INET)
			peer = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			peer = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		else
			continue;
		if (peer == port && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

void util_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

int util_parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

void util_deadline(struct timespec *ts, clockid_t clock, int64_t ms)
{
	clock_gettime(clock, ts);
	if (ms < 0)
		ms = 0;
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int util_cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int rc;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	rc = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return -rc;
}
