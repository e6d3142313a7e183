/*
 * Small OS helpers shared by the programs: clocks (one seam, so tests can
 * reason about time), whole-file reads with a cap, directories, paths
 * relative to a config file.
 */
#ifndef AGRI_UTIL_H
#define AGRI_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wall clock, ms since the Unix epoch (CLOCK_REALTIME), or the simulated
 * clock when AGRI_CLOCK="<RFC 3339 start>@<speed>" is set (demo, tests).
 * The first call fixes the simulated clock's origin: not thread-safe
 * before that, so call it once at start-up. */
int64_t util_now_ms(void);
/* The simulated clock's speed (1 when AGRI_CLOCK is unset). */
double util_clock_speed(void);
/* Monotonic clock, ms (CLOCK_MONOTONIC). */
int64_t util_mono_ms(void);
/* Sleeps ms milliseconds (nothing when ms <= 0). A signal handler run on
 * this thread cuts it short (EINTR is not restarted), so a loop that
 * sleeps re-checks its stop flag; the station blocks its signals in every
 * thread but one, where it sleeps the whole time. */
void util_sleep_ms(int64_t ms);
/* The absolute time ms from now on clock, for pthread_cond_timedwait()
 * (CLOCK_MONOTONIC with a util_cond_init_mono() condition variable). */
void util_deadline(struct timespec *ts, clockid_t clock, int64_t ms);
/* A condition variable whose timed waits run on CLOCK_MONOTONIC (a wall
 * clock step cannot stretch or cut them). Returns 0 or a negative errno. */
int util_cond_init_mono(pthread_cond_t *c);

/*
 * Reads a whole file into a NUL-terminated malloc'd buffer (caller frees).
 * Returns 0 with *buf and *len set, -EFBIG when larger than max, or -errno.
 */
int util_read_file(const char *path, size_t max, char **buf, size_t *len);

/* Writes data to path atomically (temp file, fsync, rename, fsync dir). */
int util_write_file_atomic(const char *path, const void *data, size_t len);

/* mkdir -p with mode; returns 0 or -errno. */
int util_mkdirs(const char *path, unsigned mode);

/*
 * Resolves rel against the directory of base_file unless rel is absolute.
 * Returns 0, or -ENAMETOOLONG.
 */
int util_path_relative_to(char *out, size_t len, const char *base_file,
			  const char *rel);

/* Reads a secret (password/token) file: the first line, trailing
 * whitespace stripped. Returns 0 or -errno (-EINVAL when empty). */
int util_read_secret(const char *path, char *out, size_t len);

/* Jittered exponential backoff: min(cap, base * 2^attempt) * [0.5, 1.0). */
int64_t util_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms,
			uint32_t *rng);

/*
 * Sets TCP_NODELAY on every connected TCP socket of this process whose peer
 * is the MQTT broker of url ("tcp://host:port", "ssl://..."; the port
 * defaults to 1883, or 8883 for ssl/mqtts). paho.mqtt.c leaves Nagle's
 * algorithm on and offers no socket option: small QoS 1 messages (acks)
 * then wait for the peer's delayed ACK, ~40 ms each. Call after connecting.
 * Returns the number of sockets changed.
 */
int util_tcp_nodelay_to(const char *url);

/* Parses a whole string as a finite number in [lo, hi] (command-line
 * values). Returns 0 with *out, or -EINVAL. */
int util_parse_double(const char *s, double lo, double hi, double *out);

/* Writes a printf-style reason into why (len bytes, truncated), when the
 * caller asked for one (why not NULL, len > 0). */
void util_why(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* xorshift32; *state must be non-zero. */
uint32_t util_rand32(uint32_t *state);

#endif
