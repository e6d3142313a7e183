/*
 * Calibrations (docs/gateway.md "Calibration"): the table in the
 * gateway's database where `agrictl calibrate` records each calibration of
 * a sensor with who and when (calibrations, view v_calibrations), and the
 * "calibration due" check: once calibration.interval_days have passed since
 * a sensor's last recorded calibration, the station's built-in
 * calibration-due alert is raised (an ingest event, INGEST_EV_CALIBRATION,
 * which the alert engine turns into the rule of kind "calibration") and
 * kept raised until the sensor is calibrated again. A sensor enters the
 * schedule with its first recorded calibration.
 *
 * Threads: the hook runs on the ingest writer thread (on_tick, once a
 * minute of the gateway's clock).
 */
#ifndef GATEWAY_CALIBRATION_H
#define GATEWAY_CALIBRATION_H

#include "core/ingest.h"
#include "gateway/config.h"

struct calibration;
struct store;

/* Creates the table and view in st's database when missing. NULL with
 * *err (a negative errno) when the database cannot be written. */
struct calibration *calibration_new(const struct gateway_config *cfg, struct store *st,
				    struct ingest *in, int *err);
/* The ingest hook to attach with ingest_add_hook(). */
const struct ingest_hook *calibration_hook(struct calibration *c);
void calibration_free(struct calibration *c);

/* The table and view (also agrictl's, which may create them first). */
extern const char *const calibration_schema;

#endif
