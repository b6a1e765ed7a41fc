/*
 * Frames: the push parser that cuts an input evbuffer into frames, and the
 * writers that append frames to an output evbuffer.
 */
#ifndef WARREN_FRAME_H
#define WARREN_FRAME_H

#include <stdint.h>

#include "wire.h"

struct evbuffer;
struct amqp_method;
struct message;

struct frame {
	uint8_t type;
	uint16_t channel;
	struct bytes payload;	/* valid until frame_consume() */
};

enum frame_status {
	FRAME_READY,		/* *f filled; call frame_consume() after use */
	FRAME_NEED_MORE,	/* not a whole frame yet */
	FRAME_TOO_LARGE,	/* declared size exceeds frame_max */
	FRAME_BAD_END,		/* frame-end octet is not 0xCE */
};

/*
 * Look at the front of in.  frame_max bounds the payload (RabbitMQ's
 * tolerance: frames we write keep header and frame-end within it too); it
 * is checked before waiting for the payload, so a hostile size never makes
 * us buffer it.
 */
enum frame_status frame_peek(struct evbuffer *in, uint32_t frame_max,
    struct frame *f);
/* Remove the frame returned by frame_peek from in. */
void frame_consume(struct evbuffer *in, const struct frame *f);
/* frame_peek over the len bytes at p (f->payload points into them). */
enum frame_status frame_parse(const uint8_t *p, size_t len, uint32_t frame_max,
    struct frame *f);
/* Bytes the frame takes on the wire: header, payload and frame end. */
size_t frame_wire_size(const struct frame *f);

/* Append a method frame; scratch is a reusable encoding buffer. */
void frame_put_method(struct evbuffer *out, uint16_t channel,
    const struct amqp_method *m, struct wbuf *scratch);
void frame_put_heartbeat(struct evbuffer *out);
/*
 * Append the content header and body frames of msg, splitting the body to
 * frame_max.  Body bytes are added by reference (no copy): each reference
 * holds a message reference until libevent has written it.
 */
void frame_put_content(struct evbuffer *out, uint16_t channel,
    struct message *msg, uint32_t frame_max);

/* The method m, then msg's content: frame_put_method and
 * frame_put_content in (usually) one evbuffer addition. */
void frame_put_delivery(struct evbuffer *out, uint16_t channel,
    const struct amqp_method *m, struct wbuf *scratch, struct message *msg,
    uint32_t frame_max);

#endif
