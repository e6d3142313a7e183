/*
 * A tiny unit-test harness: CHECK macros count checks and report the file,
 * line and values of each failure; test_main() prints
 * "N passed, N failed" and returns non-zero on any failure.
 */
#ifndef AGRI_TEST_H
#define AGRI_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (cond) {                                                  \
			test_passed++;                                       \
		} else {                                                     \
			test_failed++;                                       \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
				__LINE__, #cond);                            \
		}                                                            \
	} while (0)

#define CHECK_INT(a, b)                                                      \
	do {                                                                 \
		long long va_ = (long long)(a), vb_ = (long long)(b);        \
		if (va_ == vb_) {                                            \
			test_passed++;                                       \
		} else {                                                     \
			test_failed++;                                       \
			fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n",  \
				__FILE__, __LINE__, #a, #b, va_, vb_);       \
		}                                                            \
	} while (0)

#define CHECK_NEAR(a, b, tol)                                                \
	do {                                                                 \
		double va_ = (a), vb_ = (b);                                 \
		if (fabs(va_ - vb_) <= (tol)) {                              \
			test_passed++;                                       \
		} else {                                                     \
			test_failed++;                                       \
			fprintf(stderr, "%s:%d: %s ~ %s: %.9g vs %.9g\n",   \
				__FILE__, __LINE__, #a, #b, va_, vb_);       \
		}                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *va_ = (a), *vb_ = (b);                           \
		if (va_ && vb_ && strcmp(va_, vb_) == 0) {                   \
			test_passed++;                                       \
		} else {                                                     \
			test_failed++;                                       \
			fprintf(stderr, "%s:%d: %s == %s: \"%s\" != \"%s\"\n", \
				__FILE__, __LINE__, #a, #b,                  \
				va_ ? va_ : "(null)", vb_ ? vb_ : "(null)"); \
		}                                                            \
	} while (0)

static inline int test_main(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
	return test_failed ? 1 : 0;
}

#endif
