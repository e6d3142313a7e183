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

#include "agri/profile.h"
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
	{"insitu-aquatroll-400", 4, 0, 2, {{3, 37, 18}, {3, 1537, 2}}},
	{"ysi-odo-rtu", 5, 1, 1, {{4, 0, 18}}},
	{"keller-acculevel", 2, 0, 1, {{3, 0x0100, 4}}},
	{"epever-tracer", 9, 0, 3, {{4, 0x3100, 27}, {4, 0x3200, 2}, {4, 0x331A, 3}}},
	{"agri-lighttrap", 10, 0, 1, {{4, 0, 10}}},
};
#define N_SHIPPED (sizeof(shipped) / sizeof(shipped[0]))

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
		 "derived[0].fn", "unknown fn \"tds\" (pss78)"},
		{"{\"metric\": \"c\", \"fc\": 3, \"addr\": 0, \"type\": \"u16\"}], \"derived\": "
		 "[{\"metric\": \"s\", \"fn\": \"pss78\", \"from\": [\"c\"]}]}", -EINVAL,
		 "derived[0].from", "expected an array of 2 metrics"},
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

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
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

int main(void)
{
	test_shipped();
	test_malformed();
	test_defaults();
	test_plan_rules();
	test_decode();
	return test_main("test_proto_profile");
}
