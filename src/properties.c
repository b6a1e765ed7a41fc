/*
 * Content header parsing and encoding, derived from BASIC_PROPERTIES.
 */
#include <string.h>

#include "amqp.h"
#include "field_table.h"
#include "properties.h"

#define PROP_IS_TABLE_octet	false
#define PROP_IS_TABLE_timestamp	false
#define PROP_IS_TABLE_shortstr	false
#define PROP_IS_TABLE_table	true

static bool get_octet(struct rcursor *c, uint8_t *v)
{
	return wire_get_u8(c, v);
}

static bool get_timestamp(struct rcursor *c, uint64_t *v)
{
	return wire_get_u64(c, v);
}

static bool get_shortstr(struct rcursor *c, struct bytes *v)
{
	return wire_get_shortstr(c, v);
}

static bool get_table(struct rcursor *c, struct bytes *v)
{
	return wire_get_longstr(c, v) && ftable_validate(*v);
}

int content_header_parse(struct bytes payload, struct content_header *out)
{
	struct rcursor c = rcursor_make(payload.ptr, payload.len);
	uint16_t flags;

	memset(out, 0, sizeof(*out));
	if (!wire_get_u16(&c, &out->class_id) ||
	    !wire_get_u16(&c, &out->weight) ||
	    !wire_get_u64(&c, &out->body_size) ||
	    !wire_get_u16(&c, &flags))
		return AMQP_FRAME_ERROR;
	/* Basic has 14 properties: one flag word, no continuation. */
	if (flags & 0x3)
		return AMQP_FRAME_ERROR;
	out->props.flags = flags;
#define X(name, type)							\
	if ((flags & PROP_FLAG(PROP_##name)) &&				\
	    !get_##type(&c, &out->props.name))				\
		return AMQP_FRAME_ERROR;
	BASIC_PROPERTIES(X)
#undef X
	/* Nothing may follow the properties (the header is re-sent raw). */
	if (c.left != 0)
		return AMQP_FRAME_ERROR;
	return 0;
}

/* How far each kind of property reaches, without reading it. */
static bool skip_octet(struct rcursor *c)
{
	uint8_t v;

	return wire_get_u8(c, &v);
}

static bool skip_timestamp(struct rcursor *c)
{
	uint64_t v;

	return wire_get_u64(c, &v);
}

static bool skip_shortstr(struct rcursor *c)
{
	struct bytes v;

	return wire_get_shortstr(c, &v);
}

static bool skip_table(struct rcursor *c)
{
	struct bytes v;

	return wire_get_longstr(c, &v);
}

bool content_header_string(struct bytes payload, enum basic_prop which,
    struct bytes *value)
{
	/* class, weight, body size, then the flags */
	struct rcursor c = rcursor_make(payload.ptr, payload.len);
	struct bytes fixed;
	uint16_t flags;
	enum basic_prop at = 0;

	if (!wire_get_raw(&c, 12, &fixed) || !wire_get_u16(&c, &flags) ||
	    !(flags & PROP_FLAG(which)))
		return false;
#define X(name, type)							\
	if (at == which)						\
		return PROP_IS_TABLE_##type ? wire_get_longstr(&c, value) :	\
		    wire_get_shortstr(&c, value);				\
	if ((flags & PROP_FLAG(PROP_##name)) && !skip_##type(&c))	\
		return false;						\
	at++;
	BASIC_PROPERTIES(X)
#undef X
	return false;
}

static void put_octet(struct wbuf *b, uint8_t v)
{
	wbuf_put_u8(b, v);
}

static void put_timestamp(struct wbuf *b, uint64_t v)
{
	wbuf_put_u64(b, v);
}

static void put_shortstr(struct wbuf *b, struct bytes v)
{
	wbuf_put_shortstr(b, v);
}

static void put_table(struct wbuf *b, struct bytes v)
{
	wbuf_put_longstr(b, v);
}

void content_header_encode(struct wbuf *b, const struct content_header *h)
{
	const struct basic_properties *p = &h->props;

	wbuf_put_u16(b, h->class_id);
	wbuf_put_u16(b, h->weight);
	wbuf_put_u64(b, h->body_size);
	wbuf_put_u16(b, p->flags & ~0x3);
#define X(name, type)							\
	if (p->flags & PROP_FLAG(PROP_##name))				\
		put_##type(b, p->name);
	BASIC_PROPERTIES(X)
#undef X
}
