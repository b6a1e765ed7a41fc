/*
 * Unit tests for frames: the frame_peek push parser over an evbuffer
 * (partial input, back-to-back frames, frame_max, bad frame-end) and the
 * writers (method, heartbeat, content split to frame_max).
 *
 * Every evbuffer is freed at the end of its test, so body references taken
 * by frame_put_content are released and LeakSanitizer sees no leak.
 */
#include <check.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"
#include "frame.h"
#include "message.h"
#include "method.h"
#include "properties.h"
#include "wire.h"

#define FX(...) (const uint8_t[]){ __VA_ARGS__ }, \
	sizeof((const uint8_t[]){ __VA_ARGS__ })

/* Append a raw frame: header, payload, then the given end octet. */
static void add_frame(struct evbuffer *b, uint8_t type, uint16_t ch,
    const void *payload, uint32_t size, uint8_t end)
{
	uint8_t hdr[7] = {
		type, (uint8_t)(ch >> 8), (uint8_t)ch,
		(uint8_t)(size >> 24), (uint8_t)(size >> 16),
		(uint8_t)(size >> 8), (uint8_t)size,
	};

	evbuffer_add(b, hdr, sizeof(hdr));
	if (size)
		evbuffer_add(b, payload, size);
	evbuffer_add(b, &end, 1);
}

/* The whole evbuffer as a malloc'd flat copy. */
static uint8_t *flatten(struct evbuffer *b, size_t *n)
{
	uint8_t *p;

	*n = evbuffer_get_length(b);
	p = malloc(*n ? *n : 1);
	ck_assert_int_eq(evbuffer_copyout(b, p, *n), (ev_ssize_t)*n);
	return p;
}

/* ---- frame_peek ----------------------------------------------------------- */

START_TEST(test_partial_header)
{
	static const uint8_t frame[] = {
		1, 0x00, 0x05, 0, 0, 0, 2, 0xAA, 0xBB, 0xCE,
	};
	struct evbuffer *in = evbuffer_new();
	struct frame f;

	/* 0..6 header bytes: need more. */
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	for (size_t i = 0; i < 7; i++) {
		evbuffer_add(in, frame + i, 1);
		if (i < 6)
			ck_assert_int_eq(frame_peek(in, 4096, &f),
			    FRAME_NEED_MORE);
	}
	/* Whole header, partial payload and missing frame-end: need more. */
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	evbuffer_add(in, frame + 7, 1);
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	evbuffer_add(in, frame + 8, 1);
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	/* Nothing was consumed while waiting. */
	ck_assert_uint_eq(evbuffer_get_length(in), 9);
	evbuffer_add(in, frame + 9, 1);
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, 1);
	ck_assert_uint_eq(f.channel, 5);
	ck_assert_uint_eq(f.payload.len, 2);
	ck_assert_mem_eq(f.payload.ptr, "\xAA\xBB", 2);
	/* Peeking again without consuming sees the same frame. */
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.payload.len, 2);
	frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_partial_payload_large)
{
	/* A 3000-byte payload arriving in 1000-byte pieces, in separate
	 * evbuffer chains (frame_peek must see across chain boundaries). */
	uint8_t *payload = malloc(3000);
	struct evbuffer *in = evbuffer_new();
	struct frame f;
	uint8_t hdr[7] = { 3, 0xFF, 0xFE, 0, 0, 0x0B, 0xB8 };

	for (int i = 0; i < 3000; i++)
		payload[i] = (uint8_t)(i * 13 + 1);
	evbuffer_add(in, hdr, 7);
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
		evbuffer_add(in, payload + k * 1000, 1000);
	}
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	evbuffer_add(in, "\xCE", 1);
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_BODY);
	ck_assert_uint_eq(f.channel, 0xFFFE);
	ck_assert_uint_eq(f.payload.len, 3000);
	ck_assert_mem_eq(f.payload.ptr, payload, 3000);
	frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
	free(payload);
}
END_TEST

START_TEST(test_empty_payload)
{
	struct evbuffer *in = evbuffer_new();
	struct frame f;

	evbuffer_add(in, FX(8, 0, 0, 0, 0, 0, 0));
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	evbuffer_add(in, FX(0xCE));
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_HEARTBEAT);
	ck_assert_uint_eq(f.channel, 0);
	ck_assert_uint_eq(f.payload.len, 0);
	frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_back_to_back)
{
	struct evbuffer *in = evbuffer_new();
	struct frame f;

	add_frame(in, 1, 1, "first", 5, 0xCE);
	add_frame(in, 2, 0x0102, "second!", 7, 0xCE);
	add_frame(in, 8, 0, NULL, 0, 0xCE);
	/* ...and the first 3 bytes of a fourth frame. */
	evbuffer_add(in, FX(3, 0, 9));

	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, 1);
	ck_assert_uint_eq(f.channel, 1);
	ck_assert_uint_eq(f.payload.len, 5);
	ck_assert_mem_eq(f.payload.ptr, "first", 5);
	frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 15 + 8 + 3);

	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, 2);
	ck_assert_uint_eq(f.channel, 0x0102);
	ck_assert_uint_eq(f.payload.len, 7);
	ck_assert_mem_eq(f.payload.ptr, "second!", 7);
	frame_consume(in, &f);

	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, 8);
	ck_assert_uint_eq(f.payload.len, 0);
	frame_consume(in, &f);

	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	ck_assert_uint_eq(evbuffer_get_length(in), 3);
	evbuffer_add(in, FX(0, 0, 0, 1, 'z', 0xCE));
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, 3);
	ck_assert_uint_eq(f.channel, 9);
	ck_assert_uint_eq(f.payload.len, 1);
	ck_assert_uint_eq(f.payload.ptr[0], 'z');
	frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_too_large_header_only)
{
	struct evbuffer *in = evbuffer_new();
	struct frame f;

	/* frame_max 4096 allows, like RabbitMQ's "frame size fudge" for
	 * old clients, a payload of up to 4096 bytes: 4097 is too large,
	 * known from the 7 header bytes alone. */
	evbuffer_add(in, FX(3, 0, 1, 0x00, 0x00, 0x10, 0x01));	/* 4097 */
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_TOO_LARGE);
	evbuffer_drain(in, evbuffer_get_length(in));

	evbuffer_add(in, FX(3, 0, 1, 0x00, 0x00, 0x10, 0x00));	/* 4096 */
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_NEED_MORE);
	evbuffer_drain(in, evbuffer_get_length(in));

	/* Hostile sizes. */
	evbuffer_add(in, FX(1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF));
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_TOO_LARGE);
	ck_assert_int_eq(frame_peek(in, 131072, &f), FRAME_TOO_LARGE);
	evbuffer_drain(in, evbuffer_get_length(in));
	evbuffer_add(in, FX(1, 0, 0, 0x80, 0x00, 0x00, 0x00));
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_TOO_LARGE);
	evbuffer_drain(in, evbuffer_get_length(in));

	/* Other frame_max values: the payload bound is frame_max. */
	evbuffer_add(in, FX(1, 0, 0, 0x00, 0x02, 0x00, 0x01));	/* 131073 */
	ck_assert_int_eq(frame_peek(in, 131072, &f), FRAME_TOO_LARGE);
	ck_assert_int_eq(frame_peek(in, 131073, &f), FRAME_NEED_MORE);
	evbuffer_drain(in, evbuffer_get_length(in));
	evbuffer_free(in);
}
END_TEST

START_TEST(test_max_size_frame_ready)
{
	/* A frame of exactly frame_max bytes is accepted whole. */
	struct evbuffer *in = evbuffer_new();
	uint8_t *payload = calloc(1, 4088);
	struct frame f;

	payload[0] = 0x11;
	payload[4087] = 0x22;
	add_frame(in, 3, 2, payload, 4088, 0xCE);
	ck_assert_uint_eq(evbuffer_get_length(in), 4096);
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.payload.len, 4088);
	ck_assert_uint_eq(f.payload.ptr[0], 0x11);
	ck_assert_uint_eq(f.payload.ptr[4087], 0x22);
	/* Refused once frame_max is below the payload itself. */
	ck_assert_int_eq(frame_peek(in, 4088, &f), FRAME_READY);
	ck_assert_int_eq(frame_peek(in, 4087, &f), FRAME_TOO_LARGE);
	evbuffer_free(in);
	free(payload);
}
END_TEST

START_TEST(test_frame_max_zero_unlimited)
{
	enum { N = 300000 };
	struct evbuffer *in = evbuffer_new();
	uint8_t *payload = malloc(N);
	struct frame f;

	for (int i = 0; i < N; i++)
		payload[i] = (uint8_t)(i >> 3);
	/* Header only: a large size is not refused, just waited for. */
	evbuffer_add(in, FX(3, 0, 4, 0x00, 0x04, 0x93, 0xE0));	/* 300000 */
	ck_assert_int_eq(frame_peek(in, 0, &f), FRAME_NEED_MORE);
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_TOO_LARGE);
	evbuffer_add(in, payload, N);
	evbuffer_add(in, FX(0xCE));
	ck_assert_int_eq(frame_peek(in, 0, &f), FRAME_READY);
	ck_assert_uint_eq(f.channel, 4);
	ck_assert_uint_eq(f.payload.len, N);
	ck_assert_mem_eq(f.payload.ptr, payload, N);
	frame_consume(in, &f);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);

	/* Even 0xFFFFFFFF is only "need more" when unlimited. */
	evbuffer_add(in, FX(3, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF));
	ck_assert_int_eq(frame_peek(in, 0, &f), FRAME_NEED_MORE);
	evbuffer_free(in);
	free(payload);
}
END_TEST

START_TEST(test_bad_end)
{
	static const uint8_t ends[] = { 0x00, 0xCD, 0xCF, 0xFF, 0x0E };
	struct evbuffer *in;
	struct frame f;

	for (size_t i = 0; i < sizeof(ends); i++) {
		in = evbuffer_new();
		add_frame(in, 1, 1, "abcd", 4, ends[i]);
		ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_BAD_END);
		ck_assert_int_eq(frame_peek(in, 0, &f), FRAME_BAD_END);
		evbuffer_free(in);
	}
	/* Empty payload with a bad end. */
	in = evbuffer_new();
	add_frame(in, 8, 0, NULL, 0, 0x00);
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_BAD_END);
	evbuffer_free(in);
	/* The octet after a too-short declared size is not the frame-end. */
	in = evbuffer_new();
	evbuffer_add(in, FX(1, 0, 1, 0, 0, 0, 2, 'a', 'b', 'c', 0xCE));
	ck_assert_int_eq(frame_peek(in, 4096, &f), FRAME_BAD_END);
	evbuffer_free(in);
}
END_TEST

/* ---- writers ----------------------------------------------------------------- */

START_TEST(test_put_heartbeat)
{
	struct evbuffer *out = evbuffer_new();
	uint8_t *p;
	size_t n;

	frame_put_heartbeat(out);
	p = flatten(out, &n);
	ck_assert_uint_eq(n, 8);
	ck_assert_mem_eq(p, ((const uint8_t[]){
	    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xCE }), 8);
	free(p);
	evbuffer_free(out);
}
END_TEST

START_TEST(test_put_method_parses_back)
{
	struct evbuffer *out = evbuffer_new();
	struct wbuf scratch;
	struct amqp_method m, d;
	struct frame f;

	wbuf_init(&scratch);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_deliver;
	m.a.basic_deliver.consumer_tag = BYTES_LIT("amq.ctag-1");
	m.a.basic_deliver.delivery_tag = UINT64_C(0x1122334455667788);
	m.a.basic_deliver.redelivered = true;
	m.a.basic_deliver.exchange = BYTES_LIT("amq.direct");
	m.a.basic_deliver.routing_key = BYTES_LIT("rk");
	frame_put_method(out, 0x0203, &m, &scratch);

	/* A second method frame behind it, reusing the scratch buffer. */
	memset(&d, 0, sizeof(d));
	d.id = AMQP_connection_close_ok;
	frame_put_method(out, 0, &d, &scratch);

	/* 7 header + 4 ids + 11 + 8 + 1 + 11 + 3 + 1 end */
	ck_assert_uint_eq(evbuffer_get_length(out), 7 + 38 + 1 + 7 + 4 + 1);

	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_METHOD);
	ck_assert_uint_eq(f.channel, 0x0203);
	ck_assert_uint_eq(f.payload.len, 38);
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(method_decode(f.payload, &d), 0);
	ck_assert_uint_eq(d.id, AMQP_basic_deliver);
	ck_assert(bytes_eq_str(d.a.basic_deliver.consumer_tag, "amq.ctag-1"));
	ck_assert(d.a.basic_deliver.delivery_tag ==
	    UINT64_C(0x1122334455667788));
	ck_assert(d.a.basic_deliver.redelivered);
	ck_assert(bytes_eq_str(d.a.basic_deliver.exchange, "amq.direct"));
	ck_assert(bytes_eq_str(d.a.basic_deliver.routing_key, "rk"));
	frame_consume(out, &f);

	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_METHOD);
	ck_assert_uint_eq(f.channel, 0);
	ck_assert_uint_eq(f.payload.len, 4);
	ck_assert_int_eq(method_decode(f.payload, &d), 0);
	ck_assert_uint_eq(d.id, AMQP_connection_close_ok);
	frame_consume(out, &f);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);

	wbuf_free(&scratch);
	evbuffer_free(out);
}
END_TEST

/* A complete message with body_len bytes of a known pattern. */
static struct message *make_message(uint64_t body_len, struct wbuf *hdr)
{
	struct content_header h;
	struct content_header parsed;
	struct message *msg;
	uint8_t chunk[1000];

	memset(&h, 0, sizeof(h));
	h.class_id = 60;
	h.body_size = body_len;
	h.props.flags = PROP_FLAG(PROP_content_type) |
	    PROP_FLAG(PROP_delivery_mode);
	h.props.content_type = BYTES_LIT("text/plain");
	h.props.delivery_mode = 2;
	wbuf_init(hdr);
	content_header_encode(hdr, &h);
	ck_assert_int_eq(content_header_parse(
	    (struct bytes){ hdr->p, (uint32_t)hdr->len }, &parsed), 0);
	msg = msg_new(BYTES_LIT("ex"), BYTES_LIT("rk"),
	    (struct bytes){ hdr->p, (uint32_t)hdr->len }, &parsed);
	for (uint64_t off = 0; off < body_len; ) {
		uint32_t n = body_len - off > sizeof(chunk) ?
		    (uint32_t)sizeof(chunk) : (uint32_t)(body_len - off);

		for (uint32_t i = 0; i < n; i++)
			chunk[i] = (uint8_t)((off + i) * 7 + ((off + i) >> 8));
		msg_append_body(msg, chunk, n);
		off += n;
	}
	ck_assert(msg_complete(msg));
	return msg;
}

/*
 * Parse the output of frame_put_content: one header frame whose payload is
 * the message's header, then body frames of at most frame_max - 8 bytes
 * that concatenate to the body.  Returns the number of body frames.
 */
static unsigned check_content(struct evbuffer *out, uint16_t ch,
    const struct message *msg, uint32_t frame_max)
{
	struct frame f;
	uint64_t off = 0;
	unsigned frames = 0;
	uint32_t max_payload = frame_max ? frame_max - 8 : UINT32_MAX;

	ck_assert_int_eq(frame_peek(out, frame_max, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_HEADER);
	ck_assert_uint_eq(f.channel, ch);
	ck_assert_uint_eq(f.payload.len, msg->header_len);
	ck_assert_mem_eq(f.payload.ptr, msg->header, msg->header_len);
	frame_consume(out, &f);

	while (evbuffer_get_length(out) > 0) {
		ck_assert_int_eq(frame_peek(out, frame_max, &f), FRAME_READY);
		ck_assert_uint_eq(f.type, AMQP_FRAME_BODY);
		ck_assert_uint_eq(f.channel, ch);
		ck_assert_uint_gt(f.payload.len, 0);
		ck_assert_uint_le(f.payload.len, max_payload);
		ck_assert_uint_le(off + f.payload.len, msg->body_len);
		ck_assert_mem_eq(f.payload.ptr, msg->body + off, f.payload.len);
		off += f.payload.len;
		frames++;
		frame_consume(out, &f);
	}
	ck_assert_uint_eq(off, msg->body_len);
	return frames;
}

START_TEST(test_put_content_split)
{
	struct wbuf hdr;
	struct message *msg = make_message(10000, &hdr);
	struct evbuffer *out = evbuffer_new();
	struct frame f;
	unsigned frames;

	frame_put_content(out, 7, msg, 4096);
	/* 8 + header, then 3 body frames (4088 + 4088 + 1824) + 3 * 8. */
	ck_assert_uint_eq(evbuffer_get_length(out),
	    8 + msg->header_len + 10000 + 3 * 8);
	/* Body frames are full-size but for the last. */
	evbuffer_drain(out, 8 + msg->header_len);
	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.payload.len, 4088);
	evbuffer_drain(out, evbuffer_get_length(out));

	frame_put_content(out, 7, msg, 4096);
	frames = check_content(out, 7, msg, 4096);
	ck_assert_uint_eq(frames, 3);
	evbuffer_free(out);
	/* Every body reference was released with the evbuffer. */
	ck_assert_uint_eq(msg->refs, 1);
	msg_unref(msg);
	wbuf_free(&hdr);
}
END_TEST

START_TEST(test_put_content_refs_released)
{
	struct wbuf hdr;
	struct message *msg = make_message(10000, &hdr);
	struct evbuffer *out = evbuffer_new();

	/* one body frame of 10000 bytes: large enough to be referenced */
	frame_put_content(out, 1, msg, 131072);
	/* Body data is referenced, not copied: the message is held... */
	ck_assert_uint_gt(msg->refs, 1);
	/* ...until the evbuffer no longer needs it. */
	evbuffer_drain(out, evbuffer_get_length(out));
	ck_assert_uint_eq(msg->refs, 1);
	evbuffer_free(out);
	msg_unref(msg);
	wbuf_free(&hdr);
}
END_TEST

/* A delivery in one piece is byte for byte the method frame followed by
 * the content frames, whatever the body size and frame_max. */
START_TEST(test_put_delivery_equals_method_then_content)
{
	static const uint64_t bodies[] = { 0, 1, 16, 511, 1024, 4087, 4088,
	    4089, 4095, 4096, 5000, 10000, 200000 };
	static const uint32_t frame_maxes[] = { 4096, 131072, 0 };
	struct wbuf hdr, scratch;
	struct amqp_method m;

	wbuf_init(&scratch);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_deliver;
	m.a.basic_deliver.consumer_tag = BYTES_LIT("amq.ctag-1");
	m.a.basic_deliver.delivery_tag = 123456789;
	m.a.basic_deliver.redelivered = true;
	m.a.basic_deliver.exchange = BYTES_LIT("ex");
	m.a.basic_deliver.routing_key = BYTES_LIT("a.routing.key");
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		for (size_t j = 0; j < 3; j++) {
			struct message *msg = make_message(bodies[i], &hdr);
			struct evbuffer *one = evbuffer_new();
			struct evbuffer *two = evbuffer_new();
			size_t len;

			frame_put_delivery(one, 300, &m, &scratch, msg,
			    frame_maxes[j]);
			frame_put_method(two, 300, &m, &scratch);
			frame_put_content(two, 300, msg, frame_maxes[j]);
			len = evbuffer_get_length(two);
			ck_assert_uint_eq(evbuffer_get_length(one), len);
			ck_assert_mem_eq(evbuffer_pullup(one, -1),
			    evbuffer_pullup(two, -1), len);
			evbuffer_free(one);
			evbuffer_free(two);
			/* every reference to the body was released */
			ck_assert_uint_eq(msg->refs, 1);
			msg_unref(msg);
			wbuf_free(&hdr);
		}
	wbuf_free(&scratch);
}
END_TEST

START_TEST(test_put_delivery_references_large_bodies)
{
	struct wbuf hdr, scratch;
	struct amqp_method m;
	struct message *small = make_message(1024, &hdr);
	struct wbuf hdr2;
	struct message *large = make_message(100000, &hdr2);
	struct evbuffer *out = evbuffer_new();

	wbuf_init(&scratch);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_deliver;
	m.a.basic_deliver.consumer_tag = BYTES_LIT("t");
	/* a small body is copied: nothing holds the message */
	frame_put_delivery(out, 1, &m, &scratch, small, 131072);
	ck_assert_uint_eq(small->refs, 1);
	/* a large one is referenced until written */
	frame_put_delivery(out, 1, &m, &scratch, large, 131072);
	ck_assert_uint_gt(large->refs, 1);
	evbuffer_drain(out, evbuffer_get_length(out));
	ck_assert_uint_eq(large->refs, 1);
	evbuffer_free(out);
	msg_unref(small);
	msg_unref(large);
	wbuf_free(&scratch);
	wbuf_free(&hdr);
	wbuf_free(&hdr2);
}
END_TEST

/* frame_parse, the in-place parser the connection's frame loop uses. */
START_TEST(test_parse_in_place)
{
	const uint8_t two[] = {
		AMQP_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, AMQP_FRAME_END,
		AMQP_FRAME_BODY, 0, 5, 0, 0, 0, 2, 'h', 'i', AMQP_FRAME_END,
	};
	struct frame f;

	ck_assert_int_eq(frame_parse(two, 7, 4096, &f), FRAME_NEED_MORE);
	ck_assert_int_eq(frame_parse(two, sizeof(two), 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_HEARTBEAT);
	ck_assert_uint_eq(frame_wire_size(&f), 8);
	ck_assert_int_eq(frame_parse(two + 8, 9, 4096, &f), FRAME_NEED_MORE);
	ck_assert_int_eq(frame_parse(two + 8, 10, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.channel, 5);
	ck_assert_mem_eq(f.payload.ptr, "hi", 2);
	ck_assert_uint_eq(frame_wire_size(&f), 10);
	ck_assert_int_eq(frame_parse(two + 8, 10, 1, &f), FRAME_TOO_LARGE);
	{
		uint8_t bad[sizeof(two)];

		memcpy(bad, two, sizeof(two));
		bad[7] = 0;
		ck_assert_int_eq(frame_parse(bad, sizeof(bad), 4096, &f),
		    FRAME_BAD_END);
	}
}
END_TEST

/* Small bodies live inside the message's allocation, large ones apart:
 * either way the bytes are right, a copy with another header shares them
 * past the original's end, and the live-byte count returns to where it
 * was. */
START_TEST(test_message_bodies_inline_and_apart)
{
	static const uint64_t sizes[] = { 0, 1, 16, 511, 512, 513, 4096,
	    100000 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t before = msg_live_bytes();
		struct wbuf hdr;
		struct message *msg = make_message(sizes[i], &hdr);
		struct content_header parsed;
		struct message *copy;

		ck_assert_uint_ge(msg_live_bytes(), before + sizes[i]);
		for (uint64_t j = 0; j < sizes[i]; j++)
			ck_assert_uint_eq(msg_body(msg)[j],
			    (uint8_t)(j * 7 + (j >> 8)));
		ck_assert_int_eq(content_header_parse((struct bytes){ hdr.p,
		    (uint32_t)hdr.len }, &parsed), 0);
		copy = msg_new_header(msg, BYTES_LIT("other"), BYTES_LIT("k"),
		    (struct bytes){ hdr.p, (uint32_t)hdr.len }, &parsed);
		msg_unref(msg);
		ck_assert_uint_eq(copy->body_len, sizes[i]);
		for (uint64_t j = 0; j < sizes[i]; j++)
			ck_assert_uint_eq(msg_body(copy)[j],
			    (uint8_t)(j * 7 + (j >> 8)));
		msg_unref(copy);
		ck_assert_uint_eq(msg_live_bytes(), before);
		wbuf_free(&hdr);
	}
}
END_TEST

START_TEST(test_put_content_sizes)
{
	static const struct {
		uint64_t body;
		uint32_t frame_max;
		unsigned frames;
	} cases[] = {
		{ 1, 4096, 1 },
		{ 511, 4096, 1 },
		{ 512, 4096, 1 },
		{ 4088, 4096, 1 },
		{ 4089, 4096, 2 },	/* 4088 + a 1-byte (copied) tail */
		{ 4088 + 600, 4096, 2 },
		{ 8176, 4096, 2 },
		{ 8177, 4096, 3 },
		{ 100000, 131072, 1 },
		{ 300000, 131072, 3 },
		{ 10000, 0, 1 },	/* unlimited: one body frame */
		{ 10000, 1000, 11 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wbuf hdr;
		struct message *msg = make_message(cases[i].body, &hdr);
		struct evbuffer *out = evbuffer_new();
		unsigned frames;

		frame_put_content(out, 0x7FFF, msg, cases[i].frame_max);
		frames = check_content(out, 0x7FFF, msg, cases[i].frame_max);
		ck_assert_msg(frames == cases[i].frames,
		    "body %llu, frame_max %u: %u body frames, expected %u",
		    (unsigned long long)cases[i].body, cases[i].frame_max,
		    frames, cases[i].frames);
		evbuffer_free(out);
		ck_assert_uint_eq(msg->refs, 1);
		msg_unref(msg);
		wbuf_free(&hdr);
	}
}
END_TEST

START_TEST(test_put_content_empty_body)
{
	struct wbuf hdr;
	struct message *msg = make_message(0, &hdr);
	struct evbuffer *out = evbuffer_new();
	struct frame f;

	frame_put_content(out, 3, msg, 4096);
	ck_assert_uint_eq(evbuffer_get_length(out), 8 + msg->header_len);
	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_HEADER);
	ck_assert_uint_eq(f.channel, 3);
	ck_assert_uint_eq(f.payload.len, msg->header_len);
	ck_assert_mem_eq(f.payload.ptr, msg->header, msg->header_len);
	frame_consume(out, &f);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	ck_assert_uint_eq(msg->refs, 1);
	evbuffer_free(out);
	msg_unref(msg);
	wbuf_free(&hdr);
}
END_TEST

START_TEST(test_put_content_after_other_frames)
{
	/* Content frames appended behind a method frame, then a heartbeat. */
	struct wbuf hdr, scratch;
	struct message *msg = make_message(5000, &hdr);
	struct evbuffer *out = evbuffer_new();
	struct amqp_method m, d;
	struct frame f;

	wbuf_init(&scratch);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_get_ok;
	m.a.basic_get_ok.delivery_tag = 1;
	m.a.basic_get_ok.exchange = BYTES_LIT("ex");
	m.a.basic_get_ok.routing_key = BYTES_LIT("rk");
	frame_put_method(out, 1, &m, &scratch);
	frame_put_content(out, 1, msg, 4096);
	frame_put_heartbeat(out);

	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_METHOD);
	ck_assert_int_eq(method_decode(f.payload, &d), 0);
	ck_assert_uint_eq(d.id, AMQP_basic_get_ok);
	frame_consume(out, &f);
	/* Header + 2 body frames, then the heartbeat is left. */
	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_HEADER);
	frame_consume(out, &f);
	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_BODY);
	ck_assert_uint_eq(f.payload.len, 4088);
	frame_consume(out, &f);
	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_BODY);
	ck_assert_uint_eq(f.payload.len, 912);
	ck_assert_mem_eq(f.payload.ptr, msg->body + 4088, 912);
	frame_consume(out, &f);
	ck_assert_int_eq(frame_peek(out, 4096, &f), FRAME_READY);
	ck_assert_uint_eq(f.type, AMQP_FRAME_HEARTBEAT);
	frame_consume(out, &f);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);

	evbuffer_free(out);
	ck_assert_uint_eq(msg->refs, 1);
	msg_unref(msg);
	wbuf_free(&scratch);
	wbuf_free(&hdr);
}
END_TEST

START_TEST(test_put_method_exact_bytes)
{
	/* The spec's frame layout: type, channel, size, payload, 0xCE. */
	static const uint8_t want[] = {
		0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x04,
		0x00, 0x0A, 0x00, 0x33,			/* connection.close-ok */
		0xCE,
	};
	struct evbuffer *out = evbuffer_new();
	struct wbuf scratch;
	struct amqp_method m;
	uint8_t *p;
	size_t n;

	wbuf_init(&scratch);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_close_ok;
	frame_put_method(out, 0x0102, &m, &scratch);
	p = flatten(out, &n);
	ck_assert_uint_eq(n, sizeof(want));
	ck_assert_mem_eq(p, want, sizeof(want));
	free(p);
	wbuf_free(&scratch);
	evbuffer_free(out);
}
END_TEST

START_TEST(test_put_content_tiny_frame_max)
{
	/*
	 * A frame_max that leaves no room for a payload (<= 8) must not loop
	 * forever on empty body frames: 4096 is used instead.  9 leaves room
	 * for one byte per frame.
	 */
	static const struct {
		uint32_t frame_max, check_max;
		uint64_t body;
		unsigned frames;
	} cases[] = {
		{ 1, 4096, 10000, 3 },
		{ 7, 4096, 10000, 3 },
		{ 8, 4096, 10000, 3 },
		{ 9, 9, 10, 10 },
		{ 10, 10, 5, 3 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wbuf hdr;
		struct message *msg = make_message(cases[i].body, &hdr);
		struct evbuffer *out = evbuffer_new();
		struct frame f;
		unsigned frames = 0;
		uint64_t off = 0;

		frame_put_content(out, 2, msg, cases[i].frame_max);
		/* The header frame first (its size is not bounded here). */
		ck_assert_int_eq(frame_peek(out, 0, &f), FRAME_READY);
		ck_assert_uint_eq(f.type, AMQP_FRAME_HEADER);
		frame_consume(out, &f);
		while (evbuffer_get_length(out) > 0) {
			ck_assert_int_eq(frame_peek(out, cases[i].check_max, &f),
			    FRAME_READY);
			ck_assert_uint_eq(f.type, AMQP_FRAME_BODY);
			ck_assert_uint_gt(f.payload.len, 0);
			ck_assert_uint_le(f.payload.len, cases[i].check_max - 8);
			ck_assert_mem_eq(f.payload.ptr, msg->body + off,
			    f.payload.len);
			off += f.payload.len;
			frames++;
			frame_consume(out, &f);
		}
		ck_assert_uint_eq(off, cases[i].body);
		ck_assert_msg(frames == cases[i].frames,
		    "frame_max %u: %u body frames, want %u",
		    cases[i].frame_max, frames, cases[i].frames);
		evbuffer_free(out);
		ck_assert_uint_eq(msg->refs, 1);
		msg_unref(msg);
		wbuf_free(&hdr);
	}
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc;

	tc = tcase_create("peek");
	tcase_add_test(tc, test_partial_header);
	tcase_add_test(tc, test_partial_payload_large);
	tcase_add_test(tc, test_empty_payload);
	tcase_add_test(tc, test_back_to_back);
	tcase_add_test(tc, test_too_large_header_only);
	tcase_add_test(tc, test_max_size_frame_ready);
	tcase_add_test(tc, test_frame_max_zero_unlimited);
	tcase_add_test(tc, test_bad_end);
	suite_add_tcase(s, tc);

	tc = tcase_create("put");
	tcase_add_test(tc, test_put_heartbeat);
	tcase_add_test(tc, test_put_method_parses_back);
	tcase_add_test(tc, test_put_method_exact_bytes);
	tcase_add_test(tc, test_put_content_tiny_frame_max);
	tcase_add_test(tc, test_put_content_split);
	tcase_add_test(tc, test_put_content_refs_released);
	tcase_add_test(tc, test_put_content_sizes);
	tcase_add_test(tc, test_put_content_empty_body);
	tcase_add_test(tc, test_put_content_after_other_frames);
	tcase_add_test(tc, test_put_delivery_equals_method_then_content);
	tcase_add_test(tc, test_put_delivery_references_large_bodies);
	tcase_add_test(tc, test_parse_in_place);
	tcase_add_test(tc, test_message_bodies_inline_and_apart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
