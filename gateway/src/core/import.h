/*
 * History import (`agri-gateway --import FILE.csv`): readings kept before a
 * station was connected (manual light-trap counts, a logger's memory card,
 * the demo's simulated history) enter through the same store and hooks as
 * live telemetry, so alerts, forecasts and forwarders see them too.
 *
 * CSV, UTF-8, a header line `station,sensor,metric,ts,value,unit,q` then one
 * reading a line; `value` empty for q "error"; rows in time order. The
 * whole file is validated first (FILE:LINE: reason, nothing imported), then
 * imported in transactions of a few thousand rows. Re-importing is
 * harmless: a reading's identity makes it a no-op.
 */
#ifndef GATEWAY_IMPORT_H
#define GATEWAY_IMPORT_H

#include <stddef.h>

struct ingest;

/* Imports path through in (started, writer running). Returns the number of
 * new readings, or a negative errno with a message in msg. */
long import_csv(struct ingest *in, const char *path, char *msg, size_t msg_len);

#endif
