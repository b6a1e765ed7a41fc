/*
 * AMQP methods: structs, ids, names, encoder and decoder, all derived from
 * amqp_methods.def by the preprocessor.
 *
 * A decoded method borrows its strings and tables from the frame payload it
 * was decoded from; tables are kept raw (without their u32 length prefix)
 * and were validated by the decoder.
 */
#ifndef WARREN_METHOD_H
#define WARREN_METHOD_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

#define AMQP_METHOD_ID(cid, mid) (((uint32_t)(cid) << 16) | (uint32_t)(mid))
#define AMQP_METHOD_CLASS(id) ((uint16_t)((id) >> 16))
#define AMQP_METHOD_INDEX(id) ((uint16_t)((id) & 0xffff))

#define AMQP_CTYPE_octet	uint8_t
#define AMQP_CTYPE_short	uint16_t
#define AMQP_CTYPE_long		uint32_t
#define AMQP_CTYPE_longlong	uint64_t
#define AMQP_CTYPE_timestamp	uint64_t
#define AMQP_CTYPE_bit		bool
#define AMQP_CTYPE_shortstr	struct bytes
#define AMQP_CTYPE_longstr	struct bytes
#define AMQP_CTYPE_table	struct bytes

/* AMQP_connection_start, AMQP_basic_publish, ... */
enum amqp_method_id {
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS) \
	AMQP_##c##_##m = AMQP_METHOD_ID(cid, mid),
#include "amqp_methods.def"
#undef AMQP_METHOD
};

/* struct amqp_connection_start { uint8_t version_major; ... } */
#define F(type, name) AMQP_CTYPE_##type name;
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS) \
	struct amqp_##c##_##m { FIELDS char unused_; };
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F

struct amqp_method {
	uint32_t id;
	union {
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS) \
		struct amqp_##c##_##m c##_##m;
#include "amqp_methods.def"
#undef AMQP_METHOD
	} a;
};

struct method_info {
	uint32_t id;
	const char *name;	/* "basic.consume-ok" */
	bool synchronous;
	bool content;		/* carries a content header + body */
};

/* NULL for an id not in the table. */
const struct method_info *method_info(uint32_t id);
/* "class.method", or "unknown" */
const char *method_name(uint32_t id);

/*
 * Decode a method frame payload (class id, method id, arguments).
 * Returns 0, or the reply code to close the connection with:
 * AMQP_FRAME_ERROR for truncated, malformed or over-long arguments and
 * AMQP_COMMAND_INVALID for an unknown id, as RabbitMQ.  out->id is set
 * whenever the ids could be read.
 */
int method_decode(struct bytes payload, struct amqp_method *out);

/* Append the method frame payload (class id, method id, arguments). */
void method_encode(struct wbuf *b, const struct amqp_method *m);

#endif
