/*
 * Hub catch-up's pure pieces (gateway/src/core/catchup_digest.c, docs/ha.md
 * "Catch-up"): group hashes that do not depend on arrival order, digests
 * and details that decode to what was encoded, a decoder that refuses what
 * a hostile or broken peer could send, and the comparison that asks only
 * for what the other hub holds more of.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/catchup.h"
#include "test.h"

#define H CU_HOUR_MS

static void test_hash(void)
{
	uint64_t a = cu_group_hash("sonde1", "salinity", 10 * H, 60, 1234);

	CHECK(a == cu_group_hash("sonde1", "salinity", 10 * H, 60, 1234));
	CHECK(a != cu_group_hash("sonde1", "salinity", 10 * H, 61, 1234));
	CHECK(a != cu_group_hash("sonde1", "salinity", 10 * H, 60, 1235));
	CHECK(a != cu_group_hash("sonde1", "salinity", 11 * H, 60, 1234));
	CHECK(a != cu_group_hash("sonde1", "temperature", 10 * H, 60, 1234));
	/* the names are separated: ("ab", "c") is not ("a", "bc") */
	CHECK(cu_group_hash("ab", "c", 0, 1, 0) != cu_group_hash("a", "bc", 0, 1, 0));
}

static void test_roundtrip(void)
{
	struct cu_entry e[3] = {{.key = "CL-01", .n = 360, .hash = 0x0123456789abcdefULL},
				{.key = "CL-02", .n = 0, .hash = 0},
				{.key = "DT-W07", .n = 9007199254740991ULL, .hash = ~0ULL}};
	struct cu_entry got[4];
	struct cu_digest d = {.hub = "hub-a", .from_ms = 100 * H, .to_ms = 148 * H + 5, .e = e, .n = 3};
	struct cu_digest r = {.e = got, .cap = 4};
	char buf[1024], why[160];
	int n = cu_digest_encode(&d, buf, sizeof(buf));

	CHECK(n > 0);
	CHECK_INT(cu_digest_decode(buf, (size_t)n, false, &r, why, sizeof(why)), 0);
	CHECK_INT(r.n, 3);
	CHECK_STR(r.hub, "hub-a");
	CHECK(r.from_ms == d.from_ms && r.to_ms == d.to_ms);
	for (size_t i = 0; i < 3; i++)
		CHECK(strcmp(got[i].key, e[i].key) == 0 && got[i].n == e[i].n && got[i].hash == e[i].hash);
	CHECK_INT(cu_digest_encode(&d, buf, 40), -ENOSPC);

	/* a detail */
	{
		struct cu_entry h[2] = {{.hour_ms = 100 * H, .n = 5, .hash = 7},
					{.hour_ms = 103 * H, .n = 6, .hash = 8}};
		struct cu_digest dd = {.hub = "hub-a", .peer = "hub-b", .station = "CL-01",
				       .from_ms = 100 * H, .to_ms = 104 * H, .e = h, .n = 2};

		n = cu_digest_encode(&dd, buf, sizeof(buf));
		CHECK_INT(cu_digest_decode(buf, (size_t)n, true, &r, why, sizeof(why)), 0);
		CHECK(r.n == 2 && got[1].hour_ms == 103 * H && strcmp(r.station, "CL-01") == 0 &&
		      strcmp(r.peer, "hub-b") == 0);
		/* a detail is not a digest */
		CHECK_INT(cu_digest_decode(buf, (size_t)n, false, &r, why, sizeof(why)), -EBADMSG);
	}
}

static void test_hostile(void)
{
	static const struct {
		const char *json;
		const char *why;
	} bad[] = {
		{"{not json", "JSON"},
		{"[]", "object"},
		{"{\"v\":2,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[]}", "v:"},
		{"{\"v\":1,\"hub\":\"a b\",\"from\":0,\"to\":1,\"stations\":[]}", "hub:"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":5,\"to\":1,\"stations\":[]}", "from, to"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":3600000000,\"stations\":[]}", "from, to"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[],\"x\":1}", "x: unknown key"},
		/* the peer's key, quoted on one line */
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[],\"x\\ny\x7f\":1}",
		 "x?y?: unknown key"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[[\"S\",1e300,\"0000000000000000\"]]}",
		 "stations[0]"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[[\"S\",-1,\"0000000000000000\"]]}",
		 "stations[0]"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[[\"S\",1,\"00\"]]}", "stations[0]"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[[\"../x\",1,\"0000000000000000\"]]}",
		 "stations[0]"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[[\"B\",1,\"0000000000000000\"],"
		 "[\"A\",1,\"0000000000000000\"]]}", "not sorted"},
		{"{\"v\":1,\"hub\":\"a\",\"from\":0,\"to\":1,\"stations\":[[\"A\",1,\"0000000000000000\"],"
		 "[\"B\",1,\"0000000000000000\"],[\"C\",1,\"0000000000000000\"]]}", "more than 2"},
	};
	struct cu_entry got[2];
	struct cu_digest r = {.e = got, .cap = 2};
	char why[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = cu_digest_decode(bad[i].json, strlen(bad[i].json), false, &r, why, sizeof(why));

		CHECK_INT(rc, -EBADMSG);
		if (!strstr(why, bad[i].why)) {
			fprintf(stderr, "case %zu: why \"%s\" lacks \"%s\"\n", i, why, bad[i].why);
			CHECK(0);
		}
	}
	/* a detail's hours within [from, to), whole */
	{
		const char *j = "{\"v\":1,\"hub\":\"a\",\"peer\":\"b\",\"station\":\"S\",\"from\":0,"
				"\"to\":3600000,\"hours\":[[3600000,1,\"0000000000000000\"]]}";

		CHECK_INT(cu_digest_decode(j, strlen(j), true, &r, why, sizeof(why)), -EBADMSG);
		CHECK(strstr(why, "hours[0]") != NULL);
	}
}

static void test_lacking(void)
{
	struct cu_entry o[3] = {{.key = "A", .n = 10, .hash = 1}, {.key = "B", .n = 10, .hash = 2},
				{.key = "D", .n = 10, .hash = 4}};
	struct cu_entry t[4] = {{.key = "A", .n = 10, .hash = 1},  /* the same */
				{.key = "B", .n = 9, .hash = 9},   /* fewer, other: a station still asks */
				{.key = "C", .n = 5, .hash = 3},   /* we have none */
				{.key = "D", .n = 10, .hash = 5}}; /* as many, other ones */
	struct cu_digest ours = {.e = o, .n = 3}, theirs = {.e = t, .n = 4};
	size_t out[8], n = cu_digest_lacking(&ours, &theirs, false, out, 8);

	CHECK_INT(n, 3);
	CHECK(out[0] == 1 && out[1] == 2 && out[2] == 3);
	/* bounded by out_cap */
	CHECK_INT(cu_digest_lacking(&ours, &theirs, false, out, 2), 2);
	{
		struct cu_entry oh[2] = {{.hour_ms = 0, .n = 10, .hash = 1}, {.hour_ms = H, .n = 10, .hash = 2}};
		struct cu_entry th[3] = {{.hour_ms = 0, .n = 9, .hash = 7},   /* we hold more: they ask us */
					 {.hour_ms = H, .n = 12, .hash = 2},  /* they hold more */
					 {.hour_ms = 2 * H, .n = 1, .hash = 3}}; /* we have none */
		struct cu_digest oo = {.e = oh, .n = 2}, tt = {.e = th, .n = 3};

		n = cu_digest_lacking(&oo, &tt, true, out, 8);
		CHECK_INT(n, 2);
		CHECK(out[0] == 1 && out[1] == 2);
	}
}

int main(void)
{
	test_hash();
	test_roundtrip();
	test_hostile();
	test_lacking();
	return test_main("test_gateway_catchup");
}
