/*
 * Fault specs and decisions (see fault.h).
 */
#include "fault.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "agri/buf.h"
#include "agri/util.h"

static const char *const mode_names[] = {
	"timeout", "crc", "exception", "stuck", "drift", "dropout", "dry",
};

const char *fault_mode_name(enum fault_mode m)
{
	return (unsigned)m < AGRI_ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

int fault_parse(const char *spec, struct fault *out, const char **why)
{
	char buf[128], *mode, *arg, *end;
	struct fault f = {0};
	long slave;
	int i;

	if (strlen(spec) >= sizeof(buf)) {
		*why = "fault spec too long";
		return -EINVAL;
	}
	strcpy(buf, spec);
	mode = strchr(buf, ':');
	if (!mode) {
		*why = "expected SLAVE:MODE[:ARG]";
		return -EINVAL;
	}
	*mode++ = '\0';
	errno = 0;
	slave = strtol(buf, &end, 10);
	if (errno || end == buf || *end || slave < 1 || slave > 247) {
		*why = "slave must be 1..247";
		return -EINVAL;
	}
	arg = strchr(mode, ':');
	if (arg)
		*arg++ = '\0';
	for (i = 0; i < (int)AGRI_ARRAY_SIZE(mode_names); i++)
		if (strcmp(mode, mode_names[i]) == 0)
			break;
	if (i == (int)AGRI_ARRAY_SIZE(mode_names)) {
		*why = "mode must be timeout, crc, exception, stuck, drift, dropout or dry";
		return -EINVAL;
	}
	f.slave = (int)slave;
	f.mode = (enum fault_mode)i;
	f.rate = 1.0;
	switch (f.mode) {
	case FAULT_TIMEOUT:
	case FAULT_CRC:
	case FAULT_EXCEPTION:
		if (arg && strcmp(arg, "always") != 0 && util_parse_double(arg, 0, 1, &f.rate)) {
			*why = "rate must be 0..1 or \"always\"";
			return -EINVAL;
		}
		break;
	case FAULT_STUCK:
	case FAULT_DRY:
		if (arg && util_parse_double(arg, 0, 1e6, &f.arg)) {
			*why = f.mode == FAULT_DRY ? "dry takes hours after start" :
						     "stuck takes hours after start";
			return -EINVAL;
		}
		break;
	case FAULT_DRIFT:
		f.arg = 2;
		f.arg2 = 0;
		if (arg) {
			char *slash = strchr(arg, '/');
			if (slash)
				*slash++ = '\0';
			if (util_parse_double(arg, -100, 100, &f.arg) ||
			    (slash && util_parse_double(slash, 0, 3650, &f.arg2))) {
				*why = "drift takes PCT_PER_DAY[/DAYS_BEFORE_START]";
				return -EINVAL;
			}
		}
		break;
	case FAULT_DROPOUT:
		f.arg = 120;
		f.arg2 = 30;
		if (arg) {
			char *slash = strchr(arg, '/');
			if (slash)
				*slash++ = '\0';
			if (util_parse_double(arg, 0.1, 1e7, &f.arg) ||
			    (slash && util_parse_double(slash, 0.01, 1e7, &f.arg2)) ||
			    f.arg2 > f.arg) {
				*why = "dropout takes EVERY_S[/FOR_S], FOR_S <= EVERY_S";
				return -EINVAL;
			}
		}
		break;
	}
	*out = f;
	return 0;
}

bool fault_fires(const struct fault *f, uint64_t seed, uint64_t n)
{
	if (f->rate >= 1.0)
		return true;
	return model_u01(model_hash(seed ^ 0xfa017ULL, (uint64_t)f->slave,
				    (uint64_t)f->mode, n)) < f->rate;
}

bool fault_dropped(const struct fault *f, int64_t elapsed_ms)
{
	double period = f->arg * 1000.0, pos;

	if (elapsed_ms < 0)
		return false;
	pos = fmod((double)elapsed_ms, period);
	/* The first period starts with the slave answering. */
	return pos >= period - f->arg2 * 1000.0;
}
