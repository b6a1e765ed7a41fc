/*
 * The route tracer: POST /api/route/{vhost}/{exchange} with a publish's
 * body ("routing_key", "properties", optionally "payload") answers which
 * queues that message would reach, through which bindings, exchange-to-
 * exchange hops and alternate exchanges, and why the other bindings of
 * the exchanges it passed did not match; nothing is published.  The
 * steps come from routing itself (exchange_route_traced).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "amqp_error.h"
#include "exchange.h"
#include "field_table.h"
#include "message.h"
#include "mgmt.h"
#include "mgmt_handlers.h"
#include "operations.h"
#include "queue.h"
#include "route_trace.h"
#include "vhost.h"

static json_t *key_json(struct bytes key)
{
	return json_stringn((const char *)key.ptr, key.len);
}

static json_t *step_json(const struct route_event *ev)
{
	json_t *o = json_object();
	const struct exchange *x = ev->x;

	json_object_set_new(o, "routing_key", key_json(ev->key));
	switch (ev->step) {
	case ROUTE_ENTERED:
		json_object_set_new(o, "step", json_string("exchange"));
		json_object_set_new(o, "exchange", json_string(x->name));
		json_object_set_new(o, "type",
		    json_string(exchange_type_name(x)));
		if (ev->via) {
			json_object_set_new(o, "reached", json_string("binding"));
			json_object_set_new(o, "binding",
			    mgmt_binding_json(ev->via));
		} else if (ev->alternate_of) {
			json_object_set_new(o, "reached",
			    json_string("alternate"));
			json_object_set_new(o, "alternate_of",
			    json_string(ev->alternate_of->name));
		} else {
			json_object_set_new(o, "reached",
			    json_string("published"));
		}
		break;
	case ROUTE_REVISITED:
		json_object_set_new(o, "step", json_string("revisited"));
		json_object_set_new(o, "exchange", json_string(x->name));
		json_object_set_new(o, "why", json_string("already routed for "
		    "this key: the bindings form a cycle, and a message "
		    "reaches each queue once"));
		break;
	case ROUTE_MATCHED:
		json_object_set_new(o, "step", json_string("matched"));
		if (ev->via) {
			json_object_set_new(o, "binding",
			    mgmt_binding_json(ev->via));
		} else {
			json_object_set_new(o, "queue",
			    json_string(ev->queue->name));
			json_object_set_new(o, "why", json_string("the default "
			    "exchange binds every queue by its name"));
		}
		break;
	case ROUTE_NO_ALTERNATE:
		json_object_set_new(o, "step", json_string("no_alternate"));
		json_object_set_new(o, "exchange", json_string(x->name));
		json_object_set_new(o, "alternate_exchange",
		    json_string(x->alternate));
		json_object_set_new(o, "why", json_string("nothing matched and "
		    "the alternate exchange does not exist"));
		break;
	}
	return o;
}

static bool matched(const struct route_trace *t, const struct binding *b)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->events[i].step == ROUTE_MATCHED && t->events[i].via == b)
			return true;
	return false;
}

/* The keys x was routed with, quoted: "'a.b'" or "'a', 'cc'". */
static void keys_into(const struct route_trace *t, const struct exchange *x,
    char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < t->n && used < len; i++) {
		const struct route_event *ev = &t->events[i];

		if (ev->step != ROUTE_ENTERED || ev->x != x)
			continue;
		used += (size_t)snprintf(out + used, len - used, "%s'%.*s'",
		    used ? ", " : "", (int)ev->key.len,
		    (const char *)ev->key.ptr);
	}
}

/* Why binding b of x, reached, did not match. */
static void why_not(const struct route_trace *t, const struct binding *b,
    char *out, size_t len)
{
	const struct exchange *x = b->source;
	char keys[512];

	keys_into(t, x, keys, sizeof(keys));
	if (x->type == &exchange_direct) {
		snprintf(out, len, "binding key '%.*s' is not the routing key "
		    "(%s)", (int)b->key_len, b->key, keys);
	} else if (x->type == &exchange_topic) {
		snprintf(out, len, "pattern '%.*s' does not match the routing "
		    "key (%s)", (int)b->key_len, b->key, keys);
	} else if (x->type == &exchange_headers) {
		struct field_table *args = ftable_decode((struct bytes){
		    b->args, b->args_len });
		const struct field_value *m = ftable_get(args, "x-match");

		snprintf(out, len, "the message's headers do not satisfy the "
		    "binding's arguments (x-match %.*s)", m && (m->type == 'S' ||
		    m->type == 's') ? (int)m->v.str.len : 3, m && (m->type ==
		    'S' || m->type == 's') ? (const char *)m->v.str.ptr : "all");
		ftable_free(args);
	} else if (x->type == &exchange_consistent_hash) {
		snprintf(out, len, "the message's hash falls in another "
		    "binding's range");
	} else {
		snprintf(out, len, "not reached");
	}
}

/* The bindings of every exchange the message reached that did not match. */
static json_t *not_matched_json(const struct route_trace *t)
{
	json_t *list = json_array();

	for (size_t i = 0; i < t->n; i++) {
		const struct route_event *ev = &t->events[i];
		struct binding *b;
		bool first = true;

		if (ev->step != ROUTE_ENTERED)
			continue;
		/* each exchange once, however many keys reached it */
		for (size_t j = 0; j < i && first; j++)
			first = !(t->events[j].step == ROUTE_ENTERED &&
			    t->events[j].x == ev->x);
		if (!first)
			continue;
		TAILQ_FOREACH(b, &ev->x->bindings, src_link) {
			char why[700];
			json_t *o;

			if (matched(t, b))
				continue;
			why_not(t, b, why, sizeof(why));
			o = mgmt_binding_json(b);
			json_object_set_new(o, "why", json_string(why));
			json_array_append_new(list, o);
		}
	}
	return list;
}

/* A delayed exchange's x-delay: the message would wait before routing. */
static void add_delay(json_t *out, const struct exchange *x,
    const struct message *m)
{
	struct field_table *h;
	const struct field_value *v;
	int64_t ms;

	if (x->delayed == NULL || m->headers.len == 0)
		return;
	h = ftable_decode(m->headers);
	if ((v = ftable_get(h, "x-delay")) != NULL && fvalue_int64(v, &ms) &&
	    ms > 0) {
		json_object_set_new(out, "delayed_ms", json_integer(ms));
		json_object_set_new(out, "delay_note", json_string("an "
		    "x-delayed-message exchange holds it this long, then routes "
		    "it by the bindings of that moment"));
	}
	ftable_free(h);
}

/* Why a message from x with key reached no queue (alternate exchanges
 * that were missing are steps of their own). */
static const char *unroutable_why(const struct exchange *x, const char *key)
{
	static char why[600];

	if (x->name[0] == '\0')
		snprintf(why, sizeof(why), "no queue is named '%s' (the default "
		    "exchange routes to the queue named by the routing key)",
		    key);
	else if (x->n_bindings == 0 && x->alternate == NULL)
		snprintf(why, sizeof(why), "exchange '%s' has no bindings and "
		    "no alternate exchange", x->name);
	else
		snprintf(why, sizeof(why), "no binding matched on the way");
	return why;
}

void mgmt_route(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	struct bytes xname = bytes_str(mgmt_exchange_name(q->seg[2]));
	struct route_trace trace = { 0 };
	struct route_result r;
	struct amqp_error err;
	struct exchange *x;
	struct message *m;
	json_t *steps, *queues, *out;
	const char *key;

	if (vh == NULL)
		return;
	if (op_find_exchange(vh, xname, &x, &err)) {
		mgmt_amqp_error(q, &err);
		return;
	}
	if (q->body == NULL || !mgmt_body_str(q, "routing_key", NULL, &key) ||
	    (m = mgmt_request_message(q, xname, key, false)) == NULL)
		return;
	exchange_route_traced(x, m, &r, &trace);
	steps = json_array();
	for (size_t i = 0; i < trace.n; i++)
		json_array_append_new(steps, step_json(&trace.events[i]));
	queues = json_array();
	for (uint32_t i = 0; i < r.n; i++)
		json_array_append_new(queues, json_string(r.queues[i]->name));
	out = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:o}", "vhost",
	    vh->name, "exchange", x->name, "routing_key", key, "routed",
	    r.n > 0, "queues", queues, "steps", steps, "not_matched",
	    not_matched_json(&trace));
	if (r.n == 0)
		json_object_set_new(out, "unroutable_why",
		    json_string(unroutable_why(x, key)));
	add_delay(out, x, m);
	mgmt_reply(q, HTTP_OK, out);
	route_result_free(&r);
	route_trace_free(&trace);
	msg_unref(m);
}
