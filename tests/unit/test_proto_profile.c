/*
 * Device profiles (protocols/src/profile.c): every shipped profile in
 * protocols/profiles/ loads and plans into exactly the hand-computed
 * requests; malformed profiles fail with the exact path and reason; the
 * planner's rules (gaps, max_regs, even_align, fc spaces); decoding with
 * scale, offset and range.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>

#include "agri/buf.h"
#include "agri/profile.h"
#include "agri/units.h"
#include "test.h"

#ifndef AGRI_SOURCE_DIR
#define AGRI_SOURCE_DIR ".."
#endif
#define PROFILES_DIR AGRI_SOURCE_DIR "/protocols/profiles"

struct req { int fc, addr, count; };

/* The plan each shipped profile must produce (docs/profiles.md). */
static const struct {
	const char *name;
	size_t n_regs, n_derived, n_reqs;
	struct req reqs[4];
} shipped[] = {
	{"sensecap-s-ec-01", 4, 1, 1, {{3, 0, 5}}},
	{"yosemitech-y520", 2, 1, 1, {{3, 0x2600, 4}}},
	{"yosemitech-y504", 2, 0, 1, {{3, 0x2600, 4}}},
	{"yosemitech-y532", 2, 0, 2, {{3, 0x2400, 2}, {3, 0x2800, 2}}},
	{"yosemitech-y4000", 8, 1, 1, {{3, 0x2601, 16}}},
	{"insitu-aquatroll-400", 7, 1, 3, {{3, 37, 18}, {3, 545, 18}, {3, 1537, 2}}},
	{"ysi-odo-rtu", 6, 1, 1, {{4, 0, 18}}},
	{"keller-acculevel", 2, 1, 1, {{3, 0x0100, 4}}},
	{"epever-tracer", 9, 0, 3, {{4, 0x3100, 27}, {4, 0x3200, 2}, {4, 0x331A, 3}}},
	{"agri-lighttrap", 10, 0, 1, {{4, 0, 10}}},
};
#define N_SHIPPED (AGRI_ARRAY_SIZE(shipped))

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
		*len = fread(buf, 1, (size_t)n, f);
		buf[*len] = 0;
	}
	fclose(f);
	return buf;
}

static int parse_str(const char *json, struct agri_profile *p,
		     struct agri_err *err)
{
	return agri_profile_parse(json, strlen(json), p, err);
}

static void check_plan(const struct agri_profile *p, size_t want_n,
		       const struct req *want)
{
	struct agri_read_req reqs[AGRI_PLAN_MAX];
	int n = agri_plan_reads(p, reqs, AGRI_PLAN_MAX);

	CHECK_INT(n, want_n);
	for (int i = 0; i < n && (size_t)i < want_n; i++) {
		CHECK_INT(reqs[i].fc, want[i].fc);
		CHECK_INT(reqs[i].addr, want[i].addr);
		CHECK_INT(reqs[i].count, want[i].count);
	}
	/* Every register lies inside a planned request. */
	for (size_t i = 0; n > 0 && i < p->n_regs; i++) {
		size_t ri = 99, off = 99;

		CHECK_INT(agri_plan_locate(reqs, (size_t)n, &p->regs[i], &ri, &off), 0);
		CHECK(ri < (size_t)n && reqs[ri].addr + off == p->regs[i].addr);
	}
}

static void test_shipped(void)
{
	DIR *d = opendir(PROFILES_DIR);
	struct dirent *de;
	size_t found = 0;

	CHECK(d != NULL);
	while (d && (de = readdir(d))) {
		char path[512], name[128];
		struct agri_profile p;
		struct agri_err err = {0};
		size_t len = 0, i;
		char *json;
		size_t nl = strlen(de->d_name);

		if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", PROFILES_DIR, de->d_name);
		snprintf(name, sizeof(name), "%.*s", (int)(nl - 5), de->d_name);
		json = read_file(path, &len);
		CHECK(json != NULL);
		if (!json)
			continue;
		CHECK_INT(agri_profile_parse(json, len, &p, &err), 0);
		if (err.msg[0])
			fprintf(stderr, "%s: %s: %s\n", path, err.path, err.msg);
		free(json);
		CHECK_STR(p.name, name);
		CHECK(p.vendor[0] && p.model[0] && p.serial.baud > 0);
		for (i = 0; i < N_SHIPPED && strcmp(shipped[i].name, name); i++)
			;
		CHECK(i < N_SHIPPED);
		if (i == N_SHIPPED)
			continue;
		found++;
		CHECK_INT(p.n_regs, shipped[i].n_regs);
		CHECK_INT(p.n_derived, shipped[i].n_derived);
		check_plan(&p, shipped[i].n_reqs, shipped[i].reqs);
		for (size_t r = 0; r < p.n_regs; r++)
			CHECK(p.regs[r].unit[0] || !p.regs[r].has_min);
	}
	if (d)
		closedir(d);
	CHECK_INT(found, N_SHIPPED);
}

static const char *const base_head =
	"{\"profile\": \"t\", \"registers\": [";

static void test_malformed(void)
{
	static const struct {
		const char *regs; /* registers array body, or a whole document */
		int rc;
		const char *path, *msg; /* msg NULL: not ours to word */
	} cases[] = {
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 0, \"type\": \"u24\"}]}", -EINVAL,
		 "registers[0].type", "unknown type \"u24\""},
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"},"
		 "{\"metric\": \"y\", \"fc\": 3, \"addr\": 1, \"type\": \"f32\", \"order\": \"ABDC\"}]}",
		 -EINVAL, "registers[1].order", "unknown order \"ABDC\" (ABCD, CDAB, BADC, DCBA)"},
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"order\": \"CDAB\"}]}",
		 -EINVAL, "registers[0].order", "only for 32/64-bit types"},
		{"{\"metric\": \"Water\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}]}", -EINVAL,
		 "registers[0].metric", "not a snake_case metric"},
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 65535, \"type\": \"f32\"}]}", -EINVAL,
		 "registers[0].addr", "value runs past address 65535"},
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"scale\": 0}]}", -EINVAL,
		 "registers[0].scale", "must not be zero"},
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"min\": 5, \"max\": 1}]}",
		 -EINVAL, "registers[0].max", "below min"},
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 0, \"type\": \"f32\"},"
		 "{\"metric\": \"y\", \"fc\": 3, \"addr\": 1, \"type\": \"u16\"}]}", -EINVAL,
		 "registers[1].addr", "overlaps registers[0] (x)"},
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 0, \"type\": \"f32\"},"
		 "{\"metric\": \"y\", \"fc\": 4, \"addr\": 1, \"type\": \"u16\"},"
		 "{\"metric\": \"x\", \"fc\": 4, \"addr\": 9, \"type\": \"u16\"}]}", -EINVAL,
		 "registers[2].metric", "duplicate metric \"x\""},
		{"{\"metric\": \"c\", \"sensor_suffix\": \"a b\", \"fc\": 4, \"addr\": 0, \"type\": \"u16\"}]}",
		 -EINVAL, "registers[0].sensor_suffix", "expected [A-Za-z0-9_-] characters"},
		{"{\"metric\": \"x\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"derived\": "
		 "[{\"metric\": \"salinity\", \"fn\": \"pss78\", \"from\": [\"x\", \"t\"]}]}", -EINVAL,
		 "derived[0].from[0]", "pss78 needs conductivity in mS/cm, not \"\""},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"unit\": \"mS/cm\"}], \"derived\": "
		 "[{\"metric\": \"salinity\", \"fn\": \"pss78\", \"from\": [\"c\", \"t\"]}]}", -EINVAL,
		 "derived[0].from[1]", "no register \"t\""},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"derived\": "
		 "[{\"metric\": \"c\", \"fn\": \"pss78\", \"from\": [\"c\", \"c\"]}]}", -EINVAL,
		 "derived[0].metric", "duplicate metric \"c\""},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"derived\": "
		 "[{\"metric\": \"s\", \"fn\": \"tds\", \"from\": [\"c\", \"c\"]}]}", -EINVAL,
		 "derived[0].fn", "unknown fn \"tds\" (pss78, level)"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"derived\": "
		 "[{\"metric\": \"s\", \"fn\": \"pss78\", \"from\": [\"c\"]}]}", -EINVAL,
		 "derived[0].from", "pss78 needs 2 metrics: conductivity, temperature"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"derived\": "
		 "[{\"metric\": \"s\", \"fn\": \"pss78\", \"from\": []}]}", -EINVAL,
		 "derived[0].from", "expected an array of 1 or 2 metrics"},
		/* issue 19: what a conductivity register is, and how a probe fails */
		{"{\"metric\": \"specific_conductance\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", "
		 "\"unit\": \"mS/cm\"}]}", -EINVAL,
		 "registers[0].ref_c", "required: the temperature the device compensates to"},
		{"{\"metric\": \"conductivity\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", "
		 "\"ref_c\": 25}]}", -EINVAL,
		 "registers[0].ref_c", "only for metric \"specific_conductance\""},
		{"{\"metric\": \"conductivity\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", "
		 "\"coef_pct_per_c\": 2}]}", -EINVAL,
		 "registers[0].coef_pct_per_c", "only for metric \"specific_conductance\""},
		{"{\"metric\": \"specific_conductance\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", "
		 "\"ref_c\": 25, \"coef_reg\": {\"fc\": 3, \"addr\": 34}}]}", -EINVAL,
		 "registers[0].coef_reg", "needs coef_pct_per_c (the coefficient it should hold)"},
		{"{\"metric\": \"specific_conductance\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", "
		 "\"ref_c\": 25, \"coef_pct_per_c\": 2, \"coef_reg\": {\"fc\": 3, \"addr\": 34, "
		 "\"scale\": 0}}]}", -EINVAL, "registers[0].coef_reg.scale", "must not be zero"},
		{"{\"metric\": \"specific_conductance\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", "
		 "\"ref_c\": 25, \"coef_pct_per_c\": 11}]}", -EINVAL,
		 "registers[0].coef_pct_per_c", NULL},
		{"{\"metric\": \"p\", \"fc\": 3, \"addr\": 0, \"type\": \"f32\", \"unit\": \"V\"}], "
		 "\"derived\": [{\"metric\": \"water_level\", \"fn\": \"level\", \"from\": [\"p\"]}]}",
		 -EINVAL, "derived[0].from[0]",
		 "level needs a pressure (bar, mbar, hPa, kPa, MPa, Pa, psi) or a depth (m, cm, mm), not \"V\""},
		{"{\"metric\": \"d\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"unit\": \"cm\"}, "
		 "{\"metric\": \"baro\", \"fc\": 3, \"addr\": 1, \"type\": \"u16\", \"unit\": \"mbar\"}], "
		 "\"derived\": [{\"metric\": \"water_level\", \"fn\": \"level\", \"from\": [\"d\"], "
		 "\"air\": \"baro\"}]}", -EINVAL, "derived[0].air",
		 "needs a pressure register, and from[0] a pressure"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"unit\": \"mS/cm\"}, "
		 "{\"metric\": \"t\", \"fc\": 3, \"addr\": 1, \"type\": \"u16\", \"unit\": \"°C\"}], "
		 "\"derived\": [{\"metric\": \"s\", \"fn\": \"pss78\", \"from\": [\"c\", \"t\"], "
		 "\"air\": \"t\"}]}", -EINVAL, "derived[0].air", "only for fn \"level\""},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"init\": "
		 "[{\"fc\": 6, \"addr\": 2, \"values\": [1, 2]}]}", -EINVAL,
		 "init[0].values", "fc 6 writes exactly one value"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"before_read\": "
		 "[{\"fc\": 3, \"addr\": 9472}]}", -EINVAL,
		 "before_read[0].count", "required for a read (fc 3 or 4)"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"init\": "
		 "[{\"fc\": 5, \"addr\": 2}]}", -EINVAL, "init[0].fc", "expected 3, 4, 6 or 16"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"init\": "
		 "[{\"fc\": 16, \"addr\": 7168, \"values\": [], \"role\": \"begin\"}]}", -EINVAL,
		 "init[0].role", "unknown role \"begin\" (start, wipe, other)"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"init\": "
		 "[{\"fc\": 16, \"addr\": 1, \"values\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}]}", -EINVAL,
		 "init[0].values", "expected an array of at most 8 register values"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"expect\": "
		 "[{\"fc\": 3, \"addr\": 547, \"value\": 9, \"metric\": \"conductivity\"}]}", -EINVAL,
		 "expect[0].metric", "names no register"},
		{"]}", -EINVAL, "registers", "expected an array of 1 to 48 registers"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"kind\": \"gauge\"}]}",
		 -EINVAL, "registers[0].kind", "unknown kind \"gauge\" (measure, counter, state)"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"serial\": {\"parity\": \"X\"}}",
		 -EINVAL, "serial.parity", "expected \"N\", \"E\" or \"O\""},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"probe\": "
		 "{\"fc\": 3, \"addr\": 65530, \"count\": 7}}", -EINVAL,
		 "probe.count", "runs past address 65535"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 1, \"type\": \"f32\"}], \"even_align\": true, "
		 "\"max_regs\": 3}", -EINVAL, "registers[0].type", "f32 does not fit max_regs 2"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"even_align\": true, "
		 "\"max_regs\": 1}", -EINVAL, "max_regs", "must be at least 2 with even_align"},
		/* Messages worded by agri_cfg_read: only the path is checked. */
		{"{\"metric\": \"c\", \"fc\": 5, \"addr\": 0, \"type\": \"u16\"}]}", -EINVAL,
		 "registers[0].fc", NULL},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"colour\": 1}]}", -EINVAL,
		 "registers[0].colour", NULL},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": -1, \"type\": \"u16\"}]}", -EINVAL,
		 "registers[0].addr", NULL},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\", \"scale\": \"1\"}]}", -EINVAL,
		 "registers[0].scale", NULL},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0.5, \"type\": \"u16\"}]}", -EINVAL,
		 "registers[0].addr", NULL},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"max_gap\": 126}", -EINVAL,
		 "max_gap", NULL},
		{"{\"fc\": 3, \"addr\": 0, \"type\": \"u16\"}]}", -EINVAL,
		 "registers[0].metric", NULL},
	};
	char doc[2048];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		struct agri_profile p;
		struct agri_err err = {0};

		memset(&p, 0xA5, sizeof(p));
		snprintf(doc, sizeof(doc), "%s%s", base_head, cases[i].regs);
		CHECK_INT(parse_str(doc, &p, &err), cases[i].rc);
		CHECK_STR(err.path, cases[i].path);
		if (cases[i].msg)
			CHECK_STR(err.msg, cases[i].msg);
		CHECK(err.msg[0]);
		CHECK_INT(p.n_regs, (size_t)0xA5A5A5A5A5A5A5A5ull); /* untouched */
	}

	/* Whole-document errors. */
	struct agri_profile p;
	struct agri_err err = {0};

	CHECK_INT(parse_str("[1]", &p, &err), -EINVAL);
	CHECK_STR(err.path, "");
	CHECK_INT(parse_str("{\"profile\": \"x\"", &p, &err), -EBADMSG);
	CHECK_INT(parse_str("{\"registers\": [{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}]}",
			    &p, &err), -EINVAL);
	CHECK_STR(err.path, "profile");
	CHECK_INT(parse_str("{\"profile\": \"a/b\", \"registers\": [{\"metric\": \"c\", \"fc\": 3, "
			    "\"addr\": 0, \"type\": \"u16\"}]}", &p, &err), -EINVAL);
	CHECK_STR(err.path, "profile");
	CHECK_STR(err.msg, "expected [A-Za-z0-9_-]{1,32}");

	/* 17 single registers 2 apart need 17 requests with max_gap 0. */
	size_t n = (size_t)snprintf(doc, sizeof(doc), "%s", base_head);
	for (int i = 0; i < 17; i++)
		n += (size_t)snprintf(doc + n, sizeof(doc) - n,
				      "%s{\"metric\": \"m%d\", \"fc\": 3, \"addr\": %d, \"type\": \"u16\"}",
				      i ? "," : "", i, 2 * i);
	snprintf(doc + n, sizeof(doc) - n, "]}");
	CHECK_INT(parse_str(doc, &p, &err), -EINVAL);
	CHECK_STR(err.path, "registers");
	CHECK_STR(err.msg, "needs more than 16 requests (raise max_gap)");
	snprintf(doc + n, sizeof(doc) - n, "], \"max_gap\": 1}");
	CHECK_INT(parse_str(doc, &p, &err), 0);
}

static void test_defaults(void)
{
	struct agri_profile p;
	struct agri_err err = {0};

	CHECK_INT(parse_str("{\"profile\": \"d\", \"registers\": [{\"metric\": \"c\", \"fc\": 3, "
			    "\"addr\": 7, \"type\": \"s32\"}, {\"metric\": \"insect_count\", "
			    "\"sensor_suffix\": \"bph\", \"fc\": 4, \"addr\": 0, \"type\": \"u16\", "
			    "\"kind\": \"counter\"}, {\"metric\": \"insect_count\", \"sensor_suffix\": "
			    "\"wbph\", \"fc\": 4, \"addr\": 1, \"type\": \"u16\", \"kind\": \"counter\"}, "
			    "{\"metric\": \"lamp_on\", \"fc\": 4, \"addr\": 2, \"type\": \"u16\", "
			    "\"kind\": \"state\"}]}", &p, &err), 0);
	CHECK_INT(p.max_gap, 0);
	CHECK_INT(p.max_regs, 125);
	CHECK(!p.even_align && !p.has_probe);
	CHECK_INT(p.serial.baud, 0);
	CHECK_INT(p.serial.parity, 'N');
	CHECK_INT(p.serial.data_bits, 8);
	CHECK_INT(p.serial.stop_bits, 1);
	CHECK_NEAR(p.regs[0].scale, 1, 0);
	CHECK_NEAR(p.regs[0].offset, 0, 0);
	CHECK_INT(p.regs[0].order, AGRI_ORDER_ABCD);
	CHECK(!p.regs[0].has_min && !p.regs[0].has_max && !p.regs[0].counter && !p.regs[0].stable);
	CHECK(p.regs[1].counter && p.regs[1].stable);
	CHECK_STR(p.regs[2].sensor_suffix, "wbph");
	CHECK(!p.regs[3].counter && p.regs[3].stable);
	CHECK(agri_profile_find(&p, "c") == &p.regs[0]);
	CHECK(agri_profile_find(&p, "insect_count") == NULL); /* suffixed only */
	CHECK(agri_profile_find(&p, "nope") == NULL);

	CHECK_INT(parse_str("{\"profile\": \"d\", \"serial\": {\"baud\": 19200, \"parity\": \"E\", "
			    "\"data_bits\": 7, \"stop_bits\": 2}, \"probe\": {\"fc\": 4, \"addr\": 2, "
			    "\"count\": 2}, \"registers\": [{\"metric\": \"c\", \"fc\": 3, \"addr\": 7, "
			    "\"type\": \"u16\", \"stable\": true}]}", &p, &err), 0);
	CHECK_INT(p.serial.baud, 19200);
	CHECK_INT(p.serial.parity, 'E');
	CHECK_INT(p.serial.data_bits, 7);
	CHECK_INT(p.serial.stop_bits, 2);
	CHECK(p.has_probe && p.probe.fc == 4 && p.probe.addr == 2 && p.probe.count == 2);
	CHECK(p.regs[0].stable);
}

static struct agri_register reg(uint8_t fc, uint16_t addr, enum agri_regtype t)
{
	struct agri_register r = {.fc = fc, .addr = addr, .type = t, .scale = 1};

	snprintf(r.metric, sizeof(r.metric), "m%u_%u", fc, addr);
	return r;
}

static void test_plan_rules(void)
{
	struct agri_profile p;
	struct agri_read_req reqs[AGRI_PLAN_MAX];

	/* Gaps, the fc spaces and the order registers are listed in. */
	memset(&p, 0, sizeof(p));
	p.max_regs = 125;
	p.regs[p.n_regs++] = reg(4, 10, AGRI_REG_U16);
	p.regs[p.n_regs++] = reg(3, 5, AGRI_REG_F32);
	p.regs[p.n_regs++] = reg(3, 0, AGRI_REG_U16);
	p.regs[p.n_regs++] = reg(3, 2, AGRI_REG_U16);
	p.regs[p.n_regs++] = reg(4, 11, AGRI_REG_F64);
	check_plan(&p, 4, (const struct req[]){{3, 0, 1}, {3, 2, 1}, {3, 5, 2}, {4, 10, 5}});
	p.max_gap = 1;
	check_plan(&p, 3, (const struct req[]){{3, 0, 3}, {3, 5, 2}, {4, 10, 5}});
	p.max_gap = 2;
	check_plan(&p, 2, (const struct req[]){{3, 0, 7}, {4, 10, 5}});
	CHECK_INT(agri_plan_reads(&p, reqs, 1), -ENOSPC);

	/* max_regs bounds a request's span, gaps included. */
	p.max_regs = 6;
	check_plan(&p, 3, (const struct req[]){{3, 0, 3}, {3, 5, 2}, {4, 10, 5}});
	p.max_regs = 4;
	check_plan(&p, 4, (const struct req[]){{3, 0, 3}, {3, 5, 2}, {4, 10, 1}, {4, 11, 4}});
	p.max_regs = 3;
	CHECK_INT(agri_plan_reads(&p, reqs, AGRI_PLAN_MAX), -EINVAL); /* f64 */

	/* even_align: even start, even count (YSI ODO RTU). */
	memset(&p, 0, sizeof(p));
	p.max_regs = 125;
	p.even_align = true;
	p.regs[p.n_regs++] = reg(4, 3, AGRI_REG_U16);
	p.regs[p.n_regs++] = reg(4, 9, AGRI_REG_F32);
	check_plan(&p, 2, (const struct req[]){{4, 2, 2}, {4, 8, 4}});
	p.max_gap = 5;
	check_plan(&p, 1, (const struct req[]){{4, 2, 10}});
	p.max_regs = 9; /* effective 8 */
	check_plan(&p, 2, (const struct req[]){{4, 2, 2}, {4, 8, 4}});

	/* Modbus limit: 125 registers a request. */
	memset(&p, 0, sizeof(p));
	p.max_regs = 125;
	p.regs[p.n_regs++] = reg(3, 0, AGRI_REG_U16);
	p.regs[p.n_regs++] = reg(3, 123, AGRI_REG_U16);
	p.regs[p.n_regs++] = reg(3, 124, AGRI_REG_F32);
	p.max_gap = 125;
	check_plan(&p, 2, (const struct req[]){{3, 0, 124}, {3, 124, 2}});
	p.regs[2] = reg(3, 124, AGRI_REG_U16);
	check_plan(&p, 1, (const struct req[]){{3, 0, 125}});

	/* The top of the address space. */
	memset(&p, 0, sizeof(p));
	p.max_regs = 125;
	p.even_align = true;
	p.regs[p.n_regs++] = reg(3, 65533, AGRI_REG_F32);
	check_plan(&p, 1, (const struct req[]){{3, 65532, 4}});

	size_t ri, off;
	struct agri_register r = reg(4, 3, AGRI_REG_U16);

	CHECK_INT(agri_plan_locate(reqs, 0, &r, &ri, &off), -ENOENT);
}

static void test_decode(void)
{
	struct agri_register r = {.fc = 3, .type = AGRI_REG_S16, .scale = 0.01,
				  .offset = -1, .min = -40, .max = 80,
				  .has_min = true, .has_max = true};
	uint16_t w[2];
	double v;
	bool hv;
	enum agri_quality q;

	w[0] = 2530; /* 25.30 - 1 */
	CHECK_INT(agri_register_decode(&r, w, &v, &hv, &q), 0);
	CHECK_NEAR(v, 24.3, 1e-12);
	CHECK(hv);
	CHECK_INT(q, AGRI_Q_OK);
	CHECK_NEAR(agri_register_raw(&r, v), 2530, 1e-9);
	w[0] = 9000;
	CHECK_INT(agri_register_decode(&r, w, &v, &hv, &q), 0);
	CHECK_NEAR(v, 89, 1e-12);
	CHECK(hv);
	CHECK_INT(q, AGRI_Q_SUSPECT);
	w[0] = (uint16_t)-4000; /* -41: below min */
	CHECK_INT(agri_register_decode(&r, w, &v, &hv, &q), 0);
	CHECK_INT(q, AGRI_Q_SUSPECT);
	w[0] = (uint16_t)-3900; /* -40: on the bound */
	CHECK_INT(agri_register_decode(&r, w, &v, &hv, &q), 0);
	CHECK_INT(q, AGRI_Q_OK);

	/* YSI "unavailable": NaN -> error, no value. */
	r = (struct agri_register){.fc = 4, .type = AGRI_REG_F32, .scale = 0.001};
	w[0] = 0xFFFF;
	w[1] = 0xFFFF;
	CHECK_INT(agri_register_decode(&r, w, &v, &hv, &q), 0);
	CHECK(!hv);
	CHECK_INT(q, AGRI_Q_ERROR);
	w[0] = 0x47F1; /* 123456 uS/cm */
	w[1] = 0x2000;
	CHECK_INT(agri_register_decode(&r, w, &v, &hv, &q), 0);
	CHECK(hv);
	CHECK_NEAR(v, 123.456, 1e-9);
	CHECK_INT(q, AGRI_Q_OK); /* no range: never suspect */
}

/* Specific conductance: the derivation undoes the probe's compensation
 * and runs PSS-78 at the water temperature (docs/units.md). A SenseCAP
 * register quantised to 1 uS/cm gives salinity within 0.1 % at 27-31 °C;
 * PSS-78 fed the compensated value at the water temperature (the old
 * profile) was 4 % low at 27 °C and 11 % low at 31 °C. */
static void test_specific_conductance(void)
{
	static const char *doc =
		"{\"profile\": \"sc\", \"registers\": ["
		"{\"metric\": \"water_temperature\", \"fc\": 3, \"addr\": 0, \"type\": \"s16\", "
		"\"scale\": 0.01, \"unit\": \"°C\"},"
		"{\"metric\": \"specific_conductance\", \"fc\": 3, \"addr\": 2, \"type\": \"u16\", "
		"\"scale\": 0.001, \"unit\": \"mS/cm\", \"ref_c\": 25, \"coef_pct_per_c\": 2.0, "
		"\"coef_reg\": {\"fc\": 3, \"addr\": 34, \"scale\": 0.1}, \"full_scale\": 20, "
		"\"dry_below\": 0.01, \"stuck_after_s\": 600}],"
		"\"stuck_after_s\": 21600,"
		"\"init\": [{\"fc\": 16, \"addr\": 7168, \"values\": [], \"wait_ms\": 10000, "
		"\"role\": \"start\"}, {\"fc\": 3, \"addr\": 9472, \"count\": 0}],"
		"\"before_read\": [{\"fc\": 6, \"addr\": 12544, \"values\": [1]}],"
		"\"expect\": [{\"fc\": 3, \"addr\": 32, \"value\": 0, \"metric\": \"specific_conductance\"}],"
		"\"derived\": [{\"metric\": \"salinity\", \"fn\": \"pss78\", "
		"\"from\": [\"specific_conductance\", \"water_temperature\"]}]}";
	static const double temps[] = {27, 29, 31}, sals[] = {0.5, 1, 2, 4, 10};
	static struct agri_profile p;
	struct agri_err err = {0};
	const struct agri_register *r;
	uint8_t pdu[32];

	CHECK_INT(parse_str(doc, &p, &err), 0);
	r = &p.regs[1];
	CHECK(r->specific && r->has_coef_reg && r->has_full_scale);
	CHECK_NEAR(r->ref_c, 25, 0);
	CHECK_NEAR(r->coef_pct, 2.0, 0);
	CHECK_NEAR(r->full_scale, 20, 0);
	CHECK_NEAR(r->dry_below, 0.01, 0);
	CHECK_NEAR(r->stuck_after_s, 600, 0);
	CHECK_NEAR(p.regs[0].stuck_after_s, 0, 0); /* the profile's default applies */
	CHECK_NEAR(p.stuck_after_s, 21600, 0);
	CHECK(r->coef_reg.fc == 3 && r->coef_reg.addr == 34 && r->coef_reg.type == AGRI_REG_U16);
	CHECK_NEAR(r->coef_reg.scale, 0.1, 0);
	CHECK(!p.regs[0].specific && isnan(p.regs[0].coef_pct));
	CHECK_INT(p.n_expect, 1);
	CHECK(p.expect[0].fc == 3 && p.expect[0].addr == 32 && p.expect[0].value == 0);
	CHECK_STR(p.derived[0].unit, "g/L");
	CHECK(p.derived[0].from_reg[0] == 1 && p.derived[0].from_reg[1] == 0);

	/* Commands: Yosemitech's start (FC10, no registers), a read as command, a write. */
	CHECK_INT(p.n_init, 2);
	CHECK_INT(p.n_before, 1);
	CHECK(p.init[0].fc == 16 && p.init[0].addr == 7168 && p.init[0].count == 0 &&
	      p.init[0].wait_ms == 10000 && p.init[0].role == AGRI_CMD_START);
	CHECK_INT(agri_command_pdu(&p.init[0], pdu), 6);
	CHECK(!memcmp(pdu, "\x10\x1c\x00\x00\x00\x00", 6));
	CHECK_INT(agri_command_pdu(&p.init[1], pdu), 5);
	CHECK(!memcmp(pdu, "\x03\x25\x00\x00\x00", 5));
	CHECK_INT(agri_command_pdu(&p.before_read[0], pdu), 5);
	CHECK(!memcmp(pdu, "\x06\x31\x00\x00\x01", 5));

	for (size_t i = 0; i < 3; i++) {
		for (size_t j = 0; j < 5; j++) {
			double t = temps[i], s = sals[j], c = agri_c_from_sp(s, t, 0);
			/* the device: compensate with 2 %/°C, integer uS/cm */
			double sc = round(agri_ec25(c, t, 0.02) * 1000) / 1000;
			double in[2] = {sc, t}, out = -1, t25 = -1;

			CHECK_INT(agri_derive(&p, &p.derived[0], in, NAN, NAN, 0, &out), 0);
			CHECK_NEAR(out / s, 1, 1e-3);
			/* the device's live coefficient wins over the profile's */
			CHECK_INT(agri_derive(&p, &p.derived[0], in, NAN, 2.0, 0, &out), 0);
			CHECK_NEAR(out / s, 1, 1e-3);
			/* coefficient unknown: PSS-78 at 25 °C, within 0.5 % here */
			p.regs[1].coef_pct = NAN;
			CHECK_INT(agri_derive(&p, &p.derived[0], in, NAN, NAN, 0, &t25), 0);
			CHECK_NEAR(t25, agri_sp_from_c(sc, 25, 0), 1e-12);
			CHECK_NEAR(t25 / s, 1, 5e-3);
			p.regs[1].coef_pct = 2.0;
			/* what the old profile computed: double compensation */
			CHECK(agri_sp_from_c(sc, t, 0) / s < 1 - 0.035);
		}
	}
	double in[2] = {NAN, 28}, out;
	CHECK_INT(agri_derive(&p, &p.derived[0], in, NAN, NAN, 0, &out), -EDOM);
}

/* Water level from a vented pressure sensor (Keller) or a depth. */
static void test_level(void)
{
	static struct agri_profile p;
	struct agri_err err = {0};
	double in[2], out;

	CHECK_INT(parse_str("{\"profile\": \"k\", \"registers\": ["
			    "{\"metric\": \"pressure\", \"fc\": 3, \"addr\": 256, \"type\": \"f32\", "
			    "\"unit\": \"bar\"}, {\"metric\": \"water_temperature\", \"fc\": 3, "
			    "\"addr\": 258, \"type\": \"f32\", \"unit\": \"°C\"}, {\"metric\": \"baro\", "
			    "\"fc\": 3, \"addr\": 260, \"type\": \"f32\", \"unit\": \"mbar\"}], \"derived\": "
			    "[{\"metric\": \"water_level\", \"fn\": \"level\", \"from\": [\"pressure\", "
			    "\"water_temperature\"]}, {\"metric\": \"level_abs\", \"fn\": \"level\", "
			    "\"from\": [\"pressure\"], \"air\": \"baro\"}]}", &p, &err), 0);
	CHECK_STR(p.derived[0].unit, "m");
	CHECK(!p.derived[0].depth && p.derived[0].air_reg == -1 && p.derived[1].air_reg == 2);
	CHECK_NEAR(p.derived[0].in_factor, 1e5, 0);
	/* 0.3 bar at 25 °C: 30000 / (997.0414 * 9.80665) = 3.0683 m, plus the offset */
	in[0] = 0.3;
	in[1] = 25;
	CHECK_INT(agri_derive(&p, &p.derived[0], in, NAN, NAN, 1.25, &out), 0);
	CHECK_NEAR(out, 30000 / (997.0414 * 9.80665) + 1.25, 1e-4);
	CHECK_NEAR(agri_water_density(4), 999.97, 0.01);
	CHECK_NEAR(agri_water_density(25), 997.04, 0.01);
	CHECK_NEAR(agri_water_density(30), 995.65, 0.01);
	/* absolute sensor: subtract the barometer (1013.25 mbar) */
	in[0] = 1.01325 + 0.3;
	in[1] = NAN;
	CHECK_INT(agri_derive(&p, &p.derived[1], in, 1013.25, NAN, 0, &out), 0);
	CHECK_NEAR(out, 30000 / (997.0414 * 9.80665), 1e-4);
	CHECK_INT(agri_derive(&p, &p.derived[1], in, NAN, NAN, 0, &out), -EDOM);
	in[1] = NAN;
	CHECK_INT(agri_derive(&p, &p.derived[0], in, NAN, NAN, 0, &out), -EDOM);

	CHECK_INT(parse_str("{\"profile\": \"q\", \"registers\": [{\"metric\": \"water_depth\", "
			    "\"fc\": 3, \"addr\": 4, \"type\": \"s16\", \"scale\": 0.1, \"unit\": \"cm\"}], "
			    "\"derived\": [{\"metric\": \"water_level\", \"fn\": \"level\", "
			    "\"from\": [\"water_depth\"]}]}", &p, &err), 0);
	CHECK(p.derived[0].depth);
	in[0] = 123.4;
	CHECK_INT(agri_derive(&p, &p.derived[0], in, NAN, NAN, -0.5, &out), 0);
	CHECK_NEAR(out, 1.234 - 0.5, 1e-12);
}

/* settings: the registers agrictl write/calibrate use (issue 22). */
static void test_settings(void)
{
	static struct agri_profile p;
	static const struct {
		const char *settings;
		const char *path, *msg;
	} bad[] = {
		{"{\"name\": \"Slave\", \"fc\": 6, \"addr\": 1}", "settings[0].name",
		 "expected a snake_case name (slave_id, baud, ...)"},
		{"{\"name\": \"x\", \"fc\": 3, \"addr\": 1}", "settings[0].fc", "must be between 6 and 16"},
		{"{\"name\": \"x\", \"fc\": 10, \"addr\": 1}", "settings[0].fc",
		 "expected 6 (one register) or 16"},
		{"{\"name\": \"x\", \"fc\": 6, \"addr\": 1, \"type\": \"f32\"}", "settings[0].type",
		 "fc 6 writes one 16-bit register"},
		{"{\"name\": \"x\", \"fc\": 6, \"addr\": 1, \"codes\": [1], \"min\": 0}",
		 "settings[0].codes", "either codes or min/max"},
		{"{\"name\": \"x\", \"fc\": 6, \"addr\": 1, \"applies\": \"later\"}",
		 "settings[0].applies", "expected \"now\" or \"restart\""},
		{"{\"name\": \"cal_slope\", \"fc\": 16, \"addr\": 1, \"type\": \"f32\"}",
		 "settings[0].metric", "required: the metric it corrects"},
		{"{\"name\": \"p\", \"fc\": 6, \"addr\": 1, \"standard\": 1.413}",
		 "settings[0].metric", "required with standard: the metric calibrated"},
		{"{\"name\": \"p\", \"fc\": 6, \"addr\": 1, \"standard\": 1.4, \"metric\": \"ec\"}",
		 "settings[0].metric", "names no register"},
		{"{\"name\": \"a\", \"fc\": 6, \"addr\": 1}, {\"name\": \"a\", \"fc\": 6, \"addr\": 2}",
		 "settings[1].name", "duplicate setting \"a\""},
	};
	char doc[2048];
	struct agri_err err;
	const struct agri_setting *st;
	uint16_t w[4];
	double v;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(bad); i++) {
		snprintf(doc, sizeof(doc), "{\"profile\": \"t\", \"registers\": [{\"metric\": \"x\", "
			 "\"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"settings\": [%s]}",
			 bad[i].settings);
		CHECK_INT(parse_str(doc, &p, &err), -EINVAL);
		CHECK_STR(err.path, bad[i].path);
		CHECK_STR(err.msg, bad[i].msg);
	}
	/* The shipped helpers: a Yosemitech's id in the high byte, a SenseCAP's
	 * baud as a code, the Y520's calibration coefficient as f32 DCBA. */
	snprintf(doc, sizeof(doc), "{\"profile\": \"t\", \"registers\": [{\"metric\": \"ec\", "
		 "\"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"settings\": ["
		 "{\"name\": \"slave_id\", \"fc\": 16, \"addr\": 12288, \"scale\": 256, \"min\": 1, \"max\": 247},"
		 "{\"name\": \"baud\", \"fc\": 6, \"addr\": 513, \"codes\": [1200, 2400, 4800, 9600, 19200],"
		 " \"dangerous\": true, \"applies\": \"restart\"},"
		 "{\"name\": \"cal_slope\", \"fc\": 16, \"addr\": 4352, \"type\": \"f32\", \"order\": \"DCBA\","
		 " \"metric\": \"ec\"}]}");
	CHECK_INT(parse_str(doc, &p, &err), 0);
	CHECK_INT(p.n_settings, 3);
	st = agri_profile_setting(&p, "slave_id");
	CHECK(st && !st->dangerous && st->readable && !st->after_restart);
	CHECK_INT(agri_setting_encode(st, 2, w), 1);
	CHECK_INT(w[0], 0x0200);
	CHECK_INT(agri_setting_encode(st, 248, w), -ERANGE);
	CHECK_INT(agri_setting_decode(st, w, &v), 0);
	st = agri_profile_setting(&p, "baud");
	CHECK(st && st->dangerous && st->after_restart);
	CHECK_INT(agri_setting_encode(st, 19200, w), 1);
	CHECK_INT(w[0], 4);
	CHECK_INT(agri_setting_encode(st, 115200, w), -ERANGE);
	w[0] = 3;
	CHECK_INT(agri_setting_decode(st, w, &v), 0);
	CHECK_NEAR(v, 9600, 0);
	w[0] = 9;
	CHECK_INT(agri_setting_decode(st, w, &v), -ERANGE);
	st = agri_profile_setting(&p, "cal_slope");
	CHECK_INT(agri_setting_encode(st, 12.5, w), 2);
	CHECK_INT(w[0], 0x0000); /* 12.5 = 41480000: DCBA is 0000 4841 */
	CHECK_INT(w[1], 0x4841);
	CHECK(agri_profile_setting(&p, "parity") == NULL);
}

int main(void)
{
	test_settings();
	test_specific_conductance();
	test_level();
	test_shipped();
	test_malformed();
	test_defaults();
	test_plan_rules();
	test_decode();
	return test_main("test_proto_profile");
}
