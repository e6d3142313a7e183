/*
 * The HTTP server's memory of its clients (guard.c; docs/api.md, "Limits"):
 * per client (an address; an IPv6 /64) a token bucket for the requests it
 * makes without a valid token, and its failed token tries, which lock its
 * token tries out for a time that doubles with each failure past the
 * fifth (1 s, 2 s, ... 5 min). Times are the caller's monotonic ms (the
 * tests pass their own). Thread-safe: HTTP worker threads.
 */
#ifndef GATEWAY_HTTP_GUARD_H
#define GATEWAY_HTTP_GUARD_H

#include <stdbool.h>
#include <stdint.h>

struct sockaddr;
struct http_guard;

/* A guard whose buckets refill at rate_per_s and hold burst requests. NULL
 * when out of memory. http_guard_free() accepts NULL. */
struct http_guard *http_guard_new(double rate_per_s, double burst);
void http_guard_free(struct http_guard *g);

/* Takes one request from sa's bucket. Returns 0 when it may go on, else
 * the seconds until the bucket holds one again (Retry-After, >= 1). */
int http_guard_take(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms);

/* 0 when sa may try a token now; else the seconds its lockout lasts. */
int http_guard_locked(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms);

/* Records a failed token try of sa. Returns the lockout it starts in
 * seconds, or 0 while it is within its free tries. */
int http_guard_failed(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms);

/* Records a right token from sa: its failures are forgotten. */
void http_guard_passed(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms);

#endif
