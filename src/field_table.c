/*
 * AMQP field tables and arrays (see field_table.h).
 *
 * One recursive reader serves both validation and decoding: with a NULL
 * destination it only checks, so the validator allocates nothing.  Every
 * nested table or array is read from its own cursor bounded by its declared
 * length, so a malformed inner value can never read the outer bytes, and the
 * declared length must be consumed exactly.
 *
 * Depth counts containers: the top-level table is depth 1 and each nested
 * F or A adds one; more than FTABLE_MAX_DEPTH is refused.
 *
 * A bool octet must be 0 or 1.  Real clients send nothing else, and the tree
 * holds a C bool, so accepting other values would break the promise that
 * decoding and re-encoding a validated table gives back the same bytes.
 */
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "field_table.h"
#include "log.h"

static bool read_table(struct bytes raw, int depth, struct field_table *t);
static bool read_array(struct bytes raw, int depth, struct field_array *a);
static void value_free(struct field_value *v);

/* Two's complement sign extension without implementation-defined casts. */
static int64_t sext(uint64_t u, unsigned bits)
{
	uint64_t mask = bits < 64 ? ((uint64_t)1 << bits) - 1 : UINT64_MAX;
	uint64_t sign = (uint64_t)1 << (bits - 1);

	u &= mask;
	if ((u & sign) == 0)
		return (int64_t)u;
	/* u - 2^bits, as -(magnitude - 1) - 1 so INT64_MIN does not overflow. */
	return -(int64_t)(~u & mask) - 1;
}

/*
 * Read one value of the given type.  v is NULL when only validating;
 * on failure nothing remains allocated in *v.
 */
static bool read_value(struct rcursor *c, uint8_t type, int depth,
    struct field_value *v)
{
	struct bytes body;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	if (v != NULL) {
		memset(v, 0, sizeof(*v));
		v->type = (char)type;
	}
	switch (type) {
	case 't':
		/* Only 0 and 1 round-trip through a C bool. */
		if (!wire_get_u8(c, &u8) || u8 > 1)
			return false;
		if (v)
			v->v.b = u8 != 0;
		return true;
	case 'b':
	case 'B':
		if (!wire_get_u8(c, &u8))
			return false;
		if (v && type == 'b')
			v->v.i = sext(u8, 8);
		else if (v)
			v->v.u = u8;
		return true;
	case 's':
	case 'u':
		if (!wire_get_u16(c, &u16))
			return false;
		if (v && type == 's')
			v->v.i = sext(u16, 16);
		else if (v)
			v->v.u = u16;
		return true;
	case 'I':
	case 'i':
		if (!wire_get_u32(c, &u32))
			return false;
		if (v && type == 'I')
			v->v.i = sext(u32, 32);
		else if (v)
			v->v.u = u32;
		return true;
	case 'l':
	case 'L':
	case 'T':
		if (!wire_get_u64(c, &u64))
			return false;
		if (v && type == 'l')
			v->v.i = sext(u64, 64);
		else if (v)
			v->v.u = u64;
		return true;
	case 'f':
		if (!wire_get_u32(c, &u32))
			return false;
		/* Bit copy, not conversion: keeps NaN payloads and -0. */
		if (v)
			memcpy(&v->v.f, &u32, sizeof(v->v.f));
		return true;
	case 'd':
		if (!wire_get_u64(c, &u64))
			return false;
		if (v)
			memcpy(&v->v.d, &u64, sizeof(v->v.d));
		return true;
	case 'D':
		if (!wire_get_u8(c, &u8) || !wire_get_u32(c, &u32))
			return false;
		if (v) {
			v->v.dec.scale = u8;
			v->v.dec.value = u32;
		}
		return true;
	case 'S':
	case 'x':
		if (!wire_get_longstr(c, &body))
			return false;
		if (v)
			v->v.str = body;
		return true;
	case 'V':
		return true;
	case 'F':
	case 'A':
		if (depth >= FTABLE_MAX_DEPTH || !wire_get_longstr(c, &body))
			return false;
		if (v == NULL) {
			if (type == 'F')
				return read_table(body, depth + 1, NULL);
			return read_array(body, depth + 1, NULL);
		}
		if (type == 'F') {
			v->v.table = xcalloc(1, sizeof(*v->v.table));
			if (!read_table(body, depth + 1, v->v.table)) {
				ftable_free(v->v.table);
				v->v.table = NULL;
				return false;
			}
		} else {
			v->v.array = xcalloc(1, sizeof(*v->v.array));
			if (!read_array(body, depth + 1, v->v.array)) {
				value_free(v);
				v->v.array = NULL;
				return false;
			}
		}
		return true;
	default:
		return false;
	}
}

/*
 * Grow an array of n elements of size sz to hold one more.  Input bounds
 * the count (every entry or item takes at least one octet), so doubling
 * cannot overflow.
 */
static void *grow(void *p, uint32_t n, uint32_t *cap, size_t sz)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 8;
	return xrealloc(p, (size_t)*cap * sz);
}

/* t is NULL when only validating; on failure t holds what was read so far. */
static bool read_table(struct bytes raw, int depth, struct field_table *t)
{
	struct rcursor c = rcursor_make(raw.ptr, raw.len);
	struct field_value scratch, *v;
	struct bytes key;
	uint32_t cap = 0;
	uint8_t type;

	while (c.left > 0) {
		if (!wire_get_shortstr(&c, &key) || !wire_get_u8(&c, &type))
			return false;
		v = NULL;
		if (t != NULL) {
			t->entries = grow(t->entries, t->n, &cap,
			    sizeof(*t->entries));
			t->entries[t->n].key = key;
			v = &scratch;
		}
		if (!read_value(&c, type, depth, v))
			return false;
		if (t != NULL)
			t->entries[t->n++].value = scratch;
	}
	return true;
}

static bool read_array(struct bytes raw, int depth, struct field_array *a)
{
	struct rcursor c = rcursor_make(raw.ptr, raw.len);
	struct field_value scratch, *v;
	uint32_t cap = 0;
	uint8_t type;

	while (c.left > 0) {
		if (!wire_get_u8(&c, &type))
			return false;
		v = a != NULL ? &scratch : NULL;
		if (!read_value(&c, type, depth, v))
			return false;
		if (a != NULL) {
			a->items = grow(a->items, a->n, &cap, sizeof(*a->items));
			a->items[a->n++] = scratch;
		}
	}
	return true;
}

bool ftable_validate(struct bytes raw)
{
	return read_table(raw, 1, NULL);
}

struct field_table *ftable_decode(struct bytes raw)
{
	struct field_table *t = xcalloc(1, sizeof(*t));

	if (!read_table(raw, 1, t)) {
		ftable_free(t);
		return NULL;
	}
	return t;
}

static void value_free(struct field_value *v)
{
	struct field_array *a;

	if (v->type == 'F') {
		ftable_free(v->v.table);
	} else if (v->type == 'A' && (a = v->v.array) != NULL) {
		for (uint32_t i = 0; i < a->n; i++)
			value_free(&a->items[i]);
		free(a->items);
		free(a);
	}
}

void ftable_free(struct field_table *t)
{
	if (t == NULL)
		return;
	for (uint32_t i = 0; i < t->n; i++)
		value_free(&t->entries[i].value);
	free(t->entries);
	free(t);
}

const struct field_value *ftable_get(const struct field_table *t,
    const char *key)
{
	struct bytes k = bytes_str(key);

	if (t == NULL)
		return NULL;
	for (uint32_t i = 0; i < t->n; i++)
		if (bytes_eq(t->entries[i].key, k))
			return &t->entries[i].value;
	return NULL;
}

/* Patch the u32 placeholder at begin with the length written after it. */
static void end_length(struct wbuf *b, size_t begin)
{
	size_t n = b->len - begin - 4;

	if (n > UINT32_MAX)
		fatalx("field table longer than 4 GiB");
	wbuf_patch_u32(b, begin, (uint32_t)n);
}

void fvalue_encode(struct wbuf *b, const struct field_value *v)
{
	const struct field_array *a;
	uint32_t u32;
	uint64_t u64;
	size_t at;

	wbuf_put_u8(b, (uint8_t)v->type);
	switch (v->type) {
	case 't':
		wbuf_put_u8(b, v->v.b ? 1 : 0);
		break;
	case 'b':
		wbuf_put_u8(b, (uint8_t)(uint64_t)v->v.i);
		break;
	case 'B':
		wbuf_put_u8(b, (uint8_t)v->v.u);
		break;
	case 's':
		wbuf_put_u16(b, (uint16_t)(uint64_t)v->v.i);
		break;
	case 'u':
		wbuf_put_u16(b, (uint16_t)v->v.u);
		break;
	case 'I':
		wbuf_put_u32(b, (uint32_t)(uint64_t)v->v.i);
		break;
	case 'i':
		wbuf_put_u32(b, (uint32_t)v->v.u);
		break;
	case 'l':
		wbuf_put_u64(b, (uint64_t)v->v.i);
		break;
	case 'L':
	case 'T':
		wbuf_put_u64(b, v->v.u);
		break;
	case 'f':
		memcpy(&u32, &v->v.f, sizeof(u32));
		wbuf_put_u32(b, u32);
		break;
	case 'd':
		memcpy(&u64, &v->v.d, sizeof(u64));
		wbuf_put_u64(b, u64);
		break;
	case 'D':
		wbuf_put_u8(b, v->v.dec.scale);
		wbuf_put_u32(b, v->v.dec.value);
		break;
	case 'S':
	case 'x':
		wbuf_put_longstr(b, v->v.str);
		break;
	case 'V':
		break;
	case 'F':
		ftable_encode(b, v->v.table);
		break;
	case 'A':
		a = v->v.array;
		at = b->len;
		wbuf_put_u32(b, 0);
		for (uint32_t i = 0; i < a->n; i++)
			fvalue_encode(b, &a->items[i]);
		end_length(b, at);
		break;
	default:
		fatalx("fvalue_encode: unknown field type 0x%02x",
		    (unsigned char)v->type);
	}
}

void ftable_encode(struct wbuf *b, const struct field_table *t)
{
	size_t at = b->len;

	wbuf_put_u32(b, 0);
	for (uint32_t i = 0; i < t->n; i++) {
		wbuf_put_shortstr(b, t->entries[i].key);
		fvalue_encode(b, &t->entries[i].value);
	}
	end_length(b, at);
}

static bool array_equal(const struct field_array *a,
    const struct field_array *b);

static bool value_equal(const struct field_value *a,
    const struct field_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case 't':
		return a->v.b == b->v.b;
	case 'b':
	case 's':
	case 'I':
	case 'l':
		return a->v.i == b->v.i;
	case 'B':
	case 'u':
	case 'i':
	case 'L':
	case 'T':
		return a->v.u == b->v.u;
	case 'f':
		/* By bit pattern: what goes on the wire, and NaN == NaN. */
		return memcmp(&a->v.f, &b->v.f, sizeof(a->v.f)) == 0;
	case 'd':
		return memcmp(&a->v.d, &b->v.d, sizeof(a->v.d)) == 0;
	case 'D':
		return a->v.dec.scale == b->v.dec.scale &&
		    a->v.dec.value == b->v.dec.value;
	case 'S':
	case 'x':
		return bytes_eq(a->v.str, b->v.str);
	case 'V':
		return true;
	case 'F':
		return ftable_equal(a->v.table, b->v.table);
	case 'A':
		return array_equal(a->v.array, b->v.array);
	default:
		return false;
	}
}

static bool array_equal(const struct field_array *a,
    const struct field_array *b)
{
	if (a == b)
		return true;
	if (a == NULL || b == NULL || a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++)
		if (!value_equal(&a->items[i], &b->items[i]))
			return false;
	return true;
}

bool ftable_equal(const struct field_table *a, const struct field_table *b)
{
	if (a == b)
		return true;
	if (a == NULL || b == NULL || a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++)
		if (!bytes_eq(a->entries[i].key, b->entries[i].key) ||
		    !value_equal(&a->entries[i].value, &b->entries[i].value))
			return false;
	return true;
}

/* Broker-made keys are constants; a long one is a bug, not something to cut. */
static void put_key(struct wbuf *b, const char *key, uint8_t type)
{
	struct bytes k = bytes_str(key);

	if (k.len > 255)
		fatalx("field table key too long: %.32s...", key);
	wbuf_put_shortstr(b, k);
	wbuf_put_u8(b, type);
}

size_t ftw_begin(struct wbuf *b)
{
	size_t at = b->len;

	wbuf_put_u32(b, 0);
	return at;
}

void ftw_end(struct wbuf *b, size_t begin)
{
	end_length(b, begin);
}

size_t ftw_table_begin(struct wbuf *b, const char *key)
{
	put_key(b, key, 'F');
	return ftw_begin(b);
}

void ftw_bool(struct wbuf *b, const char *key, bool v)
{
	put_key(b, key, 't');
	wbuf_put_u8(b, v ? 1 : 0);
}

void ftw_longstr(struct wbuf *b, const char *key, const char *v)
{
	size_t n = strlen(v);

	if (n > UINT32_MAX)
		fatalx("ftw_longstr: value longer than 4 GiB");
	put_key(b, key, 'S');
	wbuf_put_longstr(b, (struct bytes){ (const uint8_t *)v, (uint32_t)n });
}

void ftw_i64(struct wbuf *b, const char *key, int64_t v)
{
	put_key(b, key, 'l');
	wbuf_put_u64(b, (uint64_t)v);
}

void ftw_i32(struct wbuf *b, const char *key, int32_t v)
{
	put_key(b, key, 'I');
	wbuf_put_u32(b, (uint32_t)v);
}

void ftw_timestamp(struct wbuf *b, const char *key, uint64_t v)
{
	put_key(b, key, 'T');
	wbuf_put_u64(b, v);
}

void ftw_bytes(struct wbuf *b, const char *key, struct bytes v)
{
	put_key(b, key, 'S');
	wbuf_put_longstr(b, v);
}

void ftw_raw_table(struct wbuf *b, const char *key, struct bytes raw)
{
	put_key(b, key, 'F');
	wbuf_put_longstr(b, raw);	/* a table is its length and bytes */
}

size_t ftw_array_begin(struct wbuf *b, const char *key)
{
	put_key(b, key, 'A');
	return ftw_begin(b);
}

void ftw_array_bytes(struct wbuf *b, struct bytes v)
{
	wbuf_put_u8(b, 'S');
	wbuf_put_longstr(b, v);
}

/* ---- RabbitMQ's equality of argument and header values ------------- */

/*
 * RabbitMQ compares a binding value with a header value by Erlang's `==`
 * on the decoded values, types dropped: every integer type (including 'T'
 * timestamps, and 'L', which RabbitMQ reads as a *signed* 64-bit integer)
 * and both float types compare as numbers (1 == 1.0); 'S' and 'x' are both
 * binaries and compare by bytes; tables and arrays keep their element types.
 */

/* An integer as sign and magnitude; false when v is not an integer. */
static bool int_value(const struct field_value *v, bool *neg, uint64_t *mag)
{
	int64_t i;

	switch (v->type) {
	case 'b': case 's': case 'I': case 'l':
		i = v->v.i;
		break;
	case 'L':
		i = (int64_t)v->v.u;
		break;
	case 'B': case 'u': case 'i': case 'T':
		*neg = false;
		*mag = v->v.u;
		return true;
	default:
		return false;
	}
	*neg = i < 0;
	*mag = *neg ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
	return true;
}

static bool float_value(const struct field_value *v, double *d)
{
	if (v->type == 'f')
		*d = (double)v->v.f;
	else if (v->type == 'd')
		*d = v->v.d;
	else
		return false;
	return true;
}

/* Exact comparison of an integer with a double, as Erlang's `==`. */
static bool int_eq_float(bool neg, uint64_t mag, double d)
{
	if (!isfinite(d))
		return false;
	if (d >= 0)		/* -0.0 too: 0 == -0.0 */
		return !neg && d < 18446744073709551616.0 &&
		    (double)(uint64_t)d == d && (uint64_t)d == mag;
	if (!neg || -d > 9223372036854775808.0)
		return false;
	return (double)(uint64_t)-d == -d && (uint64_t)-d == mag;
}

bool fvalue_equivalent(const struct field_value *a,
    const struct field_value *b)
{
	bool an = false, bn = false;
	uint64_t am = 0, bm = 0;
	double ad = 0, bd = 0;
	bool ai = int_value(a, &an, &am), bi = int_value(b, &bn, &bm);
	bool af = float_value(a, &ad), bf = float_value(b, &bd);

	if (ai && bi)
		return an == bn && am == bm;
	if (ai && bf)
		return int_eq_float(an, am, bd);
	if (af && bi)
		return int_eq_float(bn, bm, ad);
	if (af && bf)
		return ad == bd;
	if (ai || bi || af || bf)
		return false;
	if ((a->type == 'S' || a->type == 'x') &&
	    (b->type == 'S' || b->type == 'x'))
		return bytes_eq(a->v.str, b->v.str);
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case 't':
		return a->v.b == b->v.b;
	case 'D':
		return a->v.dec.scale == b->v.dec.scale &&
		    a->v.dec.value == b->v.dec.value;
	case 'V':
		return true;
	case 'F': {
		return ftable_equal(a->v.table, b->v.table);
	}
	case 'A': {
		struct field_table ta = { 0 }, tb = { 0 };

		/* Arrays: compare element-wise through one-entry tables
		 * (element types count, as in RabbitMQ). */
		if (a->v.array->n != b->v.array->n)
			return false;
		for (uint32_t i = 0; i < a->v.array->n; i++) {
			struct field_entry ea = { { (const uint8_t *)"", 0 },
			    a->v.array->items[i] };
			struct field_entry eb = { { (const uint8_t *)"", 0 },
			    b->v.array->items[i] };

			ta.n = tb.n = 1;
			ta.entries = &ea;
			tb.entries = &eb;
			if (!ftable_equal(&ta, &tb))
				return false;
		}
		return true;
	}
	}
	return false;
}

/* Any AMQP integer type, as a signed 64-bit value; false otherwise. */
bool fvalue_int64(const struct field_value *v, int64_t *out)
{
	switch (v->type) {
	case 'b': case 's': case 'I': case 'l':
		*out = v->v.i;
		return true;
	case 'B': case 'u': case 'i':
		*out = (int64_t)v->v.u;
		return true;
	case 'L':
		if (v->v.u > INT64_MAX)
			return false;
		*out = (int64_t)v->v.u;
		return true;
	}
	return false;
}
