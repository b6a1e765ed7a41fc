/*
 * Management API: bindings, in every form of RabbitMQ's /api/bindings
 * paths.  A binding is named in a path by its source, its destination and
 * its "properties key": the routing key, followed by "~" and a hash of the
 * arguments when it has any (RabbitMQ's scheme; the hash is ours, and
 * clients take properties_key from the listing, as RabbitMQ's do).  The
 * default exchange's implicit binding of every queue is listed too, as
 * RabbitMQ lists it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "amqp_error.h"
#include "crc32c.h"
#include "definitions.h"
#include "exchange.h"
#include "log.h"
#include "mgmt_handlers.h"
#include "operations.h"
#include "queue.h"
#include "strmap.h"
#include "users.h"
#include "vhost.h"

/* Which bindings a listing wants: NULL fields match anything. */
struct binding_filter {
	const char *source;
	const char *dest;
	int kind;			/* -1, DEST_QUEUE or DEST_EXCHANGE */
};

static void properties_key(const char *key, uint32_t key_len,
    const uint8_t *args, uint32_t args_len, char *out, size_t len)
{
	if (args_len == 0)
		snprintf(out, len, "%.*s", (int)key_len, key);
	else
		snprintf(out, len, "%.*s~%08x", (int)key_len, key,
		    crc32c(0, args, args_len));
}

static json_t *binding_json(const char *source, const char *vhost,
    const char *dest, enum binding_dest kind, const char *key,
    uint32_t key_len, const uint8_t *args, uint32_t args_len)
{
	char props[600];

	properties_key(key, key_len, args, args_len, props, sizeof(props));
	return json_pack("{s:s, s:s, s:s, s:s, s:s%, s:o, s:s}", "source",
	    source, "vhost", vhost, "destination", dest, "destination_type",
	    kind == DEST_QUEUE ? "queue" : "exchange", "routing_key", key,
	    (size_t)key_len, "arguments", definitions_args_to_json(args,
	    args_len), "properties_key", props);
}

json_t *mgmt_binding_json(const struct binding *b)
{
	return binding_json(b->source->name, b->source->vh->name,
	    b->kind == DEST_QUEUE ? b->dest.queue->name :
	    b->dest.exchange->name, b->kind, b->key, b->key_len, b->args,
	    b->args_len);
}

static bool matches(const char *name, const char *want)
{
	return want == NULL || strcmp(name, want) == 0;
}

static void list_vhost(struct vhost *vh, const struct binding_filter *f,
    json_t *list)
{
	size_t n;
	struct strmap_entry *xs = strmap_sorted(vh->exchanges, &n);
	struct strmap_entry *qs;

	/* The default exchange binds every queue by its name. */
	if (matches("", f->source) && f->kind != DEST_EXCHANGE) {
		size_t nq;

		qs = strmap_sorted(vh->queues, &nq);
		for (size_t i = 0; i < nq; i++) {
			struct queue *q = qs[i].value;

			if (matches(q->name, f->dest))
				json_array_append_new(list, binding_json("",
				    vh->name, q->name, DEST_QUEUE, q->name,
				    (uint32_t)strlen(q->name), NULL, 0));
		}
		free(qs);
	}
	for (size_t i = 0; i < n; i++) {
		struct exchange *x = xs[i].value;
		struct binding *b;

		if (!matches(x->name, f->source))
			continue;
		TAILQ_FOREACH(b, &x->bindings, src_link) {
			const char *dest = b->kind == DEST_QUEUE ?
			    b->dest.queue->name : b->dest.exchange->name;

			if ((f->kind < 0 || (int)b->kind == f->kind) &&
			    matches(dest, f->dest))
				json_array_append_new(list, binding_json(x->name,
				    vh->name, dest, b->kind, b->key, b->key_len,
				    b->args, b->args_len));
		}
	}
	free(xs);
}

/* Every visible binding (GET /api/bindings), or one vhost's. */
void mgmt_bindings(struct mgmt_req *q)
{
	struct binding_filter all = { NULL, NULL, -1 };
	json_t *list = json_array();
	struct vhost *vh;
	size_t n;

	if (q->n_seg == 2) {
		if ((vh = mgmt_vhost(q, 1)) == NULL) {
			json_decref(list);
			return;
		}
		list_vhost(vh, &all, list);
	} else {
		struct vhost **vhs = mgmt_visible_vhosts(q, &n);

		for (size_t i = 0; i < n; i++)
			list_vhost(vhs[i], &all, list);
		free(vhs);
	}
	mgmt_reply(q, HTTP_OK, list);
}

/*
 * /api/exchanges/{vhost}/{name}/bindings/{source|destination} and
 * /api/queues/{vhost}/{name}/bindings.
 */
void mgmt_object_bindings(struct mgmt_req *q)
{
	struct binding_filter f = { NULL, NULL, -1 };
	struct vhost *vh = mgmt_vhost(q, 1);
	bool is_queue = strcmp(q->seg[0], "queues") == 0;
	json_t *list;

	if (vh == NULL)
		return;
	if (is_queue ? vhost_find_queue(vh, bytes_str(q->seg[2])) == NULL :
	    vhost_find_exchange(vh, bytes_str(mgmt_exchange_name(q->seg[2]))) ==
	    NULL) {
		mgmt_not_found(q);
		return;
	}
	if (is_queue) {
		f.dest = q->seg[2];
		f.kind = DEST_QUEUE;
	} else if (strcmp(q->seg[4], "source") == 0) {
		f.source = mgmt_exchange_name(q->seg[2]);
	} else {
		f.dest = q->seg[2];
		f.kind = DEST_EXCHANGE;
	}
	list = json_array();
	list_vhost(vh, &f, list);
	mgmt_reply(q, HTTP_OK, list);
}

/* Write on the destination, then read on the source, as queue.bind. */
static bool may_bind(struct mgmt_req *q, struct vhost *vh,
    const struct binding_filter *f)
{
	return mgmt_permitted(q, vh, ACCESS_WRITE, f->kind == DEST_QUEUE,
	    f->dest, false) &&
	    mgmt_permitted(q, vh, ACCESS_READ, false, f->source, false);
}

/* /api/bindings/{vhost}/e/{source}/{q|e}/{dest}[/{props}] */
static bool between(struct mgmt_req *q, struct vhost **vh,
    struct binding_filter *f)
{
	if ((*vh = mgmt_vhost(q, 1)) == NULL)
		return false;
	f->source = mgmt_exchange_name(q->seg[3]);
	f->kind = q->seg[4][0] == 'q' ? DEST_QUEUE : DEST_EXCHANGE;
	f->dest = q->seg[5];
	if (vhost_find_exchange(*vh, bytes_str(f->source)) == NULL ||
	    (f->kind == DEST_QUEUE ?
	    (void *)vhost_find_queue(*vh, bytes_str(f->dest)) :
	    (void *)vhost_find_exchange(*vh, bytes_str(f->dest))) == NULL) {
		mgmt_not_found(q);
		return false;
	}
	return true;
}

static void add_binding(struct mgmt_req *q, struct vhost *vh,
    const struct binding_filter *f)
{
	const char *key;
	struct amqp_error err;
	struct wbuf args;
	char why[256], props[600];

	if (!mgmt_body_str(q, "routing_key", "", &key))
		return;
	wbuf_init(&args);
	if (!definitions_json_to_args(json_object_get(q->body, "arguments"),
	    &args, why, sizeof(why))) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
	} else if (op_bind(vh, true, (enum binding_dest)f->kind,
	    bytes_str(f->dest), bytes_str(f->source), bytes_str(key),
	    (struct bytes){ args.p, (uint32_t)args.len }, OP_ADMIN, false,
	    &err)) {
		mgmt_amqp_error(q, &err);
	} else {
		/* Where the new binding is, as RabbitMQ says it. */
		properties_key(key, (uint32_t)strlen(key), args.p,
		    (uint32_t)args.len, props, sizeof(props));
		evhttp_add_header(evhttp_request_get_output_headers(q->r),
		    "Location", props);
		mgmt_reply(q, 201, NULL);
	}
	wbuf_free(&args);
}

void mgmt_bindings_between(struct mgmt_req *q)
{
	struct binding_filter f = { 0 };
	struct vhost *vh;
	json_t *list;

	if (!between(q, &vh, &f))
		return;
	if (evhttp_request_get_command(q->r) == EVHTTP_REQ_POST) {
		if (may_bind(q, vh, &f))
			add_binding(q, vh, &f);
		return;
	}
	list = json_array();
	list_vhost(vh, &f, list);
	mgmt_reply(q, HTTP_OK, list);
}

/* One binding, by its properties key: GET shows it, DELETE unbinds it. */
void mgmt_binding(struct mgmt_req *q)
{
	struct binding_filter f = { 0 };
	struct exchange *source;
	struct binding *b, *found = NULL;
	struct amqp_error err;
	struct vhost *vh;
	char props[600];
	const char *dest;

	if (!between(q, &vh, &f))
		return;
	source = vhost_find_exchange(vh, bytes_str(f.source));
	TAILQ_FOREACH(b, &source->bindings, src_link) {
		dest = b->kind == DEST_QUEUE ? b->dest.queue->name :
		    b->dest.exchange->name;
		properties_key(b->key, b->key_len, b->args, b->args_len, props,
		    sizeof(props));
		if ((int)b->kind == f.kind && strcmp(dest, f.dest) == 0 &&
		    strcmp(props, q->seg[6]) == 0) {
			found = b;
			break;
		}
	}
	if (found == NULL) {
		mgmt_not_found(q);
		return;
	}
	if (evhttp_request_get_command(q->r) != EVHTTP_REQ_DELETE) {
		mgmt_reply(q, HTTP_OK, binding_json(source->name, vh->name,
		    f.dest, found->kind, found->key, found->key_len,
		    found->args, found->args_len));
		return;
	}
	if (!may_bind(q, vh, &f))
		return;
	if (op_bind(vh, false, found->kind, bytes_str(f.dest),
	    bytes_str(f.source), (struct bytes){ (const uint8_t *)found->key,
	    found->key_len }, (struct bytes){ found->args, found->args_len },
	    OP_ADMIN, true, &err))
		mgmt_amqp_error(q, &err);
	else
		mgmt_reply(q, HTTP_NOCONTENT, NULL);
}
