/*
 * `agrictl scan`: which slaves answer on a bus, and which profile each one
 * fits (docs/interfaces.md §11).
 *
 * A slave counts only when it sends a well-formed Modbus reply (data, or an
 * exception other than a TCP gateway's 0A/0B): a TCP peer that accepts and
 * closes, or answers bytes that are not Modbus, or a line at the wrong
 * speed, lists nobody and says so. Each id gets one short request first
 * (the time of the request on the wire plus 50 ms: a silent id costs that,
 * not a whole read's timeout); the ids that answer are then read by every
 * profile (the normal timeout) to guess which one they are. Progress and
 * the time left go to stderr. --sweep repeats the scan over the line
 * settings the shipped profiles use and the usual others; --emit-config
 * writes the buses and sensors entries of station.json for what it found.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agri/buf.h"
#include "agri/exit.h"
#include "agri/profiles.h"
#include "agri/util.h"
#include "agrictl.h"
#include "cli.h"
#include "errtext.h"
#include "modbus_probe.h"
#include "msgs.h"

#define PROFILES_MAX 64
#define GARBLED_MAX 8     /* consecutive non-Modbus replies: stop */
#define LINK_FAILS_MAX 3  /* consecutive broken TCP connections: stop */
#define SWEEP_TO_DEFAULT 10

static const char *const cmd = "scan";

/* What a scan found: one slave at one line setting. */
struct found {
	int slave, baud;
	char parity;
	int profile; /* index, or -1 */
};

struct scan {
	struct bus_opts b;
	int from, to;
	bool sweep, quiet_progress;
	const char *emit;
	struct agri_profile *profiles;
	size_t np;
	struct found found[256];
	size_t n_found;
	int n_listed;                /* lines printed (json commas) */
	unsigned garbled, link_fails; /* of the last setting */
	bool aborted;
};

static void usage(FILE *f)
{
	fputs("usage: agrictl scan (--rtu DEV [--baud N] [--parity N|E|O] [--sweep] | --tcp HOST:PORT)\n"
	      "       [--from 1] [--to 247] [--timeout-ms MS] [--profiles-dir DIR] [--json]\n"
	      "       [--emit-config FILE]\n"
	      "  find the slaves that answer on a bus and guess each one's profile\n"
	      "  --timeout-ms MS     how long an id may stay silent (default: the request's time\n"
	      "                      on the wire + 50 ms; 100 ms over TCP); a slave that answers\n"
	      "                      is then read with 500 ms, or MS when given\n"
	      "  --sweep             try every usual line setting (9600 8N1, 9600 8E1, 19200 8E1,\n"
	      "                      115200 8N1, ...), ids 1..10 unless --to is given\n"
	      "  --emit-config FILE  write the station.json \"buses\" and \"sensors\" entries for\n"
	      "                      what was found (- for stdout)\n"
	      "  progress and the time left go to stderr\n"
	      "exit 0 found, 1 none\n", f);
}

/* The line settings a sweep tries: the shipped profiles' first, then the
 * usual others. */
static size_t sweep_settings(const struct scan *s, int *baud, char *parity, size_t cap)
{
	static const struct {
		int baud;
		char parity;
	} usual[] = {{9600, 'N'}, {9600, 'E'}, {19200, 'E'}, {19200, 'N'}, {115200, 'N'},
		     {4800, 'N'}, {38400, 'N'}, {57600, 'N'}, {2400, 'N'}, {9600, 'O'}};
	size_t n = 0;

	for (size_t i = 0; i < s->np + sizeof(usual) / sizeof(usual[0]) && n < cap; i++) {
		int b = i < s->np ? s->profiles[i].serial.baud : usual[i - s->np].baud;
		char p = i < s->np ? s->profiles[i].serial.parity : usual[i - s->np].parity;
		bool dup = b <= 0;

		for (size_t k = 0; k < n && !dup; k++)
			dup = baud[k] == b && parity[k] == p;
		if (dup)
			continue;
		baud[n] = b;
		parity[n++] = p;
	}
	return n;
}

static void print_found(struct scan *s, const struct found *f, const int *also, size_t na)
{
	const struct agri_profile *p = f->profile >= 0 ? &s->profiles[f->profile] : NULL;
	char setting[64] = "";

	if (s->sweep)
		snprintf(setting, sizeof(setting), " %d 8%c1", f->baud, f->parity);
	if (s->b.json) {
		char text[4096];
		struct agri_buf j;

		agri_buf_init(&j, text, sizeof(text));
		agri_buf_printf(&j, "%s{\"slave\":%d,\"profile\":", s->n_listed ? "," : "", f->slave);
		agri_buf_json_str(&j, p ? p->name : NULL);
		if (p && p->vendor[0]) {
			agri_buf_puts(&j, ",\"vendor\":");
			agri_buf_json_str(&j, p->vendor);
		}
		if (p && p->model[0]) {
			agri_buf_puts(&j, ",\"model\":");
			agri_buf_json_str(&j, p->model);
		}
		if (s->sweep)
			agri_buf_printf(&j, ",\"baud\":%d,\"parity\":\"%c\"", f->baud, f->parity);
		if (na) {
			agri_buf_puts(&j, ",\"also_fits\":[");
			for (size_t k = 0; k < na; k++) {
				agri_buf_puts(&j, k ? "," : "");
				agri_buf_json_str(&j, s->profiles[also[k]].name);
			}
			agri_buf_puts(&j, "]");
		}
		agri_buf_puts(&j, "}");
		if (agri_buf_end(&j) >= 0)
			fputs(text, stdout);
	} else {
		printf(T("slave %d:"), f->slave);
		if (p)
			printf(" %s (%s %s)", p->name, p->vendor, p->model);
		else
			printf(" %s", T("unknown (answers, but fits no profile)"));
		if (setting[0])
			printf(T(" at%s"), setting);
		for (size_t k = 0; k < na; k++)
			printf("%s%s", k ? ", " : T(" (also fits: "), s->profiles[also[k]].name);
		printf("%s\n", na ? T("; same registers, check the label)") : "");
	}
	s->n_listed++;
	fflush(stdout);
}

/* Progress on stderr: a line updated in place on a terminal, else a line
 * every tenth of the ids. */
static void progress(struct scan *s, int id, int done, int total, size_t found,
		     int64_t started, bool last)
{
	static int64_t shown;
	static int tenth = -1;
	int64_t now = util_mono_ms(), el = now - started;
	double eta = done ? (double)el / done * (total - done) / 1000.0 : 0;
	bool tty = isatty(2);

	if (s->quiet_progress)
		return;
	if (tty) {
		if (!last && now - shown < 200)
			return;
		shown = now;
		fprintf(stderr, T("\rscan: id %d, %d/%d, %zu found, ETA %.0f s   "), id, done, total,
			found, eta);
		if (last)
			fputc('\n', stderr);
		return;
	}
	if (last || done * 10 / total == tenth || now - shown < 2000)
		return;
	tenth = done * 10 / total;
	shown = now;
	if (!last)
		fprintf(stderr, T("scan: id %d, %d/%d, %zu found, ETA %.0f s\n"), id, done, total,
			found, eta);
}

/* Scans ids from..to at the link's setting. Returns 0, or 1 when the link
 * cannot be opened (printed). */
static int scan_setting(struct scan *s, struct probe_link *link)
{
	struct agri_read_req reqs[AGRI_PLAN_MAX], req;
	char err[512], name[300];
	int total = s->to - s->from + 1, quick, normal;
	int64_t started = util_mono_ms();
	size_t before = s->n_found;
	unsigned bad_run = 0;
	modbus_t *ctx;

	/* The presence request: the first profile's first planned read. */
	if (agri_plan_reads(&s->profiles[0], reqs, AGRI_PLAN_MAX) < 1)
		return 1;
	req = reqs[0];
	if (s->profiles[0].has_probe)
		req = s->profiles[0].probe;
	normal = s->b.timeout_given ? link->timeout_ms : 500;
	if (s->b.timeout_given)
		quick = link->timeout_ms;
	else if (link->rtu_dev)
		quick = (int)((8 + 1) * probe_char_us(link) / 1000) + 50;
	else
		quick = 100;
	link->timeout_ms = quick;
	probe_link_name(link, name, sizeof(name));
	ctx = probe_open(link, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "agrictl: %s\n", err);
		return 1;
	}
	if (!s->quiet_progress)
		fprintf(stderr, T("scan: ids %d..%d on %s%s%s, up to %d ms a silent id: at most %.0f s\n"),
			s->from, s->to, link->rtu_dev ? link->rtu_dev : link->tcp,
			link->rtu_dev ? " at " : "", link->rtu_dev ? name : "", quick,
			total * (quick + 5) / 1000.0);
	s->garbled = s->link_fails = 0;
	for (int id = s->from; id <= s->to; id++) {
		int rc = probe_presence(ctx, id, &req);

		progress(s, id, id - s->from + 1, total, s->n_found - before, started, false);
		if (rc < 0) {
			bad_run++;
			if (probe_is_link_error(-rc)) {
				s->link_fails++;
				modbus_close(ctx);
				if (bad_run >= LINK_FAILS_MAX || modbus_connect(ctx) < 0) {
					s->aborted = true;
					break;
				}
			} else {
				s->garbled++;
				if (bad_run >= GARBLED_MAX) {
					s->aborted = true;
					break;
				}
			}
			continue;
		}
		bad_run = 0;
		if (rc == 0)
			continue;
		{
			struct found *f = &s->found[s->n_found < 255 ? s->n_found++ : 255];
			int also[PROBE_ALSO_MAX], g;
			size_t na = 0;

			probe_set_timeout(ctx, normal);
			g = probe_guess(ctx, id, s->profiles, s->np, also, &na);
			probe_set_timeout(ctx, quick);
			f->slave = id;
			f->baud = link->baud ? link->baud : 9600;
			f->parity = link->parity ? link->parity : 'N';
			f->profile = g >= 0 ? g : -1;
			if (!s->quiet_progress && isatty(2))
				fputs("\r\033[K", stderr);
			print_found(s, f, also, g >= 0 ? na : 0);
		}
	}
	progress(s, s->to, total, total, s->n_found - before, started, true);
	probe_close(ctx);
	if (!s->quiet_progress)
		fprintf(stderr, T("scan: %s: %zu slave(s) answer, %.1f s\n"), name, s->n_found - before,
			(util_mono_ms() - started) / 1000.0);
	return 0;
}

/* The sensor name emit-config gives a device: by what it measures. */
static const char *kind_of(const struct agri_profile *p)
{
	for (size_t i = 0; i < p->n_regs; i++) {
		if (p->regs[i].sensor_suffix[0] || !strcmp(p->regs[i].metric, "insect_count"))
			return "trap";
		if (!strncmp(p->regs[i].metric, "pv_", 3))
			return "solar";
	}
	for (size_t i = 0; i < p->n_derived; i++)
		if (p->derived[i].fn == AGRI_DERIVED_LEVEL)
			return "level";
	return "sonde";
}

/* Writes the buses and sensors entries for what was found. 0 or 1. */
static int emit_config(const struct scan *s, const struct probe_link *base)
{
	cJSON *doc = cJSON_CreateObject(), *buses = cJSON_AddArrayToObject(doc, "buses");
	cJSON *sensors = cJSON_AddArrayToObject(doc, "sensors");
	int counters[4] = {0}, settings_baud[16], n_set = 0;
	char settings_par[16];
	char *text;
	FILE *f;

	for (size_t i = 0; i < s->n_found; i++) {
		const struct found *fd = &s->found[i];
		const struct agri_profile *p;
		char bus[40], name[40];
		int k = -1;
		cJSON *sn;

		if (fd->profile < 0) {
			fprintf(stderr, T("agrictl: slave %d answers but fits no profile: not in the "
					  "config (write its profile first)\n"), fd->slave);
			continue;
		}
		p = &s->profiles[fd->profile];
		for (int j = 0; j < n_set; j++)
			if (settings_baud[j] == fd->baud && settings_par[j] == fd->parity)
				k = j;
		if (k < 0 && n_set < 16) {
			cJSON *b = cJSON_CreateObject(), *link;

			k = n_set++;
			settings_baud[k] = fd->baud;
			settings_par[k] = fd->parity;
			if (base->rtu_dev) {
				char par[2] = {fd->parity, 0};

				snprintf(bus, sizeof(bus), k ? "rs485-%d" : "rs485", k + 1);
				cJSON_AddStringToObject(b, "name", bus);
				link = cJSON_AddObjectToObject(b, "rtu");
				cJSON_AddStringToObject(link, "device", base->rtu_dev);
				cJSON_AddNumberToObject(link, "baud", fd->baud);
				cJSON_AddStringToObject(link, "parity", par);
			} else {
				const char *colon = strrchr(base->tcp, ':');
				char host[256];

				snprintf(host, sizeof(host), "%.*s", (int)(colon - base->tcp), base->tcp);
				cJSON_AddStringToObject(b, "name", "lan");
				link = cJSON_AddObjectToObject(b, "tcp");
				cJSON_AddStringToObject(link, "host", host);
				cJSON_AddNumberToObject(link, "port", atoi(colon + 1));
			}
			cJSON_AddItemToArray(buses, b);
		}
		if (base->rtu_dev)
			snprintf(bus, sizeof(bus), k ? "rs485-%d" : "rs485", k + 1);
		else
			snprintf(bus, sizeof(bus), "lan");
		{
			const char *kind = kind_of(p);
			int *c = !strcmp(kind, "trap") ? &counters[0] : !strcmp(kind, "solar") ?
				 &counters[1] : !strcmp(kind, "level") ? &counters[2] : &counters[3];

			snprintf(name, sizeof(name), "%s%d", kind, ++*c);
		}
		sn = cJSON_CreateObject();
		cJSON_AddStringToObject(sn, "name", name);
		cJSON_AddStringToObject(sn, "bus", bus);
		cJSON_AddNumberToObject(sn, "slave", fd->slave);
		cJSON_AddStringToObject(sn, "profile", p->name);
		cJSON_AddNumberToObject(sn, "interval_s", 60);
		cJSON_AddItemToArray(sensors, sn);
	}
	if (n_set > 1)
		fprintf(stderr, T("agrictl: devices answer at %d line settings: one port runs one "
				  "setting; move them to one (agrictl write --set baud=...)\n"), n_set);
	text = cJSON_Print(doc);
	cJSON_Delete(doc);
	if (!text)
		return 1;
	f = strcmp(s->emit, "-") ? fopen(s->emit, "w") : stdout;
	if (!f) {
		fprintf(stderr, "agrictl: --emit-config %s: %s\n", s->emit, strerror(errno));
		cJSON_free(text);
		return 1;
	}
	fprintf(f, "%s\n", text);
	cJSON_free(text);
	if (f != stdout && fclose(f) != 0) {
		fprintf(stderr, "agrictl: --emit-config %s: %s\n", s->emit, strerror(errno));
		return 1;
	}
	if (f != stdout)
		fprintf(stderr, T("scan: wrote the buses and sensors entries to %s (agrictl config "
				  "validate checks the file they go into)\n"), s->emit);
	return 0;
}

int agrictl_scan(int argc, char **argv)
{
	static const struct option opts[] = {
		BUS_LONG_OPTS, {"from", required_argument, 0, 'f'},
		{"to", required_argument, 0, 'u'}, {"sweep", no_argument, 0, 'S'},
		{"emit-config", required_argument, 0, 'E'}, {"help", no_argument, 0, 'h'}, {0}};
	static struct agri_profile profiles[PROFILES_MAX];
	static struct scan s;
	char names[PROFILES_MAX][AGRI_ID_MAX + 1];
	bool to_given = false;
	int c, n, rc;
	long v;

	memset(&s, 0, sizeof(s));
	s.from = 1;
	s.to = 247;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((rc = bus_opt(cmd, c, optarg, &s.b)) != 0) {
			if (rc < 0)
				return -rc;
			continue;
		}
		switch (c) {
		case 'f':
		case 'u':
			if (cli_int(optarg, 1, 247, false, &v) < 0)
				return cli_usage(cmd, T("--from/--to: expected a slave id 1..247, got \"%s\""),
						 optarg);
			if (c == 'f')
				s.from = (int)v;
			else
				s.to = (int)v, to_given = true;
			break;
		case 'S': s.sweep = true; break;
		case 'E': s.emit = optarg; break;
		case 'h': usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if ((rc = bus_check(cmd, &s.b)) != 0)
		return rc;
	if (s.sweep && !s.b.link.rtu_dev)
		return cli_usage(cmd, "%s", T("--sweep is for a serial line (--rtu)"));
	if (s.sweep && (s.b.link.baud || s.b.link.parity))
		return cli_usage(cmd, "%s", T("--sweep tries the line settings itself: drop --baud and --parity"));
	if (s.sweep && !to_given)
		s.to = s.from + SWEEP_TO_DEFAULT - 1 > 247 ? 247 : s.from + SWEEP_TO_DEFAULT - 1;
	if (s.from > s.to)
		return cli_usage(cmd, T("--from %d is above --to %d"), s.from, s.to);
	if (s.emit && !strcmp(s.emit, "-") && s.b.json)
		return cli_usage(cmd, "%s", T("--emit-config - and --json both want stdout"));
	n = profiles_list(s.b.profiles_dir, names, PROFILES_MAX);
	if (n <= 0) {
		fprintf(stderr, T("agrictl: no profiles in %s\n"),
			s.b.profiles_dir ? s.b.profiles_dir : profiles_default_dir());
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char file[512];
		struct agri_err e;

		if (profiles_load(s.b.profiles_dir, names[i], &profiles[s.np], file, sizeof(file), &e) == 0)
			s.np++;
		else
			fprintf(stderr, T("agrictl: skipping %s: %s: %s\n"), file, e.path, e.msg);
	}
	if (!s.np)
		return 1;
	s.profiles = profiles;
	if (s.b.json)
		printf("[");
	if (s.sweep) {
		int bauds[32];
		char pars[32];
		size_t ns = sweep_settings(&s, bauds, pars, 32);

		for (size_t i = 0; i < ns; i++) {
			struct probe_link l = s.b.link;

			l.baud = bauds[i];
			l.parity = pars[i];
			if (scan_setting(&s, &l))
				return 1;
		}
	} else {
		struct probe_link l = s.b.link;

		if (scan_setting(&s, &l)) {
			if (s.b.json)
				printf("]\n");
			return 1;
		}
	}
	if (s.b.json)
		printf("]\n");
	if (!s.n_found) {
		const char *where = s.b.link.rtu_dev ? s.b.link.rtu_dev : s.b.link.tcp;

		if (s.link_fails)
			fprintf(stderr, T("agrictl: no slave answered on %s: the peer closes the "
					  "connection without answering Modbus (not a Modbus TCP server? "
					  "the port?)\n"), where);
		else if (s.garbled)
			fprintf(stderr, T("agrictl: no slave answered on %s (ids %d..%d): %u replies were "
					  "not Modbus (%s)\n"), where, s.from, s.to, s.garbled,
				s.b.link.rtu_dev ? T("wrong line settings? try --sweep; two devices with "
						     "one id?") : T("not a Modbus TCP server? the port?"));
		else
			fprintf(stderr, T("agrictl: no slave answered on %s (ids %d..%d): check power, "
					  "wiring (A/B), termination and the line settings (--sweep)\n"),
				where, s.from, s.to);
		return 1;
	}
	if (s.aborted)
		fprintf(stderr, T("agrictl: the scan stopped early: the line carries what is not "
				  "Modbus\n"));
	if (s.emit && emit_config(&s, &s.b.link))
		return 1;
	return 0;
}
