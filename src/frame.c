/*
 * Frame reading and writing over libevent evbuffers.
 */
#include <event2/buffer.h>

#include "amqp.h"
#include "frame.h"
#include "message.h"
#include "method.h"

static uint32_t payload_size(const uint8_t *hdr)
{
	return ((uint32_t)hdr[3] << 24) | ((uint32_t)hdr[4] << 16) |
	    ((uint32_t)hdr[5] << 8) | hdr[6];
}

enum frame_status frame_parse(const uint8_t *p, size_t len, uint32_t frame_max,
    struct frame *f)
{
	uint32_t size;
	size_t total;

	if (len < 7)
		return FRAME_NEED_MORE;
	size = payload_size(p);
	/*
	 * Like RabbitMQ, accept a payload of up to frame_max (not
	 * frame_max - 8): some old clients count only the payload.
	 */
	if (frame_max != 0 && size > frame_max)
		return FRAME_TOO_LARGE;
	total = (size_t)size + AMQP_FRAME_OVERHEAD;
	if (len < total)
		return FRAME_NEED_MORE;
	if (p[total - 1] != AMQP_FRAME_END)
		return FRAME_BAD_END;
	f->type = p[0];
	f->channel = (uint16_t)((p[1] << 8) | p[2]);
	f->payload.ptr = p + 7;
	f->payload.len = size;
	return FRAME_READY;
}

size_t frame_wire_size(const struct frame *f)
{
	return (size_t)f->payload.len + AMQP_FRAME_OVERHEAD;
}

enum frame_status frame_peek(struct evbuffer *in, uint32_t frame_max,
    struct frame *f)
{
	uint8_t hdr[7];
	size_t total;

	if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
		return FRAME_NEED_MORE;
	/* The size is judged before the payload is waited for. */
	if (frame_max != 0 && payload_size(hdr) > frame_max)
		return FRAME_TOO_LARGE;
	total = (size_t)payload_size(hdr) + AMQP_FRAME_OVERHEAD;
	if (evbuffer_get_length(in) < total)
		return FRAME_NEED_MORE;
	return frame_parse(evbuffer_pullup(in, (ev_ssize_t)total), total,
	    frame_max, f);
}

void frame_consume(struct evbuffer *in, const struct frame *f)
{
	evbuffer_drain(in, (size_t)f->payload.len + AMQP_FRAME_OVERHEAD);
}

static void encode_frame_header(uint8_t p[7], uint8_t type, uint16_t channel,
    uint32_t size)
{
	p[0] = type;
	p[1] = (uint8_t)(channel >> 8);
	p[2] = (uint8_t)channel;
	p[3] = (uint8_t)(size >> 24);
	p[4] = (uint8_t)(size >> 16);
	p[5] = (uint8_t)(size >> 8);
	p[6] = (uint8_t)size;
}

/* The most body bytes one body frame carries under frame_max. */
static uint64_t body_chunk_max(uint32_t frame_max)
{
	/* Negotiation never goes below 4096; never loop on empty chunks. */
	if (frame_max != 0 && frame_max <= AMQP_FRAME_OVERHEAD)
		frame_max = AMQP_FRAME_MIN_SIZE;
	return frame_max ? frame_max - AMQP_FRAME_OVERHEAD : UINT32_MAX;
}

static void put_frame_header(struct evbuffer *out, uint8_t type,
    uint16_t channel, uint32_t size)
{
	uint8_t hdr[7];

	encode_frame_header(hdr, type, channel, size);

	evbuffer_add(out, hdr, sizeof(hdr));
}

static const uint8_t frame_end = AMQP_FRAME_END;

void frame_put_method(struct evbuffer *out, uint16_t channel,
    const struct amqp_method *m, struct wbuf *scratch)
{
	wbuf_reset(scratch);
	method_encode(scratch, m);
	put_frame_header(out, AMQP_FRAME_METHOD, channel, (uint32_t)scratch->len);
	evbuffer_add(out, scratch->p, scratch->len);
	evbuffer_add(out, &frame_end, 1);
}

void frame_put_heartbeat(struct evbuffer *out)
{
	put_frame_header(out, AMQP_FRAME_HEARTBEAT, 0, 0);
	evbuffer_add(out, &frame_end, 1);
}

static void body_ref_done(const void *data, size_t len, void *arg)
{
	msg_unref(arg);
}

/*
 * Bodies smaller than this are copied into the output, larger ones are
 * referenced (the message is kept until the bytes have been written).  A
 * reference costs an evbuffer chain (a malloc and a free) and a second
 * chain for the frame-end octet after it: more than copying 4 KB
 * (measured: fanout of 1 KB messages to 10 consumers, 2.55 us of broker
 * CPU per delivery with references, see BENCHMARKS.md section 10).
 */
#define COPY_BODY_BELOW 4096

static void wbuf_put_frame_header(struct wbuf *b, uint8_t type,
    uint16_t channel, uint32_t size)
{
	encode_frame_header(wbuf_reserve(b, 7), type, channel, size);
	b->len += 7;
}

/*
 * A delivery (basic.deliver, basic.get-ok or basic.return, then the
 * message) as few evbuffer additions as possible: every addition runs the
 * buffer's callbacks (libevent's write scheduling), which cost more than
 * the copy.  The method, the content header and a small body go in one
 * piece; a large body is referenced between that piece and its frame end.
 */
void frame_put_delivery(struct evbuffer *out, uint16_t channel,
    const struct amqp_method *m, struct wbuf *scratch, struct message *msg,
    uint32_t frame_max)
{
	size_t size_at;

	if (msg->body_len > body_chunk_max(frame_max)) {
		/* several body frames: the general path */
		frame_put_method(out, channel, m, scratch);
		frame_put_content(out, channel, msg, frame_max);
		return;
	}
	wbuf_reset(scratch);
	wbuf_put_frame_header(scratch, AMQP_FRAME_METHOD, channel, 0);
	size_at = scratch->len;
	method_encode(scratch, m);
	wbuf_patch_u32(scratch, size_at - 4, (uint32_t)(scratch->len - size_at));
	wbuf_put_u8(scratch, AMQP_FRAME_END);
	wbuf_put_frame_header(scratch, AMQP_FRAME_HEADER, channel,
	    msg->header_len);
	wbuf_put_raw(scratch, msg->header, msg->header_len);
	wbuf_put_u8(scratch, AMQP_FRAME_END);
	if (msg->body_len == 0) {
		evbuffer_add(out, scratch->p, scratch->len);
		return;
	}
	wbuf_put_frame_header(scratch, AMQP_FRAME_BODY, channel,
	    (uint32_t)msg->body_len);
	if (msg->body_len < COPY_BODY_BELOW) {
		wbuf_put_raw(scratch, msg_body(msg), msg->body_len);
		wbuf_put_u8(scratch, AMQP_FRAME_END);
		evbuffer_add(out, scratch->p, scratch->len);
		return;
	}
	evbuffer_add(out, scratch->p, scratch->len);
	msg_ref(msg);
	evbuffer_add_reference(out, msg_body(msg), msg->body_len,
	    body_ref_done, msg);
	evbuffer_add(out, &frame_end, 1);
}

void frame_put_content(struct evbuffer *out, uint16_t channel,
    struct message *msg, uint32_t frame_max)
{
	uint64_t max_chunk = body_chunk_max(frame_max), off;

	put_frame_header(out, AMQP_FRAME_HEADER, channel, msg->header_len);
	evbuffer_add(out, msg->header, msg->header_len);
	evbuffer_add(out, &frame_end, 1);
	for (off = 0; off < msg->body_len; ) {
		uint64_t n = msg->body_len - off;

		if (n > max_chunk)
			n = max_chunk;
		put_frame_header(out, AMQP_FRAME_BODY, channel, (uint32_t)n);
		/* Small chunks are cheaper copied than referenced. */
		if (n < COPY_BODY_BELOW) {
			evbuffer_add(out, msg_body(msg) + off, n);
		} else {
			msg_ref(msg);
			evbuffer_add_reference(out, msg_body(msg) + off, n,
			    body_ref_done, msg);
		}
		evbuffer_add(out, &frame_end, 1);
		off += n;
	}
}
