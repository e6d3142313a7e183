/*
 * agrictl's connection to the hub's broker, shared by the commands that
 * talk MQTT (config push, status, maint): the broker options, a connect
 * that says why it failed (the host name, the TCP port, TLS, the
 * password: CONNACK 5), and collecting retained messages (a station's
 * status, its alerts, its desired config). paho's synchronous
 * MQTTClient: a CLI has nothing else to do meanwhile. Single thread.
 */
#ifndef AGRICTL_HUB_H
#define AGRICTL_HUB_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include <MQTTClient.h>

#include "agri/topic.h"

struct hub_opts {
	const char *broker;        /* default tcp://127.0.0.1:1883 (on the hub) */
	const char *username, *password_file, *ca_file;
	const char *prefix;        /* topic prefix, default agri/v1 */
};

/* getopt_long rows of the broker options (letters 'b' 'u' 'p' 'c' 't'). */
#define HUB_LONG_OPTS                                                                \
	{"broker", required_argument, 0, 'b'}, {"username", required_argument, 0, 'u'}, \
	{"password-file", required_argument, 0, 'p'}, {"ca-file", required_argument, 0, 'c'}, \
	{"topic-prefix", required_argument, 0, 't'}

/* Consumes one broker option (c from getopt_long, optarg): 1 when it was
 * one, 0 when not. */
int hub_opt(struct hub_opts *o, int c, const char *arg);

/* Defaults for what was not given. */
void hub_defaults(struct hub_opts *o);

/*
 * Connects (clean session, client id "agrictl-<pid>-<time>") after checking
 * that the broker's host name resolves and its port accepts a TCP
 * connection, so a failure says which. Prints the reason (errtext_mqtt)
 * and returns the exit code (1), or 0 with *out connected.
 */
int hub_connect(const struct hub_opts *o, MQTTClient *out);

/* Disconnects and destroys (NULL-safe). */
void hub_close(MQTTClient *c);

/*
 * Subscribes to filter and calls fn for every message until none came for
 * quiet_ms (retained messages come right after SUBACK) or max_ms passed;
 * unsubscribes. fn gets the topic and payload (not NUL-terminated; an
 * empty retained message has len 0). Returns 0, or -EIO when the
 * subscription failed.
 */
int hub_collect(MQTTClient c, const char *filter, int quiet_ms, int max_ms,
		void (*fn)(void *ctx, const char *topic, const void *payload, size_t len),
		void *ctx);

#endif
