/*
 * Unit tests for the wire primitives: every rcursor getter on exact-length,
 * short and empty input (a failing getter must not advance the cursor),
 * shortstr/longstr whose declared length runs past the end, big-endian byte
 * order in both directions, wbuf growth, patching and the bytes helpers.
 *
 * Inputs are copied into heap buffers of exactly their size, so a read past
 * the end is caught by ASan.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define FX(...) (const uint8_t[]){ __VA_ARGS__ }, \
	sizeof((const uint8_t[]){ __VA_ARGS__ })

/* Exactly sized heap copy (malloc(0) for empty input). */
static uint8_t *copy_exact(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n);

	ck_assert(n == 0 || q != NULL);
	if (n)
		memcpy(q, p, n);
	return q;
}

/* The cursor is exactly where it started. */
#define ASSERT_UNMOVED(c, start, n) do {				\
	ck_assert_ptr_eq((c).p, (start));				\
	ck_assert_uint_eq((c).left, (n));				\
} while (0)

/* ---- fixed-size getters ------------------------------------------------- */

START_TEST(test_u8)
{
	uint8_t *buf = copy_exact(FX(0xA5));
	struct rcursor c = rcursor_make(buf, 1);
	uint8_t v = 0;

	ck_assert(wire_get_u8(&c, &v));
	ck_assert_uint_eq(v, 0xA5);
	ck_assert_ptr_eq(c.p, buf + 1);
	ck_assert_uint_eq(c.left, 0);
	/* Now empty. */
	ck_assert(!wire_get_u8(&c, &v));
	ASSERT_UNMOVED(c, buf + 1, 0);
	free(buf);

	c = rcursor_make(NULL, 0);
	ck_assert(!wire_get_u8(&c, &v));
	ASSERT_UNMOVED(c, NULL, 0);
}
END_TEST

START_TEST(test_u16)
{
	uint8_t *buf = copy_exact(FX(0x12, 0x34));
	struct rcursor c;
	uint16_t v = 0;

	c = rcursor_make(buf, 2);
	ck_assert(wire_get_u16(&c, &v));
	ck_assert_uint_eq(v, 0x1234);	/* big-endian */
	ck_assert_ptr_eq(c.p, buf + 2);
	ck_assert_uint_eq(c.left, 0);

	c = rcursor_make(buf, 1);	/* short */
	ck_assert(!wire_get_u16(&c, &v));
	ASSERT_UNMOVED(c, buf, 1);
	c = rcursor_make(buf, 0);	/* empty */
	ck_assert(!wire_get_u16(&c, &v));
	ASSERT_UNMOVED(c, buf, 0);
	free(buf);

	buf = copy_exact(FX(0xFF, 0xFE));
	c = rcursor_make(buf, 2);
	ck_assert(wire_get_u16(&c, &v));
	ck_assert_uint_eq(v, 0xFFFE);	/* no sign extension */
	free(buf);
}
END_TEST

START_TEST(test_u32)
{
	uint8_t *buf = copy_exact(FX(0x12, 0x34, 0x56, 0x78));
	struct rcursor c;
	uint32_t v = 0;

	c = rcursor_make(buf, 4);
	ck_assert(wire_get_u32(&c, &v));
	ck_assert_uint_eq(v, 0x12345678u);
	ck_assert_uint_eq(c.left, 0);
	ck_assert_ptr_eq(c.p, buf + 4);
	for (size_t n = 0; n < 4; n++) {
		c = rcursor_make(buf, n);
		ck_assert(!wire_get_u32(&c, &v));
		ASSERT_UNMOVED(c, buf, n);
	}
	free(buf);

	buf = copy_exact(FX(0xFF, 0x00, 0x00, 0x80));
	c = rcursor_make(buf, 4);
	ck_assert(wire_get_u32(&c, &v));
	ck_assert_uint_eq(v, 0xFF000080u);
	free(buf);
}
END_TEST

START_TEST(test_u64)
{
	uint8_t *buf = copy_exact(FX(0x01, 0x23, 0x45, 0x67, 0x89, 0xAB,
	    0xCD, 0xEF));
	struct rcursor c;
	uint64_t v = 0;

	c = rcursor_make(buf, 8);
	ck_assert(wire_get_u64(&c, &v));
	ck_assert(v == UINT64_C(0x0123456789ABCDEF));
	ck_assert_uint_eq(c.left, 0);
	ck_assert_ptr_eq(c.p, buf + 8);
	/* 4..7 bytes: enough for the high half, still must not move. */
	for (size_t n = 0; n < 8; n++) {
		c = rcursor_make(buf, n);
		ck_assert(!wire_get_u64(&c, &v));
		ASSERT_UNMOVED(c, buf, n);
	}
	free(buf);

	buf = copy_exact(FX(0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01));
	c = rcursor_make(buf, 8);
	ck_assert(wire_get_u64(&c, &v));
	ck_assert(v == UINT64_C(0xFFFFFFFF00000001));
	free(buf);
}
END_TEST

START_TEST(test_sequence)
{
	/* Mixed getters walk the input in order and stop at its end. */
	uint8_t *buf = copy_exact(FX(0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
	    0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F));
	struct rcursor c = rcursor_make(buf, 15);
	uint8_t a;
	uint16_t b;
	uint32_t d;
	uint64_t e;

	ck_assert(wire_get_u8(&c, &a));
	ck_assert(wire_get_u16(&c, &b));
	ck_assert(wire_get_u32(&c, &d));
	ck_assert(wire_get_u64(&c, &e));
	ck_assert_uint_eq(a, 0x01);
	ck_assert_uint_eq(b, 0x0203);
	ck_assert_uint_eq(d, 0x04050607u);
	ck_assert(e == UINT64_C(0x08090A0B0C0D0E0F));
	ck_assert_uint_eq(c.left, 0);
	ck_assert(!wire_get_u8(&c, &a));
	ASSERT_UNMOVED(c, buf + 15, 0);
	free(buf);
}
END_TEST

/* ---- raw, shortstr, longstr --------------------------------------------- */

START_TEST(test_raw)
{
	uint8_t *buf = copy_exact(FX('a', 'b', 'c', 'd'));
	struct rcursor c;
	struct bytes out;

	c = rcursor_make(buf, 4);
	ck_assert(wire_get_raw(&c, 3, &out));
	ck_assert_ptr_eq(out.ptr, buf);	/* borrowed, not copied */
	ck_assert_uint_eq(out.len, 3);
	ck_assert_uint_eq(c.left, 1);
	ck_assert(wire_get_raw(&c, 1, &out));
	ck_assert_ptr_eq(out.ptr, buf + 3);
	ck_assert_uint_eq(c.left, 0);
	/* Zero bytes from an empty cursor is fine. */
	ck_assert(wire_get_raw(&c, 0, &out));
	ck_assert_uint_eq(out.len, 0);
	ck_assert(!wire_get_raw(&c, 1, &out));
	ASSERT_UNMOVED(c, buf + 4, 0);

	c = rcursor_make(buf, 4);
	ck_assert(!wire_get_raw(&c, 5, &out));
	ASSERT_UNMOVED(c, buf, 4);
	ck_assert(!wire_get_raw(&c, SIZE_MAX, &out));
	ASSERT_UNMOVED(c, buf, 4);
	free(buf);
}
END_TEST

START_TEST(test_raw_over_u32)
{
	/*
	 * A cursor that claims more than 4 GiB (never dereferenced): a raw
	 * range that does not fit struct bytes' u32 length must be refused
	 * rather than truncated.
	 */
	static const uint8_t dummy[1];
	struct rcursor c;
	struct bytes out;

	if (SIZE_MAX <= UINT32_MAX)
		return;
	c = rcursor_make(dummy, (size_t)UINT32_MAX + 16);
	ck_assert(!wire_get_raw(&c, (size_t)UINT32_MAX + 1, &out));
	ASSERT_UNMOVED(c, dummy, (size_t)UINT32_MAX + 16);
}
END_TEST

START_TEST(test_shortstr)
{
	uint8_t *buf = copy_exact(FX(3, 'a', 'b', 'c'));
	struct rcursor c;
	struct bytes out;

	c = rcursor_make(buf, 4);
	ck_assert(wire_get_shortstr(&c, &out));
	ck_assert_uint_eq(out.len, 3);
	ck_assert_ptr_eq(out.ptr, buf + 1);
	ck_assert(bytes_eq_str(out, "abc"));
	ck_assert_uint_eq(c.left, 0);
	/* Every short prefix: refused, cursor (incl. length octet) restored. */
	for (size_t n = 0; n < 4; n++) {
		c = rcursor_make(buf, n);
		ck_assert(!wire_get_shortstr(&c, &out));
		ASSERT_UNMOVED(c, buf, n);
	}
	free(buf);

	/* Empty string. */
	buf = copy_exact(FX(0));
	c = rcursor_make(buf, 1);
	ck_assert(wire_get_shortstr(&c, &out));
	ck_assert_uint_eq(out.len, 0);
	ck_assert_uint_eq(c.left, 0);
	free(buf);

	/* Length 255 with only 2 bytes behind it. */
	buf = copy_exact(FX(0xFF, 'x', 'y'));
	c = rcursor_make(buf, 3);
	ck_assert(!wire_get_shortstr(&c, &out));
	ASSERT_UNMOVED(c, buf, 3);
	free(buf);
}
END_TEST

START_TEST(test_shortstr_255)
{
	uint8_t raw[256];
	uint8_t *buf;
	struct rcursor c;
	struct bytes out;

	raw[0] = 255;
	for (int i = 1; i < 256; i++)
		raw[i] = (uint8_t)i;
	buf = copy_exact(raw, sizeof(raw));
	c = rcursor_make(buf, sizeof(raw));
	ck_assert(wire_get_shortstr(&c, &out));
	ck_assert_uint_eq(out.len, 255);
	ck_assert_mem_eq(out.ptr, raw + 1, 255);
	ck_assert_uint_eq(c.left, 0);
	c = rcursor_make(buf, sizeof(raw) - 1);
	ck_assert(!wire_get_shortstr(&c, &out));
	ASSERT_UNMOVED(c, buf, sizeof(raw) - 1);
	free(buf);
}
END_TEST

START_TEST(test_longstr)
{
	uint8_t *buf = copy_exact(FX(0, 0, 0, 3, 'a', 0, 'c', 0x99));
	struct rcursor c;
	struct bytes out;

	c = rcursor_make(buf, 8);
	ck_assert(wire_get_longstr(&c, &out));
	ck_assert_uint_eq(out.len, 3);
	ck_assert_ptr_eq(out.ptr, buf + 4);
	ck_assert_mem_eq(out.ptr, "a\0c", 3);	/* NULs are data */
	ck_assert_uint_eq(c.left, 1);		/* trailing byte left alone */
	for (size_t n = 0; n < 7; n++) {
		c = rcursor_make(buf, n);
		ck_assert(!wire_get_longstr(&c, &out));
		ASSERT_UNMOVED(c, buf, n);
	}
	free(buf);

	buf = copy_exact(FX(0, 0, 0, 0));
	c = rcursor_make(buf, 4);
	ck_assert(wire_get_longstr(&c, &out));
	ck_assert_uint_eq(out.len, 0);
	ck_assert_uint_eq(c.left, 0);
	free(buf);
}
END_TEST

START_TEST(test_longstr_huge_lengths)
{
	static const uint32_t lens[] = {
		5, 0x100, 0x10000, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFBu,
		0xFFFFFFFCu, 0xFFFFFFFFu,
	};

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint32_t n = lens[i];
		uint8_t raw[8] = {
			(uint8_t)(n >> 24), (uint8_t)(n >> 16),
			(uint8_t)(n >> 8), (uint8_t)n, 'a', 'b', 'c', 'd',
		};
		uint8_t *buf = copy_exact(raw, sizeof(raw));
		struct rcursor c = rcursor_make(buf, sizeof(raw));
		struct bytes out;

		ck_assert_msg(!wire_get_longstr(&c, &out),
		    "longstr of length %u accepted from 4 bytes", n);
		ASSERT_UNMOVED(c, buf, sizeof(raw));
		free(buf);
	}
}
END_TEST

START_TEST(test_shortstr_lengths_past_end)
{
	/* Every declared length 1..255 with one byte less than declared. */
	for (unsigned n = 1; n <= 255; n++) {
		uint8_t raw[256];
		uint8_t *buf;
		struct rcursor c;
		struct bytes out;

		raw[0] = (uint8_t)n;
		memset(raw + 1, 'z', n - 1);
		buf = copy_exact(raw, n);
		c = rcursor_make(buf, n);
		ck_assert(!wire_get_shortstr(&c, &out));
		ASSERT_UNMOVED(c, buf, n);
		free(buf);
	}
}
END_TEST

/* ---- wbuf ----------------------------------------------------------------- */

START_TEST(test_put_byte_order)
{
	struct wbuf b;

	wbuf_init(&b);
	ck_assert_uint_eq(b.len, 0);
	wbuf_put_u8(&b, 0xAB);
	wbuf_put_u16(&b, 0x1234);
	wbuf_put_u32(&b, 0x89ABCDEFu);
	wbuf_put_u64(&b, UINT64_C(0x0102030405060708));
	ck_assert_uint_eq(b.len, 15);
	ck_assert_mem_eq(b.p, ((const uint8_t[]){
	    0xAB, 0x12, 0x34, 0x89, 0xAB, 0xCD, 0xEF,
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 }), 15);
	wbuf_free(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_put_strings)
{
	struct wbuf b;
	char big[300];

	wbuf_init(&b);
	wbuf_put_shortstr(&b, BYTES_LIT("hi"));
	wbuf_put_longstr(&b, BYTES_LIT("abc"));
	wbuf_put_shortstr(&b, (struct bytes){ NULL, 0 });
	wbuf_put_longstr(&b, (struct bytes){ NULL, 0 });
	wbuf_put_raw(&b, NULL, 0);
	wbuf_put_raw(&b, "xyz", 3);
	ck_assert_uint_eq(b.len, 3 + 7 + 1 + 4 + 3);
	ck_assert_mem_eq(b.p, ((const uint8_t[]){
	    2, 'h', 'i', 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0,
	    'x', 'y', 'z' }), b.len);

	/* A shortstr over 255 bytes is truncated to 255, length octet 255. */
	wbuf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	memset(big, 'q', sizeof(big));
	wbuf_put_shortstr(&b, (struct bytes){ (const uint8_t *)big, 300 });
	ck_assert_uint_eq(b.len, 256);
	ck_assert_uint_eq(b.p[0], 255);
	ck_assert_mem_eq(b.p + 1, big, 255);
	/* ...while a longstr keeps every byte. */
	wbuf_reset(&b);
	wbuf_put_longstr(&b, (struct bytes){ (const uint8_t *)big, 300 });
	ck_assert_uint_eq(b.len, 304);
	ck_assert_mem_eq(b.p, ((const uint8_t[]){ 0, 0, 1, 0x2C }), 4);
	ck_assert_mem_eq(b.p + 4, big, 300);
	wbuf_free(&b);
}
END_TEST

START_TEST(test_growth)
{
	/* Many small puts across many reallocations, read back exactly. */
	enum { N = 50000 };
	struct wbuf b;
	struct rcursor c;
	size_t last_cap = 0;
	unsigned grows = 0;

	wbuf_init(&b);
	for (uint32_t i = 0; i < N; i++) {
		wbuf_put_u8(&b, (uint8_t)i);
		wbuf_put_u16(&b, (uint16_t)(i * 7));
		wbuf_put_u32(&b, i * 2654435761u);
		wbuf_put_u64(&b, ((uint64_t)i << 32) | (i ^ 0xA5A5A5A5u));
		ck_assert_uint_le(b.len, b.cap);
		if (b.cap != last_cap) {
			grows++;
			last_cap = b.cap;
		}
	}
	ck_assert_uint_eq(b.len, (size_t)N * 15);
	ck_assert_uint_gt(grows, 5);
	c = rcursor_make(b.p, b.len);
	for (uint32_t i = 0; i < N; i++) {
		uint8_t v8;
		uint16_t v16;
		uint32_t v32;
		uint64_t v64;

		ck_assert(wire_get_u8(&c, &v8));
		ck_assert(wire_get_u16(&c, &v16));
		ck_assert(wire_get_u32(&c, &v32));
		ck_assert(wire_get_u64(&c, &v64));
		ck_assert_uint_eq(v8, (uint8_t)i);
		ck_assert_uint_eq(v16, (uint16_t)(i * 7));
		ck_assert_uint_eq(v32, i * 2654435761u);
		ck_assert(v64 == (((uint64_t)i << 32) | (i ^ 0xA5A5A5A5u)));
	}
	ck_assert_uint_eq(c.left, 0);
	wbuf_free(&b);
}
END_TEST

START_TEST(test_growth_large_puts)
{
	/* Raw puts larger than the current capacity (and than doubling). */
	struct wbuf b;
	uint8_t *chunk = malloc(100000);
	size_t sizes[] = { 1, 255, 256, 257, 1000, 4096, 100000, 3, 70000 };
	size_t total = 0;

	for (size_t i = 0; i < 100000; i++)
		chunk[i] = (uint8_t)(i * 31 + 7);
	wbuf_init(&b);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		wbuf_put_raw(&b, chunk, sizes[i]);
		total += sizes[i];
		ck_assert_uint_eq(b.len, total);
		ck_assert_uint_le(b.len, b.cap);
	}
	total = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ck_assert_mem_eq(b.p + total, chunk, sizes[i]);
		total += sizes[i];
	}
	wbuf_free(&b);
	free(chunk);
}
END_TEST

START_TEST(test_reserve)
{
	struct wbuf b;
	uint8_t *p;

	wbuf_init(&b);
	wbuf_put_u8(&b, 1);
	p = wbuf_reserve(&b, 10000);
	ck_assert_ptr_eq(p, b.p + 1);
	ck_assert_uint_eq(b.len, 1);	/* reserving does not commit */
	ck_assert_uint_ge(b.cap, 10001);
	memset(p, 0x5A, 10000);		/* the room is writable */
	b.len += 10000;
	ck_assert_uint_eq(b.p[0], 1);
	ck_assert_uint_eq(b.p[10000], 0x5A);
	/* reset keeps the storage, drops the contents. */
	{
		size_t cap = b.cap;
		uint8_t *old = b.p;

		wbuf_reset(&b);
		ck_assert_uint_eq(b.len, 0);
		ck_assert_uint_eq(b.cap, cap);
		ck_assert_ptr_eq(b.p, old);
		wbuf_put_u16(&b, 0xBEEF);
		ck_assert_ptr_eq(b.p, old);
		ck_assert_mem_eq(b.p, ((const uint8_t[]){ 0xBE, 0xEF }), 2);
	}
	wbuf_free(&b);
}
END_TEST

START_TEST(test_patch_u32)
{
	struct wbuf b;

	wbuf_init(&b);
	wbuf_put_u8(&b, 0x11);
	wbuf_put_u32(&b, 0);		/* placeholder at offset 1 */
	wbuf_put_u16(&b, 0x2233);
	wbuf_patch_u32(&b, 1, 0xDEADBEEFu);
	ck_assert_uint_eq(b.len, 7);
	ck_assert_mem_eq(b.p, ((const uint8_t[]){
	    0x11, 0xDE, 0xAD, 0xBE, 0xEF, 0x22, 0x33 }), 7);
	/* Patch at the very end and at offset 0, neighbours untouched. */
	wbuf_patch_u32(&b, 3, 0x01020304u);
	ck_assert_mem_eq(b.p, ((const uint8_t[]){
	    0x11, 0xDE, 0xAD, 0x01, 0x02, 0x03, 0x04 }), 7);
	wbuf_patch_u32(&b, 0, 0xFFFFFFFFu);
	ck_assert_mem_eq(b.p, ((const uint8_t[]){
	    0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x03, 0x04 }), 7);
	ck_assert_uint_eq(b.len, 7);	/* patching never grows */

	/* The length-prefix use: reserve, write, patch with the size. */
	wbuf_reset(&b);
	{
		size_t at = b.len;

		wbuf_put_u32(&b, 0);
		for (int i = 0; i < 1000; i++)
			wbuf_put_u8(&b, (uint8_t)i);
		wbuf_patch_u32(&b, at, (uint32_t)(b.len - at - 4));
		ck_assert_mem_eq(b.p, ((const uint8_t[]){ 0, 0, 0x03, 0xE8 }),
		    4);
	}
	wbuf_free(&b);
}
END_TEST

START_TEST(test_roundtrip_strings)
{
	struct wbuf b;
	struct rcursor c;
	struct bytes s1, s2, s3;

	wbuf_init(&b);
	wbuf_put_shortstr(&b, BYTES_LIT("queue.name"));
	wbuf_put_longstr(&b, BYTES_LIT("\0PLAIN\0guest"));
	wbuf_put_shortstr(&b, BYTES_LIT(""));
	c = rcursor_make(b.p, b.len);
	ck_assert(wire_get_shortstr(&c, &s1));
	ck_assert(wire_get_longstr(&c, &s2));
	ck_assert(wire_get_shortstr(&c, &s3));
	ck_assert_uint_eq(c.left, 0);
	ck_assert(bytes_eq(s1, BYTES_LIT("queue.name")));
	ck_assert(bytes_eq(s2, BYTES_LIT("\0PLAIN\0guest")));
	ck_assert_uint_eq(s3.len, 0);
	wbuf_free(&b);
}
END_TEST

/* ---- bytes helpers ------------------------------------------------------- */

START_TEST(test_bytes_helpers)
{
	struct bytes a = BYTES_LIT("abc");
	struct bytes e = { NULL, 0 };
	char *s;

	ck_assert_uint_eq(a.len, 3);
	ck_assert_uint_eq(bytes_str("hello").len, 5);
	ck_assert(bytes_eq(a, bytes_str("abc")));
	ck_assert(!bytes_eq(a, bytes_str("abd")));
	ck_assert(!bytes_eq(a, bytes_str("ab")));
	ck_assert(!bytes_eq(a, bytes_str("abcd")));
	ck_assert(bytes_eq(e, bytes_str("")));	/* NULL and "" both empty */
	ck_assert(bytes_eq_str(e, ""));
	ck_assert(bytes_eq_str(a, "abc"));
	ck_assert(!bytes_eq_str(a, "ABC"));

	s = bytes_strdup(BYTES_LIT("x\0y"));
	ck_assert_mem_eq(s, "x\0y\0", 4);
	free(s);
	s = bytes_strdup(e);
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc;

	tc = tcase_create("getters");
	tcase_add_test(tc, test_u8);
	tcase_add_test(tc, test_u16);
	tcase_add_test(tc, test_u32);
	tcase_add_test(tc, test_u64);
	tcase_add_test(tc, test_sequence);
	suite_add_tcase(s, tc);

	tc = tcase_create("strings");
	tcase_add_test(tc, test_raw);
	tcase_add_test(tc, test_raw_over_u32);
	tcase_add_test(tc, test_shortstr);
	tcase_add_test(tc, test_shortstr_255);
	tcase_add_test(tc, test_shortstr_lengths_past_end);
	tcase_add_test(tc, test_longstr);
	tcase_add_test(tc, test_longstr_huge_lengths);
	suite_add_tcase(s, tc);

	tc = tcase_create("wbuf");
	tcase_add_test(tc, test_put_byte_order);
	tcase_add_test(tc, test_put_strings);
	tcase_add_test(tc, test_growth);
	tcase_add_test(tc, test_growth_large_puts);
	tcase_add_test(tc, test_reserve);
	tcase_add_test(tc, test_patch_u32);
	tcase_add_test(tc, test_roundtrip_strings);
	suite_add_tcase(s, tc);

	tc = tcase_create("bytes");
	tcase_add_test(tc, test_bytes_helpers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(wire_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
