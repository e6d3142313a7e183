/*
 * The broker connection of agrictl's MQTT commands (see hub.h).
 */
#include "hub.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agri/util.h"
#include "errtext.h"
#include "msgs.h"

int hub_opt(struct hub_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'b': o->broker = arg; return 1;
	case 'u': o->username = arg; return 1;
	case 'p': o->password_file = arg; return 1;
	case 'c': o->ca_file = arg; return 1;
	case 't': o->prefix = arg; return 1;
	}
	return 0;
}

void hub_defaults(struct hub_opts *o)
{
	if (!o->broker)
		o->broker = "tcp://127.0.0.1:1883";
	if (!o->prefix)
		o->prefix = AGRI_TOPIC_PREFIX_DEFAULT;
}

static bool is_tls(const char *url)
{
	return strncmp(url, "ssl://", 6) == 0 || strncmp(url, "mqtts://", 8) == 0;
}

/* host and port of "scheme://host:port" (IPv6 in brackets). 0 or -EINVAL. */
static int split_url(const char *url, char *host, size_t hlen, char *port, size_t plen)
{
	const char *p = strstr(url, "://"), *colon, *end;

	if (!p)
		return -EINVAL;
	p += 3;
	if (*p == '[') {
		end = strchr(p, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		colon = end + 1;
		p++;
	} else {
		colon = strrchr(p, ':');
		end = colon;
	}
	if (!colon || end == p || (size_t)(end - p) >= hlen || strlen(colon + 1) >= plen ||
	    !colon[1])
		return -EINVAL;
	memcpy(host, p, (size_t)(end - p));
	host[end - p] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

/* Resolves host and tries a TCP connection within 5 s: 0, or prints why not
 * and returns 1. */
static int precheck(const char *url)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	char host[256], port[16];
	int rc, err = 0;

	if (split_url(url, host, sizeof(host), port, sizeof(port)) < 0) {
		fprintf(stderr, T("agrictl: bad broker URL \"%s\": expected tcp://HOST:PORT or "
				  "ssl://HOST:PORT\n"), url);
		return 2;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		fprintf(stderr, T("agrictl: cannot resolve the broker's host name \"%s\": %s\n"),
			host, gai_strerror(rc));
		return 1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
				ai->ai_protocol);
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		socklen_t sl = sizeof(err);

		if (fd < 0) {
			err = errno;
			continue;
		}
		err = 0;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			err = errno;
			if (err == EINPROGRESS) {
				err = poll(&pfd, 1, 5000) == 1 ? 0 : ETIMEDOUT;
				if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
					err = errno;
			}
		}
		close(fd);
		if (!err)
			break;
	}
	freeaddrinfo(res);
	if (err) {
		fprintf(stderr, T("agrictl: cannot reach the broker at %s:%s: %s\n"), host, port,
			errtext_open(err, 1));
		return 1;
	}
	return 0;
}

int hub_connect(const struct hub_opts *o, MQTTClient *out)
{
	MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
	MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
	char client_id[64], password[256] = "";
	MQTTClient c = NULL;
	int rc;

	*out = NULL;
	if ((rc = precheck(o->broker)) != 0)
		return rc;
	if (o->password_file &&
	    (rc = util_read_secret(o->password_file, password, sizeof(password))) < 0) {
		fprintf(stderr, "agrictl: --password-file %s: %s\n", o->password_file, strerror(-rc));
		return 1;
	}
	snprintf(client_id, sizeof(client_id), "agrictl-%d-%ld", (int)getpid(), (long)time(NULL));
	if (MQTTClient_create(&c, o->broker, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
	    MQTTCLIENT_SUCCESS) {
		fprintf(stderr, T("agrictl: bad broker URL \"%s\": expected tcp://HOST:PORT or "
				  "ssl://HOST:PORT\n"), o->broker);
		return 2;
	}
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.username = o->username;
	co.password = password[0] ? password : NULL;
	if (is_tls(o->broker)) {
		/* The hub's TLS listener: the server certificate and its name are
		 * checked against the agri CA (--ca-file), else the system's CAs. */
		ssl.trustStore = o->ca_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		co.ssl = &ssl;
	}
	rc = MQTTClient_connect(c, &co);
	memset(password, 0, sizeof(password));
	if (rc != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, T("agrictl: cannot connect to %s: %s\n"), o->broker, errtext_mqtt(rc));
		MQTTClient_destroy(&c);
		return 1;
	}
	*out = c;
	return 0;
}

void hub_close(MQTTClient *c)
{
	if (!c || !*c)
		return;
	if (MQTTClient_isConnected(*c))
		MQTTClient_disconnect(*c, 1000);
	MQTTClient_destroy(c);
}

int hub_collect(MQTTClient c, const char *filter, int quiet_ms, int max_ms,
		void (*fn)(void *ctx, const char *topic, const void *payload, size_t len),
		void *ctx)
{
	int64_t start = util_mono_ms(), last = start;

	if (MQTTClient_subscribe(c, filter, 1) != MQTTCLIENT_SUCCESS)
		return -EIO;
	while (util_mono_ms() - start < max_ms && util_mono_ms() - last < quiet_ms) {
		MQTTClient_message *m = NULL;
		char *t = NULL;
		int tl = 0;

		if (MQTTClient_receive(c, &t, &tl, &m, 100) != MQTTCLIENT_SUCCESS || !m) {
			if (t)
				MQTTClient_free(t);
			continue;
		}
		last = util_mono_ms();
		fn(ctx, t, m->payload, (size_t)m->payloadlen);
		MQTTClient_freeMessage(&m);
		MQTTClient_free(t);
	}
	MQTTClient_unsubscribe(c, filter);
	return 0;
}
