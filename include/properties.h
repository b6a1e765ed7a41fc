/*
 * The content header of class basic: body size and the 14 basic properties.
 * The broker keeps a message's header as the bytes that arrived and re-sends
 * them as is; this parser validates them and exposes the fields routing and
 * delivery need.
 */
#ifndef WARREN_PROPERTIES_H
#define WARREN_PROPERTIES_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

/* X(name, type): in wire order, first property = flag bit 15. */
#define BASIC_PROPERTIES(X)		\
	X(content_type, shortstr)	\
	X(content_encoding, shortstr)	\
	X(headers, table)		\
	X(delivery_mode, octet)		\
	X(priority, octet)		\
	X(correlation_id, shortstr)	\
	X(reply_to, shortstr)		\
	X(expiration, shortstr)		\
	X(message_id, shortstr)		\
	X(timestamp, timestamp)		\
	X(type, shortstr)		\
	X(user_id, shortstr)		\
	X(app_id, shortstr)		\
	X(cluster_id, shortstr)

enum basic_prop {
#define X(name, type) PROP_##name,
	BASIC_PROPERTIES(X)
#undef X
	PROP_COUNT
};

#define PROP_FLAG(p) ((uint16_t)(1u << (15 - (p))))

#define PROP_CTYPE_octet	uint8_t
#define PROP_CTYPE_timestamp	uint64_t
#define PROP_CTYPE_shortstr	struct bytes
#define PROP_CTYPE_table	struct bytes	/* raw, no length prefix */

struct basic_properties {
	uint16_t flags;		/* PROP_FLAG bits of the present properties */
#define X(name, type) PROP_CTYPE_##type name;
	BASIC_PROPERTIES(X)
#undef X
};

struct content_header {
	uint16_t class_id;
	uint16_t weight;
	uint64_t body_size;
	struct basic_properties props;
};

/*
 * Parse a content header frame payload.  Returns 0, or AMQP_FRAME_ERROR /
 * AMQP_SYNTAX_ERROR for a malformed one.  Strings borrow from payload.
 */
int content_header_parse(struct bytes payload, struct content_header *out);
/*
 * One string property (or the headers table, raw) of a header that
 * content_header_parse accepted, without decoding the rest; false when
 * it is absent.
 */
bool content_header_string(struct bytes payload, enum basic_prop which,
    struct bytes *value);

/* Append a content header payload (class, weight, size, flags, values). */
void content_header_encode(struct wbuf *b, const struct content_header *h);

static inline bool props_has(const struct basic_properties *p,
    enum basic_prop which)
{
	return (p->flags & PROP_FLAG(which)) != 0;
}

#endif
