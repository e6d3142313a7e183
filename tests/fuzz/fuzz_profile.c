/*
 * libFuzzer harness for device profiles: agri_profile_parse() on arbitrary
 * bytes, then, for accepted profiles, the read plan, locating every
 * register in it and decoding it from arbitrary words. Seeds:
 * tests/fuzz/corpus/profile/ (the shipped profiles and broken ones).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agri/profile.h"

/* REQUIRE() is compiled out in release builds; this is not. */
#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct agri_profile p;
	struct agri_read_req reqs[AGRI_PLAN_MAX];
	struct agri_err err = {0};
	uint16_t words[4] = {0};
	int n;

	if (agri_profile_parse((const char *)data, size, &p, &err) < 0) {
		REQUIRE(err.msg[0] != '\0');
		return 0;
	}
	/* A profile that parses always plans within AGRI_PLAN_MAX. */
	n = agri_plan_reads(&p, reqs, AGRI_PLAN_MAX);
	REQUIRE(n >= 1 && n <= AGRI_PLAN_MAX);
	memcpy(words, data, size < sizeof(words) ? size : sizeof(words));
	for (size_t i = 0; i < p.n_regs; i++) {
		size_t ri, off;
		double v;
		bool hv;
		enum agri_quality q;

		REQUIRE(agri_plan_locate(reqs, (size_t)n, &p.regs[i], &ri, &off) == 0);
		REQUIRE(reqs[ri].count <= AGRI_MODBUS_MAX_REGS);
		REQUIRE(!p.even_align || (reqs[ri].addr % 2 == 0 && reqs[ri].count % 2 == 0));
		agri_register_decode(&p.regs[i], words, &v, &hv, &q);
	}
	for (size_t i = 0; i < p.n_derived; i++)
		REQUIRE(agri_profile_find(&p, p.derived[i].from[0]));
	return 0;
}
