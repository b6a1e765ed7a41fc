/*
 * Unit tests for AMQP field tables: decoding every type, nesting, byte-exact
 * round trips, the ftw_* builders, lookup, equality, rejection of malformed
 * input and a seeded mutation test.
 *
 * Every fixture is copied into a heap buffer of exactly its size before it
 * is parsed, so a read past the end is caught by ASan or valgrind.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "field_table.h"
#include "log.h"
#include "wire.h"

/* A byte fixture as the two arguments (pointer, size). */
#define FX(...) (const uint8_t[]){ __VA_ARGS__ }, \
	sizeof((const uint8_t[]){ __VA_ARGS__ })

static const char known_types[] = "tbBsuIilLfdDSxATFV";

/* Exactly sized heap copy, so out-of-bounds reads trip the sanitizer. */
static struct bytes copy_exact(const uint8_t *p, size_t n)
{
	uint8_t *q = xmalloc(n);

	if (n)
		memcpy(q, p, n);
	return (struct bytes){ q, (uint32_t)n };
}

static void free_copy(struct bytes b)
{
	free((void *)(uintptr_t)b.ptr);
}

struct decoded {
	struct bytes raw;
	struct field_table *t;
};

/* Decode a fixture that must be valid; the tree borrows d.raw. */
static struct decoded dec(const uint8_t *p, size_t n)
{
	struct decoded d;

	d.raw = copy_exact(p, n);
	ck_assert_msg(ftable_validate(d.raw), "valid fixture refused");
	d.t = ftable_decode(d.raw);
	ck_assert_ptr_nonnull(d.t);
	return d;
}

static void dec_free(struct decoded *d)
{
	ftable_free(d->t);
	free_copy(d->raw);
}

/* Decoding fails in both entry points. */
static void assert_rejected(const uint8_t *p, size_t n)
{
	struct bytes raw = copy_exact(p, n);
	struct field_table *t;

	ck_assert_msg(!ftable_validate(raw), "validate accepted bad input");
	t = ftable_decode(raw);
	ck_assert_msg(t == NULL, "decode accepted bad input");
	free_copy(raw);
}

static void assert_accepted(const uint8_t *p, size_t n)
{
	struct decoded d = dec(p, n);

	dec_free(&d);
}

/* decode -> encode gives back the length prefix plus the same bytes. */
static void assert_roundtrip(const uint8_t *p, size_t n)
{
	struct decoded d = dec(p, n);
	struct decoded again;
	struct wbuf b;
	uint32_t len;

	wbuf_init(&b);
	ftable_encode(&b, d.t);
	ck_assert_uint_eq(b.len, n + 4);
	len = ((uint32_t)b.p[0] << 24) | ((uint32_t)b.p[1] << 16) |
	    ((uint32_t)b.p[2] << 8) | b.p[3];
	ck_assert_uint_eq(len, n);
	ck_assert_mem_eq(b.p + 4, p, n);
	again = dec(b.p + 4, b.len - 4);
	ck_assert(ftable_equal(d.t, again.t));
	dec_free(&again);
	wbuf_free(&b);
	dec_free(&d);
}

/* The single entry of a one-entry table keyed "k", of the given type. */
static const struct field_value *single(const struct decoded *d, char type)
{
	ck_assert_uint_eq(d->t->n, 1);
	ck_assert(bytes_eq_str(d->t->entries[0].key, "k"));
	ck_assert_int_eq(d->t->entries[0].value.type, type);
	return &d->t->entries[0].value;
}

/* ---- scalar types -------------------------------------------------------- */

START_TEST(test_bool)
{
	struct decoded d;

	d = dec(FX(1, 'k', 't', 1));
	ck_assert(single(&d, 't')->v.b == true);
	dec_free(&d);
	d = dec(FX(1, 'k', 't', 0));
	ck_assert(single(&d, 't')->v.b == false);
	dec_free(&d);
	/* Only 0 and 1 survive a round trip through a C bool. */
	assert_rejected(FX(1, 'k', 't', 2));
	assert_rejected(FX(1, 'k', 't', 0xFF));
}
END_TEST

START_TEST(test_int8_uint8)
{
	struct decoded d;

	d = dec(FX(1, 'k', 'b', 0x80));
	ck_assert_int_eq(single(&d, 'b')->v.i, -128);
	dec_free(&d);
	d = dec(FX(1, 'k', 'b', 0x7F));
	ck_assert_int_eq(single(&d, 'b')->v.i, 127);
	dec_free(&d);
	d = dec(FX(1, 'k', 'b', 0xFF));
	ck_assert_int_eq(single(&d, 'b')->v.i, -1);
	dec_free(&d);
	d = dec(FX(1, 'k', 'B', 0xFE));
	ck_assert_uint_eq(single(&d, 'B')->v.u, 254);
	dec_free(&d);
}
END_TEST

START_TEST(test_int16_uint16)
{
	struct decoded d;

	d = dec(FX(1, 'k', 's', 0x80, 0x00));
	ck_assert_int_eq(single(&d, 's')->v.i, INT16_MIN);
	dec_free(&d);
	d = dec(FX(1, 'k', 's', 0xFF, 0xFE));
	ck_assert_int_eq(single(&d, 's')->v.i, -2);
	dec_free(&d);
	d = dec(FX(1, 'k', 's', 0x12, 0x34));
	ck_assert_int_eq(single(&d, 's')->v.i, 0x1234);
	dec_free(&d);
	d = dec(FX(1, 'k', 'u', 0xFF, 0xFE));
	ck_assert_uint_eq(single(&d, 'u')->v.u, 65534);
	dec_free(&d);
}
END_TEST

START_TEST(test_int32_uint32)
{
	struct decoded d;

	d = dec(FX(1, 'k', 'I', 0x80, 0, 0, 0));
	ck_assert_int_eq(single(&d, 'I')->v.i, INT32_MIN);
	dec_free(&d);
	d = dec(FX(1, 'k', 'I', 0xFF, 0xFF, 0xFF, 0xFF));
	ck_assert_int_eq(single(&d, 'I')->v.i, -1);
	dec_free(&d);
	d = dec(FX(1, 'k', 'I', 0x12, 0x34, 0x56, 0x78));
	ck_assert_int_eq(single(&d, 'I')->v.i, 0x12345678);
	dec_free(&d);
	d = dec(FX(1, 'k', 'i', 0xFF, 0xFF, 0xFF, 0xFF));
	ck_assert_uint_eq(single(&d, 'i')->v.u, UINT32_MAX);
	dec_free(&d);
}
END_TEST

START_TEST(test_int64_uint64_timestamp)
{
	struct decoded d;

	d = dec(FX(1, 'k', 'l', 0x80, 0, 0, 0, 0, 0, 0, 0));
	ck_assert(single(&d, 'l')->v.i == INT64_MIN);
	dec_free(&d);
	d = dec(FX(1, 'k', 'l', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	    0xFE));
	ck_assert(single(&d, 'l')->v.i == -2);
	dec_free(&d);
	d = dec(FX(1, 'k', 'l', 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD,
	    0xEF));
	ck_assert(single(&d, 'l')->v.i == INT64_C(0x0123456789ABCDEF));
	dec_free(&d);
	d = dec(FX(1, 'k', 'L', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	    0xFF));
	ck_assert(single(&d, 'L')->v.u == UINT64_MAX);
	dec_free(&d);
	d = dec(FX(1, 'k', 'T', 0, 0, 0, 0, 0x65, 0x4F, 0x2A, 0x10));
	ck_assert(single(&d, 'T')->v.u == UINT64_C(0x654F2A10));
	dec_free(&d);
}
END_TEST

START_TEST(test_float_double)
{
	struct decoded d;
	const struct field_value *v;
	uint32_t bits32;
	uint64_t bits64;

	d = dec(FX(1, 'k', 'f', 0x3F, 0xC0, 0, 0));
	ck_assert(single(&d, 'f')->v.f == 1.5f);
	dec_free(&d);
	d = dec(FX(1, 'k', 'f', 0xC1, 0x20, 0, 0));
	ck_assert(single(&d, 'f')->v.f == -10.0f);
	dec_free(&d);
	d = dec(FX(1, 'k', 'd', 0x3F, 0xF8, 0, 0, 0, 0, 0, 0));
	ck_assert(single(&d, 'd')->v.d == 1.5);
	dec_free(&d);
	d = dec(FX(1, 'k', 'd', 0xC0, 0x59, 0, 0, 0, 0, 0, 0));
	ck_assert(single(&d, 'd')->v.d == -100.0);
	dec_free(&d);

	/* NaN payloads and negative zero keep their bits. */
	d = dec(FX(1, 'k', 'f', 0x7F, 0xC0, 0x12, 0x34));
	v = single(&d, 'f');
	ck_assert(isnan(v->v.f));
	memcpy(&bits32, &v->v.f, 4);
	ck_assert_uint_eq(bits32, 0x7FC01234);
	dec_free(&d);
	d = dec(FX(1, 'k', 'd', 0x80, 0, 0, 0, 0, 0, 0, 0));
	v = single(&d, 'd');
	ck_assert(v->v.d == 0.0 && signbit(v->v.d));
	memcpy(&bits64, &v->v.d, 8);
	ck_assert(bits64 == UINT64_C(0x8000000000000000));
	dec_free(&d);
}
END_TEST

START_TEST(test_decimal)
{
	struct decoded d;
	const struct field_value *v;

	d = dec(FX(1, 'k', 'D', 2, 0x00, 0x00, 0x04, 0xD2));
	v = single(&d, 'D');
	ck_assert_uint_eq(v->v.dec.scale, 2);
	ck_assert_uint_eq(v->v.dec.value, 1234);
	dec_free(&d);
	d = dec(FX(1, 'k', 'D', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF));
	v = single(&d, 'D');
	ck_assert_uint_eq(v->v.dec.scale, 255);
	ck_assert_uint_eq(v->v.dec.value, UINT32_MAX);
	dec_free(&d);
}
END_TEST

START_TEST(test_longstr_bytes_void)
{
	struct decoded d;
	const struct field_value *v;

	d = dec(FX(1, 'k', 'S', 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'));
	v = single(&d, 'S');
	ck_assert(bytes_eq_str(v->v.str, "hello"));
	/* Borrowed from the input, not copied. */
	ck_assert_ptr_eq(v->v.str.ptr, d.raw.ptr + 7);
	dec_free(&d);

	d = dec(FX(1, 'k', 'S', 0, 0, 0, 0));
	ck_assert_uint_eq(single(&d, 'S')->v.str.len, 0);
	dec_free(&d);

	d = dec(FX(1, 'k', 'x', 0, 0, 0, 4, 0x00, 0xFF, 0x00, 0x01));
	v = single(&d, 'x');
	ck_assert_uint_eq(v->v.str.len, 4);
	ck_assert_mem_eq(v->v.str.ptr, "\x00\xFF\x00\x01", 4);
	dec_free(&d);

	d = dec(FX(1, 'k', 'V'));
	single(&d, 'V');
	dec_free(&d);
}
END_TEST

START_TEST(test_keys)
{
	uint8_t buf[3 + 255];
	struct decoded d;

	/* Empty tables and empty keys are fine. */
	d = dec(NULL, 0);
	ck_assert_uint_eq(d.t->n, 0);
	dec_free(&d);
	d = dec(FX(0, 'V', 0, 'B', 7));
	ck_assert_uint_eq(d.t->n, 2);
	ck_assert_uint_eq(d.t->entries[0].key.len, 0);
	ck_assert_int_eq(d.t->entries[1].value.type, 'B');
	ck_assert_ptr_eq(ftable_get(d.t, ""), &d.t->entries[0].value);
	dec_free(&d);

	/* Keys are not restricted to identifiers, and may be 255 bytes. */
	buf[0] = 255;
	memset(buf + 1, 0xE9, 255);
	buf[256] = 'B';
	buf[257] = 42;
	d = dec(buf, sizeof(buf));
	ck_assert_uint_eq(d.t->entries[0].key.len, 255);
	ck_assert_uint_eq(d.t->entries[0].value.v.u, 42);
	dec_free(&d);
	assert_roundtrip(buf, sizeof(buf));
}
END_TEST

/* ---- nesting ------------------------------------------------------------- */

START_TEST(test_table_of_tables)
{
	struct decoded d = dec(FX(
	    1, 'o', 'F', 0, 0, 0, 14,
		1, 'i', 'I', 0, 0, 0, 7,
		1, 'j', 'F', 0, 0, 0, 0,
	    1, 'z', 't', 1));
	const struct field_value *o, *v;

	ck_assert_uint_eq(d.t->n, 2);
	o = ftable_get(d.t, "o");
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(o->type, 'F');
	ck_assert_uint_eq(o->v.table->n, 2);
	v = ftable_get(o->v.table, "i");
	ck_assert_int_eq(v->type, 'I');
	ck_assert_int_eq(v->v.i, 7);
	v = ftable_get(o->v.table, "j");
	ck_assert_int_eq(v->type, 'F');
	ck_assert_uint_eq(v->v.table->n, 0);
	ck_assert(ftable_get(d.t, "z")->v.b);
	dec_free(&d);
}
END_TEST

START_TEST(test_table_of_arrays)
{
	struct decoded d = dec(FX(
	    1, 'a', 'A', 0, 0, 0, 13,
		'I', 0, 0, 0, 1,
		'S', 0, 0, 0, 2, 'h', 'i',
		'V',
	    1, 'e', 'A', 0, 0, 0, 0));
	const struct field_value *a;

	a = ftable_get(d.t, "a");
	ck_assert_int_eq(a->type, 'A');
	ck_assert_uint_eq(a->v.array->n, 3);
	ck_assert_int_eq(a->v.array->items[0].type, 'I');
	ck_assert_int_eq(a->v.array->items[0].v.i, 1);
	ck_assert_int_eq(a->v.array->items[1].type, 'S');
	ck_assert(bytes_eq_str(a->v.array->items[1].v.str, "hi"));
	ck_assert_int_eq(a->v.array->items[2].type, 'V');
	a = ftable_get(d.t, "e");
	ck_assert_int_eq(a->type, 'A');
	ck_assert_uint_eq(a->v.array->n, 0);
	dec_free(&d);
}
END_TEST

START_TEST(test_array_of_tables)
{
	struct decoded d = dec(FX(
	    1, 'a', 'A', 0, 0, 0, 14,
		'F', 0, 0, 0, 4,
		    1, 'k', 't', 1,
		'F', 0, 0, 0, 0));
	const struct field_array *a = ftable_get(d.t, "a")->v.array;

	ck_assert_uint_eq(a->n, 2);
	ck_assert_int_eq(a->items[0].type, 'F');
	ck_assert_uint_eq(a->items[0].v.table->n, 1);
	ck_assert(ftable_get(a->items[0].v.table, "k")->v.b);
	ck_assert_int_eq(a->items[1].type, 'F');
	ck_assert_uint_eq(a->items[1].v.table->n, 0);
	dec_free(&d);
}
END_TEST

START_TEST(test_array_of_arrays)
{
	struct decoded d = dec(FX(
	    1, 'a', 'A', 0, 0, 0, 12,
		'A', 0, 0, 0, 7,
		    'A', 0, 0, 0, 0,
		    'B', 9));
	const struct field_array *a = ftable_get(d.t, "a")->v.array;

	ck_assert_uint_eq(a->n, 1);
	ck_assert_int_eq(a->items[0].type, 'A');
	a = a->items[0].v.array;
	ck_assert_uint_eq(a->n, 2);
	ck_assert_int_eq(a->items[0].type, 'A');
	ck_assert_uint_eq(a->items[0].v.array->n, 0);
	ck_assert_int_eq(a->items[1].type, 'B');
	ck_assert_uint_eq(a->items[1].v.u, 9);
	dec_free(&d);
}
END_TEST

/* ---- the big mixed fixture ----------------------------------------------- */

static void put_key(struct wbuf *b, const char *key, char type)
{
	wbuf_put_shortstr(b, bytes_str(key));
	wbuf_put_u8(b, (uint8_t)type);
}

static size_t open_len(struct wbuf *b)
{
	size_t at = b->len;

	wbuf_put_u32(b, 0);
	return at;
}

static void close_len(struct wbuf *b, size_t at)
{
	wbuf_patch_u32(b, at, (uint32_t)(b->len - at - 4));
}

/* Table content (no length prefix) using every type, nested both ways. */
static void build_mixed(struct wbuf *b)
{
	static const uint8_t bin[] = { 0, 1, 2, 0xFF, 0 };
	uint8_t longkey[256];
	size_t f1, f2, f3, a1, a2, a3, a4;

	put_key(b, "bool_t", 't'); wbuf_put_u8(b, 1);
	put_key(b, "bool_f", 't'); wbuf_put_u8(b, 0);
	put_key(b, "i8", 'b'); wbuf_put_u8(b, 0x80);
	put_key(b, "u8", 'B'); wbuf_put_u8(b, 0xFF);
	put_key(b, "i16", 's'); wbuf_put_u16(b, 0x8000);
	put_key(b, "u16", 'u'); wbuf_put_u16(b, 0xFFFF);
	put_key(b, "i32", 'I'); wbuf_put_u32(b, 0x80000000);
	put_key(b, "u32", 'i'); wbuf_put_u32(b, 0xFFFFFFFF);
	put_key(b, "i64", 'l'); wbuf_put_u64(b, UINT64_C(0x8000000000000000));
	put_key(b, "u64", 'L'); wbuf_put_u64(b, UINT64_MAX);
	put_key(b, "flt_nan", 'f'); wbuf_put_u32(b, 0x7FC00001);
	put_key(b, "flt_negz", 'f'); wbuf_put_u32(b, 0x80000000);
	put_key(b, "flt", 'f'); wbuf_put_u32(b, 0x40490FDB);
	put_key(b, "dbl_nan", 'd');
	wbuf_put_u64(b, UINT64_C(0x7FF8000000000001));
	put_key(b, "dbl_negz", 'd');
	wbuf_put_u64(b, UINT64_C(0x8000000000000000));
	put_key(b, "dbl", 'd'); wbuf_put_u64(b, UINT64_C(0x400921FB54442D18));
	put_key(b, "dec", 'D'); wbuf_put_u8(b, 3); wbuf_put_u32(b, 0xFFFFFFFF);
	put_key(b, "str", 'S'); wbuf_put_longstr(b, bytes_str("hello, world"));
	put_key(b, "empty", 'S'); wbuf_put_longstr(b, bytes_str(""));
	put_key(b, "bin", 'x');
	wbuf_put_longstr(b, (struct bytes){ bin, sizeof(bin) });
	put_key(b, "ts", 'T'); wbuf_put_u64(b, UINT64_C(0x65000000));
	put_key(b, "void", 'V');
	put_key(b, "", 'S'); wbuf_put_longstr(b, bytes_str("empty key"));
	memset(longkey, 'K', 255);
	longkey[255] = '\0';
	put_key(b, (char *)longkey, 'B'); wbuf_put_u8(b, 7);
	put_key(b, "dup", 'I'); wbuf_put_u32(b, 1);
	put_key(b, "dup", 'I'); wbuf_put_u32(b, 2);

	put_key(b, "nested", 'F');
	f1 = open_len(b);
	put_key(b, "a", 't'); wbuf_put_u8(b, 1);
	put_key(b, "deeper", 'F');
	f2 = open_len(b);
	put_key(b, "arr", 'A');
	a1 = open_len(b);
	wbuf_put_u8(b, 'I'); wbuf_put_u32(b, 1);
	wbuf_put_u8(b, 'S'); wbuf_put_longstr(b, bytes_str("x"));
	wbuf_put_u8(b, 'V');
	close_len(b, a1);
	close_len(b, f2);
	put_key(b, "empty", 'F');
	close_len(b, open_len(b));
	close_len(b, f1);

	put_key(b, "arr", 'A');
	a2 = open_len(b);
	wbuf_put_u8(b, 't'); wbuf_put_u8(b, 0);
	wbuf_put_u8(b, 'b'); wbuf_put_u8(b, 0xFF);
	wbuf_put_u8(b, 'B'); wbuf_put_u8(b, 0x01);
	wbuf_put_u8(b, 's'); wbuf_put_u16(b, 0xFFFF);
	wbuf_put_u8(b, 'u'); wbuf_put_u16(b, 0x0102);
	wbuf_put_u8(b, 'I'); wbuf_put_u32(b, 0xFFFFFFFE);
	wbuf_put_u8(b, 'i'); wbuf_put_u32(b, 0x01020304);
	wbuf_put_u8(b, 'l'); wbuf_put_u64(b, 1);
	wbuf_put_u8(b, 'L'); wbuf_put_u64(b, 2);
	wbuf_put_u8(b, 'f'); wbuf_put_u32(b, 0x3F800000);
	wbuf_put_u8(b, 'd'); wbuf_put_u64(b, UINT64_C(0x3FF0000000000000));
	wbuf_put_u8(b, 'D'); wbuf_put_u8(b, 1); wbuf_put_u32(b, 15);
	wbuf_put_u8(b, 'x'); wbuf_put_longstr(b, bytes_str("raw"));
	wbuf_put_u8(b, 'T'); wbuf_put_u64(b, 3);
	wbuf_put_u8(b, 'V');
	wbuf_put_u8(b, 'F');
	f3 = open_len(b);
	put_key(b, "k", 'S'); wbuf_put_longstr(b, bytes_str("v"));
	close_len(b, f3);
	wbuf_put_u8(b, 'A');
	a3 = open_len(b);
	wbuf_put_u8(b, 'A');
	close_len(b, open_len(b));
	wbuf_put_u8(b, 'L'); wbuf_put_u64(b, 5);
	close_len(b, a3);
	close_len(b, a2);

	put_key(b, "emptyarr", 'A');
	a4 = open_len(b);
	close_len(b, a4);
	put_key(b, "last", 'S'); wbuf_put_longstr(b, bytes_str("end"));
}

START_TEST(test_roundtrip_mixed)
{
	struct wbuf fx;
	struct decoded d;
	const struct field_value *v;
	const struct field_array *a;

	wbuf_init(&fx);
	build_mixed(&fx);
	assert_roundtrip(fx.p, fx.len);

	/* Spot-check the tree as well. */
	d = dec(fx.p, fx.len);
	ck_assert_uint_eq(d.t->n, 30);
	ck_assert_int_eq(ftable_get(d.t, "i8")->v.i, -128);
	ck_assert_int_eq(ftable_get(d.t, "i16")->v.i, INT16_MIN);
	ck_assert_int_eq(ftable_get(d.t, "i32")->v.i, INT32_MIN);
	ck_assert(ftable_get(d.t, "i64")->v.i == INT64_MIN);
	ck_assert(ftable_get(d.t, "u64")->v.u == UINT64_MAX);
	ck_assert(isnan(ftable_get(d.t, "dbl_nan")->v.d));
	ck_assert(ftable_get(d.t, "dbl")->v.d > 3.14159 &&
	    ftable_get(d.t, "dbl")->v.d < 3.14160);
	ck_assert_int_eq(ftable_get(d.t, "dup")->v.i, 1);
	v = ftable_get(d.t, "nested");
	v = ftable_get(v->v.table, "deeper");
	v = ftable_get(v->v.table, "arr");
	ck_assert_uint_eq(v->v.array->n, 3);
	a = ftable_get(d.t, "arr")->v.array;
	ck_assert_uint_eq(a->n, 17);
	ck_assert_int_eq(a->items[1].v.i, -1);
	ck_assert_int_eq(a->items[5].v.i, -2);
	ck_assert_int_eq(a->items[15].type, 'F');
	ck_assert(bytes_eq_str(ftable_get(a->items[15].v.table, "k")->v.str,
	    "v"));
	ck_assert_int_eq(a->items[16].v.array->items[1].type, 'L');
	ck_assert_uint_eq(ftable_get(d.t, "emptyarr")->v.array->n, 0);
	ck_assert(bytes_eq_str(ftable_get(d.t, "last")->v.str, "end"));
	dec_free(&d);
	wbuf_free(&fx);
}
END_TEST

/* ---- encoding constructed trees ------------------------------------------ */

static void assert_value_bytes(const struct field_value *v,
    const uint8_t *want, size_t n)
{
	struct wbuf b;

	wbuf_init(&b);
	fvalue_encode(&b, v);
	ck_assert_uint_eq(b.len, n);
	ck_assert_mem_eq(b.p, want, n);
	wbuf_free(&b);
}

START_TEST(test_fvalue_encode)
{
	struct field_value v;

	memset(&v, 0, sizeof(v));
	v.type = 't'; v.v.b = true;
	assert_value_bytes(&v, FX('t', 1));
	v.type = 'b'; v.v.i = -1;
	assert_value_bytes(&v, FX('b', 0xFF));
	v.type = 'B'; v.v.u = 200;
	assert_value_bytes(&v, FX('B', 200));
	v.type = 's'; v.v.i = -2;
	assert_value_bytes(&v, FX('s', 0xFF, 0xFE));
	v.type = 'u'; v.v.u = 0x1234;
	assert_value_bytes(&v, FX('u', 0x12, 0x34));
	v.type = 'I'; v.v.i = INT32_MIN;
	assert_value_bytes(&v, FX('I', 0x80, 0, 0, 0));
	v.type = 'i'; v.v.u = 0xDEADBEEF;
	assert_value_bytes(&v, FX('i', 0xDE, 0xAD, 0xBE, 0xEF));
	v.type = 'l'; v.v.i = INT64_MIN;
	assert_value_bytes(&v, FX('l', 0x80, 0, 0, 0, 0, 0, 0, 0));
	v.type = 'L'; v.v.u = 1;
	assert_value_bytes(&v, FX('L', 0, 0, 0, 0, 0, 0, 0, 1));
	v.type = 'T'; v.v.u = UINT64_C(0x0102030405060708);
	assert_value_bytes(&v, FX('T', 1, 2, 3, 4, 5, 6, 7, 8));
	v.type = 'f'; v.v.f = 1.5f;
	assert_value_bytes(&v, FX('f', 0x3F, 0xC0, 0, 0));
	v.type = 'd'; v.v.d = -2.0;
	assert_value_bytes(&v, FX('d', 0xC0, 0, 0, 0, 0, 0, 0, 0));
	v.type = 'D'; v.v.dec.scale = 2; v.v.dec.value = 1234;
	assert_value_bytes(&v, FX('D', 2, 0, 0, 0x04, 0xD2));
	v.type = 'S'; v.v.str = bytes_str("hi");
	assert_value_bytes(&v, FX('S', 0, 0, 0, 2, 'h', 'i'));
	v.type = 'x'; v.v.str = bytes_str("");
	assert_value_bytes(&v, FX('x', 0, 0, 0, 0));
	v.type = 'V';
	assert_value_bytes(&v, FX('V'));
}
END_TEST

START_TEST(test_encode_constructed_tree)
{
	struct field_value items[2];
	struct field_array arr = { 2, items };
	struct field_entry inner_e[1];
	struct field_table inner = { 1, inner_e };
	struct field_entry outer_e[2];
	struct field_table outer = { 2, outer_e };
	struct field_table empty = { 0, NULL };
	struct wbuf b;

	memset(items, 0, sizeof(items));
	memset(inner_e, 0, sizeof(inner_e));
	memset(outer_e, 0, sizeof(outer_e));
	inner_e[0].key = bytes_str("q");
	inner_e[0].value.type = 'V';
	items[0].type = 'F';
	items[0].v.table = &inner;
	items[1].type = 'B';
	items[1].v.u = 5;
	outer_e[0].key = bytes_str("a");
	outer_e[0].value.type = 'A';
	outer_e[0].value.v.array = &arr;
	outer_e[1].key = bytes_str("t");
	outer_e[1].value.type = 'F';
	outer_e[1].value.v.table = &empty;

	wbuf_init(&b);
	ftable_encode(&b, &outer);
	{
		static const uint8_t want[] = {
			0, 0, 0, 24,
			1, 'a', 'A', 0, 0, 0, 10,
			    'F', 0, 0, 0, 3, 1, 'q', 'V',
			    'B', 5,
			1, 't', 'F', 0, 0, 0, 0,
		};

		ck_assert_uint_eq(b.len, sizeof(want));
		ck_assert_mem_eq(b.p, want, sizeof(want));
	}
	wbuf_free(&b);

	/* An array value on its own. */
	{
		struct field_value av = { .type = 'A' };

		av.v.array = &arr;
		assert_value_bytes(&av, FX('A', 0, 0, 0, 10,
		    'F', 0, 0, 0, 3, 1, 'q', 'V', 'B', 5));
	}
}
END_TEST

/* ---- ftw builders -------------------------------------------------------- */

START_TEST(test_ftw_exact_bytes)
{
	static const uint8_t want[] = {
		0xAA,				/* unrelated prefix */
		0, 0, 0, 35,
		1, 'b', 't', 1,
		1, 'c', 't', 0,
		1, 's', 'S', 0, 0, 0, 2, 'o', 'k',
		1, 'n', 'l', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
		1, 'F', 'F', 0, 0, 0, 0,
	};
	struct wbuf b;
	size_t t, f;

	wbuf_init(&b);
	wbuf_put_u8(&b, 0xAA);
	t = ftw_begin(&b);
	ck_assert_uint_eq(t, 1);
	ftw_bool(&b, "b", true);
	ftw_bool(&b, "c", false);
	ftw_longstr(&b, "s", "ok");
	ftw_i64(&b, "n", -2);
	f = ftw_table_begin(&b, "F");
	ck_assert_uint_eq(f, b.len - 4);
	ftw_end(&b, f);
	ftw_end(&b, t);
	ck_assert_uint_eq(b.len, sizeof(want));
	ck_assert_mem_eq(b.p, want, sizeof(want));
	wbuf_free(&b);
}
END_TEST

START_TEST(test_ftw_decode_back)
{
	struct wbuf b;
	struct decoded d;
	const struct field_value *v, *caps;
	size_t t, c, deep;
	uint32_t len;

	wbuf_init(&b);
	t = ftw_begin(&b);
	ftw_longstr(&b, "product", "Warren");
	ftw_longstr(&b, "empty", "");
	ftw_i64(&b, "min", INT64_MIN);
	ftw_i64(&b, "max", INT64_MAX);
	c = ftw_table_begin(&b, "capabilities");
	ftw_bool(&b, "publisher_confirms", true);
	ftw_bool(&b, "basic.nack", false);
	deep = ftw_table_begin(&b, "deep");
	ftw_i64(&b, "x", 42);
	ftw_end(&b, deep);
	ftw_end(&b, c);
	ftw_longstr(&b, "after", "nested");
	ftw_end(&b, t);

	len = ((uint32_t)b.p[0] << 24) | ((uint32_t)b.p[1] << 16) |
	    ((uint32_t)b.p[2] << 8) | b.p[3];
	ck_assert_uint_eq(len, b.len - 4);
	d = dec(b.p + 4, b.len - 4);
	ck_assert_uint_eq(d.t->n, 6);
	v = ftable_get(d.t, "product");
	ck_assert_int_eq(v->type, 'S');
	ck_assert(bytes_eq_str(v->v.str, "Warren"));
	ck_assert_uint_eq(ftable_get(d.t, "empty")->v.str.len, 0);
	v = ftable_get(d.t, "min");
	ck_assert_int_eq(v->type, 'l');
	ck_assert(v->v.i == INT64_MIN);
	ck_assert(ftable_get(d.t, "max")->v.i == INT64_MAX);
	caps = ftable_get(d.t, "capabilities");
	ck_assert_int_eq(caps->type, 'F');
	ck_assert_uint_eq(caps->v.table->n, 3);
	v = ftable_get(caps->v.table, "publisher_confirms");
	ck_assert_int_eq(v->type, 't');
	ck_assert(v->v.b);
	ck_assert(!ftable_get(caps->v.table, "basic.nack")->v.b);
	v = ftable_get(caps->v.table, "deep");
	ck_assert_int_eq(ftable_get(v->v.table, "x")->v.i, 42);
	ck_assert(bytes_eq_str(ftable_get(d.t, "after")->v.str, "nested"));
	dec_free(&d);
	assert_roundtrip(b.p + 4, b.len - 4);
	wbuf_free(&b);
}
END_TEST

/* ---- lookup and equality ------------------------------------------------- */

START_TEST(test_ftable_get)
{
	struct decoded d = dec(FX(
	    2, 'a', 'b', 'B', 1,
	    1, 'a', 'B', 2,
	    2, 'a', 'b', 'B', 3,
	    0, 'B', 4));
	const struct field_value *v;

	v = ftable_get(d.t, "ab");
	ck_assert_ptr_eq(v, &d.t->entries[0].value);
	ck_assert_uint_eq(v->v.u, 1);		/* first match wins */
	ck_assert_uint_eq(ftable_get(d.t, "a")->v.u, 2);
	ck_assert_uint_eq(ftable_get(d.t, "")->v.u, 4);
	ck_assert_ptr_null(ftable_get(d.t, "abc"));
	ck_assert_ptr_null(ftable_get(d.t, "b"));
	ck_assert_ptr_null(ftable_get(d.t, "A"));
	dec_free(&d);

	d = dec(NULL, 0);
	ck_assert_ptr_null(ftable_get(d.t, ""));
	ck_assert_ptr_null(ftable_get(d.t, "a"));
	dec_free(&d);
}
END_TEST

/* Decode two fixtures and compare. */
static bool equal_fx(const uint8_t *p, size_t n, const uint8_t *q, size_t m)
{
	struct decoded a = dec(p, n), b = dec(q, m);
	bool eq = ftable_equal(a.t, b.t);

	ck_assert(ftable_equal(b.t, a.t) == eq);	/* symmetric */
	ck_assert(ftable_equal(a.t, a.t));
	dec_free(&a);
	dec_free(&b);
	return eq;
}

START_TEST(test_ftable_equal)
{
	struct wbuf x, y;

	/* Same content in different buffers. */
	wbuf_init(&x);
	wbuf_init(&y);
	build_mixed(&x);
	build_mixed(&y);
	ck_assert(equal_fx(x.p, x.len, y.p, y.len));
	/* One bit of the last value differs. */
	y.p[y.len - 1] ^= 1;
	ck_assert(!equal_fx(x.p, x.len, y.p, y.len));
	wbuf_free(&x);
	wbuf_free(&y);

	ck_assert(equal_fx(NULL, 0, NULL, 0));
	ck_assert(!equal_fx(NULL, 0, FX(1, 'k', 'V')));
	/* Value, type, key, order and count all matter. */
	ck_assert(equal_fx(FX(1, 'k', 'I', 0, 0, 0, 1),
	    FX(1, 'k', 'I', 0, 0, 0, 1)));
	ck_assert(!equal_fx(FX(1, 'k', 'I', 0, 0, 0, 1),
	    FX(1, 'k', 'I', 0, 0, 0, 2)));
	ck_assert(!equal_fx(FX(1, 'k', 'I', 0, 0, 0, 1),
	    FX(1, 'k', 'i', 0, 0, 0, 1)));
	ck_assert(!equal_fx(FX(1, 'k', 'S', 0, 0, 0, 1, 'a'),
	    FX(1, 'k', 'x', 0, 0, 0, 1, 'a')));
	ck_assert(!equal_fx(FX(1, 'k', 'S', 0, 0, 0, 1, 'a'),
	    FX(1, 'k', 'S', 0, 0, 0, 2, 'a', 0)));
	ck_assert(!equal_fx(FX(1, 'k', 'V'), FX(1, 'j', 'V')));
	ck_assert(!equal_fx(FX(1, 'k', 'V', 1, 'j', 'V'),
	    FX(1, 'j', 'V', 1, 'k', 'V')));
	ck_assert(!equal_fx(FX(1, 'k', 'V'), FX(1, 'k', 'V', 1, 'k', 'V')));
	ck_assert(!equal_fx(FX(1, 'k', 't', 0), FX(1, 'k', 't', 1)));
	ck_assert(!equal_fx(FX(1, 'k', 'D', 1, 0, 0, 0, 5),
	    FX(1, 'k', 'D', 2, 0, 0, 0, 5)));
	/* Floats compare by bits: NaN equals itself, -0 differs from +0. */
	ck_assert(equal_fx(FX(1, 'k', 'f', 0x7F, 0xC0, 0, 1),
	    FX(1, 'k', 'f', 0x7F, 0xC0, 0, 1)));
	ck_assert(!equal_fx(FX(1, 'k', 'd', 0x80, 0, 0, 0, 0, 0, 0, 0),
	    FX(1, 'k', 'd', 0, 0, 0, 0, 0, 0, 0, 0)));
	/* Nested differences. */
	ck_assert(equal_fx(FX(1, 'a', 'A', 0, 0, 0, 2, 'B', 1),
	    FX(1, 'a', 'A', 0, 0, 0, 2, 'B', 1)));
	ck_assert(!equal_fx(FX(1, 'a', 'A', 0, 0, 0, 2, 'B', 1),
	    FX(1, 'a', 'A', 0, 0, 0, 2, 'B', 2)));
	ck_assert(!equal_fx(FX(1, 'a', 'A', 0, 0, 0, 2, 'B', 1),
	    FX(1, 'a', 'A', 0, 0, 0, 4, 'B', 1, 'B', 1)));
	ck_assert(!equal_fx(FX(1, 'f', 'F', 0, 0, 0, 3, 1, 'k', 'V'),
	    FX(1, 'f', 'F', 0, 0, 0, 3, 1, 'j', 'V')));
	ck_assert(!equal_fx(FX(1, 'f', 'F', 0, 0, 0, 0),
	    FX(1, 'f', 'A', 0, 0, 0, 0)));
}
END_TEST

/* ---- RabbitMQ's value equivalence (headers exchange, arguments) ---------- */

/* A zeroed value of TYPE; the helpers below fill in the one member. */
static struct field_value fv_of(char type)
{
	struct field_value v;

	memset(&v, 0, sizeof(v));
	v.type = type;
	return v;
}

static struct field_value fv_int(char type, int64_t i)
{
	struct field_value v = fv_of(type);

	v.v.i = i;
	return v;
}

static struct field_value fv_uint(char type, uint64_t u)
{
	struct field_value v = fv_of(type);

	v.v.u = u;
	return v;
}

static struct field_value fv_dbl(double d)
{
	struct field_value v = fv_of('d');

	v.v.d = d;
	return v;
}

static struct field_value fv_flt(float f)
{
	struct field_value v = fv_of('f');

	v.v.f = f;
	return v;
}

static struct field_value fv_str(char type, const char *s)
{
	struct field_value v = fv_of(type);

	v.v.str = bytes_str(s);
	return v;
}

/* Equivalence is symmetric: check both ways and return the answer. */
static bool equiv(struct field_value a, struct field_value b)
{
	bool ab = fvalue_equivalent(&a, &b), ba = fvalue_equivalent(&b, &a);

	ck_assert_msg(ab == ba, "fvalue_equivalent('%c', '%c') not symmetric",
	    a.type, b.type);
	return ab;
}

START_TEST(test_equivalent_numbers)
{
	/* Every integer type compares by value. */
	ck_assert(equiv(fv_int('b', -1), fv_int('I', -1)));
	ck_assert(equiv(fv_int('s', -1), fv_int('l', -1)));
	ck_assert(equiv(fv_uint('B', 255), fv_int('I', 255)));
	ck_assert(equiv(fv_uint('u', 7), fv_uint('i', 7)));
	ck_assert(equiv(fv_uint('T', 42), fv_int('b', 42)));
	ck_assert(!equiv(fv_int('I', 1), fv_int('I', 2)));
	ck_assert(!equiv(fv_int('b', -1), fv_uint('B', 255)));
	ck_assert(!equiv(fv_int('I', -5), fv_uint('i', 5)));
	/* 'L' is signed for RabbitMQ, 'T' is not. */
	ck_assert(equiv(fv_uint('L', UINT64_MAX), fv_int('l', -1)));
	ck_assert(!equiv(fv_uint('T', UINT64_MAX), fv_int('l', -1)));
	ck_assert(!equiv(fv_uint('T', UINT64_MAX), fv_uint('L', UINT64_MAX)));
	ck_assert(equiv(fv_int('l', INT64_MIN), fv_uint('L',
	    UINT64_C(0x8000000000000000))));

	/* Integers equal floats of the same value, exactly. */
	ck_assert(equiv(fv_uint('i', 5), fv_dbl(5.0)));
	ck_assert(equiv(fv_int('I', -3), fv_flt(-3.0f)));
	ck_assert(equiv(fv_int('I', 0), fv_dbl(-0.0)));
	ck_assert(equiv(fv_int('l', INT64_MIN), fv_dbl(-9223372036854775808.0)));
	ck_assert(!equiv(fv_int('I', 5), fv_dbl(5.5)));
	ck_assert(!equiv(fv_int('I', -5), fv_dbl(5.0)));
	ck_assert(!equiv(fv_int('I', 5), fv_dbl(-5.0)));
	/* No rounding: 2^53 + 1 is not the double 2^53, 2^64 - 1 is not 2^64. */
	ck_assert(!equiv(fv_int('l', INT64_C(9007199254740993)),
	    fv_dbl(9007199254740992.0)));
	ck_assert(equiv(fv_int('l', INT64_C(9007199254740992)),
	    fv_dbl(9007199254740992.0)));
	ck_assert(!equiv(fv_int('I', 16777217), fv_flt(16777216.0f)));
	ck_assert(!equiv(fv_uint('T', UINT64_MAX), fv_dbl(18446744073709551616.0)));
	ck_assert(!equiv(fv_int('l', INT64_MIN), fv_dbl(-9223372036854777856.0)));
	ck_assert(!equiv(fv_int('I', 1), fv_dbl(INFINITY)));
	ck_assert(!equiv(fv_int('I', 0), fv_dbl(NAN)));

	/* Floats with floats, by value (not bits). */
	ck_assert(equiv(fv_flt(1.5f), fv_dbl(1.5)));
	ck_assert(equiv(fv_dbl(0.0), fv_dbl(-0.0)));
	ck_assert(!equiv(fv_flt(0.1f), fv_dbl(0.1)));
	ck_assert(!equiv(fv_dbl(NAN), fv_dbl(NAN)));
}
END_TEST

START_TEST(test_equivalent_other_types)
{
	struct field_value a, b;
	struct field_value ia[2], ib[2];
	struct field_array aa = { 1, ia }, ab = { 1, ib };
	struct field_entry ea, eb;
	struct field_table ta = { 1, &ea }, tb = { 1, &eb };

	/* Longstr and bytes are both binaries. */
	ck_assert(equiv(fv_str('S', "abc"), fv_str('x', "abc")));
	ck_assert(equiv(fv_str('S', ""), fv_str('x', "")));
	ck_assert(!equiv(fv_str('S', "abc"), fv_str('S', "abd")));
	ck_assert(!equiv(fv_str('S', "abc"), fv_str('S', "ab")));
	/* A string is never a number, a bool never an integer. */
	ck_assert(!equiv(fv_str('S', "1"), fv_int('I', 1)));
	ck_assert(!equiv(fv_str('S', ""), fv_int('I', 0)));

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.type = b.type = 't';
	a.v.b = b.v.b = true;
	ck_assert(equiv(a, b));
	b.v.b = false;
	ck_assert(!equiv(a, b));
	ck_assert(!equiv(a, fv_uint('B', 1)));
	a.type = b.type = 'V';
	ck_assert(equiv(a, b));
	ck_assert(!equiv(a, fv_int('I', 0)));
	ck_assert(!equiv(a, fv_str('S', "")));
	a.type = b.type = 'D';
	a.v.dec.scale = b.v.dec.scale = 2;
	a.v.dec.value = b.v.dec.value = 150;
	ck_assert(equiv(a, b));
	b.v.dec.scale = 1;
	b.v.dec.value = 15;	/* same number, other spelling: not equal */
	ck_assert(!equiv(a, b));
	ck_assert(!equiv(a, fv_dbl(1.5)));

	/* Arrays and tables keep their element types. */
	ia[0] = fv_int('I', 1);
	ib[0] = fv_int('I', 1);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.type = b.type = 'A';
	a.v.array = &aa;
	b.v.array = &ab;
	ck_assert(equiv(a, b));
	ib[0] = fv_int('l', 1);
	ck_assert(!equiv(a, b));
	ib[0] = fv_int('I', 2);
	ck_assert(!equiv(a, b));
	ib[0] = fv_int('I', 1);
	ib[1] = fv_int('I', 1);
	ab.n = 2;
	ck_assert(!equiv(a, b));

	memset(&ea, 0, sizeof(ea));
	memset(&eb, 0, sizeof(eb));
	ea.key = eb.key = bytes_str("k");
	ea.value = fv_str('S', "v");
	eb.value = fv_str('S', "v");
	a.type = b.type = 'F';
	a.v.table = &ta;
	b.v.table = &tb;
	ck_assert(equiv(a, b));
	eb.value = fv_str('x', "v");
	ck_assert(!equiv(a, b));
	eb.value = fv_str('S', "v");
	eb.key = bytes_str("j");
	ck_assert(!equiv(a, b));
	/* A table is not an array. */
	b.type = 'A';
	b.v.array = &aa;
	ck_assert(!equiv(a, b));
}
END_TEST

/* ---- rejection ----------------------------------------------------------- */

START_TEST(test_reject_unknown_type)
{
	uint8_t buf[16];
	int bad = 0;

	for (int c = 0; c < 256; c++) {
		if (c != 0 && strchr(known_types, c) != NULL)
			continue;
		bad++;
		/*
		 * Followed by 0..8 zero octets: whatever payload size a broken
		 * parser might give the letter (none, a fixed size up to 8, or
		 * a u32 length of 0), one of these inputs would be exactly
		 * complete, so only the unknown letter can make it refused.
		 */
		buf[0] = 1; buf[1] = 'k'; buf[2] = (uint8_t)c;
		memset(buf + 3, 0, 8);
		for (size_t pay = 0; pay <= 8; pay++)
			assert_rejected(buf, 3 + pay);
		/* Nested, the container's length covering the same. */
		for (uint8_t pay = 0; pay <= 8; pay++) {
			uint8_t nb[32] = { 1, 'a', 'A', 0, 0, 0,
			    (uint8_t)(1 + pay), (uint8_t)c };

			assert_rejected(nb, 8 + pay);
			memset(nb, 0, sizeof(nb));
			nb[0] = 1; nb[1] = 'f'; nb[2] = 'F';
			nb[6] = (uint8_t)(3 + pay);
			nb[7] = 1; nb[8] = 'k'; nb[9] = (uint8_t)c;
			assert_rejected(nb, 10 + pay);
		}
	}
	ck_assert_int_eq(bad, 256 - 18);
	/* The AMQP 0-9-1 spec's letters that RabbitMQ does not use. */
	assert_rejected(FX(1, 'k', 'U', 0, 0));
	assert_rejected(FX(1, 'k', 'c', 0));
}
END_TEST

static const struct { char type; size_t size; } fixed[] = {
	{ 't', 1 }, { 'b', 1 }, { 'B', 1 }, { 's', 2 }, { 'u', 2 },
	{ 'I', 4 }, { 'i', 4 }, { 'l', 8 }, { 'L', 8 }, { 'f', 4 },
	{ 'd', 8 }, { 'D', 5 }, { 'T', 8 },
};

START_TEST(test_reject_truncated_fixed)
{
	uint8_t buf[64];
	size_t n;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		size_t size = fixed[i].size;

		/* Top level: every short length fails, the full one passes. */
		for (size_t k = 0; k <= size; k++) {
			memset(buf, 0, sizeof(buf));
			buf[0] = 1; buf[1] = 'k'; buf[2] = (uint8_t)fixed[i].type;
			if (k < size)
				assert_rejected(buf, 3 + k);
			else
				assert_roundtrip(buf, 3 + k);
		}
		/*
		 * Inside a nested table whose declared length cuts the value,
		 * followed by outer bytes (empty-key voids) that would
		 * complete it if the inner bound were not respected.
		 */
		for (size_t k = 0; k <= size; k++) {
			memset(buf, 0, sizeof(buf));
			n = 0;
			buf[n++] = 1; buf[n++] = 'o'; buf[n++] = 'F';
			buf[n++] = 0; buf[n++] = 0; buf[n++] = 0;
			buf[n++] = (uint8_t)(3 + k);
			buf[n++] = 1; buf[n++] = 'k';
			buf[n++] = (uint8_t)fixed[i].type;
			n += k;
			for (size_t j = 0; j < size; j++) {
				buf[n++] = 0;
				buf[n++] = 'V';
			}
			if (k < size)
				assert_rejected(buf, n);
			else
				assert_roundtrip(buf, n);
		}
		/*
		 * Inside an array: cut at the end of the input, then cut by
		 * the array's length with well-formed outer entries (empty-key
		 * voids) behind it that would complete the value if the
		 * array's bound were not respected.
		 */
		for (size_t k = 0; k < size; k++) {
			memset(buf, 0, sizeof(buf));
			buf[0] = 1; buf[1] = 'a'; buf[2] = 'A';
			buf[6] = (uint8_t)(1 + k);
			buf[7] = (uint8_t)fixed[i].type;
			assert_rejected(buf, 8 + k);
			n = 8 + k;
			for (size_t j = 0; j < size; j++) {
				buf[n++] = 0;
				buf[n++] = 'V';
			}
			assert_rejected(buf, n);
			/* Control: the full value in the array is fine. */
			buf[6] = (uint8_t)(1 + size);
			memset(buf + 8, 0, size);
			n = 8 + size;
			for (size_t j = 0; j < size; j++) {
				buf[n++] = 0;
				buf[n++] = 'V';
			}
			assert_roundtrip(buf, n);
		}
	}
}
END_TEST

START_TEST(test_reject_truncated_entry)
{
	assert_rejected(FX(1));			/* key length, no key */
	assert_rejected(FX(2, 'a'));		/* key cut short */
	assert_rejected(FX(0));			/* empty key, no type */
	assert_rejected(FX(1, 'k'));		/* key, no type */
	assert_rejected(FX(255, 'k', 'V'));	/* key length past end */
	assert_rejected(FX(1, 'k', 'S'));	/* no length */
	assert_rejected(FX(1, 'k', 'S', 0, 0, 0));
	assert_rejected(FX(1, 'k', 'F', 0, 0));
	assert_rejected(FX(1, 'k', 'A', 0));
	/* A valid entry followed by a partial one. */
	assert_rejected(FX(1, 'k', 'V', 1));
	assert_rejected(FX(1, 'k', 'V', 1, 'j'));
}
END_TEST

START_TEST(test_reject_string_past_end)
{
	assert_accepted(FX(1, 'k', 'S', 0, 0, 0, 4, 'a', 'b', 'c', 'd'));
	assert_rejected(FX(1, 'k', 'S', 0, 0, 0, 5, 'a', 'b', 'c', 'd'));
	assert_rejected(FX(1, 'k', 'x', 0, 0, 0, 5, 'a', 'b', 'c', 'd'));
	assert_rejected(FX(1, 'k', 'S', 0, 0, 1, 0, 'a'));
	assert_rejected(FX(1, 'k', 'S', 0x80, 0, 0, 0, 'a'));
	/* Past the end of the enclosing table, though inside the input. */
	assert_rejected(FX(1, 'f', 'F', 0, 0, 0, 8,
	    1, 'k', 'S', 0, 0, 0, 2, 'a',
	    0, 'V'));
	assert_accepted(FX(1, 'f', 'F', 0, 0, 0, 8,
	    1, 'k', 'S', 0, 0, 0, 1, 'a',
	    0, 'V'));
}
END_TEST

START_TEST(test_reject_nested_table_past_outer)
{
	/* Declared length beyond the input. */
	assert_rejected(FX(1, 'o', 'F', 0, 0, 0, 8, 1, 'k', 't', 1));
	/* Inner table runs past its parent's declared length. */
	assert_rejected(FX(1, 'o', 'F', 0, 0, 0, 7,
	    1, 'i', 'F', 0, 0, 0, 4,
	    1, 'k', 't', 1));
	/* The same bytes with a consistent parent length are fine. */
	assert_accepted(FX(1, 'o', 'F', 0, 0, 0, 11,
	    1, 'i', 'F', 0, 0, 0, 4,
	    1, 'k', 't', 1));
	/* Table in array running past the array. */
	assert_rejected(FX(1, 'a', 'A', 0, 0, 0, 5,
	    'F', 0, 0, 0, 3,
	    1, 'k', 'V'));
}
END_TEST

START_TEST(test_reject_array_past_end)
{
	assert_rejected(FX(1, 'a', 'A', 0, 0, 0, 10, 'I', 0, 0, 0, 1));
	assert_rejected(FX(1, 'a', 'A', 0, 0, 0, 6, 'I', 0, 0, 0, 1));
	assert_accepted(FX(1, 'a', 'A', 0, 0, 0, 5, 'I', 0, 0, 0, 1));
	/* Inner array past the outer array. */
	assert_rejected(FX(1, 'a', 'A', 0, 0, 0, 7,
	    'A', 0, 0, 0, 3, 'B', 1,
	    'V'));
	/* Array inside a table, past the table. */
	assert_rejected(FX(1, 'f', 'F', 0, 0, 0, 8,
	    1, 'a', 'A', 0, 0, 0, 2, 'B', 1));
}
END_TEST

START_TEST(test_reject_trailing_garbage)
{
	/* Inner table's declared length covers a partial entry. */
	assert_accepted(FX(1, 'o', 'F', 0, 0, 0, 4, 1, 'k', 't', 1));
	assert_rejected(FX(1, 'o', 'F', 0, 0, 0, 5, 1, 'k', 't', 1,
	    1));
	assert_rejected(FX(1, 'o', 'F', 0, 0, 0, 5, 1, 'k', 't', 1,
	    0));
	assert_rejected(FX(1, 'o', 'F', 0, 0, 0, 6, 1, 'k', 't', 1,
	    1, 'z'));
	assert_rejected(FX(1, 'o', 'F', 0, 0, 0, 8, 1, 'k', 't', 1,
	    1, 'z', 'I', 0));
	/* Array's declared length covers a partial item. */
	assert_rejected(FX(1, 'a', 'A', 0, 0, 0, 7,
	    'I', 0, 0, 0, 1, 'I', 0));
	assert_rejected(FX(1, 'a', 'A', 0, 0, 0, 6,
	    'I', 0, 0, 0, 1, 'S'));
	/* Top-level content with a stray byte after the last entry. */
	assert_rejected(FX(1, 'k', 'V', 0xFF));
	assert_rejected(FX(1, 'o', 'F', 0, 0, 0, 0, 0x01));
}
END_TEST

START_TEST(test_reject_huge_length)
{
	assert_rejected(FX(1, 'k', 'S', 0xFF, 0xFF, 0xFF, 0xFF, 'a'));
	assert_rejected(FX(1, 'k', 'x', 0xFF, 0xFF, 0xFF, 0xFF, 'a'));
	assert_rejected(FX(1, 'k', 'F', 0xFF, 0xFF, 0xFF, 0xFF,
	    1, 'j', 'V'));
	assert_rejected(FX(1, 'k', 'A', 0xFF, 0xFF, 0xFF, 0xFF, 'V'));
	assert_rejected(FX(1, 'a', 'A', 0, 0, 0, 5,
	    'S', 0xFF, 0xFF, 0xFF, 0xFF));
	assert_rejected(FX(1, 'a', 'A', 0, 0, 0, 6,
	    'F', 0xFF, 0xFF, 0xFF, 0xFF, 0));
}
END_TEST

/*
 * Table content whose nesting is `depth` containers deep, counting the
 * top-level table as 1.  kind: 'F' tables, 'A' arrays, 'M' alternating.
 */
static void build_deep(struct wbuf *b, int depth, char kind)
{
	size_t *open = xcalloc((size_t)depth, sizeof(*open));
	bool in_array = false;
	int n = 0;

	for (int level = 2; level <= depth; level++) {
		char t = kind == 'M' ? (level % 2 ? 'F' : 'A') : kind;

		if (in_array)
			wbuf_put_u8(b, (uint8_t)t);
		else
			put_key(b, "n", t);
		open[n++] = open_len(b);
		in_array = t == 'A';
	}
	/* Innermost payload. */
	if (in_array)
		wbuf_put_u8(b, 'V');
	else
		put_key(b, "v", 'V');
	while (n > 0)
		close_len(b, open[--n]);
	free(open);
}

/* How deep the decoded tree goes, counting the top table as 1. */
static int tree_depth(const struct field_value *v)
{
	const struct field_table *t;
	const struct field_array *a;

	if (v->type == 'F') {
		t = v->v.table;
		return t->n && t->entries[0].value.type != 'V' ?
		    1 + tree_depth(&t->entries[0].value) : 1;
	}
	if (v->type == 'A') {
		a = v->v.array;
		return a->n && a->items[0].type != 'V' ?
		    1 + tree_depth(&a->items[0]) : 1;
	}
	return 0;
}

START_TEST(test_depth_limit)
{
	static const char kinds[] = "FAM";

	for (int i = 0; i < 3; i++) {
		struct wbuf b;
		struct decoded d;
		struct field_value top = { .type = 'F' };

		wbuf_init(&b);
		build_deep(&b, FTABLE_MAX_DEPTH, kinds[i]);
		d = dec(b.p, b.len);
		top.v.table = d.t;
		ck_assert_int_eq(tree_depth(&top), FTABLE_MAX_DEPTH);
		dec_free(&d);
		assert_roundtrip(b.p, b.len);

		wbuf_reset(&b);
		build_deep(&b, FTABLE_MAX_DEPTH + 1, kinds[i]);
		assert_rejected(b.p, b.len);

		/* Far deeper input must not exhaust the stack either. */
		wbuf_reset(&b);
		build_deep(&b, 100000, kinds[i]);
		assert_rejected(b.p, b.len);
		wbuf_free(&b);
	}
}
END_TEST

/* ---- mutation test ------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic everywhere, unlike rand(). */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

START_TEST(test_mutations)
{
	static const uint8_t interesting[] = {
		0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF,
		'F', 'A', 'S', 'x', 'V', 't', 'D', 'I', 'l', 'Z',
	};
	struct wbuf fx, out;
	uint8_t *buf;
	size_t n;
	int accepted = 0, rejected = 0;

	wbuf_init(&fx);
	wbuf_init(&out);
	build_mixed(&fx);
	buf = xmalloc(fx.len);
	rng_state = UINT64_C(0x5EEDF1E1D7AB1E);

	for (int iter = 0; iter < 10000; iter++) {
		struct bytes raw;
		struct field_table *t;
		bool ok;
		int muts = 1 + (int)(rng() % 3);

		memcpy(buf, fx.p, fx.len);
		n = fx.len;
		for (int m = 0; m < muts; m++) {
			switch (rng() % 4) {
			case 0:		/* random byte */
				buf[rng() % n] = (uint8_t)rng();
				break;
			case 1:		/* interesting byte */
				buf[rng() % n] = interesting[rng() %
				    sizeof(interesting)];
				break;
			case 2:		/* flip a bit */
				buf[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
				break;
			case 3:		/* truncate */
				n = (size_t)(rng() % (n + 1));
				break;
			}
			if (n == 0)
				break;
		}

		raw = copy_exact(buf, n);
		ok = ftable_validate(raw);
		t = ftable_decode(raw);
		ck_assert_msg(ok == (t != NULL),
		    "iteration %d: validate %d but decode %s", iter, ok,
		    t ? "succeeded" : "failed");
		if (t != NULL) {
			/* Whatever is accepted must re-encode exactly. */
			wbuf_reset(&out);
			ftable_encode(&out, t);
			ck_assert_uint_eq(out.len, n + 4);
			ck_assert(n == 0 || memcmp(out.p + 4, raw.ptr, n) == 0);
			ftable_free(t);
			accepted++;
		} else {
			rejected++;
		}
		free_copy(raw);
	}
	/* Both paths were exercised. */
	ck_assert_int_gt(accepted, 500);
	ck_assert_int_gt(rejected, 500);
	free(buf);
	wbuf_free(&out);
	wbuf_free(&fx);
}
END_TEST

static Suite *field_table_suite(void)
{
	Suite *s = suite_create("field_table");
	TCase *tc;

	tc = tcase_create("decode");
	tcase_add_test(tc, test_bool);
	tcase_add_test(tc, test_int8_uint8);
	tcase_add_test(tc, test_int16_uint16);
	tcase_add_test(tc, test_int32_uint32);
	tcase_add_test(tc, test_int64_uint64_timestamp);
	tcase_add_test(tc, test_float_double);
	tcase_add_test(tc, test_decimal);
	tcase_add_test(tc, test_longstr_bytes_void);
	tcase_add_test(tc, test_keys);
	suite_add_tcase(s, tc);

	tc = tcase_create("nesting");
	tcase_add_test(tc, test_table_of_tables);
	tcase_add_test(tc, test_table_of_arrays);
	tcase_add_test(tc, test_array_of_tables);
	tcase_add_test(tc, test_array_of_arrays);
	tcase_add_test(tc, test_depth_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("encode");
	tcase_add_test(tc, test_roundtrip_mixed);
	tcase_add_test(tc, test_fvalue_encode);
	tcase_add_test(tc, test_encode_constructed_tree);
	tcase_add_test(tc, test_ftw_exact_bytes);
	tcase_add_test(tc, test_ftw_decode_back);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookup");
	tcase_add_test(tc, test_ftable_get);
	tcase_add_test(tc, test_ftable_equal);
	tcase_add_test(tc, test_equivalent_numbers);
	tcase_add_test(tc, test_equivalent_other_types);
	suite_add_tcase(s, tc);

	tc = tcase_create("reject");
	tcase_add_test(tc, test_reject_unknown_type);
	tcase_add_test(tc, test_reject_truncated_fixed);
	tcase_add_test(tc, test_reject_truncated_entry);
	tcase_add_test(tc, test_reject_string_past_end);
	tcase_add_test(tc, test_reject_nested_table_past_outer);
	tcase_add_test(tc, test_reject_array_past_end);
	tcase_add_test(tc, test_reject_trailing_garbage);
	tcase_add_test(tc, test_reject_huge_length);
	suite_add_tcase(s, tc);

	tc = tcase_create("mutations");
	tcase_add_test(tc, test_mutations);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(field_table_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
