/*
 * libFuzzer target: the frame reader (frame_peek / frame_consume) and, on
 * what it reads, the frame writers.
 *
 * Input: 4 bytes of frame_max (big-endian), then the byte stream a client
 * sends.  The stream is cut into frames twice, each time checked against a
 * small reference reader over the flat input:
 *   1. the whole stream added to the evbuffer at once;
 *   2. the stream fed in small pieces, alternately copied and added by
 *      reference, so the evbuffer is a chain of many segments and
 *      frame_peek must pull each frame up into one piece.
 * After every frame_peek the status must equal the reference's; for a
 * READY frame the type, channel, length and payload bytes must match and
 * the payload (and its frame-end octet) must lie inside the evbuffer's
 * first contiguous segment, right after the 7-octet header.
 *
 * Writers: a method frame that decodes is written back with
 * frame_put_method and must read back as an identical frame; a content
 * header frame that parses is turned into a message (its body taken from
 * the rest of the stream, capped) and written with frame_put_content,
 * whose frames must read back as header + body split within frame_max.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "fuzz_target.h"
#include "amqp.h"
#include "frame.h"
#include "message.h"
#include "method.h"
#include "properties.h"
#include "wire.h"

#define MAX_BODY 2048	/* bounds the frames a tiny frame_max makes */

/*
 * message.c needs expiration_parse from queue_args.c, whose argument
 * parser reports errors through connection.c's amqp_fail; linking
 * connection.c would pull in the whole broker, and nothing here parses
 * queue arguments, so a stub stands in.
 */
struct amqp_error;
int amqp_fail(struct amqp_error *err, int code, const char *fmt, ...);
int amqp_fail(struct amqp_error *err, int code, const char *fmt, ...)
{
	(void)err; (void)code; (void)fmt;
	abort();
}

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_frames: %s\n", what);
	abort();
}

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
}

/* The reference reader: the frame at s[0..avail). */
static enum frame_status ref_peek(const uint8_t *s, size_t avail,
    uint32_t frame_max, struct frame *f)
{
	uint32_t size;

	if (avail < 7)
		return FRAME_NEED_MORE;
	size = be32(s + 3);
	if (frame_max != 0 && size > frame_max)
		return FRAME_TOO_LARGE;
	if (avail - 7 < (size_t)size + 1)
		return FRAME_NEED_MORE;
	if (s[7 + (size_t)size] != AMQP_FRAME_END)
		return FRAME_BAD_END;
	f->type = s[0];
	f->channel = (uint16_t)((s[1] << 8) | s[2]);
	f->payload.ptr = s + 7;
	f->payload.len = size;
	return FRAME_READY;
}

/* The payload of f must sit in in's first segment, after the header. */
static void check_contiguous(struct evbuffer *in, const struct frame *f)
{
	struct evbuffer_iovec v;
	const uint8_t *base, *end;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		fail("READY on an empty buffer");
	base = v.iov_base;
	end = base + v.iov_len;
	if (f->payload.ptr != base + 7)
		fail("payload does not start right after the frame header");
	if (f->payload.ptr > end || (size_t)(end - f->payload.ptr) <
	    (size_t)f->payload.len + 1)
		fail("payload + frame-end overrun the first segment");
	if (f->payload.ptr[f->payload.len] != AMQP_FRAME_END)
		fail("frame-end octet not after the payload");
}

static void check_frame(struct evbuffer *in, const struct frame *f,
    const struct frame *r)
{
	if (f->type != r->type || f->channel != r->channel ||
	    f->payload.len != r->payload.len)
		fail("frame header differs from the reference");
	check_contiguous(in, f);
	if (f->payload.len &&
	    memcmp(f->payload.ptr, r->payload.ptr, f->payload.len) != 0)
		fail("payload bytes differ from the input");
}

/* Read every frame from out (frame_max 0: no bound) into a flat copy. */
static size_t drain_frames(struct evbuffer *out, struct frame *fs,
    size_t max, uint8_t **bufs)
{
	size_t n = 0;
	struct frame f;
	enum frame_status st;

	while ((st = frame_peek(out, 0, &f)) == FRAME_READY) {
		if (n == max)
			fail("writer produced too many frames");
		check_contiguous(out, &f);
		bufs[n] = malloc(f.payload.len ? f.payload.len : 1);
		memcpy(bufs[n], f.payload.ptr, f.payload.len);
		fs[n] = f;
		fs[n].payload.ptr = bufs[n];
		n++;
		frame_consume(out, &f);
	}
	if (st != FRAME_NEED_MORE || evbuffer_get_length(out) != 0)
		fail("writer output does not read back as whole frames");
	return n;
}

static void check_method_writer(const struct frame *f)
{
	struct amqp_method m;
	struct evbuffer *out;
	struct wbuf scratch;
	struct frame back[2];
	uint8_t *bufs[2];
	size_t n;

	if (method_decode(f->payload, &m) != 0)
		return;
	out = evbuffer_new();
	wbuf_init(&scratch);
	frame_put_method(out, f->channel, &m, &scratch);
	frame_put_heartbeat(out);
	n = drain_frames(out, back, 2, bufs);
	if (n != 2)
		fail("method + heartbeat did not read back as two frames");
	if (back[0].type != AMQP_FRAME_METHOD || back[0].channel != f->channel ||
	    back[0].payload.len != scratch.len ||
	    memcmp(back[0].payload.ptr, scratch.p, scratch.len) != 0)
		fail("method frame reads back differently");
	if (back[1].type != AMQP_FRAME_HEARTBEAT || back[1].channel != 0 ||
	    back[1].payload.len != 0)
		fail("heartbeat frame reads back wrong");
	free(bufs[0]);
	free(bufs[1]);
	wbuf_free(&scratch);
	evbuffer_free(out);
}

static void check_content_writer(const struct frame *f, uint32_t frame_max,
    const uint8_t *rest, size_t rest_len)
{
	struct content_header h;
	struct message *msg;
	struct evbuffer *out;
	struct frame *back;
	uint8_t **bufs;
	uint64_t body_len, off;
	uint32_t chunk_max;
	size_t n, max_frames;

	if (content_header_parse(f->payload, &h) != 0)
		return;
	body_len = rest_len < MAX_BODY ? rest_len : MAX_BODY;
	h.body_size = body_len;
	msg = msg_new(BYTES_LIT("x"), BYTES_LIT("rk"), f->payload, &h);
	if (msg->body_size != body_len)
		fail("msg_new did not take body_size from the header");
	if (body_len)
		msg_append_body(msg, rest, (uint32_t)body_len);
	if (!msg_complete(msg))
		fail("message incomplete after appending its body");

	/* What frame_put_content will use. */
	if (frame_max != 0 && frame_max <= AMQP_FRAME_OVERHEAD)
		chunk_max = AMQP_FRAME_MIN_SIZE - AMQP_FRAME_OVERHEAD;
	else
		chunk_max = frame_max ? frame_max - AMQP_FRAME_OVERHEAD
		    : UINT32_MAX;
	max_frames = 1 + (size_t)(body_len / chunk_max) + 1;

	out = evbuffer_new();
	frame_put_content(out, 7, msg, frame_max);
	msg_unref(msg);		/* the evbuffer may still hold references */

	back = calloc(max_frames, sizeof(*back));
	bufs = calloc(max_frames, sizeof(*bufs));
	n = drain_frames(out, back, max_frames, bufs);
	evbuffer_free(out);	/* drops the last body references */

	if (n < 1 || back[0].type != AMQP_FRAME_HEADER ||
	    back[0].channel != 7 || back[0].payload.len != f->payload.len ||
	    memcmp(back[0].payload.ptr, f->payload.ptr, f->payload.len))
		fail("content header frame reads back differently");
	off = 0;
	for (size_t i = 1; i < n; i++) {
		if (back[i].type != AMQP_FRAME_BODY || back[i].channel != 7)
			fail("body frame has the wrong type or channel");
		if (back[i].payload.len == 0)
			fail("empty body frame");
		if (back[i].payload.len > chunk_max)
			fail("body frame larger than frame_max allows");
		if (i + 1 < n && back[i].payload.len != chunk_max)
			fail("body split into short non-final frames");
		if (back[i].payload.len > body_len - off ||
		    memcmp(back[i].payload.ptr, rest + off,
		    back[i].payload.len) != 0)
			fail("body frames do not carry the body");
		off += back[i].payload.len;
	}
	if (off != body_len)
		fail("body frames carry less than the body");
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	free(back);
}

static void noop_cleanup(const void *data, size_t len, void *arg)
{
	(void)data; (void)len; (void)arg;
}

/*
 * Run the reader over stream, fed in pieces (piece == 0: all at once).
 * Returns the number of frames read.
 */
static size_t run(const uint8_t *stream, size_t len, uint32_t frame_max,
    unsigned piece, bool writers)
{
	struct evbuffer *in = evbuffer_new();
	size_t added = 0, off = 0, frames = 0;
	unsigned k = 0;

	for (;;) {
		struct frame f, r;
		enum frame_status st, rst;

		memset(&f, 0xA5, sizeof(f));
		memset(&r, 0, sizeof(r));	/* gcc cannot see ref_peek fill it */
		st = frame_peek(in, frame_max, &f);
		rst = ref_peek(stream + off, added - off, frame_max, &r);
		if (st != rst) {
			fprintf(stderr, "status %d, reference %d at offset %zu\n",
			    st, rst, off);
			fail("frame_peek status differs from the reference");
		}
		if (evbuffer_get_length(in) != added - off)
			fail("frame_peek changed the buffered length");
		if (st == FRAME_READY) {
			check_frame(in, &f, &r);
			if (writers && f.type == AMQP_FRAME_METHOD)
				check_method_writer(&f);
			if (writers && f.type == AMQP_FRAME_HEADER) {
				size_t next = off + 8 + f.payload.len;

				check_content_writer(&f, frame_max,
				    stream + next, len - next);
			}
			frame_consume(in, &f);
			off += (size_t)r.payload.len + AMQP_FRAME_OVERHEAD;
			frames++;
			continue;
		}
		if (st != FRAME_NEED_MORE || added == len)
			break;
		/* Feed the next piece. */
		{
			size_t n = piece ? 1 + (piece * 7 + k * 13) % 23 : len;

			if (n > len - added)
				n = len - added;
			if (k++ & 1)
				evbuffer_add_reference(in, stream + added, n,
				    noop_cleanup, NULL);
			else
				evbuffer_add(in, stream + added, n);
			added += n;
		}
	}
	evbuffer_free(in);
	return frames;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t frame_max;
	uint8_t *stream;
	size_t len, a, b;

	if (size < 4)
		return 0;
	frame_max = be32(data);
	len = size - 4;
	/* Exact-size copy: ASan flags any read past the stream. */
	stream = malloc(len ? len : 1);
	if (len)
		memcpy(stream, data + 4, len);

	a = run(stream, len, frame_max, 0, true);
	b = run(stream, len, frame_max, 1 + (frame_max & 0xff), false);
	if (a != b)
		fail("frame count depends on how the stream arrived");

	free(stream);
	return 0;
}
