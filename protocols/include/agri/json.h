/*
 * Small JSON helpers over cJSON shared by every parser: a bounded parse
 * (size and nesting depth checked on the raw bytes before cJSON recurses)
 * and a table-driven object reader for config-like documents, so each
 * config is described by a table (key, type, range, target field) and
 * reports "path: reason" for wrong types, ranges and unknown keys.
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
};

struct agri_cfg_field {
	const char *key;
	enum agri_cfg_type type;
	bool required;
	size_t offset; /* offsetof() of the target member */
	size_t size;   /* STR: buffer size including NUL */
	double min, max;
	/* CUSTOM: returns 0 or a negative errno with *err filled. */
	int (*parse)(const cJSON *item, void *field, const char *path,
		     struct agri_err *err);
	/* Optional: set to true in the target when the key was present. */
	size_t present_offset; /* 0 = not tracked (offset 0 is never a bool flag) */
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
 * Reads one value (an array element) through field's type, range and
 * parser into target itself (field->offset is ignored); path names the
 * value ("seqs[2][0]"). Returns 0 or -EINVAL with *err.
 */
int agri_cfg_read_value(const cJSON *item, const struct agri_cfg_field *field,
			void *target, const char *path, struct agri_err *err);

/* Joins parent path and key ("a" + "b" -> "a.b", "" + "b" -> "b") and
 * parent + index ("a" + 3 -> "a[3]") into buf. */
void agri_path_key(char *buf, size_t len, const char *parent, const char *key);
void agri_path_index(char *buf, size_t len, const char *parent, int index);

#endif
