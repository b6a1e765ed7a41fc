/*
 * AMQP field tables and arrays (RabbitMQ's dialect of the 0-9-1 types):
 *
 *   t bool   b int8   B uint8   s int16   u uint16   I int32   i uint32
 *   l int64  L uint64 f float   d double  D decimal  S longstr x bytes
 *   A array  T timestamp        F table   V void
 *
 * Tables travel raw: the broker validates them once on arrival and re-sends
 * the bytes as received.  Decoding into a tree is for the places that must
 * look inside (arguments, headers); strings in the tree borrow from the raw
 * bytes, which must outlive it.
 */
#ifndef WARREN_FIELD_TABLE_H
#define WARREN_FIELD_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

/* Deeper nesting than this is refused (stack safety on hostile input). */
#define FTABLE_MAX_DEPTH 64

struct field_table;
struct field_array;

struct field_value {
	char type;			/* one of the letters above */
	union {
		bool b;			/* t */
		int64_t i;		/* b s I l */
		uint64_t u;		/* B u i L T */
		float f;		/* f */
		double d;		/* d */
		struct {
			uint8_t scale;
			uint32_t value;
		} dec;			/* D */
		struct bytes str;	/* S x */
		struct field_table *table;	/* F */
		struct field_array *array;	/* A */
	} v;
};

struct field_entry {
	struct bytes key;
	struct field_value value;
};

struct field_table {
	uint32_t n;
	struct field_entry *entries;
};

struct field_array {
	uint32_t n;
	struct field_value *items;
};

/*
 * raw is a table's content *without* its u32 length prefix.
 * Return true when raw is a well-formed table: every type letter known,
 * every length within bounds, bools 0/1, any key (0..255), nesting within
 * FTABLE_MAX_DEPTH.  Never reads outside raw.
 */
bool ftable_validate(struct bytes raw);

/* Decode raw into a tree; NULL when malformed.  Free with ftable_free. */
struct field_table *ftable_decode(struct bytes raw);
/* Any AMQP integer type, as a signed 64-bit value; false otherwise. */
bool fvalue_int64(const struct field_value *v, int64_t *out);
void ftable_free(struct field_table *t);

/* Find key in a decoded table; NULL when absent (first match wins). */
const struct field_value *ftable_get(const struct field_table *t,
    const char *key);

/* Append a table (u32 length + entries) or a single value (type + data). */
void ftable_encode(struct wbuf *b, const struct field_table *t);
void fvalue_encode(struct wbuf *b, const struct field_value *v);

/*
 * RabbitMQ's comparison of header and argument values: equal when of the
 * same type class (any integer type, float/double, or else the same type)
 * with the same value.
 */
bool fvalue_equivalent(const struct field_value *a,
    const struct field_value *b);

/* Deep equality: same entries in the same order with the same types. */
bool ftable_equal(const struct field_table *a, const struct field_table *b);

/*
 * Writing a table straight into a wbuf, for tables the broker makes
 * (server-properties):
 *	size_t t = ftw_begin(b);
 *	ftw_longstr(b, "product", "Warren");
 *	size_t caps = ftw_table_begin(b, "capabilities");
 *	ftw_bool(b, "publisher_confirms", true);
 *	ftw_end(b, caps);
 *	ftw_end(b, t);
 */
size_t ftw_begin(struct wbuf *b);
void ftw_end(struct wbuf *b, size_t begin);
size_t ftw_table_begin(struct wbuf *b, const char *key);
void ftw_bool(struct wbuf *b, const char *key, bool v);
void ftw_longstr(struct wbuf *b, const char *key, const char *v);
void ftw_i64(struct wbuf *b, const char *key, int64_t v);
void ftw_i32(struct wbuf *b, const char *key, int32_t v);
void ftw_timestamp(struct wbuf *b, const char *key, uint64_t v);
/* A longstr of any bytes. */
void ftw_bytes(struct wbuf *b, const char *key, struct bytes v);
/* A table already encoded (without its length prefix). */
void ftw_raw_table(struct wbuf *b, const char *key, struct bytes raw);
/* An array of longstrs: begin, one ftw_array_bytes each, ftw_end. */
size_t ftw_array_begin(struct wbuf *b, const char *key);
void ftw_array_bytes(struct wbuf *b, struct bytes v);

#endif
