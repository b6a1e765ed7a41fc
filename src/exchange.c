/*
 * Exchanges, bindings and routing across exchange-to-exchange bindings.
 *
 * Routing follows RabbitMQ: every exchange reached routes by its type; an
 * exchange whose own bindings matched nothing hands the message to its
 * alternate exchange; each exchange is visited and each queue collected at
 * most once per message (generation stamps), so cycles terminate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "dedup.h"
#include "delayed.h"
#include "exchange.h"
#include "field_table.h"
#include "journal.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"
#include "queue.h"
#include "route_trace.h"
#include "vhost.h"

static const struct exchange_type *const exchange_types[] = {
	&exchange_direct, &exchange_fanout, &exchange_topic, &exchange_headers,
	&exchange_consistent_hash,
};

const struct exchange_type *exchange_type_find(struct bytes name)
{
	for (size_t i = 0; i < sizeof(exchange_types) / sizeof(exchange_types[0]); i++)
		if (bytes_eq_str(name, exchange_types[i]->name))
			return exchange_types[i];
	return NULL;
}

struct exchange *exchange_new(struct vhost *vh, struct bytes name,
    const struct exchange_type *type)
{
	struct exchange *x = xcalloc(1, sizeof(*x));

	x->name = bytes_strdup(name);
	x->vh = vh;
	x->type = type;
	TAILQ_INIT(&x->bindings);
	TAILQ_INIT(&x->inbound);
	x->state = type->create(x);
	return x;
}

void exchange_free(struct exchange *x)
{
	struct binding *b;

	while ((b = TAILQ_FIRST(&x->bindings)) != NULL)
		exchange_unbind(b);
	while ((b = TAILQ_FIRST(&x->inbound)) != NULL)
		exchange_unbind(b);
	x->type->destroy(x->state);
	dedup_free(x->dedup, false);
	delayed_free(x->delayed, false);
	free(x->arguments);
	free(x->alternate);
	free(x->name);
	free(x);
}

static struct binding_list *inbound_list(enum binding_dest kind, void *dest)
{
	return kind == DEST_QUEUE ? &((struct queue *)dest)->inbound :
	    &((struct exchange *)dest)->inbound;
}

struct binding *exchange_find_binding(struct exchange *x,
    enum binding_dest kind, void *dest, struct bytes key, struct bytes args)
{
	struct binding *b;

	/* Search the (usually shorter) destination side. */
	TAILQ_FOREACH(b, inbound_list(kind, dest), dst_link)
		if (b->source == x && b->kind == kind &&
		    bytes_eq((struct bytes){ (uint8_t *)b->key, b->key_len }, key) &&
		    bytes_eq((struct bytes){ b->args, b->args_len }, args))
			return b;
	return NULL;
}

struct binding *exchange_bind(struct exchange *x, enum binding_dest kind,
    void *dest, struct bytes key, struct bytes args)
{
	struct binding *b = xcalloc(1, sizeof(*b));

	b->source = x;
	b->kind = kind;
	if (kind == DEST_QUEUE)
		b->dest.queue = dest;
	else
		b->dest.exchange = dest;
	b->key = bytes_strdup(key);
	b->key_len = key.len;
	if (args.len) {
		b->args = xmalloc(args.len);
		memcpy(b->args, args.ptr, args.len);
		b->args_len = args.len;
		b->args_tree = ftable_decode((struct bytes){ b->args, b->args_len });
	}
	TAILQ_INSERT_TAIL(&x->bindings, b, src_link);
	TAILQ_INSERT_TAIL(inbound_list(kind, dest), b, dst_link);
	x->n_bindings++;
	x->type->bind(x->state, b);
	if (binding_is_durable(b))
		broker_durable_changed(x->vh->broker);
	return b;
}

bool binding_is_durable(const struct binding *b)
{
	/* Bindings from the default exchange are implicit, never stored. */
	if (!b->source->durable || b->source->name[0] == '\0')
		return false;
	if (b->kind == DEST_QUEUE)
		return b->dest.queue->store_qid != 0;
	return b->dest.exchange->durable;
}

void exchange_unbind(struct binding *b)
{
	struct exchange *x = b->source;

	if (binding_is_durable(b))
		broker_durable_changed(x->vh->broker);
	x->type->unbind(x->state, b);
	TAILQ_REMOVE(&x->bindings, b, src_link);
	TAILQ_REMOVE(inbound_list(b->kind, b->kind == DEST_QUEUE ?
	    (void *)b->dest.queue : (void *)b->dest.exchange), b, dst_link);
	x->n_bindings--;
	ftable_free(b->args_tree);
	free(b->args);
	free(b->key);
	free(b);
}

static uint64_t route_generation;

static void trace(struct route_result *r, enum route_step step,
    struct exchange *x, struct binding *via, struct queue *q)
{
	struct route_event ev = { step, r->key, x, via, NULL, q };

	if (step == ROUTE_ENTERED) {
		ev.via = r->trace->via;
		ev.alternate_of = r->trace->alternate_of;
		r->trace->via = NULL;
		r->trace->alternate_of = NULL;
	}
	route_trace_add(r->trace, &ev);
}

static void route_from(struct exchange *x, struct route_result *r)
{
	uint32_t before = r->matched;

	if (x->route_gen == r->xgen) {
		if (r->trace)
			trace(r, ROUTE_REVISITED, x, NULL, NULL);
		return;
	}
	x->route_gen = r->xgen;
	if (r->trace)
		trace(r, ROUTE_ENTERED, x, NULL, NULL);
	x->type->route(x->state, r);
	if (r->matched == before && x->alternate) {
		struct exchange *ae = vhost_find_exchange(x->vh,
		    bytes_str(x->alternate));

		if (ae && r->trace)
			r->trace->alternate_of = x;
		if (ae)
			route_from(ae, r);
		else if (r->trace)
			trace(r, ROUTE_NO_ALTERNATE, x, NULL, NULL);
	}
}

/* q is a destination (each queue is collected once). */
static void collect_queue(struct route_result *r, struct queue *q)
{
	r->matched++;
	if (q->route_gen == r->gen)
		return;
	q->route_gen = r->gen;
	if (r->n == r->cap) {
		struct queue **grown = xmalloc(2 * r->cap * sizeof(*grown));

		memcpy(grown, r->queues, r->n * sizeof(*grown));
		if (r->queues != r->inline_queues)
			free(r->queues);
		r->queues = grown;
		r->cap *= 2;
	}
	r->queues[r->n++] = q;
}

void route_queue(struct route_result *r, struct queue *q)
{
	if (r->trace)
		trace(r, ROUTE_MATCHED, NULL, NULL, q);
	collect_queue(r, q);
}

void route_binding(struct route_result *r, struct binding *b)
{
	if (r->trace)
		trace(r, ROUTE_MATCHED, NULL, b, NULL);
	if (b->kind == DEST_QUEUE) {
		collect_queue(r, b->dest.queue);
	} else {
		r->matched++;
		if (r->trace)
			r->trace->via = b;
		route_from(b->dest.exchange, r);
	}
}

const struct field_table *route_headers(struct route_result *r)
{
	if (!r->headers_decoded) {
		r->headers_decoded = true;
		if (msg_has_prop(r->msg, PROP_headers))
			r->headers = ftable_decode(r->msg->headers);
	}
	return r->headers;
}

uint32_t message_header_keys(const struct field_table *headers,
    const char *name, struct bytes *out, uint32_t max)
{
	const struct field_value *v = ftable_get(headers, name);
	uint32_t n = 0;

	if (v == NULL || v->type != 'A')
		return 0;
	for (uint32_t i = 0; i < v->v.array->n && n < max; i++)
		if (v->v.array->items[i].type == 'S')
			out[n++] = v->v.array->items[i].v.str;
	return n;
}

/* Route once per key; queues are collected once across all keys. */
static void route_key(struct exchange *x, struct route_result *r,
    struct bytes key)
{
	r->xgen = ++route_generation;
	r->key = key;
	route_from(x, r);
}

#define MAX_CC_KEYS 64

void exchange_route(struct exchange *x, const struct message *msg,
    struct route_result *r)
{
	exchange_route_traced(x, msg, r, NULL);
}

void exchange_route_traced(struct exchange *x, const struct message *msg,
    struct route_result *r, struct route_trace *trace)
{
	const struct field_table *h;
	struct bytes keys[MAX_CC_KEYS];
	uint32_t n;

	memset(r, 0, sizeof(*r));
	r->queues = r->inline_queues;
	r->cap = ROUTE_INLINE_QUEUES;
	r->gen = ++route_generation;
	r->msg = msg;
	r->trace = trace;
	route_key(x, r, msg->routing_key);
	/* Cheap test before decoding: the shortstr keys "CC" and "BCC". */
	if (!msg_has_prop(msg, PROP_headers) ||
	    (!memmem(msg->headers.ptr, msg->headers.len, "\x02" "CC", 3) &&
	    !memmem(msg->headers.ptr, msg->headers.len, "\x03" "BCC", 4)))
		return;
	if ((h = route_headers(r)) == NULL)
		return;
	n = message_header_keys(h, "CC", keys, MAX_CC_KEYS);
	n += message_header_keys(h, "BCC", keys + n, MAX_CC_KEYS - n);
	for (uint32_t i = 0; i < n; i++)
		route_key(x, r, keys[i]);
}

void route_result_free(struct route_result *r)
{
	ftable_free(r->headers);
	if (r->queues != r->inline_queues)
		free(r->queues);
}

uint32_t exchange_deliver(struct exchange *x, struct message *msg,
    uint64_t *ticket, bool *accepted)
{
	struct message *stored = msg;
	struct route_result r;
	uint32_t n;

	*accepted = true;
	exchange_route(x, msg, &r);
	/* BCC routes like CC but is never delivered. */
	if (r.n && r.headers && ftable_get(r.headers, "BCC"))
		stored = msg_without_header(msg, "BCC");
	for (uint32_t i = 0; i < r.n; i++)
		if (!queue_push(r.queues[i], stored, ticket))
			*accepted = false;
	if (stored != msg)
		msg_unref(stored);
	n = r.n;
	route_result_free(&r);
	return n;
}

bool exchange_publish(struct exchange *x, struct message *msg,
    uint64_t *ticket, bool *accepted)
{
	uint64_t delay;

	*accepted = true;
	if (x->dedup && dedup_seen(x->dedup, msg, ticket)) {
		if (x->vh->journal)
			journal_note(x->vh->journal, J_DUPLICATE, msg, 0, 0,
			    x->name, NULL);
		return true;
	}
	if (x->delayed && (delay = delayed_delay_of(msg)) != 0) {
		if (x->vh->journal) {
			char ms[32];

			snprintf(ms, sizeof(ms), "%llu ms",
			    (unsigned long long)delay);
			journal_note(x->vh->journal, J_DELAYED, msg, 0, 0,
			    x->name, ms);
		}
		delayed_schedule(x->delayed, msg, delay, ticket);
		return true;
	}
	return exchange_deliver(x, msg, ticket, accepted) > 0;
}

void exchange_discard_state(struct exchange *x)
{
	dedup_free(x->dedup, true);
	x->dedup = NULL;
	delayed_free(x->delayed, true);
	x->delayed = NULL;
}

const char *exchange_type_name(const struct exchange *x)
{
	return x->delayed ? "x-delayed-message" : x->type->name;
}
