/*
 * libFuzzer harness for the HTTP API's request handlers, through
 * libmicrohttpd's client-facing side: the real server (http_start(), its
 * thread pool, routes and handlers) listens on a loopback port over a
 * small database (three stations, readings, an alert), and each input is
 * sent on a new TCP connection as one request: byte 0 picks the method
 * and whether the right bearer token, a wrong one or none is added, the
 * input's first line is the request target, the rest is more headers and
 * the body, exactly as given. The answer must be an HTTP/1.x status line
 * (or nothing, when libmicrohttpd closes a broken request); ASan and
 * UBSan watch the server's threads. Seeds: tests/fuzz/corpus/gateway_http/.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agri/log.h"
#include "core/health.h"
#include "core/store.h"
#include "gateway/config.h"
#include "http/http.h"

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)
#define TOKEN "fuzz-token-0123456789abcdef0123456789abcdef0123456789"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gateway_config cfg;
static struct gateway_health health;
static struct http_server *srv;
static int port;

static int ack(void *ctx, const char *id, const char *who, struct http_ack_result *res)
{
	(void)ctx;
	(void)who;
	if (strncmp(id, "sal-hi/", 7) != 0)
		return -ENOENT;
	snprintf(res->state, sizeof(res->state), "acknowledged");
	res->changed = id[7] == 'D';
	return 0;
}

static int metrics(void *ctx, char *buf, size_t len)
{
	(void)ctx;
	return snprintf(buf, len, "agri_fuzz 1\n");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	REQUIRE(f);
	fputs(text, f);
	REQUIRE(fclose(f) == 0);
}

/* The database the handlers read: stations, readings, one alert. */
static void fill(const char *db)
{
	struct store_options so = {.sync_full = false, .track_gaps = true};
	static const char *const names[] = {"DT-W01", "DT-W02", "BT-L01"};
	struct store *st;
	int err = 0;

	st = store_open(db, &so, &err);
	REQUIRE(st);
	REQUIRE(store_begin(st) == 0);
	for (int s = 0; s < 3; s++) {
		for (int i = 0; i < 200; i++) {
			struct agri_reading r = {.ts_ms = 1767225600000LL + i * 600000LL,
						 .value = 1.0 + (i % 50) / 10.0, .has_value = i % 17 != 0,
						 .q = i % 17 ? AGRI_Q_OK : AGRI_Q_ERROR};

			snprintf(r.sensor, sizeof(r.sensor), "sonde1");
			snprintf(r.metric, sizeof(r.metric), i % 2 ? "salinity" : "water_level");
			snprintf(r.unit, sizeof(r.unit), i % 2 ? "g/L" : "m");
			REQUIRE(store_put_reading(st, names[s], &r, r.ts_ms) >= 0);
		}
		REQUIRE(store_note_seq(st, names[s], 1, 1767225600000LL) >= 0);
	}
	REQUIRE(sqlite3_exec(store_db(st),
			     "INSERT INTO alerts(id, rule, station, sensor, metric, severity, state,"
			     " value, threshold, raised_at, updated_at, message) VALUES"
			     " ('sal-hi/DT-W01/sonde1', 'sal-hi', 'DT-W01', 'sonde1', 'salinity',"
			     " 'alarm', 'active', 4.3, 4.0, 1767225600000, 1767225600000, 'Độ mặn 4.3');"
			     "INSERT INTO alert_events(alert_id, state, severity, value, at) VALUES"
			     " ('sal-hi/DT-W01/sonde1', 'active', 'alarm', 4.3, 1767225600000);",
			     NULL, NULL, NULL) == 0);
	REQUIRE(store_commit(st) == 0);
	store_close(st);
}

/* A free loopback port (http.listen needs a number). */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	REQUIRE(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/agri-fuzz-http-XXXXXX";
	char path[300], db[300], token[300], text[1024];
	struct agri_err err = {0};
	struct http_hooks hooks = {.ack_alert = ack, .metrics = metrics};
	int rc = 0;

	(void)argc;
	(void)argv;
	log_set_level(LOG_LVL_ERROR);
	REQUIRE(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/agri.db", dir);
	snprintf(token, sizeof(token), "%s/api.token", dir);
	snprintf(path, sizeof(path), "%s/gateway.json", dir);
	write_file(token, TOKEN "\n");
	snprintf(text, sizeof(text),
		 "{\"broker\":{\"url\":\"tcp://127.0.0.1:9\"},\"db\":{\"path\":\"%s\"},"
		 "\"http\":{\"listen\":\"127.0.0.1:%d\",\"token_file\":\"%s\"}}\n", db,
		 free_port(), token);
	write_file(path, text);
	if (gateway_config_load(path, &cfg, &err) < 0) {
		fprintf(stderr, "gateway.json: %s: %s\n", err.path, err.msg);
		abort();
	}
	fill(db);
	srv = http_start(&cfg, &health, &hooks, &rc);
	REQUIRE(srv);
	port = http_port(srv);
	REQUIRE(port > 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS",
					      "GET", "POST"};
	static char req[70000], resp[4096];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	/* The handlers answer a small database within milliseconds; silence
	 * past this is a request still waiting for its body. */
	struct timeval tv = {.tv_usec = 300000};
	struct linger rst = {.l_onoff = 1, .l_linger = 0};
	const uint8_t *nl;
	size_t len = 0, first;
	ssize_t got, total = 0;
	int fd;

	if (size < 1 || size > 65536)
		return 0;
	nl = memchr(data + 1, '\n', size - 1);
	first = nl ? (size_t)(nl - (data + 1)) : size - 1;
	len += (size_t)snprintf(req, sizeof(req), "%s ", methods[data[0] & 7]);
	memcpy(req + len, data + 1, first);
	len += first;
	len += (size_t)snprintf(req + len, sizeof(req) - len,
				" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
				(data[0] >> 3) % 3 == 0 ? "Authorization: Bearer " TOKEN "\r\n" :
				(data[0] >> 3) % 3 == 1 ? "Authorization: Bearer nope\r\n" : "");
	if (nl) {
		size_t rest = size - 1 - first - 1;

		memcpy(req + len, nl + 1, rest);
		len += rest;
	} else {
		memcpy(req + len, "\r\n", 2);
		len += 2;
	}
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	REQUIRE(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	if (send(fd, req, len, MSG_NOSIGNAL) < 0) {
		close(fd);
		return 0;
	}
	shutdown(fd, SHUT_WR);
	while ((got = recv(fd, resp + total, sizeof(resp) - 1 - (size_t)total, 0)) > 0) {
		total += got;
		if ((size_t)total == sizeof(resp) - 1)
			total = 16; /* keep the status line, drain the rest */
	}
	/* Not answered: libmicrohttpd keeps a request that waits for the
	 * rest of its body (Content-Length: 15 with 14 bytes) until its
	 * connection timeout, half-close or not. A reset frees it at once:
	 * each such input cost 5-10 s and the campaign ran at 8 inputs/s. */
	if (got < 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	close(fd);
	/* An answer, if any, is HTTP. (None within 0.3 s is a request still
	 * waiting for a body that never comes: not a failure of ours.) */
	if (total)
		REQUIRE(total >= 8 && memcmp(resp, "HTTP/1.", 7) == 0);
	return 0;
}
