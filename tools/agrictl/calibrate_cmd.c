/*
 * `agrictl calibrate`: a calibration of one sensor against a standard
 * solution, done on the device where its profile says how, and recorded in
 * the gateway's database with who and when (table calibrations, view
 * v_calibrations: docs/gateway.md "Calibration"), from which the gateway
 * raises "calibration due" once the interval has passed.
 *
 * With a device (--profile and a bus): reads the metric --samples times
 * with the probe in the standard (before), then
 *   - a calibration point of the profile for this standard (the SenseCAP's
 *     1413 and 12880 µS/cm): writes it, the device corrects itself;
 *   - else a "cal_offset" coefficient (Yosemitech's B): writes the offset
 *     that makes the reading the standard (one point);
 *   - else nothing is written: the check is recorded as such;
 * waits, and reads again (after). Without a device (--before [--after]):
 * records a calibration done with the vendor's tool.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agri/exit.h"
#include "agri/util.h"
#include "agrictl.h"
#include "cli.h"
#include "errtext.h"
#include "modbus_probe.h"
#include "msgs.h"

static const char *const cmd = "calibrate";

/* The table the gateway reads (gateway/src/core/calibration.c creates the
 * same: whoever comes first). */
const char *const agrictl_calibration_schema =
	"CREATE TABLE IF NOT EXISTS calibrations("
	" id INTEGER PRIMARY KEY, station TEXT NOT NULL, sensor TEXT NOT NULL,"
	" metric TEXT NOT NULL, standard REAL, unit TEXT NOT NULL DEFAULT '',"
	" before REAL, after REAL, method TEXT NOT NULL, written TEXT,"
	" by TEXT NOT NULL, at INTEGER NOT NULL, note TEXT);"
	"CREATE INDEX IF NOT EXISTS calibrations_by_sensor ON calibrations(station, sensor, at);"
	"CREATE VIEW IF NOT EXISTS v_calibrations AS SELECT id, station, sensor, metric,"
	" standard, unit, before, after, method, written, by,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', at / 1000.0, 'unixepoch') AS at, note"
	" FROM calibrations;";

struct cal {
	const char *station, *sensor, *metric, *by, *note, *db, *profile;
	double standard, before, after;
	bool has_before, has_after;
	char method[16], written[96], unit[AGRI_UNIT_MAX + 1];
	int samples;
};

static void usage(FILE *f)
{
	fputs("usage: agrictl calibrate --station ID --sensor NAME --standard VALUE [--metric M]\n"
	      "       (--profile NAME (--rtu DEV [--baud N] [--parity N|E|O] | --tcp HOST:PORT)\n"
	      "       --slave N [--samples 3] | --before V [--after V]) [--by NAME]\n"
	      "       [--note TEXT] [--db GATEWAY.db] [--timeout-ms 500] [--profiles-dir DIR]\n"
	      "  calibrate a sensor in a standard solution (VALUE in the metric's unit: 1.413\n"
	      "  mS/cm): read it, write the profile's calibration point or offset, read again;\n"
	      "  or record a calibration made with the vendor's tool (--before, --after).\n"
	      "  --db records it in the gateway's database with who (--by, default $USER) and\n"
	      "  when; the gateway raises \"calibration due\" after calibration.interval_days\n"
	      "exit 0, 1 when the device or the database failed\n", f);
}

/* Mean of samples reads of register reg: 0 or -errno. */
static int sample(modbus_t *ctx, int slave, const struct agri_profile *p, size_t reg,
		  int samples, double *mean)
{
	struct probe_value vals[AGRI_PROFILE_REGS_MAX];
	double sum = 0;
	int n = 0, rc = 0;

	for (int i = 0; i < samples; i++) {
		if (i)
			util_sleep_ms(1000);
		rc = probe_read_device(ctx, slave, p, vals);
		if (rc < 0)
			return rc;
		if (vals[reg].has_value) {
			sum += vals[reg].value;
			n++;
		}
	}
	if (!n)
		return -ENODATA;
	*mean = sum / n;
	return 0;
}

/* The device part. Returns 0 or the exit code. */
static int on_device(struct cal *c, struct bus_opts *b, int slave)
{
	static struct agri_profile p;
	const struct agri_register *reg;
	const struct agri_setting *point = NULL, *off = NULL;
	char err[512];
	modbus_t *ctx;
	size_t ri;
	uint16_t w[4];
	int rc;

	if ((rc = cli_profile(b->profiles_dir, c->profile, &p)) != 0)
		return rc;
	for (size_t i = 0; !c->metric && i < p.n_settings; i++)
		if (p.settings[i].metric[0])
			c->metric = p.settings[i].metric;
	if (!c->metric) {
		fprintf(stderr, T("agrictl: %s has no calibration in its profile: give --metric M "
				  "to check a metric against the standard\n"), p.name);
		return AGRI_EXIT_USAGE;
	}
	reg = agri_profile_find(&p, c->metric);
	if (!reg) {
		fprintf(stderr, T("agrictl: %s measures no \"%s\"\n"), p.name, c->metric);
		return AGRI_EXIT_USAGE;
	}
	ri = (size_t)(reg - p.regs);
	snprintf(c->unit, sizeof(c->unit), "%s", reg->unit);
	for (size_t i = 0; i < p.n_settings; i++) {
		const struct agri_setting *s = &p.settings[i];

		if (strcmp(s->metric, c->metric))
			continue;
		if (s->has_standard && fabs(s->standard - c->standard) <= 0.02 * fabs(s->standard))
			point = s;
		if (!strcmp(s->name, "cal_offset"))
			off = s;
	}
	bus_defaults_from(b, &p);
	if (!b->timeout_given)
		b->link.timeout_ms = 500;
	ctx = probe_open(&b->link, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "agrictl: %s\n", err);
		return 1;
	}
	rc = sample(ctx, slave, &p, ri, c->samples, &c->before);
	if (rc < 0)
		goto fail;
	c->has_before = true;
	printf(T("%s: %s reads %.4f %s in the %.4g %s standard\n"), c->sensor, c->metric, c->before,
	       c->unit, c->standard, c->unit);
	if (point) {
		int n = agri_setting_encode(point, c->standard, w);

		if (n < 0 || (rc = probe_write(ctx, slave, point->fc, point->addr, w, n)) < 0) {
			rc = n < 0 ? -ERANGE : rc;
			goto fail;
		}
		snprintf(c->method, sizeof(c->method), "point");
		snprintf(c->written, sizeof(c->written), "%s=%g", point->name, c->standard);
		util_sleep_ms(point->wait_ms ? point->wait_ms : 1000);
	} else if (off) {
		double cur = 0, next;
		uint16_t r[4];
		int n;

		if (off->readable &&
		    probe_read_holding(ctx, slave, off->addr, (int)agri_regtype_words(off->type), r) == 0)
			agri_setting_decode(off, r, &cur);
		next = cur + (c->standard - c->before);
		n = agri_setting_encode(off, next, w);
		if (n < 0 || (rc = probe_write(ctx, slave, off->fc, off->addr, w, n)) < 0) {
			rc = n < 0 ? -ERANGE : rc;
			goto fail;
		}
		snprintf(c->method, sizeof(c->method), "offset");
		snprintf(c->written, sizeof(c->written), "%s=%.6g (was %.6g)", off->name, next, cur);
		util_sleep_ms(1000);
	} else {
		snprintf(c->method, sizeof(c->method), "check");
		printf(T("%s has no calibration point for %g %s nor an offset register: nothing "
			 "written, the check is recorded\n"), p.name, c->standard, c->unit);
	}
	rc = sample(ctx, slave, &p, ri, c->samples, &c->after);
	if (rc < 0)
		goto fail;
	c->has_after = true;
	if (c->written[0])
		printf(T("%s: wrote %s; %s now reads %.4f %s (was %.4f)\n"), c->sensor, c->written,
		       c->metric, c->after, c->unit, c->before);
	probe_close(ctx);
	return 0;
fail:
	fprintf(stderr, T("agrictl: slave %d (%s): %s\n"), slave, p.name,
		rc == -ENODATA ? T("no value for the metric") : rc == -ERANGE ?
		T("the profile cannot write this value") : errtext_modbus(-rc));
	probe_close(ctx);
	return 1;
}

/* Records c in the gateway's database. 0 or 1. */
static int record(const struct cal *c)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int rc;

	rc = sqlite3_open_v2(c->db, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_exec(db, agrictl_calibration_schema, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO calibrations(station, sensor, metric, standard,"
					" unit, before, after, method, written, by, at, note)"
					" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
					-1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(q, 1, c->station, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, c->sensor, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, c->metric, -1, SQLITE_STATIC);
		sqlite3_bind_double(q, 4, c->standard);
		sqlite3_bind_text(q, 5, c->unit, -1, SQLITE_STATIC);
		if (c->has_before)
			sqlite3_bind_double(q, 6, c->before);
		if (c->has_after)
			sqlite3_bind_double(q, 7, c->after);
		sqlite3_bind_text(q, 8, c->method, -1, SQLITE_STATIC);
		if (c->written[0])
			sqlite3_bind_text(q, 9, c->written, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 10, c->by, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 11, util_now_ms());
		if (c->note)
			sqlite3_bind_text(q, 12, c->note, -1, SQLITE_STATIC);
		rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
	}
	if (rc != SQLITE_OK) {
		fprintf(stderr, T("agrictl: --db %s: cannot record the calibration: %s\n"), c->db,
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_finalize(q);
		sqlite3_close(db);
		return 1;
	}
	printf(T("recorded in %s: calibration #%lld of %s/%s by %s\n"), c->db,
	       (long long)sqlite3_last_insert_rowid(db), c->station, c->sensor, c->by);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return 0;
}

int agrictl_calibrate(int argc, char **argv)
{
	static const struct option opts[] = {
		BUS_LONG_OPTS, {"station", required_argument, 0, 's'},
		{"sensor", required_argument, 0, 'n'}, {"metric", required_argument, 0, 'M'},
		{"standard", required_argument, 0, 'S'}, {"profile", required_argument, 0, 'p'},
		{"slave", required_argument, 0, 'i'}, {"samples", required_argument, 0, 'k'},
		{"before", required_argument, 0, 'B'}, {"after", required_argument, 0, 'A'},
		{"by", required_argument, 0, 'y'}, {"note", required_argument, 0, 'N'},
		{"db", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0}};
	struct cal c = {.standard = NAN, .samples = 3};
	struct bus_opts b = {0};
	struct passwd *pw;
	long v;
	int slave = 0, ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((rc = bus_opt(cmd, ch, optarg, &b)) != 0) {
			if (rc < 0)
				return -rc;
			continue;
		}
		switch (ch) {
		case 's': c.station = optarg; break;
		case 'n': c.sensor = optarg; break;
		case 'M': c.metric = optarg; break;
		case 'p': c.profile = optarg; break;
		case 'y': c.by = optarg; break;
		case 'N': c.note = optarg; break;
		case 'd': c.db = optarg; break;
		case 'S':
			if (util_parse_double(optarg, -1e9, 1e9, &c.standard) < 0)
				return cli_usage(cmd, T("--standard: expected a number, got \"%s\""), optarg);
			break;
		case 'B':
			if (util_parse_double(optarg, -1e9, 1e9, &c.before) < 0)
				return cli_usage(cmd, T("--before: expected a number, got \"%s\""), optarg);
			c.has_before = true;
			break;
		case 'A':
			if (util_parse_double(optarg, -1e9, 1e9, &c.after) < 0)
				return cli_usage(cmd, T("--after: expected a number, got \"%s\""), optarg);
			c.has_after = true;
			break;
		case 'i':
			if (cli_int(optarg, 1, 247, false, &v) < 0)
				return cli_usage(cmd, T("--slave: expected 1..247, got \"%s\""), optarg);
			slave = (int)v;
			break;
		case 'k':
			if (cli_int(optarg, 1, 100, false, &v) < 0)
				return cli_usage(cmd, T("--samples: expected 1..100, got \"%s\""), optarg);
			c.samples = (int)v;
			break;
		case 'h': usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if (!c.station || !c.sensor || isnan(c.standard))
		return cli_usage(cmd, "%s", T("calibrate needs --station ID, --sensor NAME and "
					      "--standard VALUE"));
	if (!agri_station_id_valid(c.station) || !agri_ident_valid(c.sensor))
		return cli_usage(cmd, "%s", T("--station and --sensor: expected [A-Za-z0-9_-]{1,32}"));
	if (c.metric && !agri_ident_valid(c.metric))
		return cli_usage(cmd, T("--metric: \"%s\" is not a metric"), c.metric);
	if (!c.by) {
		const char *u = getenv("SUDO_USER");

		c.by = u && *u ? u : getenv("USER");
		if ((!c.by || !*c.by) && (pw = getpwuid(getuid())))
			c.by = pw->pw_name;
		if (!c.by || !*c.by)
			c.by = "unknown";
	}
	if (c.profile) {
		if (c.has_before)
			return cli_usage(cmd, "%s", T("give either a device (--profile ...) or --before"));
		if ((rc = bus_check(cmd, &b)) != 0)
			return rc;
		if (!slave)
			return cli_usage(cmd, "%s", T("--profile needs --slave N"));
		if ((rc = on_device(&c, &b, slave)) != 0)
			return rc;
	} else {
		if (!c.has_before || !c.metric)
			return cli_usage(cmd, "%s", T("without a device, give --metric M and --before V "
						      "(and --after V)"));
		snprintf(c.method, sizeof(c.method), "vendor");
	}
	if (!c.db) {
		printf(T("not recorded: give --db GATEWAY.db (on the hub) to keep it; \"calibration "
			 "due\" counts from the last recorded calibration\n"));
		return 0;
	}
	return record(&c);
}
