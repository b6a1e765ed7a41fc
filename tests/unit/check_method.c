/*
 * Unit tests for the method codecs, driven by amqp_methods.def itself: for
 * every method in the table, fill every field with a distinct non-default
 * value, encode, decode and compare field by field; every strict prefix of
 * every encoding must be refused with 501 without reading past its end;
 * malformed tables are refused; unknown ids give 503; bit packing matches
 * the spec; names and flags come out right.
 *
 * Every encoding is copied into a heap buffer of exactly its size before it
 * is decoded, so a read past the end is caught by ASan.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"
#include "field_table.h"
#include "method.h"
#include "wire.h"

/* ---- the .def as data ----------------------------------------------------- */

#define ISBIT_octet	0
#define ISBIT_short	0
#define ISBIT_long	0
#define ISBIT_longlong	0
#define ISBIT_timestamp	0
#define ISBIT_shortstr	0
#define ISBIT_longstr	0
#define ISBIT_table	0
#define ISBIT_bit	1
#define ISTABLE_octet		0
#define ISTABLE_short		0
#define ISTABLE_long		0
#define ISTABLE_longlong	0
#define ISTABLE_timestamp	0
#define ISTABLE_shortstr	0
#define ISTABLE_longstr		0
#define ISTABLE_table		1
#define ISTABLE_bit		0

struct def_row {
	uint32_t id;
	const char *cls;
	const char *meth;
	bool sync;
	bool content;
	unsigned nfields;
};

static const struct def_row rows[] = {
#define F(type, name) + 1
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS)		\
	{ AMQP_METHOD_ID(cid, mid), #c, #m, sync, content, 0 FIELDS },
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
};
#define N_ROWS ((int)(sizeof(rows) / sizeof(rows[0])))

static const unsigned row_nbits[] = {
#define F(type, name) + ISBIT_##type
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS) 0 FIELDS,
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
};

static const unsigned row_ntables[] = {
#define F(type, name) + ISTABLE_##type
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS) 0 FIELDS,
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
};

/* ---- helpers ----------------------------------------------------------------- */

/* Exactly sized heap copy (malloc(0) for empty input). */
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

/* Decode bytes [p, p+n) from an exact heap copy; the copy is kept in *keep. */
static int decode_exact(const uint8_t *p, size_t n, struct amqp_method *out,
    struct bytes *keep)
{
	*keep = copy_exact(p, n);
	return method_decode(*keep, out);
}

/* ---- filling every field with a distinct non-default value -------------------- */

enum table_mode {
	TABLE_GOOD,
	TABLE_BAD_TYPE,		/* unknown type letter */
	TABLE_BAD_TRUNC,	/* int32 value cut short */
	TABLE_BAD_STRLEN,	/* longstr value longer than the table */
	TABLE_BAD_KEYLEN,	/* key length past the end */
	TABLE_BAD_BOOL,		/* bool that is neither 0 nor 1 */
	TABLE_BAD_NESTED,	/* nested table longer than its parent */
	TABLE_MODES
};

struct filler {
	unsigned n;		/* fields filled so far */
	unsigned bits;		/* bits filled so far */
	unsigned phase;		/* 0: bits go T,F,T..; 1: F,T,F.. */
	enum table_mode tmode;
	char str[16][64];
	uint8_t lstr[16][300];
	uint8_t tab[16][32];
};

static void fill_octet(struct filler *f, uint8_t *v)
{
	*v = (uint8_t)(0xA0 + f->n++);
}

static void fill_short(struct filler *f, uint16_t *v)
{
	*v = (uint16_t)(0xB100 + f->n++);
}

static void fill_long(struct filler *f, uint32_t *v)
{
	*v = 0xC2000000u + f->n++;
}

static void fill_longlong(struct filler *f, uint64_t *v)
{
	*v = UINT64_C(0xD300000000000000) + f->n++;
}

#define fill_timestamp fill_longlong

static void fill_bit(struct filler *f, bool *v)
{
	*v = ((f->bits++ + f->phase) & 1) == 0;
	f->n++;
}

static void fill_shortstr(struct filler *f, struct bytes *v)
{
	unsigned i = f->n++;
	int len;

	ck_assert_uint_lt(i, 16);
	len = snprintf(f->str[i], sizeof(f->str[i]), "short-%u-%s", i,
	    f->phase ? "odd" : "even");
	*v = (struct bytes){ (const uint8_t *)f->str[i], (uint32_t)len };
}

static void fill_longstr(struct filler *f, struct bytes *v)
{
	unsigned i = f->n++;

	ck_assert_uint_lt(i, 16);
	/* Longer than a shortstr can be, with NULs and high bytes. */
	for (unsigned k = 0; k < sizeof(f->lstr[i]); k++)
		f->lstr[i][k] = (uint8_t)(k * (i + 3) + f->phase);
	*v = (struct bytes){ f->lstr[i], (uint32_t)sizeof(f->lstr[i]) };
}

static void fill_table(struct filler *f, struct bytes *v)
{
	unsigned i = f->n++;
	uint8_t *t;
	size_t n = 0;

	ck_assert_uint_lt(i, 16);
	t = f->tab[i];
#define PUT(...) do {							\
	const uint8_t b_[] = { __VA_ARGS__ };				\
	memcpy(t + n, b_, sizeof(b_));					\
	n += sizeof(b_);						\
} while (0)
	switch (f->tmode) {
	case TABLE_GOOD:
		/* { "a": true, "k<i>": int32 i, "s": "hi" } */
		PUT(1, 'a', 't', 1);
		PUT(2, 'k', (uint8_t)('0' + i), 'I', 0, 0, 0, (uint8_t)i);
		PUT(1, 's', 'S', 0, 0, 0, 2, 'h', (uint8_t)('i' + f->phase));
		break;
	case TABLE_BAD_TYPE:
		PUT(1, 'a', 't', 1);
		PUT(1, 'k', 'Z', 0);
		break;
	case TABLE_BAD_TRUNC:
		PUT(1, 'k', 'I', 0, 0);
		break;
	case TABLE_BAD_STRLEN:
		PUT(1, 'k', 'S', 0, 0, 0, 9, 'a', 'b');
		break;
	case TABLE_BAD_KEYLEN:
		PUT(1, 'a', 't', 0, 5, 'k');
		break;
	case TABLE_BAD_BOOL:
		PUT(1, 'k', 't', 2);
		break;
	case TABLE_BAD_NESTED:
		PUT(1, 'n', 'F', 0, 0, 0, 8, 1, 'x', 't', 1);
		break;
	default:
		ck_abort();
	}
#undef PUT
	*v = (struct bytes){ t, (uint32_t)n };
}

static void fill_method(uint32_t id, struct amqp_method *out,
    struct filler *f)
{
	memset(out, 0, sizeof(*out));
	out->id = id;
	switch (id) {
#define F(type, name) fill_##type(f, &args->name);
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS)		\
	case AMQP_METHOD_ID(cid, mid): {				\
		struct amqp_##c##_##m *args = &out->a.c##_##m;		\
		(void)args;						\
		FIELDS							\
		break;							\
	}
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
	default:
		ck_abort_msg("no such method %08x", id);
	}
}

static void filler_init(struct filler *f, unsigned phase, enum table_mode tm)
{
	memset(f, 0, sizeof(*f));
	f->phase = phase;
	f->tmode = tm;
}

/* ---- field-by-field comparison ----------------------------------------------- */

#define CMP_INT(a, b, mname, fname)					\
	ck_assert_msg((a) == (b), "%s.%s: %llu != %llu", mname, fname,	\
	    (unsigned long long)(a), (unsigned long long)(b))

static void cmp_octet(const char *mn, const char *fn, uint8_t a, uint8_t b)
{
	CMP_INT(a, b, mn, fn);
}

static void cmp_short(const char *mn, const char *fn, uint16_t a, uint16_t b)
{
	CMP_INT(a, b, mn, fn);
}

static void cmp_long(const char *mn, const char *fn, uint32_t a, uint32_t b)
{
	CMP_INT(a, b, mn, fn);
}

static void cmp_longlong(const char *mn, const char *fn, uint64_t a,
    uint64_t b)
{
	CMP_INT(a, b, mn, fn);
}

#define cmp_timestamp cmp_longlong

static void cmp_bit(const char *mn, const char *fn, bool a, bool b)
{
	CMP_INT(a, b, mn, fn);
}

static void cmp_shortstr(const char *mn, const char *fn, struct bytes a,
    struct bytes b)
{
	ck_assert_msg(bytes_eq(a, b), "%s.%s: strings differ (len %u vs %u)",
	    mn, fn, a.len, b.len);
}

#define cmp_longstr cmp_shortstr
#define cmp_table cmp_shortstr

static void compare_methods(const struct amqp_method *x,
    const struct amqp_method *y)
{
	ck_assert_uint_eq(x->id, y->id);
	switch (x->id) {
#define F(type, name) cmp_##type(mname, #name, a->name, b->name);
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS)		\
	case AMQP_METHOD_ID(cid, mid): {				\
		const char *mname = #c "." #m;				\
		const struct amqp_##c##_##m *a = &x->a.c##_##m;		\
		const struct amqp_##c##_##m *b = &y->a.c##_##m;		\
		(void)mname; (void)a; (void)b;				\
		FIELDS							\
		break;							\
	}
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
	default:
		ck_abort_msg("no such method %08x", x->id);
	}
}

/* ---- the expected encoded size, from the spec's rules ------------------------- */

struct sizer {
	size_t len;
	unsigned bitpos;	/* bits used in the current octet; 0 = none */
};

static void size_fixed(struct sizer *s, size_t n)
{
	s->bitpos = 0;
	s->len += n;
}

#define size_octet(s, v)	size_fixed(s, 1)
#define size_short(s, v)	size_fixed(s, 2)
#define size_long(s, v)		size_fixed(s, 4)
#define size_longlong(s, v)	size_fixed(s, 8)
#define size_timestamp(s, v)	size_fixed(s, 8)
#define size_shortstr(s, v)	size_fixed(s, 1 + (size_t)(v).len)
#define size_longstr(s, v)	size_fixed(s, 4 + (size_t)(v).len)
#define size_table(s, v)	size_fixed(s, 4 + (size_t)(v).len)

static void size_bit(struct sizer *s, bool v)
{
	(void)v;
	if (s->bitpos == 0)
		s->len++;	/* consecutive bits share one octet */
	s->bitpos = (s->bitpos + 1) & 7;
}

static size_t expected_size(const struct amqp_method *x)
{
	struct sizer s = { 4, 0 };	/* class id + method id */

	switch (x->id) {
#define F(type, name) size_##type(&s, a->name);
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS)		\
	case AMQP_METHOD_ID(cid, mid): {				\
		const struct amqp_##c##_##m *a = &x->a.c##_##m;		\
		(void)a;						\
		FIELDS							\
		break;							\
	}
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
	}
	return s.len;
}

/* Encode a filled method. */
static void encode(struct wbuf *b, const struct amqp_method *x)
{
	wbuf_reset(b);
	method_encode(b, x);
}

/* ---- round trip: every method ------------------------------------------------ */

START_TEST(test_roundtrip_every_method)
{
	const struct def_row *r = &rows[_i];

	for (unsigned phase = 0; phase < 2; phase++) {
		struct filler f;
		struct amqp_method in, out;
		struct wbuf b, b2;
		struct bytes keep;
		int rc;

		filler_init(&f, phase, TABLE_GOOD);
		fill_method(r->id, &in, &f);
		ck_assert_uint_eq(f.n, r->nfields);
		ck_assert_uint_eq(f.bits, row_nbits[_i]);
		wbuf_init(&b);
		wbuf_init(&b2);
		encode(&b, &in);

		ck_assert_msg(b.len == expected_size(&in),
		    "%s.%s: encoded %zu bytes, expected %zu", r->cls, r->meth,
		    b.len, expected_size(&in));
		/* Class id and method id, big-endian. */
		ck_assert_uint_eq(b.p[0], AMQP_METHOD_CLASS(r->id) >> 8);
		ck_assert_uint_eq(b.p[1], AMQP_METHOD_CLASS(r->id) & 0xff);
		ck_assert_uint_eq(b.p[2], AMQP_METHOD_INDEX(r->id) >> 8);
		ck_assert_uint_eq(b.p[3], AMQP_METHOD_INDEX(r->id) & 0xff);

		memset(&out, 0xA5, sizeof(out));
		rc = decode_exact(b.p, b.len, &out, &keep);
		ck_assert_msg(rc == 0, "%s.%s (phase %u): decode gave %d",
		    r->cls, r->meth, phase, rc);
		compare_methods(&in, &out);

		/* Re-encoding the decoded method gives the same bytes. */
		encode(&b2, &out);
		ck_assert_uint_eq(b2.len, b.len);
		ck_assert_mem_eq(b2.p, b.p, b.len);

		free_copy(keep);
		wbuf_free(&b);
		wbuf_free(&b2);
	}
}
END_TEST

START_TEST(test_roundtrip_defaults)
{
	/* All-zero arguments: empty strings, empty tables, false bits. */
	const struct def_row *r = &rows[_i];
	struct amqp_method in, out;
	struct wbuf b;
	struct bytes keep;

	memset(&in, 0, sizeof(in));
	in.id = r->id;
	wbuf_init(&b);
	encode(&b, &in);
	ck_assert_uint_eq(b.len, expected_size(&in));
	ck_assert_int_eq(decode_exact(b.p, b.len, &out, &keep), 0);
	compare_methods(&in, &out);
	free_copy(keep);
	wbuf_free(&b);
}
END_TEST

/* RabbitMQ refuses arguments followed by extra bytes: so do we. */
START_TEST(test_trailing_bytes_refused)
{
	const struct def_row *r = &rows[_i];
	struct filler f;
	struct amqp_method in, out;
	struct wbuf b;
	struct bytes keep;

	filler_init(&f, 0, TABLE_GOOD);
	fill_method(r->id, &in, &f);
	wbuf_init(&b);
	encode(&b, &in);
	wbuf_put_u8(&b, 0xCE);
	wbuf_put_u16(&b, 0xFFFF);
	ck_assert_int_eq(decode_exact(b.p, b.len, &out, &keep), AMQP_FRAME_ERROR);
	ck_assert_uint_eq(out.id, r->id);
	free_copy(keep);
	wbuf_free(&b);
}
END_TEST

/* ---- truncation ------------------------------------------------------------- */

START_TEST(test_every_prefix_refused)
{
	const struct def_row *r = &rows[_i];

	for (unsigned phase = 0; phase < 2; phase++) {
		struct filler f;
		struct amqp_method in, out;
		struct wbuf b;

		filler_init(&f, phase, TABLE_GOOD);
		fill_method(r->id, &in, &f);
		wbuf_init(&b);
		encode(&b, &in);
		for (size_t n = 0; n < b.len; n++) {
			struct bytes keep;
			int rc = decode_exact(b.p, n, &out, &keep);

			ck_assert_msg(rc == AMQP_FRAME_ERROR,
			    "%s.%s: %zu of %zu bytes gave %d, not 501",
			    r->cls, r->meth, n, b.len, rc);
			free_copy(keep);
		}
		wbuf_free(&b);
	}
}
END_TEST

START_TEST(test_decode_null_empty)
{
	struct amqp_method out;

	ck_assert_int_eq(method_decode((struct bytes){ NULL, 0 }, &out),
	    AMQP_FRAME_ERROR);
}
END_TEST

/* ---- unknown ids --------------------------------------------------------------- */

START_TEST(test_unknown_ids)
{
	static const uint16_t ids[][2] = {
		{ 0, 0 }, { 10, 0 }, { 10, 12 }, { 10, 99 }, { 20, 30 },
		{ 30, 10 }, { 40, 41 }, { 50, 60 }, { 60, 41 }, { 60, 121 },
		{ 70, 10 }, { 85, 12 }, { 90, 40 }, { 99, 10 },
		{ 0xFFFF, 0xFFFF }, { 0x0A00, 0x0A00 }, { 60 << 8, 40 },
	};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		uint8_t raw[12] = {
			(uint8_t)(ids[i][0] >> 8), (uint8_t)ids[i][0],
			(uint8_t)(ids[i][1] >> 8), (uint8_t)ids[i][1],
			1, 2, 3, 4, 5, 6, 7, 8,
		};
		struct amqp_method out;
		struct bytes keep;

		ck_assert_ptr_null(method_info(AMQP_METHOD_ID(ids[i][0],
		    ids[i][1])));
		/* Bare ids and ids followed by arguments. */
		ck_assert_int_eq(decode_exact(raw, 4, &out, &keep),
		    AMQP_COMMAND_INVALID);
		/* The ids were read: the caller can name them in its close. */
		ck_assert_uint_eq(out.id, AMQP_METHOD_ID(ids[i][0], ids[i][1]));
		free_copy(keep);
		ck_assert_int_eq(decode_exact(raw, sizeof(raw), &out, &keep),
		    AMQP_COMMAND_INVALID);
		ck_assert_uint_eq(out.id, AMQP_METHOD_ID(ids[i][0], ids[i][1]));
		free_copy(keep);
	}
}
END_TEST

/* ---- malformed tables -------------------------------------------------------- */

START_TEST(test_malformed_table_refused)
{
	const struct def_row *r = &rows[_i];

	if (row_ntables[_i] == 0)
		return;
	for (int tm = TABLE_GOOD + 1; tm < TABLE_MODES; tm++) {
		struct filler f;
		struct amqp_method in, out;
		struct wbuf b;
		struct bytes keep;
		int rc;

		filler_init(&f, 0, (enum table_mode)tm);
		fill_method(r->id, &in, &f);
		wbuf_init(&b);
		encode(&b, &in);
		/* The table's own length prefix is right: only its body is bad. */
		ck_assert_uint_eq(b.len, expected_size(&in));
		rc = decode_exact(b.p, b.len, &out, &keep);
		ck_assert_msg(rc == AMQP_FRAME_ERROR,
		    "%s.%s: malformed table #%d gave %d, not 501",
		    r->cls, r->meth, tm, rc);
		free_copy(keep);
		wbuf_free(&b);
	}
}
END_TEST

START_TEST(test_malformed_table_handmade)
{
	/* queue.declare, arguments = { "x": 'Q' ... } (unknown type). */
	static const uint8_t bad[] = {
		0x00, 0x32, 0x00, 0x0A,		/* queue.declare */
		0x00, 0x00,			/* reserved-1 */
		0x01, 'q',			/* queue */
		0x02,				/* durable */
		0x00, 0x00, 0x00, 0x04,		/* arguments: 4 bytes */
		0x01, 'x', 'Q', 0x00,
	};
	/* Same, arguments length past the end of the payload. */
	static const uint8_t past[] = {
		0x00, 0x32, 0x00, 0x0A, 0x00, 0x00, 0x01, 'q', 0x02,
		0x00, 0x00, 0x00, 0x09, 0x01, 'x', 't', 0x01,
	};
	/* Same, a well-formed arguments table: accepted. */
	static const uint8_t good[] = {
		0x00, 0x32, 0x00, 0x0A, 0x00, 0x00, 0x01, 'q', 0x02,
		0x00, 0x00, 0x00, 0x04, 0x01, 'x', 't', 0x01,
	};
	struct amqp_method out;
	struct bytes keep;

	ck_assert_int_eq(decode_exact(bad, sizeof(bad), &out, &keep),
	    AMQP_FRAME_ERROR);
	free_copy(keep);
	ck_assert_int_eq(decode_exact(past, sizeof(past), &out, &keep),
	    AMQP_FRAME_ERROR);
	free_copy(keep);
	ck_assert_int_eq(decode_exact(good, sizeof(good), &out, &keep), 0);
	ck_assert_uint_eq(out.id, AMQP_queue_declare);
	ck_assert(bytes_eq_str(out.a.queue_declare.queue, "q"));
	ck_assert(out.a.queue_declare.durable);
	ck_assert(!out.a.queue_declare.passive);
	ck_assert_uint_eq(out.a.queue_declare.arguments.len, 4);
	/* Tables are kept raw, without their length prefix. */
	ck_assert_mem_eq(out.a.queue_declare.arguments.ptr, "\x01xt\x01", 4);
	free_copy(keep);
}
END_TEST

/* ---- bit packing ------------------------------------------------------------ */

START_TEST(test_bits_queue_declare)
{
	static const uint8_t want[] = {
		0x00, 0x32, 0x00, 0x0A,		/* class 50, method 10 */
		0x00, 0x00,			/* reserved-1 */
		0x03, 'a', 'b', 'c',		/* queue */
		0x1A,				/* durable|auto_delete|no_wait */
		0x00, 0x00, 0x00, 0x00,		/* arguments: empty */
	};
	struct amqp_method m, out;
	struct wbuf b;
	struct bytes keep;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_queue_declare;
	m.a.queue_declare.queue = BYTES_LIT("abc");
	m.a.queue_declare.passive = false;
	m.a.queue_declare.durable = true;
	m.a.queue_declare.exclusive = false;
	m.a.queue_declare.auto_delete = true;
	m.a.queue_declare.no_wait = true;
	wbuf_init(&b);
	method_encode(&b, &m);
	ck_assert_uint_eq(b.len, sizeof(want));
	ck_assert_mem_eq(b.p, want, sizeof(want));

	ck_assert_int_eq(decode_exact(want, sizeof(want), &out, &keep), 0);
	ck_assert(!out.a.queue_declare.passive);
	ck_assert(out.a.queue_declare.durable);
	ck_assert(!out.a.queue_declare.exclusive);
	ck_assert(out.a.queue_declare.auto_delete);
	ck_assert(out.a.queue_declare.no_wait);
	ck_assert_uint_eq(out.a.queue_declare.arguments.len, 0);
	free_copy(keep);
	wbuf_free(&b);
}
END_TEST

START_TEST(test_bits_each_position)
{
	/* exchange.declare: passive..no_wait are bits 0..4 of one octet. */
	for (unsigned bit = 0; bit < 5; bit++) {
		struct amqp_method m, out;
		bool *flag[5];
		struct wbuf b;
		struct bytes keep;

		memset(&m, 0, sizeof(m));
		m.id = AMQP_exchange_declare;
		m.a.exchange_declare.exchange = BYTES_LIT("x");
		m.a.exchange_declare.type = BYTES_LIT("topic");
		flag[0] = &m.a.exchange_declare.passive;
		flag[1] = &m.a.exchange_declare.durable;
		flag[2] = &m.a.exchange_declare.auto_delete;
		flag[3] = &m.a.exchange_declare.internal;
		flag[4] = &m.a.exchange_declare.no_wait;
		*flag[bit] = true;
		wbuf_init(&b);
		method_encode(&b, &m);
		/* 4 ids + 2 reserved + 2 "x" + 6 "topic" = offset 14 */
		ck_assert_uint_eq(b.len, 14 + 1 + 4);
		ck_assert_uint_eq(b.p[14], 1u << bit);
		ck_assert_int_eq(decode_exact(b.p, b.len, &out, &keep), 0);
		ck_assert_int_eq(out.a.exchange_declare.passive, bit == 0);
		ck_assert_int_eq(out.a.exchange_declare.durable, bit == 1);
		ck_assert_int_eq(out.a.exchange_declare.auto_delete, bit == 2);
		ck_assert_int_eq(out.a.exchange_declare.internal, bit == 3);
		ck_assert_int_eq(out.a.exchange_declare.no_wait, bit == 4);
		ck_assert(bytes_eq_str(out.a.exchange_declare.type, "topic"));
		free_copy(keep);
		wbuf_free(&b);
	}
}
END_TEST

START_TEST(test_bits_between_fields)
{
	/* basic.deliver: a bit between a longlong and two shortstrs. */
	static const uint8_t want[] = {
		0x00, 0x3C, 0x00, 0x3C,		/* class 60, method 60 */
		0x02, 'c', 't',			/* consumer-tag */
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x01,				/* redelivered */
		0x02, 'e', 'x',			/* exchange */
		0x02, 'r', 'k',			/* routing-key */
	};
	/* basic.nack: multiple=0, requeue=1 -> 0x02. */
	static const uint8_t nack[] = {
		0x00, 0x3C, 0x00, 0x78,
		0, 0, 0, 0, 0, 0, 0, 42,
		0x02,
	};
	struct amqp_method m, out;
	struct wbuf b;
	struct bytes keep;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_deliver;
	m.a.basic_deliver.consumer_tag = BYTES_LIT("ct");
	m.a.basic_deliver.delivery_tag = UINT64_C(0x0102030405060708);
	m.a.basic_deliver.redelivered = true;
	m.a.basic_deliver.exchange = BYTES_LIT("ex");
	m.a.basic_deliver.routing_key = BYTES_LIT("rk");
	wbuf_init(&b);
	method_encode(&b, &m);
	ck_assert_uint_eq(b.len, sizeof(want));
	ck_assert_mem_eq(b.p, want, sizeof(want));

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_nack;
	m.a.basic_nack.delivery_tag = 42;
	m.a.basic_nack.requeue = true;
	wbuf_reset(&b);
	method_encode(&b, &m);
	ck_assert_uint_eq(b.len, sizeof(nack));
	ck_assert_mem_eq(b.p, nack, sizeof(nack));
	ck_assert_int_eq(decode_exact(nack, sizeof(nack), &out, &keep), 0);
	ck_assert(out.a.basic_nack.delivery_tag == 42);
	ck_assert(!out.a.basic_nack.multiple);
	ck_assert(out.a.basic_nack.requeue);
	free_copy(keep);
	wbuf_free(&b);
}
END_TEST

/* ---- fixed encodings from the spec ---------------------------------------------- */

/* m encodes to exactly want, and want decodes to m, field by field. */
static void assert_wire(const struct amqp_method *m, const uint8_t *want,
    size_t n)
{
	struct amqp_method out;
	struct wbuf b;
	struct bytes keep;

	wbuf_init(&b);
	method_encode(&b, m);
	ck_assert_msg(b.len == n, "%s: encoded %zu bytes, want %zu",
	    method_name(m->id), b.len, n);
	ck_assert_mem_eq(b.p, want, n);
	ck_assert_int_eq(decode_exact(want, n, &out, &keep), 0);
	compare_methods(m, &out);
	free_copy(keep);
	wbuf_free(&b);
}

START_TEST(test_fixed_connection_methods)
{
	/* connection.start: octet, octet, table, longstr, longstr. */
	static const uint8_t start[] = {
		0x00, 0x0A, 0x00, 0x0A,
		0x00, 0x09,
		0x00, 0x00, 0x00, 0x04, 0x01, 'a', 't', 0x01,
		0x00, 0x00, 0x00, 0x05, 'P', 'L', 'A', 'I', 'N',
		0x00, 0x00, 0x00, 0x05, 'e', 'n', '_', 'U', 'S',
	};
	/* connection.tune: short, long, short. */
	static const uint8_t tune[] = {
		0x00, 0x0A, 0x00, 0x1E,
		0x07, 0xFF,
		0x00, 0x02, 0x00, 0x00,
		0x00, 0x3C,
	};
	/* connection.close: short, shortstr, short, short. */
	static const uint8_t close_[] = {
		0x00, 0x0A, 0x00, 0x32,
		0x01, 0x40,
		0x03, 'b', 'y', 'e',
		0x00, 0x3C,
		0x00, 0x28,
	};
	/* connection.start-ok: table, shortstr, longstr, shortstr. */
	static const uint8_t start_ok[] = {
		0x00, 0x0A, 0x00, 0x0B,
		0x00, 0x00, 0x00, 0x00,
		0x05, 'P', 'L', 'A', 'I', 'N',
		0x00, 0x00, 0x00, 0x03, 0x00, 'u', 0x00,
		0x05, 'e', 'n', '_', 'U', 'S',
	};
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_start;
	m.a.connection_start.version_major = 0;
	m.a.connection_start.version_minor = 9;
	m.a.connection_start.server_properties = BYTES_LIT("\x01" "at\x01");
	m.a.connection_start.mechanisms = BYTES_LIT("PLAIN");
	m.a.connection_start.locales = BYTES_LIT("en_US");
	assert_wire(&m, start, sizeof(start));

	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_tune;
	m.a.connection_tune.channel_max = 2047;
	m.a.connection_tune.frame_max = 131072;
	m.a.connection_tune.heartbeat = 60;
	assert_wire(&m, tune, sizeof(tune));

	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_close;
	m.a.connection_close.reply_code = 320;
	m.a.connection_close.reply_text = BYTES_LIT("bye");
	m.a.connection_close.class_id = 60;
	m.a.connection_close.method_id = 40;
	assert_wire(&m, close_, sizeof(close_));

	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_start_ok;
	m.a.connection_start_ok.mechanism = BYTES_LIT("PLAIN");
	m.a.connection_start_ok.response = BYTES_LIT("\0u\0");
	m.a.connection_start_ok.locale = BYTES_LIT("en_US");
	assert_wire(&m, start_ok, sizeof(start_ok));
}
END_TEST

START_TEST(test_fixed_basic_methods)
{
	/* basic.qos: long, short, bit. */
	static const uint8_t qos[] = {
		0x00, 0x3C, 0x00, 0x0A,
		0x00, 0x01, 0x02, 0x03,
		0x00, 0x0A,
		0x01,
	};
	/* basic.publish: short, shortstr, shortstr, bit, bit. */
	static const uint8_t publish[] = {
		0x00, 0x3C, 0x00, 0x28,
		0x00, 0x00,
		0x02, 'e', 'x',
		0x02, 'r', 'k',
		0x01,			/* mandatory, not immediate */
	};
	/* basic.ack: longlong, bit. */
	static const uint8_t ack[] = {
		0x00, 0x3C, 0x00, 0x50,
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
		0x01,
	};
	/* basic.consume: short, shortstr, shortstr, 4 bits, table. */
	static const uint8_t consume[] = {
		0x00, 0x3C, 0x00, 0x14,
		0x00, 0x00,
		0x01, 'q',
		0x02, 'c', 't',
		0x0A,			/* no-ack | no-wait */
		0x00, 0x00, 0x00, 0x04, 0x01, 'x', 't', 0x00,
	};
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_qos;
	m.a.basic_qos.prefetch_size = 0x00010203;
	m.a.basic_qos.prefetch_count = 10;
	m.a.basic_qos.global = true;
	assert_wire(&m, qos, sizeof(qos));

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_publish;
	m.a.basic_publish.exchange = BYTES_LIT("ex");
	m.a.basic_publish.routing_key = BYTES_LIT("rk");
	m.a.basic_publish.mandatory = true;
	assert_wire(&m, publish, sizeof(publish));

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_ack;
	m.a.basic_ack.delivery_tag = UINT64_C(0x0000000100000002);
	m.a.basic_ack.multiple = true;
	assert_wire(&m, ack, sizeof(ack));

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_consume;
	m.a.basic_consume.queue = BYTES_LIT("q");
	m.a.basic_consume.consumer_tag = BYTES_LIT("ct");
	m.a.basic_consume.no_local = false;
	m.a.basic_consume.no_ack = true;
	m.a.basic_consume.exclusive = false;
	m.a.basic_consume.no_wait = true;
	m.a.basic_consume.arguments = BYTES_LIT("\x01xt\x00");
	assert_wire(&m, consume, sizeof(consume));
}
END_TEST

/* ---- borrowing ------------------------------------------------------------------ */

START_TEST(test_decoded_strings_borrow_payload)
{
	static const uint8_t raw[] = {
		0x00, 0x3C, 0x00, 0x15, 0x05, 'a', 'm', 'q', '.', 'x',
	};
	struct amqp_method out;
	struct bytes keep;

	ck_assert_int_eq(decode_exact(raw, sizeof(raw), &out, &keep), 0);
	ck_assert_uint_eq(out.id, AMQP_basic_consume_ok);
	ck_assert_ptr_eq(out.a.basic_consume_ok.consumer_tag.ptr, keep.ptr + 5);
	ck_assert_uint_eq(out.a.basic_consume_ok.consumer_tag.len, 5);
	free_copy(keep);
}
END_TEST

START_TEST(test_shortstr_255_roundtrip)
{
	char tag[255];
	struct amqp_method m, out;
	struct wbuf b;
	struct bytes keep;

	memset(tag, 'T', sizeof(tag));
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_cancel;
	m.a.basic_cancel.consumer_tag = (struct bytes){ (uint8_t *)tag, 255 };
	m.a.basic_cancel.no_wait = true;
	wbuf_init(&b);
	method_encode(&b, &m);
	ck_assert_uint_eq(b.len, 4 + 256 + 1);
	ck_assert_uint_eq(b.p[4], 255);
	ck_assert_int_eq(decode_exact(b.p, b.len, &out, &keep), 0);
	compare_methods(&m, &out);
	free_copy(keep);
	wbuf_free(&b);
}
END_TEST

/* ---- names and flags -------------------------------------------------------- */

START_TEST(test_names)
{
	ck_assert_str_eq(method_name(AMQP_basic_consume_ok),
	    "basic.consume-ok");
	ck_assert_str_eq(method_name(AMQP_connection_start_ok),
	    "connection.start-ok");
	ck_assert_str_eq(method_name(AMQP_basic_recover_async),
	    "basic.recover-async");
	ck_assert_str_eq(method_name(AMQP_connection_update_secret_ok),
	    "connection.update-secret-ok");
	ck_assert_str_eq(method_name(AMQP_queue_declare), "queue.declare");
	ck_assert_str_eq(method_name(AMQP_basic_return), "basic.return");
	ck_assert_str_eq(method_name(AMQP_confirm_select_ok),
	    "confirm.select-ok");
	ck_assert_str_eq(method_name(AMQP_METHOD_ID(60, 41)), "unknown");
	ck_assert_str_eq(method_name(0), "unknown");
	ck_assert_ptr_null(method_info(AMQP_METHOD_ID(99, 10)));
}
END_TEST

START_TEST(test_info_every_method)
{
	const struct def_row *r = &rows[_i];
	const struct method_info *mi = method_info(r->id);
	char want[96];

	ck_assert_ptr_nonnull(mi);
	ck_assert_uint_eq(mi->id, r->id);
	ck_assert_int_eq(mi->synchronous, r->sync);
	ck_assert_int_eq(mi->content, r->content);
	snprintf(want, sizeof(want), "%s.%s", r->cls, r->meth);
	for (char *p = strchr(want, '.'); *p; p++)
		if (*p == '_')
			*p = '-';
	ck_assert_str_eq(mi->name, want);
	ck_assert_str_eq(method_name(r->id), want);
	ck_assert_ptr_eq(method_info(r->id), mi);	/* stable */
}
END_TEST

START_TEST(test_info_flags)
{
	const struct method_info *mi;

	mi = method_info(AMQP_basic_publish);
	ck_assert_ptr_nonnull(mi);
	ck_assert(mi->content);
	ck_assert(!mi->synchronous);
	mi = method_info(AMQP_basic_deliver);
	ck_assert(mi->content);
	ck_assert(!mi->synchronous);
	mi = method_info(AMQP_basic_return);
	ck_assert(mi->content);
	mi = method_info(AMQP_basic_get_ok);
	ck_assert(mi->content);
	ck_assert(mi->synchronous);
	mi = method_info(AMQP_queue_declare);
	ck_assert(mi->synchronous);
	ck_assert(!mi->content);
	mi = method_info(AMQP_basic_ack);
	ck_assert(!mi->synchronous);
	ck_assert(!mi->content);
	mi = method_info(AMQP_connection_close_ok);
	ck_assert(mi->synchronous);
	ck_assert(!mi->content);
}
END_TEST

START_TEST(test_ids)
{
	/* The enum is the spec's (class << 16 | method) numbering. */
	ck_assert_uint_eq(AMQP_connection_start, 0x000A000Au);
	ck_assert_uint_eq(AMQP_basic_publish, (60u << 16) | 40u);
	ck_assert_uint_eq(AMQP_exchange_unbind_ok, (40u << 16) | 51u);
	ck_assert_uint_eq(AMQP_confirm_select, (85u << 16) | 10u);
	ck_assert_uint_eq(AMQP_METHOD_CLASS(AMQP_basic_nack), 60);
	ck_assert_uint_eq(AMQP_METHOD_INDEX(AMQP_basic_nack), 120);
	/* No id twice in the table. */
	for (int i = 0; i < N_ROWS; i++)
		for (int j = i + 1; j < N_ROWS; j++)
			ck_assert_uint_ne(rows[i].id, rows[j].id);
}
END_TEST

static Suite *method_suite(void)
{
	Suite *s = suite_create("method");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_add_loop_test(tc, test_roundtrip_every_method, 0, N_ROWS);
	tcase_add_loop_test(tc, test_roundtrip_defaults, 0, N_ROWS);
	tcase_add_loop_test(tc, test_trailing_bytes_refused, 0, N_ROWS);
	tcase_add_test(tc, test_decoded_strings_borrow_payload);
	tcase_add_test(tc, test_shortstr_255_roundtrip);
	suite_add_tcase(s, tc);

	tc = tcase_create("reject");
	tcase_add_loop_test(tc, test_every_prefix_refused, 0, N_ROWS);
	tcase_add_test(tc, test_decode_null_empty);
	tcase_add_test(tc, test_unknown_ids);
	tcase_add_loop_test(tc, test_malformed_table_refused, 0, N_ROWS);
	tcase_add_test(tc, test_malformed_table_handmade);
	suite_add_tcase(s, tc);

	tc = tcase_create("bits");
	tcase_add_test(tc, test_bits_queue_declare);
	tcase_add_test(tc, test_bits_each_position);
	tcase_add_test(tc, test_bits_between_fields);
	tcase_add_test(tc, test_fixed_connection_methods);
	tcase_add_test(tc, test_fixed_basic_methods);
	suite_add_tcase(s, tc);

	tc = tcase_create("info");
	tcase_add_test(tc, test_names);
	tcase_add_loop_test(tc, test_info_every_method, 0, N_ROWS);
	tcase_add_test(tc, test_info_flags);
	tcase_add_test(tc, test_ids);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(method_suite());
	int failed;

	/* Sanity: the table-driven loops really cover the table. */
	if (N_ROWS < 60) {
		fprintf(stderr, "amqp_methods.def looks truncated\n");
		return EXIT_FAILURE;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
