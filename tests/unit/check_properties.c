/*
 * Unit tests for the basic content header: byte-exact parse/encode round
 * trips with all 14 properties, none, and a sparse subset; the flag bit of
 * every property; rejection of truncated headers, of the continuation and
 * reserved flag bits, and of malformed header tables.
 *
 * Inputs are copied into heap buffers of exactly their size, so a read past
 * the end is caught by ASan.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"
#include "properties.h"
#include "wire.h"

static struct bytes copy_exact(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n);

	ck_assert(n == 0 || q != NULL);
	if (n)
		memcpy(q, p, n);
	return (struct bytes){ q, (uint32_t)n };
}

static void free_copy(struct bytes b)
{
	free((void *)(uintptr_t)b.ptr);
}

static int parse_exact(const uint8_t *p, size_t n, struct content_header *h,
    struct bytes *keep)
{
	*keep = copy_exact(p, n);
	return content_header_parse(*keep, h);
}

/* A refused header: nonzero, and one of the codes the header promises. */
static void assert_refused(const uint8_t *p, size_t n, const char *what)
{
	struct content_header h;
	struct bytes keep;
	int rc = parse_exact(p, n, &h, &keep);

	ck_assert_msg(rc == AMQP_FRAME_ERROR || rc == AMQP_SYNTAX_ERROR,
	    "%s: parse gave %d", what, rc);
	free_copy(keep);
}

/* parse then encode gives back exactly the input. */
static void assert_reencodes(const uint8_t *p, size_t n)
{
	struct content_header h;
	struct bytes keep;
	struct wbuf b;

	ck_assert_int_eq(parse_exact(p, n, &h, &keep), 0);
	wbuf_init(&b);
	content_header_encode(&b, &h);
	ck_assert_uint_eq(b.len, n);
	ck_assert_mem_eq(b.p, p, n);
	wbuf_free(&b);
	free_copy(keep);
}

/* ---- all 14 properties ----------------------------------------------------- */

static const uint8_t all_props[] = {
	0x00, 0x3C,				/* class 60 */
	0x00, 0x00,				/* weight */
	0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05,	/* body size */
	0xFF, 0xFC,				/* all 14 flags */
	10, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n',
	4, 'g', 'z', 'i', 'p',
	0x00, 0x00, 0x00, 0x0B,			/* headers: 11 bytes */
	1, 'h', 't', 1,
	1, 'n', 'I', 0x00, 0x00, 0x01, 0x00,
	0x02,					/* delivery-mode */
	0x09,					/* priority */
	4, 'c', 'o', 'r', 'r',
	5, 'r', 'e', 'p', 'l', 'y',
	5, '6', '0', '0', '0', '0',
	5, 'm', 'i', 'd', '-', '1',
	0x00, 0x00, 0x00, 0x00, 0x5F, 0x5E, 0x10, 0x00,	/* timestamp */
	1, 't',
	5, 'g', 'u', 'e', 's', 't',
	3, 'a', 'p', 'p',
	2, 'c', 'l',
};

START_TEST(test_all_parse)
{
	struct content_header h;
	struct bytes keep;

	ck_assert_int_eq(parse_exact(all_props, sizeof(all_props), &h, &keep),
	    0);
	ck_assert_uint_eq(h.class_id, 60);
	ck_assert_uint_eq(h.weight, 0);
	ck_assert(h.body_size == UINT64_C(0x0102030405));
	ck_assert_uint_eq(h.props.flags, 0xFFFC);
	for (int p = 0; p < PROP_COUNT; p++)
		ck_assert(props_has(&h.props, (enum basic_prop)p));
	ck_assert(bytes_eq_str(h.props.content_type, "text/plain"));
	ck_assert(bytes_eq_str(h.props.content_encoding, "gzip"));
	ck_assert_uint_eq(h.props.headers.len, 11);	/* raw, no prefix */
	ck_assert_mem_eq(h.props.headers.ptr, "\x01ht\x01\x01nI\0\0\x01\0", 11);
	ck_assert_uint_eq(h.props.delivery_mode, 2);
	ck_assert_uint_eq(h.props.priority, 9);
	ck_assert(bytes_eq_str(h.props.correlation_id, "corr"));
	ck_assert(bytes_eq_str(h.props.reply_to, "reply"));
	ck_assert(bytes_eq_str(h.props.expiration, "60000"));
	ck_assert(bytes_eq_str(h.props.message_id, "mid-1"));
	ck_assert(h.props.timestamp == UINT64_C(1600000000));
	ck_assert(bytes_eq_str(h.props.type, "t"));
	ck_assert(bytes_eq_str(h.props.user_id, "guest"));
	ck_assert(bytes_eq_str(h.props.app_id, "app"));
	ck_assert(bytes_eq_str(h.props.cluster_id, "cl"));
	/* Strings borrow from the payload. */
	ck_assert_ptr_eq(h.props.content_type.ptr, keep.ptr + 15);
	free_copy(keep);
}
END_TEST

START_TEST(test_all_roundtrip)
{
	assert_reencodes(all_props, sizeof(all_props));
}
END_TEST

START_TEST(test_all_encode_from_struct)
{
	struct content_header h, back;
	struct bytes keep;
	struct wbuf b;

	memset(&h, 0, sizeof(h));
	h.class_id = 60;
	h.body_size = UINT64_C(0x0102030405);
	h.props.flags = 0xFFFC;
	h.props.content_type = BYTES_LIT("text/plain");
	h.props.content_encoding = BYTES_LIT("gzip");
	h.props.headers = BYTES_LIT("\x01ht\x01\x01nI\0\0\x01\0");
	h.props.delivery_mode = 2;
	h.props.priority = 9;
	h.props.correlation_id = BYTES_LIT("corr");
	h.props.reply_to = BYTES_LIT("reply");
	h.props.expiration = BYTES_LIT("60000");
	h.props.message_id = BYTES_LIT("mid-1");
	h.props.timestamp = 1600000000;
	h.props.type = BYTES_LIT("t");
	h.props.user_id = BYTES_LIT("guest");
	h.props.app_id = BYTES_LIT("app");
	h.props.cluster_id = BYTES_LIT("cl");
	wbuf_init(&b);
	content_header_encode(&b, &h);
	ck_assert_uint_eq(b.len, sizeof(all_props));
	ck_assert_mem_eq(b.p, all_props, sizeof(all_props));
	ck_assert_int_eq(parse_exact(b.p, b.len, &back, &keep), 0);
	ck_assert_uint_eq(back.props.flags, h.props.flags);
	ck_assert(bytes_eq(back.props.reply_to, h.props.reply_to));
	free_copy(keep);
	wbuf_free(&b);
}
END_TEST

START_TEST(test_all_every_prefix_refused)
{
	for (size_t n = 0; n < sizeof(all_props); n++) {
		char what[32];

		snprintf(what, sizeof(what), "prefix %zu", n);
		assert_refused(all_props, n, what);
	}
}
END_TEST

/* ---- none -------------------------------------------------------------------- */

START_TEST(test_none)
{
	static const uint8_t none[] = {
		0x00, 0x3C, 0x00, 0x00,
		0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
		0x00, 0x00,
	};
	struct content_header h;
	struct bytes keep;

	ck_assert_int_eq(parse_exact(none, sizeof(none), &h, &keep), 0);
	ck_assert_uint_eq(h.class_id, 60);
	ck_assert(h.body_size == UINT64_C(0xFFFFFFFFFFFFFFFE));
	ck_assert_uint_eq(h.props.flags, 0);
	for (int p = 0; p < PROP_COUNT; p++)
		ck_assert(!props_has(&h.props, (enum basic_prop)p));
	ck_assert_uint_eq(h.props.content_type.len, 0);
	ck_assert_uint_eq(h.props.headers.len, 0);
	ck_assert_uint_eq(h.props.delivery_mode, 0);
	free_copy(keep);
	assert_reencodes(none, sizeof(none));
	for (size_t n = 0; n < sizeof(none); n++)
		assert_refused(none, n, "none prefix");
}
END_TEST

START_TEST(test_trailing_bytes)
{
	/* A header with exactly its present properties parses... */
	static const uint8_t exact[] = {
		0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 5,
		0x10, 0x00,				/* delivery-mode */
		0x01,
	};
	/* ...and one more byte after the last property is refused: the
	 * header is re-sent as received, so nothing may hide in it. */
	static const uint8_t trailing[] = {
		0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 5,
		0x10, 0x00,
		0x01, 0xFF,
	};
	struct content_header h;
	struct bytes keep;

	ck_assert_int_eq(parse_exact(exact, sizeof(exact), &h, &keep), 0);
	ck_assert_uint_eq(h.props.flags, 0x1000);
	ck_assert(props_has(&h.props, PROP_delivery_mode));
	ck_assert(!props_has(&h.props, PROP_priority));
	ck_assert_uint_eq(h.props.delivery_mode, 1);
	ck_assert_uint_eq(h.body_size, 5);
	free_copy(keep);
	ck_assert_int_eq(parse_exact(trailing, sizeof(trailing), &h, &keep),
	    AMQP_FRAME_ERROR);
	free_copy(keep);
}
END_TEST

/* ---- sparse -------------------------------------------------------------------- */

static const uint8_t sparse[] = {
	0x00, 0x3C, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x27, 0x10,	/* 10000 */
	0x88, 0x44,	/* content-type, priority, timestamp, cluster-id */
	4, 'j', 's', 'o', 'n',
	0x05,
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	3, 'c', 'i', 'd',
};

START_TEST(test_sparse)
{
	struct content_header h, h2;
	struct bytes keep, keep2;
	struct wbuf b;

	ck_assert_int_eq(parse_exact(sparse, sizeof(sparse), &h, &keep), 0);
	ck_assert_uint_eq(h.props.flags, 0x8844);
	ck_assert(h.body_size == 10000);
	ck_assert(props_has(&h.props, PROP_content_type));
	ck_assert(props_has(&h.props, PROP_priority));
	ck_assert(props_has(&h.props, PROP_timestamp));
	ck_assert(props_has(&h.props, PROP_cluster_id));
	ck_assert(!props_has(&h.props, PROP_delivery_mode));
	ck_assert(!props_has(&h.props, PROP_headers));
	ck_assert(!props_has(&h.props, PROP_app_id));
	ck_assert(bytes_eq_str(h.props.content_type, "json"));
	ck_assert_uint_eq(h.props.priority, 5);
	ck_assert(h.props.timestamp == UINT64_C(0x0102030405060708));
	ck_assert(bytes_eq_str(h.props.cluster_id, "cid"));
	/* Absent properties are left zero. */
	ck_assert_uint_eq(h.props.delivery_mode, 0);
	ck_assert_uint_eq(h.props.user_id.len, 0);
	ck_assert_uint_eq(h.props.headers.len, 0);
	assert_reencodes(sparse, sizeof(sparse));
	for (size_t n = 0; n < sizeof(sparse); n++)
		assert_refused(sparse, n, "sparse prefix");

	/* Values of absent properties are not encoded even if set. */
	h2 = h;
	h2.props.app_id = BYTES_LIT("ignored");
	h2.props.delivery_mode = 2;
	wbuf_init(&b);
	content_header_encode(&b, &h2);
	ck_assert_uint_eq(b.len, sizeof(sparse));
	ck_assert_mem_eq(b.p, sparse, sizeof(sparse));
	ck_assert_int_eq(parse_exact(b.p, b.len, &h2, &keep2), 0);
	free_copy(keep2);
	wbuf_free(&b);
	free_copy(keep);
}
END_TEST

/* ---- flag bits ----------------------------------------------------------------- */

static void set_octet(uint8_t *v)
{
	*v = 0x7E;
}

static void set_timestamp(uint64_t *v)
{
	*v = UINT64_C(0x8000000000000001);
}

static void set_shortstr(struct bytes *v)
{
	*v = BYTES_LIT("value");
}

static void set_table(struct bytes *v)
{
	*v = BYTES_LIT("\x03key\x53\x00\x00\x00\x01v");	/* key: S "v" */
}

static bool is_set_octet(uint8_t v)
{
	return v == 0x7E;
}

static bool is_set_timestamp(uint64_t v)
{
	return v == UINT64_C(0x8000000000000001);
}

static bool is_set_shortstr(struct bytes v)
{
	return bytes_eq_str(v, "value");
}

static bool is_set_table(struct bytes v)
{
	return bytes_eq(v, BYTES_LIT("\x03key\x53\x00\x00\x00\x01v"));
}

static size_t size_octet(void) { return 1; }
static size_t size_timestamp(void) { return 8; }
static size_t size_shortstr(void) { return 1 + 5; }
static size_t size_table(void) { return 4 + 10; }

/* content_header_string finds each string property as the full parse does,
 * and reports the absent ones absent. */
START_TEST(test_string_property_without_full_parse)
{
	static const enum basic_prop strings[] = { PROP_content_type,
	    PROP_content_encoding, PROP_headers, PROP_correlation_id,
	    PROP_reply_to, PROP_expiration, PROP_message_id, PROP_type,
	    PROP_user_id, PROP_app_id, PROP_cluster_id };
	struct content_header h;
	struct bytes keep, v, *want[PROP_COUNT] = { NULL };

	ck_assert_int_eq(parse_exact(all_props, sizeof(all_props), &h, &keep),
	    0);
	want[PROP_content_type] = &h.props.content_type;
	want[PROP_content_encoding] = &h.props.content_encoding;
	want[PROP_headers] = &h.props.headers;
	want[PROP_correlation_id] = &h.props.correlation_id;
	want[PROP_reply_to] = &h.props.reply_to;
	want[PROP_expiration] = &h.props.expiration;
	want[PROP_message_id] = &h.props.message_id;
	want[PROP_type] = &h.props.type;
	want[PROP_user_id] = &h.props.user_id;
	want[PROP_app_id] = &h.props.app_id;
	want[PROP_cluster_id] = &h.props.cluster_id;
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		ck_assert(content_header_string(keep, strings[i], &v));
		ck_assert_ptr_eq(v.ptr, want[strings[i]]->ptr);
		ck_assert_uint_eq(v.len, want[strings[i]]->len);
	}
	free_copy(keep);
	/* sparse: content-type and cluster-id only, among the strings */
	ck_assert_int_eq(parse_exact(sparse, sizeof(sparse), &h, &keep), 0);
	ck_assert(content_header_string(keep, PROP_cluster_id, &v));
	ck_assert(bytes_eq_str(v, "cid"));
	ck_assert(content_header_string(keep, PROP_content_type, &v));
	ck_assert(bytes_eq_str(v, "json"));
	ck_assert(!content_header_string(keep, PROP_message_id, &v));
	ck_assert(!content_header_string(keep, PROP_headers, &v));
	free_copy(keep);
}
END_TEST

START_TEST(test_flag_bit_each_property)
{
	int p = _i;
	struct content_header h, back;
	struct bytes keep;
	struct wbuf b;
	uint16_t want = (uint16_t)(0x8000u >> p);
	size_t value_size = 0;

	ck_assert_uint_eq(PROP_FLAG(p), want);
	memset(&h, 0, sizeof(h));
	h.class_id = 60;
	h.body_size = 1;
	h.props.flags = PROP_FLAG(p);
	switch (p) {
#define X(name, type)							\
	case PROP_##name:						\
		set_##type(&h.props.name);				\
		value_size = size_##type();				\
		break;
	BASIC_PROPERTIES(X)
#undef X
	}
	wbuf_init(&b);
	content_header_encode(&b, &h);
	ck_assert_uint_eq(b.len, 14 + value_size);
	ck_assert_uint_eq(((unsigned)b.p[12] << 8) | b.p[13], want);

	ck_assert_int_eq(parse_exact(b.p, b.len, &back, &keep), 0);
	ck_assert_uint_eq(back.props.flags, want);
	for (int q = 0; q < PROP_COUNT; q++)
		ck_assert_int_eq(props_has(&back.props, (enum basic_prop)q),
		    q == p);
	/* The value landed in the right property and nowhere else. */
#define X(name, type)							\
	ck_assert_msg(is_set_##type(back.props.name) == (PROP_##name == p), \
	    "property " #name " wrong with only bit %d set", 15 - p);
	BASIC_PROPERTIES(X)
#undef X
	free_copy(keep);
	wbuf_free(&b);
}
END_TEST

START_TEST(test_flag_constants)
{
	ck_assert_int_eq(PROP_COUNT, 14);
	ck_assert_uint_eq(PROP_FLAG(PROP_content_type), 0x8000);
	ck_assert_uint_eq(PROP_FLAG(PROP_content_encoding), 0x4000);
	ck_assert_uint_eq(PROP_FLAG(PROP_headers), 0x2000);
	ck_assert_uint_eq(PROP_FLAG(PROP_delivery_mode), 0x1000);
	ck_assert_uint_eq(PROP_FLAG(PROP_priority), 0x0800);
	ck_assert_uint_eq(PROP_FLAG(PROP_correlation_id), 0x0400);
	ck_assert_uint_eq(PROP_FLAG(PROP_reply_to), 0x0200);
	ck_assert_uint_eq(PROP_FLAG(PROP_expiration), 0x0100);
	ck_assert_uint_eq(PROP_FLAG(PROP_message_id), 0x0080);
	ck_assert_uint_eq(PROP_FLAG(PROP_timestamp), 0x0040);
	ck_assert_uint_eq(PROP_FLAG(PROP_type), 0x0020);
	ck_assert_uint_eq(PROP_FLAG(PROP_user_id), 0x0010);
	ck_assert_uint_eq(PROP_FLAG(PROP_app_id), 0x0008);
	ck_assert_uint_eq(PROP_FLAG(PROP_cluster_id), 0x0004);
}
END_TEST

/* ---- rejection ----------------------------------------------------------------- */

START_TEST(test_reject_low_flag_bits)
{
	/*
	 * Bit 0 (continuation) and bit 1 (no 15th property) are refused,
	 * alone or with valid properties.  Each header is otherwise exactly
	 * well formed (every present property has its value, nothing
	 * trails), so only the low bits can be the reason for refusing it.
	 */
	static const uint16_t words[] = {
		0x0001, 0x0002, 0x0003, 0x8001, 0x8002, 0x8003,
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		uint8_t hdr[64] = {
			0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
			(uint8_t)(words[i] >> 8), (uint8_t)words[i],
		};
		size_t n = 14;
		char what[48];

		/* content-type present for the 0x8xxx words */
		if (words[i] & 0x8000) {
			memcpy(hdr + n, "\x02hi", 3);
			n += 3;
		}
		snprintf(what, sizeof(what), "flags %04x", words[i]);
		assert_refused(hdr, n, what);
		/* With a second (empty) flag word, as a continuation has. */
		if (words[i] & 0x0001) {
			uint8_t cont[64];

			memcpy(cont, hdr, 14);
			cont[14] = 0x00;
			cont[15] = 0x00;
			memcpy(cont + 16, hdr + 14, n - 14);
			snprintf(what, sizeof(what), "flags %04x + 0000",
			    words[i]);
			assert_refused(cont, n + 2, what);
		}
	}
	/* All 14 properties plus a low bit: refused... */
	{
		uint8_t all[sizeof(all_props)];

		memcpy(all, all_props, sizeof(all));
		all[13] |= 0x01;
		assert_refused(all, sizeof(all), "all_props with bit 0");
		all[13] = (uint8_t)((all[13] & ~0x01) | 0x02);
		assert_refused(all, sizeof(all), "all_props with bit 1");
	}
	/* The same without bits 0/1 is fine. */
	{
		static const uint8_t ok[] = {
			0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
			0x80, 0x00, 0x02, 'h', 'i',
		};
		static const uint8_t ok_none[] = {
			0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
			0x00, 0x00,
		};
		struct content_header h;
		struct bytes keep;

		ck_assert_int_eq(parse_exact(ok, sizeof(ok), &h, &keep), 0);
		ck_assert(bytes_eq_str(h.props.content_type, "hi"));
		free_copy(keep);
		ck_assert_int_eq(parse_exact(ok_none, sizeof(ok_none), &h,
		    &keep), 0);
		free_copy(keep);
	}
}
END_TEST

START_TEST(test_encode_never_sets_low_bits)
{
	struct content_header h;
	struct wbuf b;

	memset(&h, 0, sizeof(h));
	h.class_id = 60;
	h.props.flags = PROP_FLAG(PROP_priority) | 0x0003;
	h.props.priority = 4;
	wbuf_init(&b);
	content_header_encode(&b, &h);
	ck_assert_uint_eq(b.len, 15);
	ck_assert_uint_eq(b.p[12], 0x08);
	ck_assert_uint_eq(b.p[13], 0x00);
	ck_assert_uint_eq(b.p[14], 4);
	wbuf_free(&b);
}
END_TEST

START_TEST(test_reject_bad_headers_table)
{
	static const struct {
		const char *what;
		const uint8_t *table;
		uint32_t len;
	} bad[] = {
#define T(w, s) { w, (const uint8_t *)s, sizeof(s) - 1 }
		T("unknown type", "\x01kZ"),
		T("bool 2", "\x01kt\x02"),
		T("int32 cut", "\x01kI\x00\x00"),
		T("longstr past end", "\x01kS\x00\x00\x00\x09" "ab"),
		T("key past end", "\x05k"),
		T("missing type", "\x01k"),
		T("nested past end", "\x01nF\x00\x00\x00\x08\x01xt\x01"),
		T("huge longstr", "\x01kS\xFF\xFF\xFF\xFF"),
#undef T
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t hdr[128] = {
			0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
			0x30, 0x00,		/* headers, delivery-mode */
			0, 0, 0, (uint8_t)bad[i].len,
		};
		size_t n = 18;

		memcpy(hdr + n, bad[i].table, bad[i].len);
		n += bad[i].len;
		hdr[n++] = 0x02;	/* delivery-mode */
		assert_refused(hdr, n, bad[i].what);
	}
	/* A table length past the end of the whole header. */
	{
		static const uint8_t past[] = {
			0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
			0x20, 0x00, 0x00, 0x00, 0x01, 0x00, 1, 'k', 't', 1,
		};
		static const uint8_t huge[] = {
			0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
			0x20, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 1, 'k', 't', 1,
		};

		assert_refused(past, sizeof(past), "table past end");
		assert_refused(huge, sizeof(huge), "table length 0xFFFFFFFF");
	}
	/* Control: a good table in the same place is accepted. */
	{
		static const uint8_t good[] = {
			0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
			0x30, 0x00, 0x00, 0x00, 0x00, 0x04, 1, 'k', 't', 1,
			0x02,
		};
		struct content_header h;
		struct bytes keep;

		ck_assert_int_eq(parse_exact(good, sizeof(good), &h, &keep), 0);
		ck_assert_uint_eq(h.props.headers.len, 4);
		ck_assert_uint_eq(h.props.delivery_mode, 2);
		free_copy(keep);
		assert_reencodes(good, sizeof(good));
	}
}
END_TEST

START_TEST(test_reject_string_past_end)
{
	/* content-type declares 200 bytes, 3 follow. */
	static const uint8_t hdr[] = {
		0x00, 0x3C, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
		0x80, 0x00, 200, 'a', 'b', 'c',
	};

	assert_refused(hdr, sizeof(hdr), "shortstr past end");
}
END_TEST

static Suite *properties_suite(void)
{
	Suite *s = suite_create("properties");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_add_test(tc, test_all_parse);
	tcase_add_test(tc, test_all_roundtrip);
	tcase_add_test(tc, test_all_encode_from_struct);
	tcase_add_test(tc, test_none);
	tcase_add_test(tc, test_sparse);
	tcase_add_test(tc, test_string_property_without_full_parse);
	tcase_add_test(tc, test_trailing_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("flags");
	tcase_add_loop_test(tc, test_flag_bit_each_property, 0, PROP_COUNT);
	tcase_add_test(tc, test_flag_constants);
	tcase_add_test(tc, test_encode_never_sets_low_bits);
	suite_add_tcase(s, tc);

	tc = tcase_create("reject");
	tcase_add_test(tc, test_all_every_prefix_refused);
	tcase_add_test(tc, test_reject_low_flag_bits);
	tcase_add_test(tc, test_reject_bad_headers_table);
	tcase_add_test(tc, test_reject_string_past_end);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(properties_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
