/*
 * A client's side of an AMQP 0-9-1 session as bytes: frames, methods and
 * content encoded with the project's own codec (method_encode,
 * content_header_encode).  gen_corpus.c writes fuzz_connection's seed
 * sessions with it, and fuzz_connection.c its health-check client.
 */
#ifndef WARREN_FUZZ_SESSION_H
#define WARREN_FUZZ_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "amqp.h"
#include "field_table.h"
#include "method.h"
#include "properties.h"
#include "wire.h"

/* The client's frame_max in the seeds' tune-ok (the broker's default). */
#define SESS_FRAME_MAX 131072u

static inline void sess_frame(struct wbuf *b, uint8_t type, uint16_t ch,
    const void *p, size_t n)
{
	wbuf_put_u8(b, type);
	wbuf_put_u16(b, ch);
	wbuf_put_u32(b, (uint32_t)n);
	wbuf_put_raw(b, p, n);
	wbuf_put_u8(b, AMQP_FRAME_END);
}

static inline void sess_method(struct wbuf *b, uint16_t ch,
    const struct amqp_method *m)
{
	struct wbuf p;

	wbuf_init(&p);
	method_encode(&p, m);
	sess_frame(b, AMQP_FRAME_METHOD, ch, p.p, p.len);
	wbuf_free(&p);
}

/* A method without arguments (close-ok, tx.select, ...). */
static inline void sess_bare(struct wbuf *b, uint16_t ch, uint32_t id)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = id;
	sess_method(b, ch, &m);
}

/* The header and body frames of a message, the body cut to frame_max. */
static inline void sess_content(struct wbuf *b, uint16_t ch,
    const struct basic_properties *props, const void *body, size_t len,
    uint32_t frame_max)
{
	struct content_header h;
	struct wbuf p;
	size_t piece = frame_max - AMQP_FRAME_OVERHEAD, off;

	memset(&h, 0, sizeof(h));
	h.class_id = 60;
	h.body_size = len;
	if (props != NULL)
		h.props = *props;
	wbuf_init(&p);
	content_header_encode(&p, &h);
	sess_frame(b, AMQP_FRAME_HEADER, ch, p.p, p.len);
	wbuf_free(&p);
	for (off = 0; off < len; off += piece)
		sess_frame(b, AMQP_FRAME_BODY, ch, (const uint8_t *)body + off,
		    len - off < piece ? len - off : piece);
}

/* basic.publish with its content. */
static inline void sess_publish(struct wbuf *b, uint16_t ch,
    const char *exchange, const char *key, bool mandatory,
    const struct basic_properties *props, const void *body, size_t len)
{
	struct amqp_method m;

	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_publish;
	m.a.basic_publish.exchange = bytes_str(exchange);
	m.a.basic_publish.routing_key = bytes_str(key);
	m.a.basic_publish.mandatory = mandatory;
	sess_method(b, ch, &m);
	sess_content(b, ch, props, body, len, SESS_FRAME_MAX);
}

/*
 * The protocol header, start-ok (PLAIN guest/guest, or AMQPLAIN with
 * amqplain), tune-ok (frame_max, heartbeat) and connection.open of vhost.
 * The client properties ask for the capabilities RabbitMQ's clients do.
 */
static inline void sess_handshake(struct wbuf *b, bool amqplain,
    uint32_t frame_max, uint16_t heartbeat, const char *vhost)
{
	struct amqp_method m;
	struct wbuf props, auth;
	size_t t, caps;

	wbuf_put_raw(b, AMQP_PROTOCOL_HEADER, 8);

	wbuf_init(&props);
	t = ftw_begin(&props);
	ftw_longstr(&props, "product", "warren-fuzz");
	caps = ftw_table_begin(&props, "capabilities");
	ftw_bool(&props, "publisher_confirms", true);
	ftw_bool(&props, "consumer_cancel_notify", true);
	ftw_bool(&props, "connection.blocked", true);
	ftw_bool(&props, "basic.nack", true);
	ftw_end(&props, caps);
	ftw_end(&props, t);
	wbuf_init(&auth);
	if (amqplain) {
		t = ftw_begin(&auth);
		ftw_longstr(&auth, "LOGIN", "guest");
		ftw_longstr(&auth, "PASSWORD", "guest");
		ftw_end(&auth, t);
	} else {
		wbuf_put_raw(&auth, "\0guest\0guest", 12);
	}
	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_start_ok;
	/* Tables go to the codec without their u32 length. */
	m.a.connection_start_ok.client_properties =
	    (struct bytes){ props.p + 4, (uint32_t)(props.len - 4) };
	m.a.connection_start_ok.mechanism = bytes_str(amqplain ? "AMQPLAIN" :
	    "PLAIN");
	m.a.connection_start_ok.response = amqplain ?
	    (struct bytes){ auth.p + 4, (uint32_t)(auth.len - 4) } :
	    (struct bytes){ auth.p, (uint32_t)auth.len };
	m.a.connection_start_ok.locale = BYTES_LIT("en_US");
	sess_method(b, 0, &m);
	wbuf_free(&props);
	wbuf_free(&auth);

	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_tune_ok;
	m.a.connection_tune_ok.channel_max = 2047;
	m.a.connection_tune_ok.frame_max = frame_max;
	m.a.connection_tune_ok.heartbeat = heartbeat;
	sess_method(b, 0, &m);

	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_open;
	m.a.connection_open.virtual_host = bytes_str(vhost);
	sess_method(b, 0, &m);
}

#endif
