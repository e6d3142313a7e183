/*
 * JSON helpers shared by every parser and encoder in protocols/. Decoding
 * goes through agri_json_parse(): a linear pre-scan of the raw bytes
 * enforces what cJSON does not (nesting depth, strict RFC 8259 numbers,
 * UTF-8 strings without control characters or \u0000, no NUL bytes), so
 * cJSON never recurses deeply and every accepted string re-encodes
 * byte for byte. agri_cfg_read() reads an object through a field table
 * (agri_cfg_read_array() an array of them); agri_json_put_str/num are the
 * plain-buffer forms of agri/buf.h's JSON writers.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/msg.h"
#include "utf8.h"

#define CFG_FIELDS_MAX 64
#define INT_SAFE_MAX 9007199254740991.0 /* 2^53 - 1 */

/* Returns the index just past a valid UTF-8 sequence at s[i], or 0. */
static size_t utf8_next(const unsigned char *s, size_t len, size_t i)
{
	size_t k = agri_utf8_len(s + i, len - i);

	return k ? i + k : 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Scans the string starting at the quote s[*i]; leaves *i on the closing
 * quote. */
static int scan_string(const unsigned char *s, size_t len, size_t *i,
		       struct agri_err *err)
{
	size_t j = *i + 1;

	while (j < len && s[j] != '"') {
		if (s[j] == '\\') {
			if (j + 1 >= len)
				break;
			if (s[j + 1] == 'u') {
				int v = 0;

				for (size_t k = 2; k < 6; k++) {
					int h = j + k < len ? hexval(s[j + k]) : -1;

					if (h < 0)
						goto bad;
					v = v * 16 + h;
				}
				if (v == 0) {
					agri_err_set(err, "", "\\u0000 in a string at byte %zu", j);
					return -EBADMSG;
				}
				j += 6;
			} else if (s[j + 1] && strchr("\"\\/bfnrt", s[j + 1])) {
				j += 2;
			} else {
				goto bad;
			}
		} else if (s[j] < 0x20) {
			agri_err_set(err, "", "control character in a string at byte %zu", j);
			return -EBADMSG;
		} else if (s[j] >= 0x80) {
			size_t next = utf8_next(s, len, j);

			if (!next) {
				agri_err_set(err, "", "invalid UTF-8 at byte %zu", j);
				return -EBADMSG;
			}
			j = next;
		} else {
			j++;
		}
	}
	if (j < len) {
		*i = j;
		return 0;
	}
bad:
	agri_err_set(err, "", "invalid JSON at byte %zu", j < len ? j : *i);
	return -EBADMSG;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? spans exactly s[0..n). */
static bool number_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && is_digit(s[i]))
		while (i < n && is_digit(s[i]))
			i++;
	else
		return false;
	if (i < n && s[i] == '.') {
		if (++i >= n || !is_digit(s[i]))
			return false;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !is_digit(s[i]))
			return false;
		while (i < n && is_digit(s[i]))
			i++;
	}
	return i == n;
}

/* The pre-scan: everything cJSON is lax about, and the depth limit. */
static int json_scan(const unsigned char *s, size_t len, int max_depth,
		     struct agri_err *err)
{
	int depth = 0, ret;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '"') {
			ret = scan_string(s, len, &i, err);
			if (ret)
				return ret;
		} else if (c == '{' || c == '[') {
			if (++depth > max_depth) {
				agri_err_set(err, "", "nested deeper than %d levels", max_depth);
				return -EBADMSG;
			}
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == '-' || c == '+' || c == '.' || is_digit(c)) {
			size_t j = i;

			while (j < len && (is_digit(s[j]) || s[j] == '-' || s[j] == '+' ||
					   s[j] == '.' || s[j] == 'e' || s[j] == 'E'))
				j++;
			if (!number_valid(s + i, j - i)) {
				agri_err_set(err, "", "invalid number at byte %zu", i);
				return -EBADMSG;
			}
			i = j - 1;
		} else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			agri_err_set(err, "", "invalid JSON at byte %zu", i);
			return -EBADMSG;
		}
	}
	return 0;
}

/*
 * Note: cJSON records parse failures in a process-wide variable
 * (cJSON_GetErrorPtr); we never read it, so concurrent parses only race
 * on a value nobody uses.
 */
int agri_json_parse(const char *json, size_t len, size_t max_bytes,
		    int max_depth, cJSON **out, struct agri_err *err)
{
	const char *end = NULL;
	const void *nul;
	cJSON *root;
	size_t i;
	int ret;

	if (!json || !out)
		return -EINVAL;
	if (len > max_bytes) {
		agri_err_set(err, "", "larger than %zu bytes", max_bytes);
		return -E2BIG;
	}
	nul = memchr(json, '\0', len);
	if (nul) {
		agri_err_set(err, "", "NUL byte at byte %zu", (size_t)((const char *)nul - json));
		return -EBADMSG;
	}
	ret = json_scan((const unsigned char *)json, len, max_depth, err);
	if (ret)
		return ret;
	root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root) {
		for (i = 0; i < len && strchr(" \t\r\n", json[i]); i++)
			;
		if (i == len)
			agri_err_set(err, "", "empty document");
		else
			agri_err_set(err, "", "invalid JSON at byte %zu",
				     end && end >= json && end <= json + len ?
				     (size_t)(end - json) : i);
		return -EBADMSG;
	}
	for (i = (size_t)(end - json); i < len; i++) {
		if (!strchr(" \t\r\n", json[i])) {
			agri_err_set(err, "", "trailing data at byte %zu", i);
			cJSON_Delete(root);
			return -EBADMSG;
		}
	}
	*out = root;
	return 0;
}

void agri_path_key(char *buf, size_t len, const char *parent, const char *key)
{
	if (parent && parent[0])
		snprintf(buf, len, "%s.%s", parent, key);
	else
		snprintf(buf, len, "%s", key);
}

void agri_path_index(char *buf, size_t len, const char *parent, int index)
{
	snprintf(buf, len, "%s[%d]", parent ? parent : "", index);
}

/* The shortest text that reads back as d (agri_buf_json_num). */
static void num_format(char *buf, size_t len, double d)
{
	struct agri_buf b;

	agri_buf_init(&b, buf, len);
	agri_buf_json_num(&b, d);
}

static int range_check(double d, double lo, double hi, const char *path,
		       struct agri_err *err)
{
	char a[32], b[32];

	if (d >= lo && d <= hi)
		return 0;
	num_format(a, sizeof(a), lo);
	num_format(b, sizeof(b), hi);
	agri_err_set(err, path, "must be between %s and %s", a, b);
	return -EINVAL;
}

static int read_number(const cJSON *item, const struct agri_cfg_field *f,
		       void *field, const char *path, struct agri_err *err)
{
	bool integral = f->type != AGRI_CFG_DOUBLE;
	bool ranged = f->min != 0 || f->max != 0;
	double d = item->valuedouble;
	int64_t v;

	if (!cJSON_IsNumber(item)) {
		agri_err_set(err, path, integral ? "expected an integer" : "expected a number");
		return -EINVAL;
	}
	if (!isfinite(d)) {
		agri_err_set(err, path, "number too large");
		return -EINVAL;
	}
	if (!integral) {
		if (ranged && range_check(d, f->min, f->max, path, err))
			return -EINVAL;
		memcpy(field, &d, sizeof(d));
		return 0;
	}
	if (d != floor(d)) {
		agri_err_set(err, path, "expected an integer");
		return -EINVAL;
	}
	if (ranged ? range_check(d, f->min, f->max, path, err) :
		     range_check(d, f->type == AGRI_CFG_UINT ? 0 : -INT_SAFE_MAX,
				 INT_SAFE_MAX, path, err))
		return -EINVAL;
	v = (int64_t)d;
	memcpy(field, &v, sizeof(v));
	return 0;
}

/* The member size a numeric or bool row's target must have (0: any). */
static size_t member_size(enum agri_cfg_type t)
{
	switch (t) {
	case AGRI_CFG_INT:
	case AGRI_CFG_UINT:
		return sizeof(int64_t);
	case AGRI_CFG_DOUBLE:
		return sizeof(double);
	case AGRI_CFG_BOOL:
		return sizeof(bool);
	default:
		return 0;
	}
}

static int read_field(const cJSON *item, const struct agri_cfg_field *f,
		      void *field, const char *path, struct agri_err *err)
{
	size_t n;

	if (f->size && member_size(f->type) && f->size != member_size(f->type)) {
		agri_err_set(err, path, "table row for a member of %zu bytes", f->size);
		return -EINVAL; /* a table written wrong, not a document */
	}
	switch (f->type) {
	case AGRI_CFG_STR:
		if (cJSON_IsNull(item) && !f->required) {
			if (f->size)
				*(char *)field = '\0';
			return 0;
		}
		if (agri_cfg_want_string(item, path, err))
			return -EINVAL;
		n = strlen(item->valuestring);
		if (n >= f->size) {
			agri_err_set(err, path, "too long (max %zu bytes)",
				     f->size ? f->size - 1 : 0);
			return -EINVAL;
		}
		memcpy(field, item->valuestring, n + 1);
		return 0;
	case AGRI_CFG_INT:
	case AGRI_CFG_UINT:
	case AGRI_CFG_DOUBLE:
		return read_number(item, f, field, path, err);
	case AGRI_CFG_BOOL:
		if (!cJSON_IsBool(item)) {
			agri_err_set(err, path, "expected true or false");
			return -EINVAL;
		}
		*(bool *)field = cJSON_IsTrue(item);
		return 0;
	case AGRI_CFG_CUSTOM:
		return f->parse(item, field, path, err);
	case AGRI_CFG_ARRAY:
		break; /* needs the count's target: agri_cfg_read() */
	}
	return -EINVAL;
}

/* "expected an array of 1 to 48 registers" and its shorter forms. */
static void count_error(struct agri_err *err, const char *path,
			const struct agri_cfg_array *a)
{
	if (a->min == a->max)
		agri_err_set(err, path, "expected an array of %zu %s", a->min, a->what);
	else if (a->min == 0)
		agri_err_set(err, path, "expected an array of at most %zu %s", a->max,
			     a->what);
	else if (a->max == a->min + 1)
		agri_err_set(err, path, "expected an array of %zu or %zu %s", a->min,
			     a->max, a->what);
	else
		agri_err_set(err, path, "expected an array of %zu to %zu %s", a->min,
			     a->max, a->what);
}

int agri_cfg_read_array(const cJSON *item, const char *path,
			const struct agri_cfg_array *a, void *base,
			size_t *count, struct agri_err *err)
{
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *it;
	size_t i = 0;
	int n, ret;

	if (!a || !base || !count || !a->what || !a->elem_size ||
	    (!a->fields == !a->value))
		return -EINVAL;
	n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : -1;
	if (n < 0 || (size_t)n < a->min || (size_t)n > a->max) {
		count_error(err, path, a);
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, item) {
		char *elem = (char *)base + i * a->elem_size;

		agri_path_index(sub, sizeof(sub), path, (int)i);
		if (a->init)
			a->init(elem);
		else
			memset(elem, 0, a->elem_size);
		if (a->value)
			ret = read_field(it, a->value, elem, sub, err);
		else
			ret = agri_cfg_read(it, sub, a->fields, a->n_fields, elem,
					    a->allow_unknown, err);
		if (!ret && a->check)
			ret = a->check(it, elem, sub, err);
		if (ret)
			return ret;
		i++;
	}
	*count = i;
	return 0;
}

int agri_cfg_want_string(const cJSON *item, const char *path, struct agri_err *err)
{
	if (cJSON_IsString(item))
		return 0;
	agri_err_set(err, path, "expected a string");
	return -EINVAL;
}

int agri_cfg_read_value(const cJSON *item, const struct agri_cfg_field *field,
			void *target, const char *path, struct agri_err *err)
{
	if (!item || !field || !target)
		return -EINVAL;
	return read_field(item, field, target, path, err);
}

/*
 * Errors are reported in document order, then missing required keys in
 * table order. Unknown keys allowed by allow_unknown are skipped unread.
 */
int agri_cfg_read(const cJSON *obj, const char *path,
		  const struct agri_cfg_field *fields, size_t n_fields,
		  void *target, bool allow_unknown, struct agri_err *err)
{
	bool seen[CFG_FIELDS_MAX] = {false};
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *item;
	size_t k;
	int ret;

	if (!cJSON_IsObject(obj)) {
		agri_err_set(err, path, "expected an object");
		return -EINVAL;
	}
	if (n_fields > CFG_FIELDS_MAX)
		return -EINVAL;
	for (item = obj->child; item; item = item->next) {
		for (k = 0; k < n_fields; k++)
			if (!strcmp(fields[k].key, item->string))
				break;
		agri_path_key(sub, sizeof(sub), path, item->string);
		if (k == n_fields) {
			if (allow_unknown)
				continue;
			agri_err_set(err, sub, "unknown key");
			return -EINVAL;
		}
		if (seen[k]) {
			agri_err_set(err, sub, "duplicate key");
			return -EINVAL;
		}
		seen[k] = true;
		if (fields[k].type == AGRI_CFG_ARRAY) {
			size_t count;

			ret = agri_cfg_read_array(item, sub, fields[k].array,
						  (char *)target + fields[k].offset, &count, err);
			if (!ret)
				memcpy((char *)target + fields[k].count_offset, &count,
				       sizeof(count));
		} else {
			ret = read_field(item, &fields[k], (char *)target + fields[k].offset,
					 sub, err);
		}
		if (ret)
			return ret;
		if (fields[k].present_offset)
			*(bool *)((char *)target + fields[k].present_offset) = true;
	}
	for (k = 0; k < n_fields; k++) {
		if (fields[k].required && !seen[k]) {
			agri_path_key(sub, sizeof(sub), path, fields[k].key);
			agri_err_set(err, sub, "is required");
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * The plain-buffer forms of agri_buf_json_str/num (msg.h): an agri_buf over
 * buf[*pos..len), so there is one escaper. On failure *pos is unchanged
 * and buf[*pos] is NUL again.
 */
static int put_end(struct agri_buf *b, char *buf, size_t len, size_t *pos)
{
	int ret = agri_buf_end(b);

	if (ret < 0) {
		if (buf && *pos < len)
			buf[*pos] = '\0';
		return ret;
	}
	*pos += (size_t)ret;
	return 0;
}

static void put_open(struct agri_buf *b, char *buf, size_t len, size_t pos)
{
	if (buf && pos < len)
		agri_buf_init(b, buf + pos, len - pos);
	else
		*b = (struct agri_buf){0}; /* no room: a write fails with -ENOSPC */
}

int agri_json_put_str(char *buf, size_t len, size_t *pos, const char *s)
{
	struct agri_buf b;

	put_open(&b, buf, len, *pos);
	agri_buf_json_str(&b, s);
	return put_end(&b, buf, len, pos);
}

int agri_json_put_num(char *buf, size_t len, size_t *pos, double d)
{
	struct agri_buf b;

	put_open(&b, buf, len, *pos);
	agri_buf_json_num(&b, d);
	return put_end(&b, buf, len, pos);
}
