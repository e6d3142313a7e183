/*
 * agri-sim's command line, profile loading and clock (see sim.h).
 */
#include "sim.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/log.h"
#include "agri/profiles.h"
#include "agri/util.h"

void sim_usage(FILE *out)
{
	fputs(
"usage: agri-sim [--profile NAME] (--rtu DEV [--baud N] [--parity N|E|O] | --tcp HOST:PORT)\n"
"                --slave N[:PROFILE[,key=value...]] ... [--scenario NAME] [--speed X]\n"
"                [--seed N] [--start YYYY-MM-DD[THH:MM]] [--profiles-dir DIR]\n"
"                [--fault SLAVE:MODE[:ARG]]... [--log-level error|warn|info|debug]\n"
"       agri-sim --series --slave N:PROFILE[,key=value...] [--scenario NAME] --start DATE\n"
"                --hours H --step-s S [--seed N] [--no-noise]\n"
"\n"
"Simulated Modbus sensors (RTU on a serial/pty device, or Modbus TCP).\n"
"  --slave N[:PROFILE,...]  serve slave id N (repeatable); PROFILE defaults to --profile.\n"
"                           params: distance_km, tide_phase_h, depth_m, scenario,\n"
"                           period_d, phase_d, peak, baseline, rain, pv_w,\n"
"                           salinity, temperature, conductivity (fixed water), coef_pct,\n"
"                           cal_error (reads that much too high), plugged=0 (on the line\n"
"                           only after SIGUSR1); an id may be given twice (they collide)\n"
"  --scenario NAME          salinity-intrusion (default), freshwater, bph-migration, solar\n"
"  --speed X                simulated time runs X times faster (default 1)\n"
"  --seed N                 reproducible noise (default 1)\n"
"  --start DATE             simulated start, UTC (default now)\n"
"  --fault SLAVE:MODE[:ARG] timeout|crc|exception[:RATE|always], stuck[:HOURS],\n"
"                           drift[:PCT_PER_DAY[/DAYS]], dropout[:EVERY_S[/FOR_S]], dry[:HOURS]\n"
"  --series                 print CSV ts,metric,value of the true values and exit\n"
"See docs/sim.md.\n", out);
}

static int set_why(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool profile_name_ok(const char *n)
{
	if (!*n || strlen(n) > AGRI_ID_MAX + 32)
		return false;
	for (const char *c = n; *c; c++)
		if (!(( *c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
			return false;
	return n[0] != '.';
}

/* Applies "k=v,k=v" to p; returns 0 or -EINVAL with why. */
static int apply_params(struct model_params *p, const char *text, char *why,
			size_t why_len)
{
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", text);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int rc;
		if (!eq)
			return set_why(why, why_len, "--slave: parameter \"%s\" is not key=value", tok);
		*eq = '\0';
		rc = model_params_set(p, tok, eq + 1);
		if (rc == -ENOENT)
			return set_why(why, why_len, "--slave: unknown parameter \"%s\"", tok);
		if (rc)
			return set_why(why, why_len, "--slave: bad value for \"%s\"", tok);
	}
	return 0;
}

static int parse_slave(struct sim *s, const char *arg, char *why, size_t len)
{
	struct sim_slave_spec *sp;
	struct model_params scratch;
	char *end;
	long id;
	const char *rest;

	if (s->n_slaves >= SIM_SLAVES_MAX)
		return set_why(why, len, "too many --slave (max %s)", "32");
	errno = 0;
	id = strtol(arg, &end, 10);
	if (errno || end == arg || id < 1 || id > 247 || (*end && *end != ':'))
		return set_why(why, len, "--slave %s: expected N[:PROFILE[,key=value...]] with N 1..247", arg);
	sp = &s->slaves[s->n_slaves];
	memset(sp, 0, sizeof(*sp));
	sp->id = (int)id;
	if (*end == ':') {
		rest = end + 1;
		const char *comma = strchr(rest, ',');
		size_t n = comma ? (size_t)(comma - rest) : strlen(rest);
		if (n >= sizeof(sp->profile))
			return set_why(why, len, "--slave %s: profile name too long", arg);
		memcpy(sp->profile, rest, n);
		sp->profile[n] = '\0';
		if (n && !profile_name_ok(sp->profile))
			return set_why(why, len, "--slave %s: bad profile name", arg);
		if (comma) {
			if (strlen(comma + 1) >= sizeof(sp->params))
				return set_why(why, len, "--slave %s: parameters too long", arg);
			strcpy(sp->params, comma + 1);
			model_params_default(&scratch);
			if (apply_params(&scratch, sp->params, why, len))
				return -EINVAL;
		}
	}
	s->n_slaves++;
	return 0;
}

int sim_parse_start(const char *text, int64_t *ms)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	const char *p;

	if (sscanf(text, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -EINVAL;
	p = text + 10;
	if (*p == 'T' || *p == ' ') {
		int k = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5)
			return -EINVAL;
		p += 1 + k;
		if (*p == ':') {
			if (sscanf(p + 1, "%2d%n", &sec, &k) != 1 || k != 2)
				return -EINVAL;
			p += 1 + k;
		}
	}
	if (*p == 'Z')
		p++;
	if (*p || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (tm.tm_mday != d) /* normalised: Feb 30 */
		return -EINVAL;
	*ms = (int64_t)t * 1000;
	return 0;
}

static int parse_scenario(const char *a, enum sim_scenario *out)
{
	static const char *const names[] = {"salinity-intrusion", "freshwater",
					    "bph-migration", "solar"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(a, names[i]) == 0) {
			*out = (enum sim_scenario)i;
			return 0;
		}
	}
	return -EINVAL;
}

enum {
	OPT_PROFILE = 256, OPT_RTU, OPT_BAUD, OPT_PARITY, OPT_TCP, OPT_SLAVE,
	OPT_SCENARIO, OPT_SPEED, OPT_SEED, OPT_START, OPT_PROFILES_DIR,
	OPT_FAULT, OPT_LOG_LEVEL, OPT_SERIES, OPT_HOURS, OPT_STEP, OPT_NO_NOISE,
	OPT_HELP,
};

/* --tcp HOST:PORT (or [V6]:PORT). */
static int parse_tcp(struct sim *s, const char *a, char *why, size_t len)
{
	const char *colon = strrchr(a, ':');
	size_t hl;
	double v;

	if (s->transport == SIM_RTU)
		return set_why(why, len, "%s", "--rtu and --tcp are exclusive");
	if (!colon || util_parse_double(colon + 1, 0, 65535, &v) || v != floor(v))
		return set_why(why, len, "--tcp: expected HOST:PORT, got \"%s\"", a);
	hl = (size_t)(colon - a);
	if (hl >= sizeof(s->tcp_host))
		return set_why(why, len, "--tcp: host too long: %s", a);
	memcpy(s->tcp_host, a, hl);
	s->tcp_host[hl] = '\0';
	if (hl >= 2 && s->tcp_host[0] == '[' && s->tcp_host[hl - 1] == ']') {
		memmove(s->tcp_host, s->tcp_host + 1, hl - 2);
		s->tcp_host[hl - 2] = '\0';
	}
	s->tcp_port = (int)v;
	s->transport = SIM_TCP;
	return 0;
}

static int parse_seed(struct sim *s, const char *a, char *why, size_t len)
{
	unsigned long long sd;
	char *end;

	errno = 0;
	sd = strtoull(a, &end, 10);
	if (errno || end == a || *end || a[0] == '-')
		return set_why(why, len, "--seed: expected a non-negative integer, got \"%s\"", a);
	s->seed = sd;
	return 0;
}

static int parse_fault_opt(struct sim *s, const char *a, char *why, size_t len)
{
	const char *fw = NULL;

	if (s->n_faults >= SIM_FAULTS_MAX)
		return set_why(why, len, "%s", "too many --fault");
	if (fault_parse(a, &s->faults[s->n_faults], &fw)) {
		snprintf(why, len, "--fault %s: %s", a, fw);
		return -EINVAL;
	}
	s->n_faults++;
	return 0;
}

/* The link options: --rtu, --baud, --parity, --tcp. */
static int parse_link_opt(struct sim *s, int c, const char *a, char *why, size_t len)
{
	double v;

	switch (c) {
	case OPT_RTU:
		if (s->transport == SIM_TCP)
			return set_why(why, len, "%s", "--rtu and --tcp are exclusive");
		s->transport = SIM_RTU;
		snprintf(s->rtu_dev, sizeof(s->rtu_dev), "%s", a);
		return 0;
	case OPT_BAUD:
		if (util_parse_double(a, 300, 4000000, &v) || v != floor(v))
			return set_why(why, len, "--baud: bad value \"%s\"", a);
		s->baud = (int)v;
		return 0;
	case OPT_PARITY:
		if (strlen(a) != 1 || !strchr("NEO", a[0]))
			return set_why(why, len, "--parity: expected N, E or O, got \"%s\"", a);
		s->parity = a[0];
		return 0;
	default:
		return parse_tcp(s, a, why, len);
	}
}

/* The --series options: --hours, --step-s, --no-noise. */
static int parse_series_opt(struct sim *s, int c, const char *a, char *why, size_t len)
{
	switch (c) {
	case OPT_HOURS:
		if (util_parse_double(a, 0, 24 * 3660, &s->hours))
			return set_why(why, len, "--hours: bad value \"%s\"", a);
		return 0;
	case OPT_STEP:
		if (util_parse_double(a, 1, 86400 * 31, &s->step_s))
			return set_why(why, len, "--step-s: bad value \"%s\"", a);
		return 0;
	default:
		s->noise = false;
		return 0;
	}
}

/* getopt's own complaints: a missing value, an unknown option. */
static int bad_option(int c, char **argv, char *why, size_t len)
{
	if (c == ':')
		return set_why(why, len, "%s: missing value", argv[optind - 1]);
	if (optopt)
		snprintf(why, len, "unknown option -%c", optopt);
	else
		snprintf(why, len, "unknown option %s", argv[optind - 1]);
	return -EINVAL;
}

/* One option c with its value a. Returns 0, 1 for --help, or -EINVAL
 * with why. */
static int parse_option(struct sim *s, int c, const char *a, char **argv,
			bool *has_start, char *why, size_t len)
{
	enum log_level lvl;

	switch (c) {
	case OPT_HELP:
	case 'h':
		sim_usage(stdout);
		return 1;
	case OPT_PROFILE:
		if (!profile_name_ok(a))
			return set_why(why, len, "--profile: bad profile name \"%s\"", a);
		snprintf(s->profile_default, sizeof(s->profile_default), "%s", a);
		return 0;
	case OPT_RTU:
	case OPT_BAUD:
	case OPT_PARITY:
	case OPT_TCP:
		return parse_link_opt(s, c, a, why, len);
	case OPT_SLAVE:
		return parse_slave(s, a, why, len) ? -EINVAL : 0;
	case OPT_SCENARIO:
		if (parse_scenario(a, &s->scenario))
			return set_why(why, len, "--scenario: unknown scenario \"%s\" (salinity-intrusion, freshwater, bph-migration, solar)", a);
		return 0;
	case OPT_SPEED:
		if (util_parse_double(a, 1e-3, 1e7, &s->speed))
			return set_why(why, len, "--speed: expected a number 0.001..1e7, got \"%s\"", a);
		return 0;
	case OPT_SEED:
		return parse_seed(s, a, why, len);
	case OPT_START:
		if (sim_parse_start(a, &s->start_ms))
			return set_why(why, len, "--start: expected YYYY-MM-DD[THH:MM], got \"%s\"", a);
		*has_start = true;
		return 0;
	case OPT_PROFILES_DIR:
		snprintf(s->profiles_dir, sizeof(s->profiles_dir), "%s", a);
		return 0;
	case OPT_FAULT:
		return parse_fault_opt(s, a, why, len);
	case OPT_LOG_LEVEL:
		if (log_level_parse(a, &lvl))
			return set_why(why, len, "--log-level: expected error, warn, info or debug, got \"%s\"", a);
		log_set_level(lvl);
		return 0;
	case OPT_SERIES:
		s->series = true;
		return 0;
	case OPT_HOURS:
	case OPT_STEP:
	case OPT_NO_NOISE:
		return parse_series_opt(s, c, a, why, len);
	default:
		return bad_option(c, argv, why, len);
	}
}

/* What the options must say together. */
static int check_args(const struct sim *s, char *why, size_t len)
{
	if (s->n_slaves == 0)
		return set_why(why, len, "%s", "at least one --slave is required");
	if (!s->series && s->transport == SIM_NONE)
		return set_why(why, len, "%s", "one of --rtu DEV or --tcp HOST:PORT is required");
	for (size_t i = 0; i < s->n_slaves; i++)
		if (!s->slaves[i].profile[0] && !s->profile_default[0]) {
			snprintf(why, len, "--slave %d: no profile (give N:PROFILE or --profile)",
				 s->slaves[i].id);
			return -EINVAL;
		}
	for (size_t i = 0; i < s->n_faults; i++) {
		bool found = false;
		for (size_t j = 0; j < s->n_slaves; j++)
			found |= s->slaves[j].id == s->faults[i].slave;
		if (!found) {
			snprintf(why, len, "--fault: slave %d is not served", s->faults[i].slave);
			return -EINVAL;
		}
	}
	return 0;
}

int sim_parse_args(struct sim *s, int argc, char **argv, char *why,
		   size_t len)
{
	static const struct option opts[] = {
		{"profile", required_argument, NULL, OPT_PROFILE},
		{"rtu", required_argument, NULL, OPT_RTU},
		{"baud", required_argument, NULL, OPT_BAUD},
		{"parity", required_argument, NULL, OPT_PARITY},
		{"tcp", required_argument, NULL, OPT_TCP},
		{"slave", required_argument, NULL, OPT_SLAVE},
		{"scenario", required_argument, NULL, OPT_SCENARIO},
		{"speed", required_argument, NULL, OPT_SPEED},
		{"seed", required_argument, NULL, OPT_SEED},
		{"start", required_argument, NULL, OPT_START},
		{"profiles-dir", required_argument, NULL, OPT_PROFILES_DIR},
		{"fault", required_argument, NULL, OPT_FAULT},
		{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
		{"series", no_argument, NULL, OPT_SERIES},
		{"hours", required_argument, NULL, OPT_HOURS},
		{"step-s", required_argument, NULL, OPT_STEP},
		{"no-noise", no_argument, NULL, OPT_NO_NOISE},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	bool has_start = false;
	int c, rc;

	memset(s, 0, sizeof(*s));
	s->speed = 1;
	s->seed = 1;
	s->noise = true;
	s->hours = 24;
	s->step_s = 600;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		rc = parse_option(s, c, optarg, argv, &has_start, why, len);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return set_why(why, len, "unexpected argument \"%s\"", argv[optind]);
	rc = check_args(s, why, len);
	if (rc)
		return rc;
	if (!has_start)
		s->start_ms = util_now_ms();
	return 0;
}

static int load_profile(const char *dir, const char *name,
			struct agri_profile *p, char *err, size_t err_len)
{
	char file[SIM_PATH_MAX + 64], msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	struct agri_err e;

	memset(&e, 0, sizeof(e));
	if (profiles_load(dir, name, p, file, sizeof(file), &e) == 0)
		return 0;
	agri_err_format(&e, msg, sizeof(msg));
	/* "FILE: path: reason"; the document itself has an empty path. */
	snprintf(err, err_len, "%s: %s%s", file, e.path[0] ? "" : ": ", msg);
	return -EINVAL;
}

int sim_load(struct sim *s, char *err, size_t err_len)
{
	struct agri_profile *prof = malloc(sizeof(*prof));
	int rc = -EINVAL;

	if (!prof) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	if (!s->profiles_dir[0])
		snprintf(s->profiles_dir, sizeof(s->profiles_dir), "%s",
			 profiles_default_dir());
	s->devs = calloc(s->n_slaves, sizeof(*s->devs));
	if (!s->devs) {
		snprintf(err, err_len, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s->n_slaves; i++) {
		const struct sim_slave_spec *sp = &s->slaves[i];
		const char *name = sp->profile[0] ? sp->profile : s->profile_default;
		struct model_params mp;
		char why[256];

		if (load_profile(s->profiles_dir, name, prof, err, err_len))
			goto out;
		model_params_default(&mp);
		mp.seed = s->seed;
		mp.noise = s->noise;
		mp.water = s->scenario == SIM_SCN_FRESHWATER ? MODEL_WATER_FRESH
							     : MODEL_WATER_SALINE;
		if (apply_params(&mp, sp->params, why, sizeof(why))) {
			snprintf(err, err_len, "%s", why);
			goto out;
		}
		device_init(&s->devs[i], sp->id, prof, &mp, s->start_ms);
		for (size_t j = 0; j < s->n_faults; j++)
			if (s->faults[j].slave == sp->id &&
			    device_add_fault(&s->devs[i], &s->faults[j])) {
				snprintf(err, err_len, "too many faults for slave %d", sp->id);
				goto out;
			}
	}
	s->start_mono_ms = util_mono_ms();
	rc = 0;
out:
	free(prof);
	if (rc) {
		free(s->devs);
		s->devs = NULL;
	}
	return rc;
}

void sim_free(struct sim *s)
{
	if (!s)
		return;
	free(s->devs);
	s->devs = NULL;
}

volatile sig_atomic_t sim_plug_requests;

struct device *sim_device(struct sim *s, int id)
{
	for (size_t i = 0; s->devs && i < s->n_slaves; i++)
		if (s->devs[i].slave == id && s->devs[i].plugged)
			return &s->devs[i];
	return NULL;
}

size_t sim_devices_at(struct sim *s, int id, struct device **out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; s->devs && i < s->n_slaves; i++)
		if (s->devs[i].slave == id && s->devs[i].plugged && n < cap)
			out[n++] = &s->devs[i];
	return n;
}

void sim_plug_pending(struct sim *s)
{
	while (sim_plug_requests > 0) {
		sim_plug_requests--;
		for (size_t i = 0; s->devs && i < s->n_slaves; i++)
			if (!s->devs[i].plugged) {
				s->devs[i].plugged = true;
				log_info("sim", "plugged in slave=%d profile=%s", s->devs[i].slave,
					 s->devs[i].prof.name);
				break;
			}
	}
}

void sim_take_new_ids(struct sim *s)
{
	for (size_t i = 0; s->devs && i < s->n_slaves; i++)
		if (s->devs[i].new_slave) {
			log_info("sim", "slave id changed from=%d to=%d profile=%s", s->devs[i].slave,
				 s->devs[i].new_slave, s->devs[i].prof.name);
			s->devs[i].slave = s->devs[i].new_slave;
			s->devs[i].new_slave = 0;
		}
}

int64_t sim_time(const struct sim *s, int64_t mono_ms)
{
	return s->start_ms + (int64_t)((double)(mono_ms - s->start_mono_ms) * s->speed);
}
