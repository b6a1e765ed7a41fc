/*
 * Method codecs derived from amqp_methods.def.  Consecutive bit fields share
 * one octet (low bit first); any other field ends the run of bits.
 */
#include <stdio.h>
#include <string.h>

#include "amqp.h"
#include "field_table.h"
#include "method.h"

static const struct method_info method_table[] = {
#define AMQP_METHOD(c, m, cid, mid, sync, content, FIELDS) \
	{ AMQP_METHOD_ID(cid, mid), #c "." #m, sync, content },
#include "amqp_methods.def"
#undef AMQP_METHOD
};
#define N_METHODS (sizeof(method_table) / sizeof(method_table[0]))

/* The .def spells "start_ok"; AMQP spells "start-ok". */
static char method_names[N_METHODS][48];

const struct method_info *method_info(uint32_t id)
{
	static struct method_info infos[N_METHODS];
	static bool ready;
	size_t i;

	if (!ready) {
		for (i = 0; i < N_METHODS; i++) {
			char *dot;

			snprintf(method_names[i], sizeof(method_names[i]),
			    "%s", method_table[i].name);
			dot = strchr(method_names[i], '.');
			for (char *p = dot; p && *p; p++)
				if (*p == '_')
					*p = '-';
			infos[i] = method_table[i];
			infos[i].name = method_names[i];
		}
		ready = true;
	}
	for (i = 0; i < N_METHODS; i++)
		if (infos[i].id == id)
			return &infos[i];
	return NULL;
}

const char *method_name(uint32_t id)
{
	const struct method_info *mi = method_info(id);

	return mi ? mi->name : "unknown";
}

/* ---- decoding ---------------------------------------------------------- */

struct decoder {
	struct rcursor c;
	uint8_t bits;
	unsigned bitpos;	/* next bit in `bits`; 0 means read a new octet */
	bool ok;
};

static void dec_octet(struct decoder *d, uint8_t *v)
{
	d->bitpos = 0;
	d->ok = d->ok && wire_get_u8(&d->c, v);
}

static void dec_short(struct decoder *d, uint16_t *v)
{
	d->bitpos = 0;
	d->ok = d->ok && wire_get_u16(&d->c, v);
}

static void dec_long(struct decoder *d, uint32_t *v)
{
	d->bitpos = 0;
	d->ok = d->ok && wire_get_u32(&d->c, v);
}

static void dec_longlong(struct decoder *d, uint64_t *v)
{
	d->bitpos = 0;
	d->ok = d->ok && wire_get_u64(&d->c, v);
}

#define dec_timestamp dec_longlong

static void dec_shortstr(struct decoder *d, struct bytes *v)
{
	d->bitpos = 0;
	d->ok = d->ok && wire_get_shortstr(&d->c, v);
}

static void dec_longstr(struct decoder *d, struct bytes *v)
{
	d->bitpos = 0;
	d->ok = d->ok && wire_get_longstr(&d->c, v);
}

static void dec_table(struct decoder *d, struct bytes *v)
{
	dec_longstr(d, v);
	d->ok = d->ok && ftable_validate(*v);
}

static void dec_bit(struct decoder *d, bool *v)
{
	if (!d->ok)
		return;
	if (d->bitpos == 0 && !wire_get_u8(&d->c, &d->bits)) {
		d->ok = false;
		return;
	}
	*v = (d->bits >> d->bitpos) & 1;
	d->bitpos = (d->bitpos + 1) & 7;
}

int method_decode(struct bytes payload, struct amqp_method *out)
{
	struct decoder d = { rcursor_make(payload.ptr, payload.len), 0, 0, true };
	uint16_t cid, mid;

	memset(out, 0, sizeof(*out));
	if (!wire_get_u16(&d.c, &cid) || !wire_get_u16(&d.c, &mid))
		return AMQP_FRAME_ERROR;
	out->id = AMQP_METHOD_ID(cid, mid);
	switch (out->id) {
#define F(type, name) dec_##type(&d, &args->name);
#define AMQP_METHOD(c, m, cid_, mid_, sync, content, FIELDS)		\
	case AMQP_METHOD_ID(cid_, mid_): {				\
		struct amqp_##c##_##m *args = &out->a.c##_##m;		\
		(void)args;						\
		FIELDS							\
		break;							\
	}
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
	default:
		return AMQP_COMMAND_INVALID;
	}
	return d.ok && d.c.left == 0 ? 0 : AMQP_FRAME_ERROR;
}

/* ---- encoding ---------------------------------------------------------- */

struct encoder {
	struct wbuf *b;
	size_t bitoff;		/* offset of the octet collecting bits */
	unsigned bitpos;
};

static void enc_octet(struct encoder *e, uint8_t v)
{
	e->bitpos = 0;
	wbuf_put_u8(e->b, v);
}

static void enc_short(struct encoder *e, uint16_t v)
{
	e->bitpos = 0;
	wbuf_put_u16(e->b, v);
}

static void enc_long(struct encoder *e, uint32_t v)
{
	e->bitpos = 0;
	wbuf_put_u32(e->b, v);
}

static void enc_longlong(struct encoder *e, uint64_t v)
{
	e->bitpos = 0;
	wbuf_put_u64(e->b, v);
}

#define enc_timestamp enc_longlong

static void enc_shortstr(struct encoder *e, struct bytes v)
{
	e->bitpos = 0;
	wbuf_put_shortstr(e->b, v);
}

static void enc_longstr(struct encoder *e, struct bytes v)
{
	e->bitpos = 0;
	wbuf_put_longstr(e->b, v);
}

#define enc_table enc_longstr

static void enc_bit(struct encoder *e, bool v)
{
	if (e->bitpos == 0) {
		e->bitoff = e->b->len;
		wbuf_put_u8(e->b, 0);
	}
	if (v)
		e->b->p[e->bitoff] |= (uint8_t)(1u << e->bitpos);
	e->bitpos = (e->bitpos + 1) & 7;
}

void method_encode(struct wbuf *b, const struct amqp_method *m)
{
	struct encoder e = { b, 0, 0 };

	wbuf_put_u16(b, AMQP_METHOD_CLASS(m->id));
	wbuf_put_u16(b, AMQP_METHOD_INDEX(m->id));
	switch (m->id) {
#define F(type, name) enc_##type(&e, args->name);
#define AMQP_METHOD(c, m_, cid_, mid_, sync, content, FIELDS)		\
	case AMQP_METHOD_ID(cid_, mid_): {				\
		const struct amqp_##c##_##m_ *args = &m->a.c##_##m_;	\
		(void)args;						\
		FIELDS							\
		break;							\
	}
#include "amqp_methods.def"
#undef AMQP_METHOD
#undef F
	}
}
