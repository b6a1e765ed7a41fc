/*
 * Writes the seed corpora under a directory (default tests/fuzz/corpus):
 * every AMQP method encoded by the codec, field tables using every type,
 * content headers, frame streams and topic pattern/key scripts.
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

static void put_frame(struct wbuf *b, uint8_t type, uint16_t ch,
    const void *p, size_t n)
{
	wbuf_put_u8(b, type);
	wbuf_put_u16(b, ch);
	wbuf_put_u32(b, (uint32_t)n);
	wbuf_put_raw(b, p, n);
	wbuf_put_u8(b, AMQP_FRAME_END);
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
		put_frame(&b, AMQP_FRAME_METHOD, 1, m.p, m.len);
		put_frame(&b, AMQP_FRAME_HEADER, 1, hdr_none->p, hdr_none->len);
		put_frame(&b, AMQP_FRAME_BODY, 1, body, 5);
		put_frame(&b, AMQP_FRAME_HEARTBEAT, 0, "", 0);
		put_frame(&b, AMQP_FRAME_METHOD, 1, m.p, m.len);
		put_frame(&b, AMQP_FRAME_HEADER, 1, hdr_all->p, hdr_all->len);
		put_frame(&b, AMQP_FRAME_BODY, 1, body, 200);
		put_frame(&b, AMQP_FRAME_BODY, 1, body + 200, 100);
		snprintf(name, sizeof(name), "publish-frame-max-%u",
		    (unsigned)maxes[i]);
		emit("fuzz_frames", name, b.p, b.len);
	}
	/* A frame with a bad frame-end, and one cut short. */
	wbuf_reset(&b);
	wbuf_put_u32(&b, 4096);
	put_frame(&b, AMQP_FRAME_HEARTBEAT, 0, "", 0);
	b.p[b.len - 1] = 0xCD;
	emit("fuzz_frames", "bad-end", b.p, b.len);
	wbuf_reset(&b);
	wbuf_put_u32(&b, 4096);
	put_frame(&b, AMQP_FRAME_METHOD, 1, m.p, m.len);
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
	wbuf_free(&none);
	wbuf_free(&all);
	wbuf_free(&tables);
	return 0;
}
