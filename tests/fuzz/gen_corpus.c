/*
 * Writes the seed corpora under a directory (default tests/fuzz/corpus):
 * every AMQP method encoded by the codec, field tables using every type,
 * content headers, frame streams, topic pattern/key scripts and whole
 * client sessions (fuzz_connection: a chunk-size byte, then the bytes a
 * client sends, from the protocol header to connection.close).
 *
 *   cc -D_GNU_SOURCE -std=c11 -Iinclude tests/fuzz/gen_corpus.c \
 *	src/method.c src/properties.c src/field_table.c src/wire.c \
 *	src/log.c -lm -o /tmp/gen_corpus && /tmp/gen_corpus tests/fuzz/corpus
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "amqp.h"
#include "field_table.h"
#include "fuzz_session.h"
#include "method.h"
#include "properties.h"
#include "wire.h"

static const char *root = "tests/fuzz/corpus";

static void emit(const char *target, const char *name, const void *p,
    size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, target);
	if (mkdir(path, 0777) != 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void key(struct wbuf *b, const char *k, char type)
{
	wbuf_put_shortstr(b, bytes_str(k));
	wbuf_put_u8(b, (uint8_t)type);
}

/* A table (with its u32 length) holding every field type once. */
static void every_type_table(struct wbuf *b)
{
	size_t t = ftw_begin(b), arr, inner;

	key(b, "t", 't'); wbuf_put_u8(b, 1);
	key(b, "b", 'b'); wbuf_put_u8(b, 0xfe);
	key(b, "B", 'B'); wbuf_put_u8(b, 0xfe);
	key(b, "s", 's'); wbuf_put_u16(b, 0x8001);
	key(b, "u", 'u'); wbuf_put_u16(b, 0x8001);
	key(b, "I", 'I'); wbuf_put_u32(b, 0x80000001);
	key(b, "i", 'i'); wbuf_put_u32(b, 0x80000001);
	key(b, "l", 'l'); wbuf_put_u64(b, 0x8000000000000001ULL);
	key(b, "L", 'L'); wbuf_put_u64(b, 42);
	key(b, "f", 'f'); wbuf_put_u32(b, 0x3fc00000);		/* 1.5 */
	key(b, "d", 'd'); wbuf_put_u64(b, 0x7ff8000000000001ULL); /* NaN */
	key(b, "D", 'D'); wbuf_put_u8(b, 2); wbuf_put_u32(b, 12345);
	key(b, "S", 'S'); wbuf_put_longstr(b, bytes_str("hello"));
	key(b, "x", 'x'); wbuf_put_longstr(b, BYTES_LIT("\0\1\2"));
	key(b, "T", 'T'); wbuf_put_u64(b, 1700000000);
	key(b, "V", 'V');
	key(b, "A", 'A');
	arr = b->len;
	wbuf_put_u32(b, 0);
	wbuf_put_u8(b, 'I'); wbuf_put_u32(b, 7);
	wbuf_put_u8(b, 'S'); wbuf_put_longstr(b, bytes_str("in array"));
	wbuf_put_u8(b, 'A'); wbuf_put_u32(b, 0);
	wbuf_put_u8(b, 'F'); wbuf_put_u32(b, 0);
	wbuf_patch_u32(b, arr, (uint32_t)(b->len - arr - 4));
	inner = ftw_table_begin(b, "F");
	ftw_bool(b, "publisher_confirms", true);
	ftw_longstr(b, "product", "Warren");
	ftw_i64(b, "x-max-length", 10);
	ftw_end(b, inner);
	key(b, "", 'V');				/* empty key */
	ftw_end(b, t);
}

/* RabbitMQ-style queue arguments. */
static void queue_args_table(struct wbuf *b)
{
	size_t t = ftw_begin(b);

	ftw_i64(b, "x-message-ttl", 60000);
	ftw_longstr(b, "x-dead-letter-exchange", "dlx");
	ftw_longstr(b, "x-queue-type", "classic");
	ftw_end(b, t);
}

static struct wbuf tables;	/* backing store for the raw tables */
static struct bytes raw_args, raw_every;

static void fill_octet(uint8_t *v) { *v = 9; }
static void fill_short(uint16_t *v) { *v = 0x0102; }
static void fill_long(uint32_t *v) { *v = 131072; }
static void fill_longlong(uint64_t *v) { *v = 0x0102030405060708ULL; }
#define fill_timestamp fill_longlong
static void fill_shortstr(struct bytes *v) { *v = BYTES_LIT("amq.topic"); }
static void fill_longstr(struct bytes *v) { *v = BYTES_LIT("\0guest\0guest"); }
static void fill_table(struct bytes *v) { *v = raw_every; }
static unsigned bitn;
static void fill_bit(bool *v) { *v = (bitn++ % 3) != 1; }

static void methods(void)
{
	struct wbuf b;
	char name[96];

	wbuf_init(&b);
#define F(type, name) fill_##type(&args->name);
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS)		\
	{								\
		struct amqp_method x;					\
		struct amqp_##c##_##m *args = &x.a.c##_##m;		\
									\
		memset(&x, 0, sizeof(x));				\
		x.id = AMQP_METHOD_ID(cid, mid);			\
		(void)args;						\
		FIELDS							\
		wbuf_reset(&b);						\
		method_encode(&b, &x);					\
		snprintf(name, sizeof(name), "%s", #c "." #m);		\
		emit("fuzz_method", name, b.p, b.len);			\
	}
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
	/* queue.declare with real arguments, all bits clear */
	{
		struct amqp_method x;

		memset(&x, 0, sizeof(x));
		x.id = AMQP_queue_declare;
		x.a.queue_declare.queue = BYTES_LIT("q1");
		x.a.queue_declare.durable = true;
		x.a.queue_declare.arguments = raw_args;
		wbuf_reset(&b);
		method_encode(&b, &x);
		emit("fuzz_method", "queue.declare-args", b.p, b.len);
	}
	wbuf_free(&b);
}

static void field_tables(void)
{
	struct wbuf b;

	wbuf_init(&b);
	emit("fuzz_field_table", "empty", "", 0);
	emit("fuzz_field_table", "every-type", raw_every.ptr, raw_every.len);
	emit("fuzz_field_table", "queue-args", raw_args.ptr, raw_args.len);
	/* Deeply nested: F inside F, 10 levels. */
	{
		size_t at[10];

		for (int i = 0; i < 10; i++) {
			key(&b, "n", 'F');
			at[i] = b.len;
			wbuf_put_u32(&b, 0);
		}
		key(&b, "leaf", 't');
		wbuf_put_u8(&b, 0);
		for (int i = 9; i >= 0; i--)
			wbuf_patch_u32(&b, at[i], (uint32_t)(b.len - at[i] - 4));
		emit("fuzz_field_table", "nested", b.p, b.len);
	}
	wbuf_free(&b);
}

static void content_headers(struct wbuf *none, struct wbuf *all)
{
	struct content_header h;
	struct wbuf b;

	memset(&h, 0, sizeof(h));
	h.class_id = 60;
	h.body_size = 5;
	wbuf_init(none);
	content_header_encode(none, &h);
	emit("fuzz_content_header", "no-properties", none->p, none->len);

	h.props.flags = PROP_FLAG(PROP_content_type) |
	    PROP_FLAG(PROP_delivery_mode) | PROP_FLAG(PROP_expiration);
	h.props.content_type = BYTES_LIT("text/plain");
	h.props.delivery_mode = 2;
	h.props.expiration = BYTES_LIT("60000");
	wbuf_init(&b);
	content_header_encode(&b, &h);
	emit("fuzz_content_header", "some-properties", b.p, b.len);
	wbuf_free(&b);

	h.body_size = 300;
#define X(name, type) h.props.flags |= PROP_FLAG(PROP_##name);
	BASIC_PROPERTIES(X)
#undef X
	h.props.content_encoding = BYTES_LIT("gzip");
	h.props.headers = raw_every;
	h.props.priority = 5;
	h.props.correlation_id = BYTES_LIT("c-1");
	h.props.reply_to = BYTES_LIT("amq.rabbitmq.reply-to");
	h.props.message_id = BYTES_LIT("m-1");
	h.props.timestamp = 1700000000;
	h.props.type = BYTES_LIT("t");
	h.props.user_id = BYTES_LIT("guest");
	h.props.app_id = BYTES_LIT("app");
	h.props.cluster_id = BYTES_LIT("");
	wbuf_init(all);
	content_header_encode(all, &h);
	emit("fuzz_content_header", "all-properties", all->p, all->len);
}

static void frames(const struct wbuf *hdr_none, const struct wbuf *hdr_all)
{
	struct amqp_method x;
	struct wbuf m, b;
	static const uint32_t maxes[] = { 131072, 4096, 0, 9 };
	static const char body[300] = "hello";

	wbuf_init(&m);
	memset(&x, 0, sizeof(x));
	x.id = AMQP_basic_publish;
	x.a.basic_publish.exchange = BYTES_LIT("amq.topic");
	x.a.basic_publish.routing_key = BYTES_LIT("a.b.c");
	method_encode(&m, &x);

	wbuf_init(&b);
	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		char name[64];

		wbuf_reset(&b);
		wbuf_put_u32(&b, maxes[i]);
		sess_frame(&b, AMQP_FRAME_METHOD, 1, m.p, m.len);
		sess_frame(&b, AMQP_FRAME_HEADER, 1, hdr_none->p, hdr_none->len);
		sess_frame(&b, AMQP_FRAME_BODY, 1, body, 5);
		sess_frame(&b, AMQP_FRAME_HEARTBEAT, 0, "", 0);
		sess_frame(&b, AMQP_FRAME_METHOD, 1, m.p, m.len);
		sess_frame(&b, AMQP_FRAME_HEADER, 1, hdr_all->p, hdr_all->len);
		sess_frame(&b, AMQP_FRAME_BODY, 1, body, 200);
		sess_frame(&b, AMQP_FRAME_BODY, 1, body + 200, 100);
		snprintf(name, sizeof(name), "publish-frame-max-%u",
		    (unsigned)maxes[i]);
		emit("fuzz_frames", name, b.p, b.len);
	}
	/* A frame with a bad frame-end, and one cut short. */
	wbuf_reset(&b);
	wbuf_put_u32(&b, 4096);
	sess_frame(&b, AMQP_FRAME_HEARTBEAT, 0, "", 0);
	b.p[b.len - 1] = 0xCD;
	emit("fuzz_frames", "bad-end", b.p, b.len);
	wbuf_reset(&b);
	wbuf_put_u32(&b, 4096);
	sess_frame(&b, AMQP_FRAME_METHOD, 1, m.p, m.len);
	emit("fuzz_frames", "truncated", b.p, b.len - 3);
	wbuf_free(&b);
	wbuf_free(&m);
}

static void topics(void)
{
	static const char *scripts[][2] = {
		{ "basic",
		  "+0a.b.c\n+1a.*.c\n+2a.#\n+3#\n+4*.b.*\n"
		  "a.b.c\na.x.c\na\nb.b.b\n\n-2a.#\na.b.c\n" },
		{ "empty-words",
		  "+0a..b\n+1a.*.b\n+2.\n+3*.*\n+4\n+5#.#\n"
		  "a..b\n.\n\na.b\n..\n-4\n\n" },
		{ "hashes",
		  "+0#.a.#\n+1a.#.#.b\n+2#.#.#\n+3#.*\n+4*.#\n"
		  "a\nb.a.c\na.b\na.x.y.b\nz\n\n-3#.*\nz\n" },
		{ "shared-values",
		  "+0a.b\n+0a.*\n+0a.b\n+1#\n-0a.b\na.b\n-0a.b\n-0a.b\na.b\n"
		  "+7long-word-longer-than-twenty-four-bytes.x\n"
		  "long-word-longer-than-twenty-four-bytes.x\n" },
		{ "wild-literals",
		  "+0a*.b#\n+1*\n+2#\n+3**\na*.b#\n*\n#\n**\n" },
	};

	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		emit("fuzz_topic", scripts[i][0], scripts[i][1],
		    strlen(scripts[i][1]));
}

/* ---- fuzz_connection: whole sessions -------------------------------------- */

/* The table in t (one, begun at offset 0) as the codec takes it. */
static struct bytes raw(const struct wbuf *t)
{
	return (struct bytes){ t->p + 4, (uint32_t)(t->len - 4) };
}

static void ch_open(struct wbuf *b, uint16_t ch)
{
	sess_bare(b, ch, AMQP_channel_open);
}

static void ch_close(struct wbuf *b, uint16_t ch)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_channel_close;
	m.a.channel_close.reply_code = AMQP_REPLY_SUCCESS;
	m.a.channel_close.reply_text = BYTES_LIT("bye");
	sess_method(b, ch, &m);
}

static void q_declare(struct wbuf *b, uint16_t ch, const char *name,
    bool durable, bool exclusive, bool auto_delete, struct bytes args)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_queue_declare;
	m.a.queue_declare.queue = bytes_str(name);
	m.a.queue_declare.durable = durable;
	m.a.queue_declare.exclusive = exclusive;
	m.a.queue_declare.auto_delete = auto_delete;
	m.a.queue_declare.arguments = args;
	sess_method(b, ch, &m);
}

static void q_bind(struct wbuf *b, uint16_t ch, const char *q,
    const char *x, const char *key, struct bytes args)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_queue_bind;
	m.a.queue_bind.queue = bytes_str(q);
	m.a.queue_bind.exchange = bytes_str(x);
	m.a.queue_bind.routing_key = bytes_str(key);
	m.a.queue_bind.arguments = args;
	sess_method(b, ch, &m);
}

static void x_declare(struct wbuf *b, uint16_t ch, const char *name,
    const char *type, bool durable, struct bytes args)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_exchange_declare;
	m.a.exchange_declare.exchange = bytes_str(name);
	m.a.exchange_declare.type = bytes_str(type);
	m.a.exchange_declare.durable = durable;
	m.a.exchange_declare.arguments = args;
	sess_method(b, ch, &m);
}

static void consume(struct wbuf *b, uint16_t ch, const char *q,
    const char *tag, bool no_ack, struct bytes args)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_consume;
	m.a.basic_consume.queue = bytes_str(q);
	m.a.basic_consume.consumer_tag = bytes_str(tag);
	m.a.basic_consume.no_ack = no_ack;
	m.a.basic_consume.arguments = args;
	sess_method(b, ch, &m);
}

static void get(struct wbuf *b, uint16_t ch, const char *q, bool no_ack)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_get;
	m.a.basic_get.queue = bytes_str(q);
	m.a.basic_get.no_ack = no_ack;
	sess_method(b, ch, &m);
}

/* ack (requeue < 0), nack (requeue 0 or 1) or reject (multiple < 0). */
static void settle(struct wbuf *b, uint16_t ch, uint64_t tag, int multiple,
    int requeue)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	if (multiple < 0) {
		m.id = AMQP_basic_reject;
		m.a.basic_reject.delivery_tag = tag;
		m.a.basic_reject.requeue = requeue > 0;
	} else if (requeue < 0) {
		m.id = AMQP_basic_ack;
		m.a.basic_ack.delivery_tag = tag;
		m.a.basic_ack.multiple = multiple;
	} else {
		m.id = AMQP_basic_nack;
		m.a.basic_nack.delivery_tag = tag;
		m.a.basic_nack.multiple = multiple;
		m.a.basic_nack.requeue = requeue;
	}
	sess_method(b, ch, &m);
}

static void qos(struct wbuf *b, uint16_t ch, uint16_t count, bool global)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_qos;
	m.a.basic_qos.prefetch_count = count;
	m.a.basic_qos.global = global;
	sess_method(b, ch, &m);
}

static void hello(struct wbuf *b, uint16_t ch, const char *x, const char *key)
{
	sess_publish(b, ch, x, key, false, NULL, "hello", 5);
}

static const struct bytes no_args = { NULL, 0 };

static void s_publish_get(struct wbuf *b)
{
	ch_open(b, 1);
	q_declare(b, 1, "q1", false, false, false, no_args);
	hello(b, 1, "", "q1");
	hello(b, 1, "", "q1");
	get(b, 1, "q1", false);
	settle(b, 1, 1, false, -1);
	get(b, 1, "q1", true);
	get(b, 1, "q1", false);
	{
		struct amqp_method m;

		memset(&m, 0, sizeof(m));
		m.id = AMQP_queue_delete;
		m.a.queue_delete.queue = BYTES_LIT("q1");
		sess_method(b, 1, &m);
	}
	ch_close(b, 1);
}

static void s_consume(struct wbuf *b)
{
	struct amqp_method m;

	ch_open(b, 1);
	q_declare(b, 1, "q2", false, false, true, no_args);
	qos(b, 1, 2, false);
	consume(b, 1, "q2", "c1", false, no_args);
	hello(b, 1, "", "q2");
	hello(b, 1, "", "q2");
	hello(b, 1, "", "q2");
	settle(b, 1, 2, true, -1);		/* ack 1 and 2: 3 comes */
	settle(b, 1, 3, false, 1);		/* nack, requeue: back as 4 */
	settle(b, 1, 4, -1, 0);			/* reject, drop */
	hello(b, 1, "", "q2");
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_recover;
	m.a.basic_recover.requeue = true;
	sess_method(b, 1, &m);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_cancel;
	m.a.basic_cancel.consumer_tag = BYTES_LIT("c1");
	sess_method(b, 1, &m);
	ch_close(b, 1);
}

static void s_confirm_durable(struct wbuf *b)
{
	struct basic_properties p;

	memset(&p, 0, sizeof(p));
	p.flags = PROP_FLAG(PROP_delivery_mode);
	p.delivery_mode = 2;
	ch_open(b, 1);
	sess_bare(b, 1, AMQP_confirm_select);
	x_declare(b, 1, "dx", "direct", true, no_args);
	q_declare(b, 1, "dq", true, false, false, no_args);
	q_bind(b, 1, "dq", "dx", "k", no_args);
	sess_publish(b, 1, "dx", "k", false, &p, "persistent", 10);
	sess_publish(b, 1, "dx", "k", false, &p, "persistent", 10);
	sess_publish(b, 1, "dx", "nowhere", true, &p, "returned", 8);
	get(b, 1, "dq", false);
	ch_close(b, 1);
}

static void s_tx(struct wbuf *b)
{
	struct basic_properties p;

	memset(&p, 0, sizeof(p));
	p.flags = PROP_FLAG(PROP_delivery_mode);
	p.delivery_mode = 2;
	ch_open(b, 1);
	q_declare(b, 1, "tq", true, false, false, no_args);
	sess_bare(b, 1, AMQP_tx_select);
	sess_publish(b, 1, "", "tq", false, &p, "one", 3);
	hello(b, 1, "", "tq");
	sess_bare(b, 1, AMQP_tx_commit);
	hello(b, 1, "", "tq");
	sess_bare(b, 1, AMQP_tx_rollback);
	get(b, 1, "tq", false);
	settle(b, 1, 1, false, -1);
	sess_bare(b, 1, AMQP_tx_commit);
	ch_close(b, 1);
}

static void s_exchanges(struct wbuf *b)
{
	struct wbuf ae, hb, hp;
	struct basic_properties p;
	size_t t;

	wbuf_init(&ae);
	t = ftw_begin(&ae);
	ftw_longstr(&ae, "alternate-exchange", "amq.fanout");
	ftw_end(&ae, t);
	wbuf_init(&hb);
	t = ftw_begin(&hb);
	ftw_longstr(&hb, "x-match", "all");
	ftw_longstr(&hb, "k", "v");
	ftw_end(&hb, t);
	wbuf_init(&hp);
	t = ftw_begin(&hp);
	ftw_longstr(&hp, "k", "v");
	ftw_i64(&hp, "n", 1);
	ftw_end(&hp, t);
	memset(&p, 0, sizeof(p));
	p.flags = PROP_FLAG(PROP_headers);
	p.headers = raw(&hp);

	ch_open(b, 1);
	x_declare(b, 1, "t1", "topic", false, raw(&ae));
	x_declare(b, 1, "f1", "fanout", false, no_args);
	x_declare(b, 1, "h1", "headers", false, no_args);
	x_declare(b, 1, "c1", "x-consistent-hash", false, no_args);
	{
		struct amqp_method m;

		memset(&m, 0, sizeof(m));
		m.id = AMQP_exchange_bind;
		m.a.exchange_bind.destination = BYTES_LIT("f1");
		m.a.exchange_bind.source = BYTES_LIT("t1");
		m.a.exchange_bind.routing_key = BYTES_LIT("a.#");
		sess_method(b, 1, &m);
	}
	q_declare(b, 1, "xq", false, true, false, no_args);
	q_bind(b, 1, "xq", "f1", "", no_args);
	q_bind(b, 1, "xq", "h1", "", raw(&hb));
	q_bind(b, 1, "xq", "c1", "3", no_args);
	q_bind(b, 1, "xq", "t1", "*.c", no_args);
	hello(b, 1, "t1", "a.b");
	hello(b, 1, "t1", "b.c");
	hello(b, 1, "t1", "z");
	hello(b, 1, "c1", "some key");
	sess_publish(b, 1, "h1", "", true, &p, "headers", 7);
	{
		struct amqp_method m;

		memset(&m, 0, sizeof(m));
		m.id = AMQP_exchange_unbind;
		m.a.exchange_unbind.destination = BYTES_LIT("f1");
		m.a.exchange_unbind.source = BYTES_LIT("t1");
		m.a.exchange_unbind.routing_key = BYTES_LIT("a.#");
		sess_method(b, 1, &m);
		memset(&m, 0, sizeof(m));
		m.id = AMQP_queue_unbind;
		m.a.queue_unbind.queue = BYTES_LIT("xq");
		m.a.queue_unbind.exchange = BYTES_LIT("h1");
		m.a.queue_unbind.arguments = raw(&hb);
		sess_method(b, 1, &m);
		memset(&m, 0, sizeof(m));
		m.id = AMQP_queue_purge;
		m.a.queue_purge.queue = BYTES_LIT("xq");
		sess_method(b, 1, &m);
		memset(&m, 0, sizeof(m));
		m.id = AMQP_exchange_delete;
		m.a.exchange_delete.exchange = BYTES_LIT("t1");
		m.a.exchange_delete.if_unused = true;
		sess_method(b, 1, &m);
	}
	ch_close(b, 1);
	wbuf_free(&ae);
	wbuf_free(&hb);
	wbuf_free(&hp);
}

static void s_queue_args(struct wbuf *b)
{
	struct wbuf a, d;
	struct basic_properties p;
	size_t t;

	wbuf_init(&a);
	t = ftw_begin(&a);
	ftw_i64(&a, "x-max-length", 1);
	ftw_longstr(&a, "x-overflow", "reject-publish-dlx");
	ftw_longstr(&a, "x-dead-letter-exchange", "");
	ftw_longstr(&a, "x-dead-letter-routing-key", "dead");
	ftw_i64(&a, "x-max-priority", 5);
	ftw_i64(&a, "x-expires", 600000);
	ftw_end(&a, t);
	wbuf_init(&d);
	t = ftw_begin(&d);
	ftw_i64(&d, "x-message-ttl", 0);
	ftw_longstr(&d, "x-dead-letter-exchange", "");
	ftw_longstr(&d, "x-dead-letter-routing-key", "dead");
	ftw_end(&d, t);
	memset(&p, 0, sizeof(p));
	p.flags = PROP_FLAG(PROP_priority) | PROP_FLAG(PROP_expiration) |
	    PROP_FLAG(PROP_message_id) | PROP_FLAG(PROP_content_type);
	p.priority = 3;
	p.expiration = BYTES_LIT("60000");
	p.message_id = BYTES_LIT("m-1");
	p.content_type = BYTES_LIT("text/plain");

	ch_open(b, 1);
	sess_bare(b, 1, AMQP_confirm_select);
	q_declare(b, 1, "dead", false, false, false, no_args);
	q_declare(b, 1, "limited", false, false, false, raw(&a));
	q_declare(b, 1, "ttl0", false, false, false, raw(&d));
	sess_publish(b, 1, "", "limited", false, &p, "first", 5);
	sess_publish(b, 1, "", "limited", false, &p, "second", 6);
	hello(b, 1, "", "ttl0");
	get(b, 1, "dead", true);		/* delivery tag 1, settled */
	get(b, 1, "dead", false);		/* tag 2 */
	settle(b, 1, 2, false, 0);
	q_declare(b, 1, "limited", false, false, false, no_args); /* 406 */
	sess_bare(b, 1, AMQP_channel_close_ok);
	ch_open(b, 1);
	get(b, 1, "limited", false);
	ch_close(b, 1);
	wbuf_free(&a);
	wbuf_free(&d);
}

static void s_stream(struct wbuf *b)
{
	struct wbuf a, c;
	size_t t;

	wbuf_init(&a);
	t = ftw_begin(&a);
	ftw_longstr(&a, "x-queue-type", "stream");
	ftw_end(&a, t);
	wbuf_init(&c);
	t = ftw_begin(&c);
	ftw_longstr(&c, "x-stream-offset", "first");
	ftw_end(&c, t);
	ch_open(b, 1);
	q_declare(b, 1, "s1", true, false, false, raw(&a));
	hello(b, 1, "", "s1");
	hello(b, 1, "", "s1");
	hello(b, 1, "", "s1");
	qos(b, 1, 10, false);
	consume(b, 1, "s1", "sc", false, raw(&c));
	settle(b, 1, 1, false, -1);
	settle(b, 1, 3, true, -1);
	ch_close(b, 1);
	wbuf_free(&a);
	wbuf_free(&c);
}

static void s_reply_to(struct wbuf *b)
{
	struct basic_properties p;

	memset(&p, 0, sizeof(p));
	p.flags = PROP_FLAG(PROP_reply_to) | PROP_FLAG(PROP_correlation_id);
	p.reply_to = BYTES_LIT("amq.rabbitmq.reply-to");
	p.correlation_id = BYTES_LIT("1");
	ch_open(b, 1);
	ch_open(b, 2);
	q_declare(b, 2, "rpc", false, false, true, no_args);
	consume(b, 1, "amq.rabbitmq.reply-to", "", true, no_args);
	sess_publish(b, 1, "", "rpc", false, &p, "request", 7);
	consume(b, 2, "rpc", "server", false, no_args);
	settle(b, 2, 1, false, -1);
	ch_close(b, 2);
	ch_close(b, 1);
}

static void s_channels(struct wbuf *b)
{
	struct amqp_method m;

	ch_open(b, 1);
	ch_open(b, 2);
	ch_open(b, 65535);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_channel_flow;
	m.a.channel_flow.active = true;
	sess_method(b, 2, &m);
	qos(b, 2, 5, true);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_queue_declare;
	m.a.queue_declare.queue = BYTES_LIT("missing");
	m.a.queue_declare.passive = true;
	sess_method(b, 1, &m);		/* 404: the broker closes channel 1 */
	hello(b, 1, "", "ignored");	/* dropped until close-ok */
	sess_bare(b, 1, AMQP_channel_close_ok);
	ch_open(b, 1);
	q_declare(b, 65535, "", false, true, false, no_args);
	hello(b, 65535, "", "");
	get(b, 65535, "", false);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_recover_async;
	m.a.basic_recover_async.requeue = true;
	sess_method(b, 65535, &m);
	ch_close(b, 2);
	ch_open(b, 2);
	ch_open(b, 2);			/* 504: connection.close, and the
					 * close-ok never comes */
}

/* connection.close from the broker (530), answered a read later. */
static void s_close_ok(struct wbuf *b)
{
	for (int i = 0; i < 8; i++)	/* ignored while closing */
		sess_frame(b, AMQP_FRAME_HEARTBEAT, 0, "", 0);
	sess_bare(b, 0, AMQP_connection_close_ok);
}

static void s_big_body(struct wbuf *b)
{
	static uint8_t body[9000];
	struct amqp_method m;

	memset(body, 'x', sizeof(body));
	ch_open(b, 1);
	q_declare(b, 1, "big", false, false, false, no_args);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_publish;
	m.a.basic_publish.routing_key = BYTES_LIT("big");
	sess_method(b, 1, &m);
	sess_content(b, 1, NULL, body, sizeof(body), 4096);
	consume(b, 1, "big", "", true, no_args);
	ch_close(b, 1);
}

static void s_heartbeats(struct wbuf *b)
{
	sess_frame(b, AMQP_FRAME_HEARTBEAT, 0, "", 0);
	ch_open(b, 1);
	sess_frame(b, AMQP_FRAME_HEARTBEAT, 0, "", 0);
	ch_close(b, 1);
}

/* Hostile: the broker must close cleanly. */
static void s_bad_frame_end(struct wbuf *b)
{
	ch_open(b, 1);
	sess_frame(b, AMQP_FRAME_HEARTBEAT, 0, "", 0);
	b->p[b->len - 1] = 0xCD;
	ch_open(b, 2);
}

static void s_frame_too_large(struct wbuf *b)
{
	wbuf_put_u8(b, AMQP_FRAME_METHOD);
	wbuf_put_u16(b, 1);
	wbuf_put_u32(b, 0x7fffffff);
	wbuf_put_raw(b, "\0\x14\0\x0a", 4);
}

static void s_content_errors(struct wbuf *b)
{
	static const uint8_t junk[] = { 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
	    0xff, 0xff };

	ch_open(b, 1);
	sess_frame(b, AMQP_FRAME_BODY, 1, "early", 5);	/* body first */
	sess_bare(b, 1, AMQP_channel_close_ok);
	ch_open(b, 1);
	hello(b, 1, "", "x");
	sess_frame(b, AMQP_FRAME_HEADER, 1, junk, sizeof(junk));
	sess_frame(b, AMQP_FRAME_HEADER, 0, junk, sizeof(junk));
	sess_frame(b, 9, 0, "", 0);			/* unknown type */
}

static void s_truncated_content(struct wbuf *b)
{
	ch_open(b, 1);
	q_declare(b, 1, "tc", false, false, false, no_args);
	hello(b, 1, "", "tc");
	{
		struct amqp_method m;

		memset(&m, 0, sizeof(m));
		m.id = AMQP_basic_publish;
		m.a.basic_publish.routing_key = BYTES_LIT("tc");
		sess_method(b, 1, &m);
	}
	{
		struct content_header h;
		struct wbuf p;

		memset(&h, 0, sizeof(h));
		h.class_id = 60;
		h.body_size = 100000;
		wbuf_init(&p);
		content_header_encode(&p, &h);
		sess_frame(b, AMQP_FRAME_HEADER, 1, p.p, p.len);
		wbuf_free(&p);
	}
	sess_frame(b, AMQP_FRAME_BODY, 1, "part", 4);
	/* ... and a frame cut short: the client hangs up mid-message. */
	wbuf_put_u8(b, AMQP_FRAME_BODY);
	wbuf_put_u16(b, 1);
	wbuf_put_u32(b, 1000);
	wbuf_put_raw(b, "abc", 3);
}

/* Nothing after the handshake. */
static void s_nothing(struct wbuf *b)
{
	(void)b;
}

typedef void session_fn(struct wbuf *b);

enum { CLOSE = 1, AMQPLAIN = 2, NOHELLO = 4, V09 = 8, SMALL = 16 };

/* chunk: the first byte (0: whole, N: N bytes at a time). */
static void session(const char *name, uint8_t chunk, unsigned flags,
    const char *vhost, session_fn *fn)
{
	struct wbuf b;
	struct amqp_method m;

	wbuf_init(&b);
	wbuf_put_u8(&b, chunk);
	if (!(flags & NOHELLO)) {
		sess_handshake(&b, flags & AMQPLAIN, flags & SMALL ?
		    AMQP_FRAME_MIN_SIZE : SESS_FRAME_MAX, 0, vhost);
		if (flags & V09)
			memcpy(b.p + 1, AMQP_PROTOCOL_HEADER_0_9, 8);
	}
	fn(&b);
	if (flags & CLOSE) {
		memset(&m, 0, sizeof(m));
		m.id = AMQP_connection_close;
		m.a.connection_close.reply_code = AMQP_REPLY_SUCCESS;
		m.a.connection_close.reply_text = BYTES_LIT("done");
		sess_method(&b, 0, &m);
	}
	emit("fuzz_connection", name, b.p, b.len);
	wbuf_free(&b);
}

static void raw_seed(const char *name, const void *p, size_t n)
{
	emit("fuzz_connection", name, p, n);
}

static void connections(void)
{
	session("handshake-close", 0, CLOSE, "/", s_nothing);
	session("handshake-amqplain-0-9", 0, CLOSE | AMQPLAIN | V09, "/",
	    s_heartbeats);
	session("handshake-chunk-1", 1, CLOSE, "/", s_heartbeats);
	session("unknown-vhost", 0, 0, "nope", s_nothing);
	session("unknown-vhost-close-ok-chunk-64", 64, 0, "nope", s_close_ok);
	session("publish-get", 0, CLOSE, "/", s_publish_get);
	session("publish-get-chunk-3", 3, CLOSE, "/", s_publish_get);
	session("publish-get-chunk-100", 100, CLOSE, "/", s_publish_get);
	session("consume-ack", 0, CLOSE, "/", s_consume);
	session("consume-ack-chunk-7", 7, CLOSE, "/", s_consume);
	session("confirm-durable", 0, CLOSE, "/", s_confirm_durable);
	session("confirm-durable-chunk-64", 64, CLOSE, "/", s_confirm_durable);
	session("tx", 0, CLOSE, "/", s_tx);
	session("tx-chunk-29", 29, CLOSE, "/", s_tx);
	session("exchanges", 0, CLOSE, "/", s_exchanges);
	session("queue-args", 0, CLOSE, "/", s_queue_args);
	session("queue-args-chunk-64", 64, CLOSE, "/", s_queue_args);
	session("stream", 0, CLOSE, "/", s_stream);
	session("stream-chunk-64", 64, CLOSE, "/", s_stream);
	session("reply-to", 0, CLOSE, "/", s_reply_to);
	session("reply-to-chunk-64", 64, CLOSE, "/", s_reply_to);
	session("channels", 0, 0, "/", s_channels);
	session("channels-chunk-40", 40, 0, "/", s_channels);
	session("big-body-frame-max-4096", 0, CLOSE | SMALL, "/", s_big_body);
	session("big-body-chunk-255", 255, CLOSE | SMALL, "/", s_big_body);
	session("no-close", 0, 0, "/", s_consume);
	session("bad-frame-end", 0, 0, "/", s_bad_frame_end);
	session("frame-too-large", 0, 0, "/", s_frame_too_large);
	session("content-errors", 0, 0, "/", s_content_errors);
	session("truncated-content", 5, 0, "/", s_truncated_content);
	raw_seed("bad-protocol-header", "\0AMQP\0\0\x08\0", 9);
	raw_seed("http-request", "\0GET / HTTP/1.1\r\nHost: x\r\n\r\n", 28);
	raw_seed("empty-stream", "\0", 1);
	/* start-ok with a wrong password: 403, then close-ok unanswered. */
	{
		struct wbuf b;
		struct amqp_method m;

		wbuf_init(&b);
		wbuf_put_u8(&b, 0);
		wbuf_put_raw(&b, AMQP_PROTOCOL_HEADER, 8);
		memset(&m, 0, sizeof(m));
		m.id = AMQP_connection_start_ok;
		m.a.connection_start_ok.mechanism = BYTES_LIT("PLAIN");
		m.a.connection_start_ok.response = BYTES_LIT("\0guest\0wrong");
		m.a.connection_start_ok.locale = BYTES_LIT("en_US");
		sess_method(&b, 0, &m);
		emit("fuzz_connection", "wrong-password", b.p, b.len);
		wbuf_free(&b);
	}
}

int main(int argc, char **argv)
{
	struct wbuf none, all;
	size_t a, e;

	if (argc > 1)
		root = argv[1];
	if (mkdir(root, 0777) != 0 && errno != EEXIST) {
		perror(root);
		return 1;
	}
	wbuf_init(&tables);
	a = tables.len;
	queue_args_table(&tables);
	e = tables.len;
	every_type_table(&tables);
	/* Raw tables: without their u32 length prefix. */
	raw_args = (struct bytes){ tables.p + a + 4, (uint32_t)(e - a - 4) };
	raw_every = (struct bytes){ tables.p + e + 4,
	    (uint32_t)(tables.len - e - 4) };

	methods();
	field_tables();
	content_headers(&none, &all);
	frames(&none, &all);
	topics();
	connections();
	wbuf_free(&none);
	wbuf_free(&all);
	wbuf_free(&tables);
	return 0;
}
