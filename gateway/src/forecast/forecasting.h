/*
 * Forecasting: the salinity forecasts and pest advisories (forecast.h,
 * pure math) run inside the gateway (docs/forecast.md).
 *
 * - An ingest hook notes which stations got new ok salinity readings.
 * - A worker thread refits a noted station at most every
 *   FORECASTING_REFIT_MS and at least every FORECASTING_MAX_AGE_MS (while
 *   the writer works through a backlog, only then), on its own read-only
 *   SQLite connection (never blocking ingest), so a forecast reflects new
 *   data within 60 s; the result (or the reason there is
 *   none) is saved through the writer (ingest_call) into `forecasts` and
 *   `forecast_windows` (views v_forecasts, v_forecast_windows), published
 *   retained on <prefix>/forecast/<station>/salinity, and served by the
 *   HTTP API from memory.
 * - A light-trap peak confirmed by the alert engine's peak rule becomes an
 *   advisory (`advisories`, view v_advisories) in the same transaction,
 *   published retained on <prefix>/advisory/<station>.
 */
#ifndef GATEWAY_FORECASTING_H
#define GATEWAY_FORECASTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "core/ingest.h"

#define FORECASTING_REFIT_MS 20000
#define FORECASTING_MAX_AGE_MS 600000

struct forecasting;
struct store;

/* NULL with *err == 0 when forecasts are disabled in cfg. Creates its
 * tables through the writer's connection later (first transaction). */
struct forecasting *forecasting_new(const struct gateway_config *cfg,
				    struct ingest *in, int *err);
/* Creates the tables and views on the writer's connection (before the
 * writer thread starts). Returns 0 or a negative errno. */
int forecasting_attach(struct forecasting *f, struct store *st);
const struct ingest_hook *forecasting_hook(struct forecasting *f);
/* Quiet: advisories and windows are stored but not notified (history import). */
void forecasting_set_quiet(struct forecasting *f, bool quiet);
int forecasting_start(struct forecasting *f);
/* Publishes the current forecasts and advisories again (after a reconnect). */
void forecasting_republish(struct forecasting *f);
/* http_hooks.forecast: the interfaces.md §13 document, or -ENODATA with the reason. */
int forecasting_http(void *f, const char *station, const char *metric, char *buf,
		     size_t len);
/* alerting_peak_fn: makes the advisory of a confirmed light-trap peak.
 * late: the peak came in a station's late data (docs/alerts.md, Reading
 * order): the advisory is marked so, and when its sowing window has
 * already passed it is only recorded (not notified nor published). */
int forecasting_on_peak(void *f, const char *station, int64_t night_day, double count,
			bool late);
void forecasting_stop(struct forecasting *f);
void forecasting_free(struct forecasting *f);

#endif
