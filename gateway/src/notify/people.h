/*
 * The people of the recipients file, wired into the gateway (docs/notify.md
 * "People and the policy"): the policy (policy.h) fed with what the rooms
 * raise, its messages staged in the outbox for each person's channels.
 *
 * - Alert transitions reach it through the alerting hook's transition
 *   callback (people_on_transition), inside the transaction that stores
 *   them.
 * - New forecasts and advisories are read by its ingest hook's tick from
 *   the tables the forecaster commits (forecasts.doc, advisories), each
 *   once (a per-station made_at and the advisory ids are remembered in the
 *   same transaction as the decisions), so a refit's windows are the very
 *   ones /api/v1/forecast serves.
 * - The tick also advances the policy's timers (groups, all-clears,
 *   flapping, bulletins) and prunes old journal rows and messages.
 * Rules keep naming channels for machine endpoints: that path (the
 * outbox rows of alerting and forecasting) is untouched.
 *
 * Threads: everything but people_metrics_text() runs on the ingest
 * writer thread.
 */
#ifndef GATEWAY_PEOPLE_H
#define GATEWAY_PEOPLE_H

#include <stdbool.h>

#include "agri/err.h"
#include "gateway/config.h"

struct people;
struct store;
struct ingest_hook;
struct alert_transition;

/*
 * Loads cfg->recipients_file (none: nobody, but inputs are still
 * journaled, so `agrictl notify preview` can try a file on them later),
 * checks each person's channels against gateway.json, creates the tables
 * on st's connection and publishes the people for the dashboard. NULL with
 * *err and *e ("recipients[0].webhook: no webhook named ...") on a bad
 * file. Before ingest_start().
 */
struct people *people_new(const struct gateway_config *cfg, struct store *st,
			  struct agri_err *e, int *err);
const struct ingest_hook *people_hook(struct people *p);
/* The alerting hook's transition callback (writer thread, in the
 * transaction). Returns 0 or a negative errno (roll back). */
int people_on_transition(void *p, const struct alert_transition *t);
/* agri_gateway_notify_* for /metrics. Any thread. */
int people_metrics_text(void *p, char *buf, size_t len);
void people_free(struct people *p);

#endif
