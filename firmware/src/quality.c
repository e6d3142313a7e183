/*
 * Reading quality (quality.h): dry, full scale, flatline and range, with
 * the reason a technician reads in the "why" of a suspect reading.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quality.h"

void quality_init(struct quality_state *st)
{
	memset(st, 0, sizeof(*st));
	st->last = NAN;
	st->wet = NAN;
}

void quality_mark(struct agri_reading *r, const char *why)
{
	if (!r->has_value)
		return;
	r->q = AGRI_Q_SUSPECT;
	snprintf(r->why, sizeof(r->why), "%s", why);
}

static bool at_full_scale(const struct agri_register *reg, double v)
{
	double fs = reg->full_scale;

	return reg->has_full_scale && v >= fs - 1e-9 * (fabs(fs) > 1 ? fabs(fs) : 1);
}

/* Dry: low now, and brackish not long before (or the level says so). */
static bool judge_dry(const struct agri_register *reg, bool level_dry,
		      struct quality_state *st, const struct agri_reading *r)
{
	double v = r->value;

	if (reg->dry_below <= 0)
		return false;
	if (v > reg->dry_below) {
		st->dry = false;
		st->wet = v;
		st->wet_ms = r->ts_ms;
		return level_dry;
	}
	if (!st->dry && !isnan(st->wet) && st->wet >= QUALITY_WET_FACTOR * reg->dry_below &&
	    r->ts_ms - st->wet_ms <= QUALITY_WET_MEMORY_MS)
		st->dry = true;
	return st->dry || level_dry;
}

/* Flatline: the same value stuck_reads times, or for stuck_after_s. */
static bool judge_stuck(const struct agri_register *reg, double stuck_after_s,
			int64_t stuck_reads, struct quality_state *st,
			const struct agri_reading *r)
{
	if (r->value == st->last) {
		st->repeats++;
	} else {
		st->repeats = 1;
		st->same_since_ms = r->ts_ms;
	}
	st->last = r->value;
	if (reg->stable || reg->counter)
		return false;
	if (stuck_reads > 0 && st->repeats >= stuck_reads)
		return true;
	return stuck_after_s > 0 && st->repeats >= 2 &&
	       (double)(r->ts_ms - st->same_since_ms) > stuck_after_s * 1000;
}

void quality_judge(const struct agri_register *reg, double stuck_after_s,
		   int64_t stuck_reads, bool level_dry, struct quality_state *st,
		   struct agri_reading *r)
{
	bool out_of_range, dry, stuck;

	if (!r->has_value)
		return;
	out_of_range = r->q == AGRI_Q_SUSPECT;
	r->why[0] = '\0';
	/* Every check sees every reading, so each keeps its history. */
	dry = judge_dry(reg, level_dry, st, r);
	stuck = judge_stuck(reg, stuck_after_s, stuck_reads, st, r);
	if (dry)
		quality_mark(r, AGRI_WHY_DRY);
	else if (at_full_scale(reg, r->value))
		quality_mark(r, AGRI_WHY_FULL_SCALE);
	else if (stuck)
		quality_mark(r, AGRI_WHY_STUCK);
	else if (out_of_range)
		quality_mark(r, AGRI_WHY_RANGE);
}

void quality_inherit(struct agri_reading *d, const struct agri_reading *a,
		     const struct agri_reading *b)
{
	const struct agri_reading *s = a && a->q == AGRI_Q_SUSPECT ? a :
				       b && b->q == AGRI_Q_SUSPECT ? b : NULL;

	if (s)
		quality_mark(d, s->why[0] ? s->why : AGRI_WHY_RANGE);
}
