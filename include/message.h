/*
 * A published message: immutable once complete, reference-counted, its body
 * stored once however many queues and deliveries hold it.
 */
#ifndef WARREN_MESSAGE_H
#define WARREN_MESSAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "properties.h"
#include "queue_args.h"
#include "store_loc.h"
#include "wire.h"

struct message {
	unsigned refs;
	uint32_t alloc_size;		/* this allocation, for msg_live_bytes */
	struct bytes exchange;		/* copies owned by the message */
	struct bytes routing_key;
	uint8_t *header;		/* content header payload as received */
	uint32_t header_len;
	/*
	 * What routing and queueing read of the properties; the rest stay in
	 * the raw header (msg_props) rather than ~200 bytes per message.
	 */
	uint16_t prop_flags;		/* PROP_FLAG bits of those present */
	uint8_t priority;		/* 0 when absent */
	struct bytes headers;		/* the headers table, inside header */
	int64_t ttl;			/* the expiration property in ms; -1 */
	uint8_t *body;
	struct message *body_owner;	/* body shared from this one, or NULL */
	uint64_t body_len;		/* bytes received so far */
	uint64_t body_size;		/* declared by the content header */
	uint64_t body_cap;
	bool body_inline;		/* body is in this allocation */

	/* delivery_mode 2: kept by the store when a durable queue holds it */
	bool persistent;
	struct store_loc stored;	/* its MSG record; id 0: none */
};

/*
 * A new message with one reference, its header copied from hdr_payload
 * (already validated by content_header_parse into h).
 */
struct message *msg_new(struct bytes exchange, struct bytes routing_key,
    struct bytes hdr_payload, const struct content_header *h);
/*
 * A copy of complete message m with another content header (exchange and
 * routing key as given), sharing m's body.
 */
struct message *msg_new_header(const struct message *m, struct bytes exchange,
    struct bytes routing_key, struct bytes hdr_payload,
    const struct content_header *h);
static inline bool msg_has_prop(const struct message *m,
    enum basic_prop which)
{
	return (m->prop_flags & PROP_FLAG(which)) != 0;
}

/* Every property, parsed from the stored header (strings point into it). */
void msg_props(const struct message *m, struct basic_properties *out);
/* One string property, without decoding the others; false: absent. */
bool msg_string_prop(const struct message *m, enum basic_prop which,
    struct bytes *out);

/*
 * The body received so far (body_len bytes), possibly shared with other
 * copies.  Code outside message.c reads bodies only through here.
 */
static inline const uint8_t *msg_body(const struct message *m)
{
	return m->body;
}

/* Append body bytes; the caller keeps body_len <= body_size. */
void msg_append_body(struct message *m, const uint8_t *p, uint32_t n);
static inline bool msg_complete(const struct message *m)
{
	return m->body_len == m->body_size;
}

/* Bytes held by all live messages, and their most since the last reset. */
uint64_t msg_live_bytes(void);
uint64_t msg_live_bytes_peak(void);
void msg_live_bytes_peak_reset(void);

struct message *msg_ref(struct message *m);
void msg_unref(struct message *m);

#endif
