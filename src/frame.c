/*
 * Frame reading and writing over libevent evbuffers.
 */
#include <event2/buffer.h>

#include "amqp.h"
#include "frame.h"
#include "message.h"
#include "method.h"

enum frame_status frame_peek(struct evbuffer *in, uint32_t frame_max,
    struct frame *f)
{
	uint8_t hdr[7];
	uint32_t size;
	size_t total;
	uint8_t *p;

	if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
		return FRAME_NEED_MORE;
	size = ((uint32_t)hdr[3] << 24) | ((uint32_t)hdr[4] << 16) |
	    ((uint32_t)hdr[5] << 8) | hdr[6];
	/*
	 * Like RabbitMQ, accept a payload of up to frame_max (not
	 * frame_max - 8): some old clients count only the payload.
	 */
	if (frame_max != 0 && size > frame_max)
		return FRAME_TOO_LARGE;
	total = (size_t)size + AMQP_FRAME_OVERHEAD;
	if (evbuffer_get_length(in) < total)
		return FRAME_NEED_MORE;
	p = evbuffer_pullup(in, (ev_ssize_t)total);
	if (p[total - 1] != AMQP_FRAME_END)
		return FRAME_BAD_END;
	f->type = hdr[0];
	f->channel = (uint16_t)((hdr[1] << 8) | hdr[2]);
	f->payload.ptr = p + 7;
	f->payload.len = size;
	return FRAME_READY;
}

void frame_consume(struct evbuffer *in, const struct frame *f)
{
	evbuffer_drain(in, (size_t)f->payload.len + AMQP_FRAME_OVERHEAD);
}

static void put_frame_header(struct evbuffer *out, uint8_t type,
    uint16_t channel, uint32_t size)
{
	uint8_t hdr[7] = {
		type, (uint8_t)(channel >> 8), (uint8_t)channel,
		(uint8_t)(size >> 24), (uint8_t)(size >> 16),
		(uint8_t)(size >> 8), (uint8_t)size,
	};

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

void frame_put_content(struct evbuffer *out, uint16_t channel,
    struct message *msg, uint32_t frame_max)
{
	uint64_t max_chunk, off;

	/* Negotiation never goes below 4096; never loop on empty chunks. */
	if (frame_max != 0 && frame_max <= AMQP_FRAME_OVERHEAD)
		frame_max = AMQP_FRAME_MIN_SIZE;
	max_chunk = frame_max ? frame_max - AMQP_FRAME_OVERHEAD : UINT32_MAX;

	put_frame_header(out, AMQP_FRAME_HEADER, channel, msg->header_len);
	evbuffer_add(out, msg->header, msg->header_len);
	evbuffer_add(out, &frame_end, 1);
	for (off = 0; off < msg->body_len; ) {
		uint64_t n = msg->body_len - off;

		if (n > max_chunk)
			n = max_chunk;
		put_frame_header(out, AMQP_FRAME_BODY, channel, (uint32_t)n);
		/* Small chunks are cheaper copied than referenced. */
		if (n < 512) {
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
