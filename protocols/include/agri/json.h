/*
 * Small JSON helpers over cJSON shared by every parser: a bounded parse
 * (size and nesting depth checked on the raw bytes before cJSON recurses)
 * and a table-driven object reader for config-like documents, so each
 * config is described by a table (key, type, range, target field) and
 * reports "path: reason" for wrong types, ranges and unknown keys: one
 * dialect of table rows (AGRI_FIELD_*) and one array reader
 * (agri_cfg_read_array) for every table.
 */
#ifndef AGRI_JSON_H
#define AGRI_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "agri/err.h"

/*
 * Parses json[0..len) into *out (free with cJSON_Delete). Rejects
 * documents over max_bytes (-E2BIG), nested deeper than max_depth, with
 * trailing garbage, or with NUL bytes, and documents that are not
 * valid JSON (-EBADMSG, err->msg names the byte offset). Stricter than
 * cJSON: RFC 8259 numbers only (no NaN, Infinity, +1, 01, .5, 1.), and
 * strings must be UTF-8 without raw control characters or \u0000.
 */
int agri_json_parse(const char *json, size_t len, size_t max_bytes,
		    int max_depth, cJSON **out, struct agri_err *err);

enum agri_cfg_type {
	AGRI_CFG_STR,    /* char[size]; null allowed for optional fields -> "" */
	AGRI_CFG_INT,    /* int64_t, integral number in [min, max] */
	AGRI_CFG_UINT,   /* uint64_t-compatible integral number in [min, max] (stored as int64_t) */
	AGRI_CFG_DOUBLE, /* double, finite, in [min, max] */
	AGRI_CFG_BOOL,   /* bool */
	AGRI_CFG_CUSTOM, /* parse(item, target + offset, path, err) */
	AGRI_CFG_ARRAY,  /* elements per *array into target + offset, their number
			    into the size_t at target + count_offset */
};

struct agri_cfg_array;

struct agri_cfg_field {
	const char *key;
	enum agri_cfg_type type;
	bool required;
	size_t offset; /* offsetof() of the target member */
	size_t size;   /* sizeof() the member: STR's buffer (with the NUL); for
			  INT, UINT, DOUBLE and BOOL checked when not 0 */
	double min, max;
	/* CUSTOM: returns 0 or a negative errno with *err filled. */
	int (*parse)(const cJSON *item, void *field, const char *path,
		     struct agri_err *err);
	/* Optional: set to true in the target when the key was present. */
	size_t present_offset; /* 0 = not tracked (offset 0 is never a bool flag) */
	const struct agri_cfg_array *array; /* ARRAY */
	size_t count_offset;                /* ARRAY: offsetof() its size_t count */
};

/*
 * Table rows: the one dialect of every table (configs, profiles,
 * messages). st is the table's target struct, member a member of it
 * ("broker.url" works, as in offsetof()). The plain rows are optional
 * (INT, DOUBLE, BOOL) or say so (STR, CUSTOM, ARRAY); AGRI_FIELD is the
 * general row, extra designators after required: AGRI_RANGE(lo, hi),
 * AGRI_PRESENT(st, flag), .parse = fn.
 */
#define AGRI_FIELD(st, k, t, member, req, ...) \
	{.key = (k), .type = (t), .required = (req), .offset = offsetof(st, member), \
	 .size = sizeof(((st *)0)->member), __VA_ARGS__}
#define AGRI_RANGE(lo, hi) .min = (lo), .max = (hi)
#define AGRI_PRESENT(st, flag) .present_offset = offsetof(st, flag)
#define AGRI_FIELD_STR(st, k, member, req) AGRI_FIELD(st, k, AGRI_CFG_STR, member, req)
#define AGRI_FIELD_INT(st, k, member, lo, hi) \
	AGRI_FIELD(st, k, AGRI_CFG_INT, member, false, AGRI_RANGE(lo, hi))
#define AGRI_FIELD_UINT(st, k, member, lo, hi) \
	AGRI_FIELD(st, k, AGRI_CFG_UINT, member, false, AGRI_RANGE(lo, hi))
#define AGRI_FIELD_DOUBLE(st, k, member, lo, hi) \
	AGRI_FIELD(st, k, AGRI_CFG_DOUBLE, member, false, AGRI_RANGE(lo, hi))
#define AGRI_FIELD_BOOL(st, k, member) AGRI_FIELD(st, k, AGRI_CFG_BOOL, member, false)
#define AGRI_FIELD_CUSTOM(st, k, member, fn, req) \
	AGRI_FIELD(st, k, AGRI_CFG_CUSTOM, member, req, .parse = (fn))
/* A CUSTOM row whose parser gets the whole target (a section that fills
 * members all over it). */
#define AGRI_FIELD_SECTION(k, fn, req) \
	{.key = (k), .type = AGRI_CFG_CUSTOM, .required = (req), .parse = (fn)}
/* An array into member[], its length into count (a size_t of st). */
#define AGRI_FIELD_ARRAY(st, k, member, count, desc, req, ...) \
	{.key = (k), .type = AGRI_CFG_ARRAY, .required = (req), \
	 .offset = offsetof(st, member), .array = (desc), \
	 .count_offset = offsetof(st, count), __VA_ARGS__}

/*
 * How an array's elements are read (agri_cfg_read_array(), ARRAY rows):
 * each element is an object read through the table fields (its defaults
 * from init first, its cross-field check after), or, with value, a plain
 * value read through that one field (a string, a number, or a CUSTOM
 * parser's own shape). Elements land elem_size bytes apart.
 */
struct agri_cfg_array {
	const struct agri_cfg_field *fields; /* objects: the element's table */
	size_t n_fields;
	const struct agri_cfg_field *value;  /* or: values, read through this */
	size_t elem_size;
	size_t min, max;     /* how many; base holds max */
	const char *what;    /* plural noun for the count error: "registers" */
	bool allow_unknown;  /* objects may carry keys the table does not name */
	/* Optional: an element's defaults (without it: zeroed). */
	void (*init)(void *elem);
	/* Optional: a check of one element once read; 0 or -EINVAL with *err. */
	int (*check)(const cJSON *item, void *elem, const char *path,
		     struct agri_err *err);
};

/*
 * Reads obj's members into target through the table. path is the object's
 * own path ("" for the document, "broker", "sensors[2]"). Unknown keys are
 * errors unless allow_unknown; duplicate keys are errors. Fields absent
 * from obj keep the value the caller put in target (the defaults). A
 * number field with min == max == 0 has no range check (integers are
 * still kept within +-(2^53 - 1), UINT >= 0). At most 64 fields a table.
 * Returns 0 or -EINVAL with *err (or a CUSTOM parser's own errno).
 */
int agri_cfg_read(const cJSON *obj, const char *path,
		  const struct agri_cfg_field *fields, size_t n_fields,
		  void *target, bool allow_unknown, struct agri_err *err);

/*
 * Reads the array item into base[0..) through *a, its length into *count
 * (only on success). path is the array's own path; elements report
 * "path[i]" and the count "expected an array of 1 to 48 registers"
 * (or "of at most 8 ...", "of 1 or 2 ...", "of 4 ..."), which is also
 * what anything but an array gets. Returns 0 or -EINVAL with *err (or a
 * CUSTOM parser's own errno).
 */
int agri_cfg_read_array(const cJSON *item, const char *path,
			const struct agri_cfg_array *a, void *base,
			size_t *count, struct agri_err *err);

/*
 * Reads one value (an array element) through field's type, range and
 * parser into target itself (field->offset is ignored); path names the
 * value ("seqs[2][0]"). Returns 0 or -EINVAL with *err.
 */
int agri_cfg_read_value(const cJSON *item, const struct agri_cfg_field *field,
			void *target, const char *path, struct agri_err *err);

/* 0 when item is a string, else -EINVAL with "expected a string" at path
 * (for CUSTOM parsers of string values). */
int agri_cfg_want_string(const cJSON *item, const char *path, struct agri_err *err);

/* Joins parent path and key ("a" + "b" -> "a.b", "" + "b" -> "b") and
 * parent + index ("a" + 3 -> "a[3]") into buf. */
void agri_path_key(char *buf, size_t len, const char *parent, const char *key);
void agri_path_index(char *buf, size_t len, const char *parent, int index);

#endif
