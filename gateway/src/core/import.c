/*
 * History import from CSV (see import.h). Runs on the caller's thread;
 * each chunk is handed to the writer thread with ingest_call().
 */
#include "core/import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/msg.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "core/ingest.h"

#define IMPORT_MAX_BYTES (1L << 30)
#define CHUNK_ROWS 4000

struct row {
	char station[AGRI_ID_MAX + 1];
	struct agri_reading r;
};

/* Splits a CSV line (no quoting: ids, numbers and units have no commas). */
static int split(char *line, char **f, int max)
{
	int n = 0;

	for (char *p = line;; p++) {
		if (n == max)
			return -1;
		f[n++] = p;
		p = strchr(p, ',');
		if (!p)
			break;
		*p = '\0';
	}
	return n;
}

static int parse_row(char *line, struct row *out, char *why, size_t why_len)
{
	char *f[8], *end;
	int n;

	line[strcspn(line, "\r\n")] = '\0';
	n = split(line, f, 8);
	if (n != 7) {
		snprintf(why, why_len, "expected 7 fields (station,sensor,metric,ts,value,unit,q), got %d", n);
		return -EINVAL;
	}
	if (!agri_station_id_valid(f[0]) || !agri_ident_valid(f[1]) || !agri_ident_valid(f[2])) {
		snprintf(why, why_len, "invalid station, sensor or metric name");
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->station, sizeof(out->station), "%s", f[0]);
	snprintf(out->r.sensor, sizeof(out->r.sensor), "%s", f[1]);
	snprintf(out->r.metric, sizeof(out->r.metric), "%s", f[2]);
	if (agri_time_parse(f[3], &out->r.ts_ms) < 0) {
		snprintf(why, why_len, "ts: not an RFC 3339 time: \"%.40s\"", f[3]);
		return -EINVAL;
	}
	if (strlen(f[5]) > AGRI_UNIT_MAX) {
		snprintf(why, why_len, "unit: longer than %d bytes", AGRI_UNIT_MAX);
		return -EINVAL;
	}
	snprintf(out->r.unit, sizeof(out->r.unit), "%s", f[5]);
	if (agri_quality_parse(f[6], &out->r.q) < 0) {
		snprintf(why, why_len, "q: expected ok, suspect, error or maint");
		return -EINVAL;
	}
	if (f[4][0] == '\0') {
		if (out->r.q != AGRI_Q_ERROR) {
			snprintf(why, why_len, "value: empty, but q is not \"error\"");
			return -EINVAL;
		}
		return 0;
	}
	out->r.value = strtod(f[4], &end);
	if (*end || end == f[4] || out->r.value != out->r.value ||
	    out->r.value - out->r.value != 0) {
		snprintf(why, why_len, "value: expected a finite number, got \"%.40s\"", f[4]);
		return -EINVAL;
	}
	if (out->r.q == AGRI_Q_ERROR) {
		snprintf(why, why_len, "value: must be empty when q is \"error\"");
		return -EINVAL;
	}
	out->r.has_value = true;
	return 0;
}

struct chunk {
	const struct row *rows;
	size_t n;
	struct agri_reading *buf;
	long stored;
};

/* Writer thread: one transaction; per station, its readings in order. */
static int chunk_fn(void *ctx, struct ingest *in, struct store *st)
{
	struct chunk *c = ctx;
	bool *done = calloc(c->n, sizeof(*done));
	int rc = 0;

	(void)st;
	if (!done)
		return -ENOMEM;
	for (size_t i = 0; i < c->n && rc >= 0; i++) {
		struct agri_telemetry t = {.readings = c->buf, .cap = AGRI_BATCH_MAX_READINGS};
		int64_t latest = 0;

		if (done[i])
			continue;
		snprintf(t.station, sizeof(t.station), "%s", c->rows[i].station);
		for (size_t j = i; j < c->n && rc >= 0; j++) {
			if (done[j] || strcmp(c->rows[j].station, t.station) != 0)
				continue;
			done[j] = true;
			c->buf[t.n++] = c->rows[j].r;
			if (c->rows[j].r.ts_ms > latest)
				latest = c->rows[j].r.ts_ms;
			if (t.n == AGRI_BATCH_MAX_READINGS) {
				rc = ingest_put_readings(in, &t, latest);
				c->stored += rc > 0 ? rc : 0;
				t.n = 0;
			}
		}
		if (rc >= 0 && t.n) {
			rc = ingest_put_readings(in, &t, latest);
			c->stored += rc > 0 ? rc : 0;
		}
	}
	free(done);
	return rc < 0 ? rc : 0;
}

long import_csv(struct ingest *in, const char *path, char *msg, size_t msg_len)
{
	FILE *f = fopen(path, "r");
	struct row *rows = NULL;
	size_t n = 0, cap = 0, lineno = 0;
	char *line = NULL, why[160];
	size_t line_cap = 0;
	struct agri_reading *buf = NULL;
	long stored = 0;
	int rc = 0;

	if (!f) {
		snprintf(msg, msg_len, "%s: %s", path, strerror(errno));
		return -errno;
	}
	while (getline(&line, &line_cap, f) > 0) {
		lineno++;
		if (lineno == 1 && strncmp(line, "station,", 8) == 0)
			continue;
		if (line[0] == '\n' || line[0] == '#')
			continue;
		if (n == cap) {
			struct row *r;

			cap = cap ? cap * 2 : 4096;
			if (cap * sizeof(*rows) > (size_t)IMPORT_MAX_BYTES ||
			    !(r = realloc(rows, cap * sizeof(*rows)))) {
				snprintf(msg, msg_len, "%s: too large to import at once", path);
				rc = -EFBIG;
				goto out;
			}
			rows = r;
		}
		if (parse_row(line, &rows[n], why, sizeof(why)) < 0) {
			snprintf(msg, msg_len, "%s:%zu: %s", path, lineno, why);
			rc = -EINVAL;
			goto out;
		}
		n++;
	}
	buf = calloc(AGRI_BATCH_MAX_READINGS, sizeof(*buf));
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i += CHUNK_ROWS) {
		struct chunk c = {.rows = rows + i, .n = n - i < CHUNK_ROWS ? n - i : CHUNK_ROWS,
				  .buf = buf};

		rc = ingest_call(in, chunk_fn, &c, 60000);
		if (rc < 0) {
			snprintf(msg, msg_len, "%s: import stopped after %ld readings: %s", path,
				 stored, strerror(-rc));
			goto out;
		}
		stored += c.stored;
	}
	snprintf(msg, msg_len, "%s: %zu rows read, %ld new readings stored", path, n, stored);
out:
	free(line);
	free(rows);
	free(buf);
	fclose(f);
	return rc < 0 ? rc : stored;
}
