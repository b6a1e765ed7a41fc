/*
 * Message lifetime.  One allocation holds the struct, the exchange name, the
 * routing key and the content header; the body is a second allocation that
 * grows as body frames arrive (never sized from the header alone, so a
 * client cannot make us reserve max_message_size by announcing it).  A
 * body of at most INLINE_BODY_MAX bytes lives in the first allocation: a
 * malloc and a free per message were ~7% of the broker's time with small
 * messages (a client announcing such a body reserves at most 4 KB per
 * channel before sending it).
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "message.h"

/*
 * Bytes held by live messages (headers, bodies), for the memory alarm, and
 * their high-water mark since the last reset: a backlog that builds and
 * drains between two of the broker's ticks must still count as a peak.
 */
#define INLINE_BODY_MAX 4096

static uint64_t live_bytes;
static uint64_t live_peak;

static void live_add(uint64_t n)
{
	live_bytes += n;
	if (live_bytes > live_peak)
		live_peak = live_bytes;
}

uint64_t msg_live_bytes(void)
{
	return live_bytes;
}

uint64_t msg_live_bytes_peak(void)
{
	return live_peak;
}

void msg_live_bytes_peak_reset(void)
{
	live_peak = live_bytes;
}

struct message *msg_new(struct bytes exchange, struct bytes routing_key,
    struct bytes hdr_payload, const struct content_header *h)
{
	size_t inline_body = h->body_size <= INLINE_BODY_MAX ?
	    (size_t)h->body_size : 0;
	size_t size = sizeof(struct message) + exchange.len +
	    routing_key.len + hdr_payload.len + inline_body;
	struct message *m = xmalloc(size);
	uint8_t *p = (uint8_t *)(m + 1);

	memset(m, 0, sizeof(*m));
	m->refs = 1;
	m->alloc_size = size;
	live_add(size);
	if (exchange.len)
		memcpy(p, exchange.ptr, exchange.len);
	m->exchange = (struct bytes){ p, exchange.len };
	p += exchange.len;
	if (routing_key.len)
		memcpy(p, routing_key.ptr, routing_key.len);
	m->routing_key = (struct bytes){ p, routing_key.len };
	p += routing_key.len;
	memcpy(p, hdr_payload.ptr, hdr_payload.len);
	m->header = p;
	m->header_len = hdr_payload.len;
	m->body_size = h->body_size;
	if (inline_body) {
		m->body = p + hdr_payload.len;
		m->body_cap = inline_body;
		m->body_inline = true;
	}
	/* Validated by the channel; a bad one here means "no TTL". */
	if (!expiration_parse(h->props.expiration,
	    props_has(&h->props, PROP_expiration), &m->ttl))
		m->ttl = -1;

	m->prop_flags = h->props.flags;
	m->persistent = props_has(&h->props, PROP_delivery_mode) &&
	    h->props.delivery_mode == 2;
	if (props_has(&h->props, PROP_priority))
		m->priority = h->props.priority;
	if (props_has(&h->props, PROP_headers))
		/* Re-pointed at our copy of the header. */
		m->headers = (struct bytes){ m->header +
		    (h->props.headers.ptr - hdr_payload.ptr),
		    h->props.headers.len };
	return m;
}

void msg_props(const struct message *m, struct basic_properties *out)
{
	struct content_header h;

	if (content_header_parse((struct bytes){ m->header, m->header_len },
	    &h) != 0)
		fatalx("stored content header no longer parses");
	*out = h.props;
}

bool msg_string_prop(const struct message *m, enum basic_prop which,
    struct bytes *out)
{
	return msg_has_prop(m, which) && content_header_string(
	    (struct bytes){ m->header, m->header_len }, which, out);
}

struct message *msg_new_header(const struct message *m, struct bytes exchange,
    struct bytes routing_key, struct bytes hdr_payload,
    const struct content_header *h)
{
	struct message *copy = msg_new(exchange, routing_key, hdr_payload, h);
	struct message *owner = m->body_owner ? m->body_owner : (struct message *)m;

	copy->body_owner = msg_ref(owner);
	copy->body = owner->body;
	copy->body_len = copy->body_cap = m->body_len;
	return copy;
}

void msg_append_body(struct message *m, const uint8_t *p, uint32_t n)
{
	if (n == 0)
		return;
	if (m->body_len + n > m->body_cap) {
		uint64_t cap = m->body_cap ? m->body_cap * 2 : 4096;

		while (cap < m->body_len + n)
			cap *= 2;
		if (cap > m->body_size)
			cap = m->body_size;
		if (m->body_inline) {	/* never with a valid body_size */
			uint8_t *heap = xmalloc(cap);

			memcpy(heap, m->body, m->body_len);
			m->body = heap;
			m->body_inline = false;
		} else {
			m->body = xrealloc(m->body, cap);
		}
		m->body_cap = cap;
	}
	memcpy(m->body + m->body_len, p, n);
	m->body_len += n;
	/* Counted as received, not as reserved: a half-sent body costs what
	 * arrived (the capacity beyond it is not yet touched memory). */
	live_add(n);
}

struct message *msg_ref(struct message *m)
{
	m->refs++;
	return m;
}

void msg_unref(struct message *m)
{
	if (m == NULL || --m->refs > 0)
		return;
	live_bytes -= m->alloc_size;
	if (m->body_owner) {
		msg_unref(m->body_owner);
	} else {
		live_bytes -= m->body_len;
		if (!m->body_inline)
			free(m->body);
	}
	free(m);
}
