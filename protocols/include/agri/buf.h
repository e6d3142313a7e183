/*
 * A capped text buffer with JSON writers: the one string builder of the
 * project (messages, forecast documents, HTTP responses, mail and SMS
 * texts). Over the caller's storage (fixed size: nothing is allocated, as
 * the station's loop needs) or on the heap, growing up to a cap. Errors
 * are sticky, so a writer appends freely and checks once at the end:
 * -ENOSPC (full, or over the cap), -ENOMEM, -EINVAL (a value JSON cannot
 * carry: invalid UTF-8 in a strict string, a non-finite number, a time out
 * of range). The text is always NUL-terminated.
 */
#ifndef AGRI_BUF_H
#define AGRI_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Elements of a true array. */
#define AGRI_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct agri_buf {
	char *p;
	size_t len;  /* bytes written (without the NUL) */
	size_t cap;  /* bytes p holds */
	size_t max;  /* heap: cap never grows beyond this */
	bool heap;   /* p is the buffer's own (agri_buf_free()) */
	int err;     /* the first failure, or 0 */
};

/* An initializer for a heap buffer (as agri_buf_init_heap()). */
#define AGRI_BUF_HEAP(max_bytes) {.max = (max_bytes), .heap = true}

/* Over storage[0..size) (size >= 1). */
void agri_buf_init(struct agri_buf *b, char *storage, size_t size);
/* On the heap, growing up to max bytes. Free with agri_buf_free(). */
void agri_buf_init_heap(struct agri_buf *b, size_t max);
/* Frees a heap buffer's text (accepts a fixed one: does nothing). */
void agri_buf_free(struct agri_buf *b);
/* The text's bytes (len), or a negative errno. */
int agri_buf_end(const struct agri_buf *b);
/* Records err (the first one stays). */
void agri_buf_fail(struct agri_buf *b, int err);

void agri_buf_put(struct agri_buf *b, const void *s, size_t n);
void agri_buf_puts(struct agri_buf *b, const char *s);
void agri_buf_printf(struct agri_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* JSON values. A string is quoted and escaped ("\n" "\u0001" ...). strict:
 * invalid UTF-8 fails with -EINVAL (messages we send); text: each invalid
 * byte becomes U+FFFD (what a database or a station handed us). NULL
 * writes null. */
void agri_buf_json_str(struct agri_buf *b, const char *s);
void agri_buf_json_text(struct agri_buf *b, const char *s);
/* The string's escaped contents only, without the quotes (templates). */
void agri_buf_json_inner(struct agri_buf *b, const char *s);
/* The shortest text that reads back as d (%.15g, else %.17g);
 * non-finite fails with -EINVAL. */
void agri_buf_json_num(struct agri_buf *b, double d);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (quoted); out of range fails with -EINVAL. */
void agri_buf_json_time(struct agri_buf *b, int64_t ms);

/* FNV-1a: the one string hash (hash tables of station and series names;
 * not for anything an attacker may aim at a fixed table size). */
static inline uint32_t agri_hash32(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static inline uint64_t agri_hash64_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

#define AGRI_HASH64_INIT 14695981039346656037ull

#endif
