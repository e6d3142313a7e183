/*
 * The HTTP server's per-client guard (gateway/src/http/guard.c) on its own
 * clock: token buckets that refill at their rate and answer with the wait,
 * clients (addresses, IPv6 /64s) that do not share a bucket, and failed
 * token tries that lock a client's tries out for 1 s, 2 s, 4 s ... 5 min
 * after five free ones.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "http/guard.h"
#include "test.h"

static struct sockaddr_storage v4(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	inet_pton(AF_INET, a, &in->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, a, &in6->sin6_addr);
	return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void test_bucket(void)
{
	struct http_guard *g = http_guard_new(50, 200);
	struct sockaddr_storage a = v4("192.168.1.20"), b = v4("192.168.1.21");
	int64_t t = 1000000;
	int ok = 0, wait = 0;

	for (int i = 0; i < 1000; i++) /* 1,000 at once: the burst goes through */
		if ((wait = http_guard_take(g, SA(a), t)) == 0)
			ok++;
	CHECK_INT(ok, 200);
	CHECK_INT(wait, 1); /* one more in 20 ms: "Retry-After: 1" */
	CHECK_INT(http_guard_take(g, SA(b), t), 0); /* another client is not touched */
	ok = 0;
	for (int ms = 1; ms <= 1000; ms++) /* then 2,000 a second for a second: 50 more */
		for (int i = 0; i < 2; i++)
			if (http_guard_take(g, SA(a), t + ms) == 0)
				ok++;
	CHECK_INT(ok, 50);
	CHECK_INT(http_guard_take(g, SA(a), t + 1000 + 3000 * 1000), 0); /* refilled, capped */
	ok = 0;
	for (int i = 0; i < 1000; i++)
		if (http_guard_take(g, SA(a), t + 1000 + 3000 * 1000) == 0)
			ok++;
	CHECK_INT(ok, 199);
	http_guard_free(g);

	g = http_guard_new(0.5, 1); /* slow: one request in 2 s */
	CHECK_INT(http_guard_take(g, SA(a), t), 0);
	CHECK_INT(http_guard_take(g, SA(a), t), 2);
	CHECK_INT(http_guard_take(g, SA(a), t + 1500), 1);
	CHECK_INT(http_guard_take(g, SA(a), t + 2000), 0);
	http_guard_free(g);
	http_guard_free(NULL);
}

static void test_clients(void)
{
	struct http_guard *g = http_guard_new(1, 1);
	struct sockaddr_storage h1 = v6("2001:db8:1:2::10"), h2 = v6("2001:db8:1:2:ffff::99");
	struct sockaddr_storage o = v6("2001:db8:1:3::10"), m = v6("::ffff:10.0.0.1"),
				m2 = v6("::ffff:10.0.0.2"), p = v4("10.0.0.1");
	int64_t t = 5000;

	CHECK_INT(http_guard_take(g, SA(h1), t), 0);
	CHECK(http_guard_take(g, SA(h2), t) > 0); /* the same /64: one client */
	CHECK_INT(http_guard_take(g, SA(o), t), 0); /* the next /64: another */
	CHECK_INT(http_guard_take(g, SA(m), t), 0);
	CHECK(http_guard_take(g, SA(p), t) > 0);  /* 10.0.0.1, mapped or not */
	CHECK_INT(http_guard_take(g, SA(m2), t), 0); /* mapped IPv4: each its own */
	/* far more clients than slots: the newest always get a bucket */
	for (int i = 0; i < 20000; i++) {
		char a[32];
		struct sockaddr_storage x;

		snprintf(a, sizeof(a), "10.%d.%d.%d", 1 + (i >> 16), (i >> 8) & 255, i & 255);
		x = v4(a);
		CHECK_INT(http_guard_take(g, SA(x), t + i), 0);
	}
	http_guard_free(g);
}

static void test_failures(void)
{
	struct http_guard *g = http_guard_new(50, 200);
	struct sockaddr_storage a = v4("192.168.1.20"), b = v4("192.168.1.30");
	static const int lock_s[] = {0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300};
	int64_t t = 1000000;

	for (size_t i = 0; i < sizeof(lock_s) / sizeof(lock_s[0]); i++) {
		CHECK_INT(http_guard_locked(g, SA(a), t), 0);
		CHECK_INT(http_guard_failed(g, SA(a), t), lock_s[i]);
		CHECK_INT(http_guard_locked(g, SA(a), t), lock_s[i]);
		CHECK_INT(http_guard_locked(g, SA(b), t), 0); /* its own failures only */
		t += (int64_t)lock_s[i] * 1000;
	}
	/* a right token forgets them */
	http_guard_passed(g, SA(a), t);
	for (int i = 0; i < 5; i++)
		CHECK_INT(http_guard_failed(g, SA(a), t), 0);
	CHECK_INT(http_guard_failed(g, SA(a), t), 1);
	/* and so does a quarter of an hour without a failure */
	t += 16 * 60 * 1000;
	CHECK_INT(http_guard_locked(g, SA(a), t), 0);
	CHECK_INT(http_guard_failed(g, SA(a), t), 0);
	http_guard_free(g);
}

int main(void)
{
	test_bucket();
	test_clients();
	test_failures();
	return test_main("test_gateway_http_guard");
}
