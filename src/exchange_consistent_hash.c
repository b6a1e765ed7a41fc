/*
 * x-consistent-hash exchange, with the semantics of RabbitMQ's plugin:
 * each binding's key is its weight, a positive integer; the bindings own
 * consecutive runs of buckets, as many as their weights, in the order
 * they were made; a message goes to the one binding whose run holds
 * jump_hash(hash(value), total weight), where the value is the routing
 * key, or the header named by the exchange's `hash-header` argument, or
 * the property named by `hash-property` (message_id, correlation_id or
 * timestamp).  The same value always lands on the same binding while the
 * bindings stay the same; a binding removed gives its run back and the
 * runs after it move down, as the plugin's do.
 *
 * Jump consistent hash (Lamping and Veach, 2014) spreads keys evenly over
 * the buckets with no table at all; the runs are found by binary search
 * over their cumulative ends.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"
#include "amqp_error.h"
#include "exchange.h"
#include "field_table.h"
#include "log.h"
#include "message.h"
#include "stable_hash.h"

/* A Warren limit (the plugin has none): keeps the total within 2^63. */
#define CHASH_MAX_WEIGHT 1000000u

enum hash_on { HASH_ROUTING_KEY, HASH_HEADER, HASH_MESSAGE_ID, HASH_CORRELATION_ID,
	HASH_TIMESTAMP };

struct chash_run {
	struct binding *b;
	uint64_t end;		/* cumulative weight up to and including b */
};

struct chash {
	struct exchange *x;
	struct chash_run *runs;
	uint32_t n, cap;
	bool parsed;		/* the exchange's arguments, read at first use */
	enum hash_on on;
	char *header;		/* for HASH_HEADER */
};

/*
 * A binding key as the plugin reads it (Erlang's list_to_integer: an
 * optional sign, then digits).  false when it is not an integer; *weight
 * is its value when positive (at most CHASH_MAX_WEIGHT + 1), else 0.
 */
static bool key_parse(const char *key, uint32_t len, uint64_t *weight)
{
	uint32_t i = len > 0 && (key[0] == '-' || key[0] == '+');
	bool negative = i && key[0] == '-';
	uint64_t w = 0;

	*weight = 0;
	if (i == len)
		return false;
	for (; i < len; i++) {
		if (key[i] < '0' || key[i] > '9')
			return false;
		w = w * 10 + (uint64_t)(key[i] - '0');
		if (w > CHASH_MAX_WEIGHT)
			w = CHASH_MAX_WEIGHT + 1;
	}
	*weight = negative ? 0 : w;
	return true;
}

static uint64_t key_weight(const char *key, uint32_t len)
{
	uint64_t w;

	return key_parse(key, len, &w) && w <= CHASH_MAX_WEIGHT ? w : 0;
}

static int chash_check_binding(struct bytes key, struct bytes args,
    struct amqp_error *err)
{
	uint64_t w;

	(void)args;
	if (!key_parse((const char *)key.ptr, key.len, &w))
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "The binding key must be an integer: <<\"%.*s\">>",
		    BYTES_ARG(key));
	if (w == 0)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "The binding key must be greater than 0");
	if (w > CHASH_MAX_WEIGHT)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "The binding key must be at most %u", CHASH_MAX_WEIGHT);
	return 0;
}

static int chash_check_declare(struct bytes arguments, struct amqp_error *err)
{
	struct field_table *t = ftable_decode(arguments);
	const struct field_value *h = ftable_get(t, "hash-header");
	const struct field_value *p = ftable_get(t, "hash-property");
	int rc = 0;

	if (h && p)
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "hash-header and hash-property are mutually exclusive");
	else if ((h && h->type != 'S') || (p && p->type != 'S'))
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "%s must be a longstr", h ? "hash-header" : "hash-property");
	else if (p && !bytes_eq_str(p->v.str, "correlation_id") &&
	    !bytes_eq_str(p->v.str, "message_id") &&
	    !bytes_eq_str(p->v.str, "timestamp"))
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "Unsupported property: %.*s", BYTES_ARG(p->v.str));
	ftable_free(t);
	return rc;
}

/* The arguments were checked at declare; read them once. */
static void chash_parse(struct chash *c)
{
	struct bytes raw = { c->x->arguments, c->x->arguments_len };
	struct field_table *t = ftable_decode(raw);
	const struct field_value *h = ftable_get(t, "hash-header");
	const struct field_value *p = ftable_get(t, "hash-property");

	c->parsed = true;
	c->on = HASH_ROUTING_KEY;
	if (h && h->type == 'S') {
		c->on = HASH_HEADER;
		c->header = bytes_strdup(h->v.str);
	} else if (p && p->type == 'S') {
		if (bytes_eq_str(p->v.str, "message_id"))
			c->on = HASH_MESSAGE_ID;
		else if (bytes_eq_str(p->v.str, "correlation_id"))
			c->on = HASH_CORRELATION_ID;
		else if (bytes_eq_str(p->v.str, "timestamp"))
			c->on = HASH_TIMESTAMP;
	}
	ftable_free(t);
}

static void *chash_create(struct exchange *x)
{
	struct chash *c = xcalloc(1, sizeof(*c));

	c->x = x;
	return c;
}

static void chash_destroy(void *state)
{
	struct chash *c = state;

	free(c->runs);
	free(c->header);
	free(c);
}

static void chash_bind(void *state, struct binding *b)
{
	struct chash *c = state;
	uint64_t w = key_weight(b->key, b->key_len);

	if (w == 0)
		return; /* refused by chash_check_binding before it got here */
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 4;
		c->runs = xrealloc(c->runs, c->cap * sizeof(*c->runs));
	}
	c->runs[c->n].b = b;
	c->runs[c->n].end = (c->n ? c->runs[c->n - 1].end : 0) + w;
	c->n++;
}

static void chash_unbind(void *state, struct binding *b)
{
	struct chash *c = state;
	uint32_t i = 0;

	while (i < c->n && c->runs[i].b != b)
		i++;
	if (i == c->n)
		return;
	memmove(&c->runs[i], &c->runs[i + 1], (c->n - i - 1) * sizeof(*c->runs));
	c->n--;
	for (; i < c->n; i++)
		c->runs[i].end = (i ? c->runs[i - 1].end : 0) +
		    key_weight(c->runs[i].b->key, c->runs[i].b->key_len);
}

/* What messages without the header or property hash as (one bucket). */
#define HASH_MISSING 0x6d697373696e6721ull

/* Lamping and Veach's jump consistent hash: a bucket in [0, n). */
static uint64_t jump_hash(uint64_t key, uint64_t n)
{
	int64_t b = -1, j = 0;

	while ((uint64_t)j < n) {
		b = j;
		key = key * 2862933555777941757ull + 1;
		j = (int64_t)((double)(b + 1) *
		    ((double)(1ll << 31) / (double)((key >> 33) + 1)));
	}
	return (uint64_t)b;
}

static uint64_t header_hash(const struct field_value *v)
{
	char num[32];

	switch (v->type) {
	case 'S':
	case 'x':
		return stable_hash(v->v.str.ptr, v->v.str.len);
	case 'b': case 's': case 'I': case 'l':
		snprintf(num, sizeof(num), "%" PRId64, v->v.i);
		return stable_hash(num, strlen(num));
	case 'B': case 'u': case 'i': case 'L': case 'T':
		snprintf(num, sizeof(num), "%" PRIu64, v->v.u);
		return stable_hash(num, strlen(num));
	default: {
		struct wbuf b;
		uint64_t h;

		wbuf_init(&b);
		fvalue_encode(&b, v);
		h = stable_hash(b.p, b.len);
		wbuf_free(&b);
		return h;
	}
	}
}

static uint64_t message_hash(struct chash *c, struct route_result *r)
{
	struct basic_properties p;
	const struct field_value *v;
	char num[32];

	switch (c->on) {
	case HASH_ROUTING_KEY:
		return stable_hash(r->key.ptr, r->key.len);
	case HASH_HEADER:
		v = ftable_get(route_headers(r), c->header);
		return v ? header_hash(v) : HASH_MISSING;
	default:
		break;
	}
	msg_props(r->msg, &p);
	if (c->on == HASH_MESSAGE_ID && props_has(&p, PROP_message_id))
		return stable_hash(p.message_id.ptr, p.message_id.len);
	if (c->on == HASH_CORRELATION_ID && props_has(&p, PROP_correlation_id))
		return stable_hash(p.correlation_id.ptr, p.correlation_id.len);
	if (c->on == HASH_TIMESTAMP && props_has(&p, PROP_timestamp)) {
		snprintf(num, sizeof(num), "%" PRIu64, p.timestamp);
		return stable_hash(num, strlen(num));
	}
	return HASH_MISSING;
}

static void chash_route(void *state, struct route_result *r)
{
	struct chash *c = state;
	uint64_t bucket;
	uint32_t lo = 0, hi;

	if (c->n == 0)
		return;
	if (!c->parsed)
		chash_parse(c);
	bucket = jump_hash(message_hash(c, r), c->runs[c->n - 1].end);
	/* the first run whose end is past the bucket */
	hi = c->n - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->runs[mid].end > bucket)
			hi = mid;
		else
			lo = mid + 1;
	}
	route_binding(r, c->runs[lo].b);
}

const struct exchange_type exchange_consistent_hash = {
	.name = "x-consistent-hash",
	.create = chash_create,
	.destroy = chash_destroy,
	.bind = chash_bind,
	.unbind = chash_unbind,
	.route = chash_route,
	.check_declare = chash_check_declare,
	.check_binding = chash_check_binding,
};
