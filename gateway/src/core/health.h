/*
 * The gateway's health and counters, read by /healthz and /metrics (HTTP
 * API, a later part) and logged at exit. Locking rules: every field is an
 * atomic, written by the thread named beside it and read by any thread
 * without a lock; counters only grow.
 */
#ifndef GATEWAY_HEALTH_H
#define GATEWAY_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct gateway_health {
	atomic_bool connected;        /* broker: paho callbacks */
	atomic_bool db_writable;      /* ingest writer: last commit succeeded */
	atomic_uint_fast64_t received;     /* paho thread: messages accepted */
	atomic_uint_fast64_t deferred;     /* paho thread: left to paho (queue full) */
	atomic_uint_fast64_t batches;      /* writer: telemetry batches committed */
	atomic_uint_fast64_t readings_stored;    /* writer: new readings committed */
	atomic_uint_fast64_t readings_duplicate; /* writer: already stored */
	atomic_uint_fast64_t status_msgs;  /* writer */
	atomic_uint_fast64_t dead_letters; /* writer */
	atomic_uint_fast64_t acks_sent;    /* writer: ack messages published */
	atomic_uint_fast64_t ack_failures; /* writer: publish refused (offline) */
	atomic_uint_fast64_t commits;      /* writer */
	atomic_uint_fast64_t commit_failures; /* writer */
	atomic_uint_fast64_t retention_moved; /* writer: raw rows aggregated */
	atomic_int_fast64_t last_commit_ms;   /* writer: wall clock */
	atomic_uint_fast64_t queue_depth;  /* messages waiting for the writer */
	/* Budgets and the clock window (docs/security.md). */
	atomic_uint_fast64_t quota_messages;  /* paho thread: dropped at the door */
	atomic_uint_fast64_t quota_bytes;     /* paho thread: ... their bytes */
	atomic_uint_fast64_t quota_readings;  /* writer: readings refused (rate, series) */
	atomic_uint_fast64_t clock_readings;  /* writer: readings outside the clock window */
	atomic_uint_fast64_t dead_suppressed; /* writer: dead letters only counted */
	atomic_uint_fast64_t content_failures;/* writer: messages isolated as poison */
	/* The hub alarm: the database could not be written (writer). */
	atomic_bool hub_alarm;
	atomic_int_fast64_t hub_alarm_since_ms; /* wall clock; 0: none */
	atomic_int hub_alarm_errno;             /* positive errno */
};

#endif
