/*
 * Management API: the overview, queues, exchanges, definitions and health
 * checks (RabbitMQ's /api/overview, /api/queues, /api/exchanges,
 * /api/definitions, /api/health/checks/alarms, /api/aliveness-test),
 * through the same operations the AMQP channel uses (declare.c,
 * operations.c), acting for an administrator (OP_ADMIN).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "amqp.h"
#include "amqp_error.h"
#include "broker.h"
#include "config.h"
#include "connection.h"
#include "declare.h"
#include "definitions.h"
#include "dedup.h"
#include "delayed.h"
#include "exchange.h"
#include "log.h"
#include "message.h"
#include "mgmt_handlers.h"
#include "operations.h"
#include "queue.h"
#include "queue_latency.h"
#include "strmap.h"
#include "users.h"
#include "vhost.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif
/* The RabbitMQ version whose API this one follows. */
#define API_VERSION "3.10.8"

/* For a list route: the one vhost of segment 1, or every visible one. */
static struct vhost **listed_vhosts(struct mgmt_req *q, size_t *n)
{
	struct vhost *vh, **one;

	if (q->n_seg < 2)
		return mgmt_visible_vhosts(q, n);
	if ((vh = mgmt_vhost(q, 1)) == NULL)
		return NULL;
	one = xcalloc(1, sizeof(*one));
	one[0] = vh;
	*n = 1;
	return one;
}

static bool query_true(struct mgmt_req *q, const char *key)
{
	const char *v = mgmt_query(q, key);

	return v && strcmp(v, "true") == 0;
}

/* ---- overview and health ------------------------------------------------ */

/*
 * RabbitMQ's message_stats: a count for each name, and for the first
 * n_rates its rate too (the others are counted, not sampled).
 */
static json_t *message_stats(const char *const *names,
    const uint64_t *counts, const double *rates, size_t n_rates, size_t n)
{
	json_t *o = json_object();
	char key[64];

	for (size_t i = 0; i < n; i++) {
		json_object_set_new(o, names[i], json_integer(
		    (json_int_t)counts[i]));
		if (i >= n_rates)
			continue;
		snprintf(key, sizeof(key), "%s_details", names[i]);
		json_object_set_new(o, key, json_pack("{s:f}", "rate",
		    rates[i]));
	}
	return o;
}

static const char *const rate_names[] = { "publish", "deliver_get", "ack" };

/* The broker's message_stats (RabbitMQ's names), over every vhost. */
static json_t *overview_stats(const struct broker *b)
{
	static const char *const names[] = { "publish", "deliver_get", "ack",
	    "confirm", "redeliver", "return_unroutable", "drop_unroutable" };
	const struct broker_counters *c = &b->counters;
	const uint64_t counts[] = { c->messages_received,
	    c->messages_delivered + c->messages_get, c->messages_acknowledged,
	    c->messages_confirmed, c->messages_redelivered,
	    c->unroutable_returned, c->unroutable_dropped };
	return message_stats(names, counts, b->rates, 3, 7);
}

void mgmt_overview(struct mgmt_req *q)
{
	uint64_t n_queues = 0, n_exchanges = 0, consumers = 0, ready = 0;
	uint64_t unacked = 0, conns = 0, channels = 0;
	const struct warren_config *cfg = q->b->cfg;
	size_t n;
	struct vhost **vhs = mgmt_visible_vhosts(q, &n);
	struct conn *c;
	json_t *listeners;

	for (size_t i = 0; i < n; i++) {
		struct bytes k;
		void *v;

		n_exchanges += strmap_count(vhs[i]->exchanges);
		for (size_t it = 0; strmap_next(vhs[i]->queues, &it, &k, &v); ) {
			struct queue_stats st;

			queue_stats(v, &st);
			n_queues++;
			consumers += st.consumers;
			ready += st.messages;
			unacked += st.unacked;
		}
	}
	TAILQ_FOREACH(c, &q->b->conns, link) {
		if (c->vh && (q->sees_all_vhosts || mgmt_may_see(q, c->vh))) {
			conns++;
			channels += c->n_channels;
		}
	}
	free(vhs);
	listeners = json_pack("[{s:s, s:s, s:s, s:i}]", "node", q->b->cfg->node_name,
	    "protocol", "amqp", "ip_address", cfg->tcp_addr, "port",
	    (int)cfg->tcp_port);
	if (cfg->ssl_port)
		json_array_append_new(listeners, json_pack("{s:s, s:s, s:s, "
		    "s:i}", "node", q->b->cfg->node_name, "protocol", "amqp/ssl",
		    "ip_address", cfg->ssl_addr, "port", (int)cfg->ssl_port));
	json_array_append_new(listeners, json_pack("{s:s, s:s, s:s, s:i}",
	    "node", q->b->cfg->node_name, "protocol", "http", "ip_address",
	    cfg->mgmt_ip, "port", (int)cfg->mgmt_port));
	mgmt_reply(q, HTTP_OK, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, "
	    "s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:o, s:o}",
	    "management_version", API_VERSION, "rabbitmq_version", API_VERSION,
	    "product_name", "Warren", "product_version", PACKAGE_VERSION,
	    "cluster_name", q->b->cfg->node_name, "node", q->b->cfg->node_name,
	    "object_totals", "connections", (json_int_t)conns, "channels",
	    (json_int_t)channels, "exchanges", (json_int_t)n_exchanges,
	    "queues", (json_int_t)n_queues, "consumers", (json_int_t)consumers,
	    "queue_totals", "messages", (json_int_t)(ready + unacked),
	    "messages_ready", (json_int_t)ready, "messages_unacknowledged",
	    (json_int_t)unacked, "listeners", listeners, "message_stats",
	    overview_stats(q->b)));
}

void mgmt_health_alarms(struct mgmt_req *q)
{
	static const struct {
		unsigned bit;
		const char *resource;
	} kinds[] = {
		{ ALARM_MEMORY, "memory" },
		{ ALARM_DISK, "disk" },
		{ ALARM_STORE, "disk" },
	};
	json_t *alarms = json_array();

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (q->b->alarms & kinds[i].bit)
			json_array_append_new(alarms, json_pack("{s:s, s:s}",
			    "node", q->b->cfg->node_name, "resource", kinds[i].resource));
	if (json_array_size(alarms) == 0) {
		json_decref(alarms);
		mgmt_reply(q, HTTP_OK, json_pack("{s:s}", "status", "ok"));
		return;
	}
	mgmt_reply(q, 503, json_pack("{s:s, s:s, s:o}", "status", "failed",
	    "reason", "There are alarms in effect in the cluster", "alarms",
	    alarms));
}

/*
 * port-listener/{port} and protocol-listener/{protocol}: is there a
 * listener there (the ones warrend started; it exits if one cannot be).
 */
void mgmt_health_listener(struct mgmt_req *q)
{
	const struct warren_config *cfg = q->b->cfg;
	const struct {
		const char *protocol;
		unsigned port;
	} listeners[] = {
		{ "amqp", cfg->tcp_port }, { "amqp/ssl", cfg->ssl_port },
		{ "http", cfg->mgmt_port }, { "https", cfg->mgmt_ssl_port },
		{ "http/prometheus", cfg->prometheus_port },
	};
	bool by_port = strcmp(q->seg[2], "port-listener") == 0;
	const char *want = q->seg[3];
	char *end;
	unsigned long port = strtoul(want, &end, 10);

	for (size_t i = 0; i < sizeof(listeners) / sizeof(listeners[0]); i++) {
		if (listeners[i].port == 0)
			continue;
		if (by_port ? *end == '\0' && port == listeners[i].port :
		    strcmp(want, listeners[i].protocol) == 0) {
			mgmt_reply(q, HTTP_OK, by_port ? json_pack("{s:s, s:i}",
			    "status", "ok", "port", (int)port) :
			    json_pack("{s:s, s:s}", "status", "ok", "protocol",
			    want));
			return;
		}
	}
	mgmt_reply(q, 503, json_pack("{s:s, s:s}", "status", "failed",
	    "reason", by_port ? "no listener on that port" :
	    "no listener for that protocol"));
}

/*
 * virtual-hosts: every vhost is running (a vhost exists only while it
 * serves); node-is-quorum-critical and node-is-mirror-sync-critical: a
 * single node with neither quorum nor mirrored queues never is.
 */
void mgmt_health_vhosts(struct mgmt_req *q)
{
	mgmt_reply(q, HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

/*
 * RabbitMQ's aliveness test: declare the queue "aliveness-test", put a
 * message through it and take it back out.
 */
void mgmt_aliveness(struct mgmt_req *q)
{
	static const char body[] = "test_message";
	struct vhost *vh = mgmt_vhost(q, 1);
	const struct queue_decl d = { .durable = false };
	struct content_header h = { .class_id = 60 }, parsed;
	struct amqp_error err;
	struct queue_entry e;
	struct message *m;
	struct queue *qu;
	struct wbuf w;
	bool ok;

	if (vh == NULL)
		return;
	if (declare_queue(vh, BYTES_LIT("aliveness-test"), &d, &qu, &err)) {
		mgmt_amqp_error(q, &err);
		return;
	}
	queue_purge(qu);
	h.body_size = sizeof(body) - 1;
	wbuf_init(&w);
	content_header_encode(&w, &h);
	content_header_parse((struct bytes){ w.p, (uint32_t)w.len }, &parsed);
	m = msg_new(BYTES_LIT(""), BYTES_LIT("aliveness-test"),
	    (struct bytes){ w.p, (uint32_t)w.len }, &parsed);
	msg_append_body(m, (const uint8_t *)body, sizeof(body) - 1);
	wbuf_free(&w);
	ok = queue_push(qu, m, NULL) && qu->n_consumers == 0 &&
	    queue_pop(qu, &e);
	msg_unref(m);
	if (ok) {
		ok = e.msg->body_len == sizeof(body) - 1 &&
		    memcmp(msg_body(e.msg), body, sizeof(body) - 1) == 0;
		queue_settle(qu, &e, SETTLE_ACK);
	}
	if (ok)
		mgmt_reply(q, HTTP_OK, json_pack("{s:s}", "status", "ok"));
	else
		mgmt_reply(q, 503, json_pack("{s:s, s:s}", "status", "failed",
		    "reason", "the test message did not come back"));
}

/* ---- queues ---------------------------------------------------------------- */

struct offsets_json {
	json_t *list;
	uint64_t next;
};

static void add_offset(void *arg, struct bytes name, uint64_t offset)
{
	struct offsets_json *o = arg;

	json_array_append_new(o->list, json_pack("{s:s%, s:I, s:I}", "name",
	    (const char *)name.ptr, (size_t)name.len, "offset",
	    (json_int_t)offset, "lag", (json_int_t)(o->next > offset ?
	    o->next - offset : 0)));
}

/* A stream's offsets, files and named consumers' stored offsets. */
/* A deduplication cache's numbers (queues and exchanges alike). */
static json_t *dedup_json(const struct dedup_cache *d)
{
	return json_pack("{s:I, s:I}", "keys", (json_int_t)dedup_count(d),
	    "duplicates_dropped", (json_int_t)dedup_dropped(d));
}

static json_t *stream_json(const struct queue *qu, const struct queue_stats *st)
{
	struct offsets_json o = { json_array(), st->next_offset };

	queue_each_offset(qu, add_offset, &o);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}",
	    "first_offset", (json_int_t)st->first_offset,
	    "last_offset", (json_int_t)st->next_offset - 1,
	    "next_offset", (json_int_t)st->next_offset,
	    "segments", (json_int_t)st->segments,
	    "disk_bytes", (json_int_t)st->disk_bytes,
	    "consumer_offsets", o.list);
}

static json_t *percentiles_json(bool has, uint64_t p50, uint64_t p99,
    uint64_t samples)
{
	return has ? json_pack("{s:I, s:I, s:I}", "p50", (json_int_t)p50,
	    "p99", (json_int_t)p99, "samples", (json_int_t)samples) :
	    json_null();
}

/* How long messages wait (queue_latency.h): over the last minute. */
static void latency_json(struct queue *qu, json_t *j)
{
	uint64_t now = qu->vh->broker->clock_ms;
	int64_t oldest = queue_oldest_age(qu, now);
	struct qlat_report r;

	qlat_report(qu, now, &r);
	json_object_set_new(j, "oldest_ready_age_ms", oldest < 0 ? json_null() :
	    json_integer(oldest));
	json_object_set_new(j, "time_in_queue_ms", percentiles_json(
	    r.has_waits, r.wait_p50, r.wait_p99, r.waits));
	json_object_set_new(j, "delivery_to_ack_ms", percentiles_json(
	    r.has_acks, r.ack_p50, r.ack_p99, r.acks));
	/* RabbitMQ's name and meaning; null without consumers. */
	json_object_set_new(j, "consumer_utilisation", r.utilisation < 0 ?
	    json_null() : json_real(r.utilisation));
}

static json_t *queue_json(struct queue *qu)
{
	struct queue_stats st;
	uint64_t counts[3];
	double rates[3];
	json_t *j;

	queue_stats(qu, &st);
	counts[0] = st.counters.published;
	counts[1] = st.counters.delivered;
	counts[2] = st.counters.acked;
	rates[0] = st.publish_rate;
	rates[1] = st.deliver_rate;
	rates[2] = st.ack_rate;
	j = json_pack("{s:s, s:s, s:b, s:b, s:b, s:o, s:s, s:s, s:s, "
	    "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
	    "name", qu->name, "vhost", qu->vh->name, "durable", qu->durable,
	    "auto_delete", qu->auto_delete, "exclusive", qu->exclusive,
	    "arguments", definitions_args_to_json(qu->arguments,
	    qu->arguments_len), "type", qu->type->name, "state", "running",
	    "node", qu->vh->broker->cfg->node_name,
	    "messages", (json_int_t)(st.messages + st.unacked),
	    "messages_ready", (json_int_t)st.messages,
	    "messages_unacknowledged", (json_int_t)st.unacked,
	    "messages_paged_out", (json_int_t)st.paged_out,
	    "message_bytes_ready", (json_int_t)st.bytes,
	    "consumers", (json_int_t)st.consumers,
	    "memory", (json_int_t)queue_memory(qu),
	    "message_stats", message_stats(rate_names, counts, rates, 3, 3));
	if (st.stream)
		json_object_set_new(j, "stream", stream_json(qu, &st));
	else
		latency_json(qu, j);
	if (qu->dedup)
		json_object_set_new(j, "deduplication", dedup_json(qu->dedup));
	return j;
}

/*
 * A list route's reply: every object in map_of(vhost) of the listed
 * vhosts, by vhost and then by name, rendered by fn a slice at a time.
 */
static void reply_list(struct mgmt_req *q,
    struct strmap *(*map_of)(struct vhost *), mgmt_item_json *fn)
{
	size_t n, total = 0, cap = 0;
	struct vhost **vhs = listed_vhosts(q, &n);
	struct mgmt_item *items = NULL;

	if (vhs == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		size_t count;
		struct strmap_entry *all = strmap_sorted(map_of(vhs[i]), &count);

		if (total + count > cap) {
			cap = (total + count) * 2 + 16;
			items = xrealloc(items, cap * sizeof(*items));
		}
		for (size_t j = 0; j < count; j++) {
			items[total].vhost = xstrdup(vhs[i]->name);
			items[total++].name = bytes_strdup(all[j].key);
		}
		free(all);
	}
	free(vhs);
	mgmt_reply_items(q, items, total, fn);
}

static struct strmap *queues_of(struct vhost *vh)
{
	return vh->queues;
}

static json_t *queue_item(struct broker *b, const struct mgmt_item *it)
{
	struct vhost *vh = broker_find_vhost(b, bytes_str(it->vhost));
	struct queue *qu = vh ? vhost_find_queue(vh, bytes_str(it->name)) :
	    NULL;

	return qu ? queue_json(qu) : NULL;
}

void mgmt_queues(struct mgmt_req *q)
{
	reply_list(q, queues_of, queue_item);
}

/* The body's "arguments" as a raw table in args; false: 400 sent. */
static bool body_arguments(struct mgmt_req *q, struct wbuf *args)
{
	char why[256];

	if (definitions_json_to_args(json_object_get(q->body, "arguments"),
	    args, why, sizeof(why)))
		return true;
	mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
	return false;
}

/* A declare's outcome: 201 made, 204 there already, or its refusal. */
static void reply_declared(struct mgmt_req *q, int rc,
    const struct amqp_error *err, bool existed)
{
	if (rc)
		mgmt_amqp_error(q, err);
	else
		mgmt_reply(q, existed ? HTTP_NOCONTENT : 201, NULL);
}

static void put_queue(struct mgmt_req *q, struct vhost *vh, bool existed)
{
	struct queue_decl d = { 0 };
	struct amqp_error err;
	struct queue *qu;
	struct wbuf args;

	if (!mgmt_body_bool(q, "durable", true, &d.durable) ||
	    !mgmt_body_bool(q, "auto_delete", false, &d.auto_delete))
		return;
	wbuf_init(&args);
	if (body_arguments(q, &args)) {
		d.arguments = (struct bytes){ args.p, (uint32_t)args.len };
		reply_declared(q, declare_queue(vh, bytes_str(q->seg[2]), &d,
		    &qu, &err), &err, existed);
	}
	wbuf_free(&args);
}

void mgmt_queue(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	struct bytes name = bytes_str(q->seg[2]);
	struct amqp_error err;
	struct queue *qu;
	uint32_t count;

	if (vh == NULL)
		return;
	qu = vhost_find_queue(vh, name);
	switch (evhttp_request_get_command(q->r)) {
	case EVHTTP_REQ_PUT:
		if (mgmt_permitted(q, vh, ACCESS_CONFIGURE, true, q->seg[2],
		    false))
			put_queue(q, vh, qu != NULL);
		return;
	case EVHTTP_REQ_DELETE:
		/* RabbitMQ: a missing queue is 404 before permissions. */
		if (qu != NULL && !mgmt_permitted(q, vh, ACCESS_CONFIGURE, true,
		    q->seg[2], false))
			return;
		if (op_delete_queue(vh, name, query_true(q, "if-unused"),
		    query_true(q, "if-empty"), OP_ADMIN, true, &count, &err))
			mgmt_amqp_error(q, &err);
		else
			mgmt_reply(q, HTTP_NOCONTENT, NULL);
		return;
	default:
		if (qu == NULL)
			mgmt_not_found(q);
		else
			mgmt_reply(q, HTTP_OK, queue_json(qu));
	}
}

void mgmt_queue_contents(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	struct amqp_error err;
	uint32_t count;

	if (vh == NULL)
		return;
	if (vhost_find_queue(vh, bytes_str(q->seg[2])) != NULL &&
	    !mgmt_permitted(q, vh, ACCESS_READ, true, q->seg[2], false))
		return;
	if (op_purge_queue(vh, bytes_str(q->seg[2]), OP_ADMIN, &count, &err))
		mgmt_amqp_error(q, &err);
	else
		mgmt_reply(q, HTTP_NOCONTENT, NULL);
}

/* ---- exchanges ------------------------------------------------------------ */

static json_t *exchange_json(const struct exchange *x, const char *vhost)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:o}", "name",
	    x->name, "vhost", vhost, "type", exchange_type_name(x), "durable",
	    x->durable, "auto_delete", x->auto_delete, "internal",
	    x->internal, "arguments", definitions_args_to_json(x->arguments,
	    x->arguments_len));

	if (x->dedup)
		json_object_set_new(o, "deduplication", dedup_json(x->dedup));
	if (x->delayed) {
		int64_t next = delayed_next_in(x->delayed);

		json_object_set_new(o, "delayed_messages",
		    json_integer((json_int_t)delayed_count(x->delayed)));
		json_object_set_new(o, "delayed_next_in_ms", next < 0 ?
		    json_null() : json_integer(next));
	}
	return o;
}

static struct strmap *exchanges_of(struct vhost *vh)
{
	return vh->exchanges;
}

static json_t *exchange_item(struct broker *b, const struct mgmt_item *it)
{
	struct vhost *vh = broker_find_vhost(b, bytes_str(it->vhost));
	struct exchange *x = vh ? vhost_find_exchange(vh,
	    bytes_str(it->name)) : NULL;

	return x ? exchange_json(x, vh->name) : NULL;
}

void mgmt_exchanges(struct mgmt_req *q)
{
	reply_list(q, exchanges_of, exchange_item);
}

static void put_exchange(struct mgmt_req *q, struct vhost *vh, bool existed)
{
	struct exchange_decl d = { 0 };
	struct amqp_error err;
	struct exchange *x;
	const char *type;
	struct wbuf args;

	if (!mgmt_body_str(q, "type", NULL, &type) ||
	    !mgmt_body_bool(q, "durable", true, &d.durable) ||
	    !mgmt_body_bool(q, "auto_delete", false, &d.auto_delete) ||
	    !mgmt_body_bool(q, "internal", false, &d.internal))
		return;
	d.type = bytes_str(type);
	wbuf_init(&args);
	if (body_arguments(q, &args)) {
		d.arguments = (struct bytes){ args.p, (uint32_t)args.len };
		reply_declared(q, declare_exchange(vh, bytes_str(q->seg[2]),
		    &d, &x, &err), &err, existed);
	}
	wbuf_free(&args);
}

void mgmt_exchange(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	struct bytes name = bytes_str(mgmt_exchange_name(q->seg[2]));
	struct amqp_error err;
	struct exchange *x;

	if (vh == NULL)
		return;
	x = vhost_find_exchange(vh, name);
	switch (evhttp_request_get_command(q->r)) {
	case EVHTTP_REQ_PUT:
		if (mgmt_permitted(q, vh, ACCESS_CONFIGURE, false,
		    (const char *)name.ptr, false))
			put_exchange(q, vh, x != NULL);
		return;
	case EVHTTP_REQ_DELETE:
		if (x != NULL && !mgmt_permitted(q, vh, ACCESS_CONFIGURE,
		    false, (const char *)name.ptr, false))
			return;
		if (op_delete_exchange(vh, name, query_true(q, "if-unused"),
		    true, &err))
			mgmt_amqp_error(q, &err);
		else
			mgmt_reply(q, HTTP_NOCONTENT, NULL);
		return;
	default:
		if (x == NULL)
			mgmt_not_found(q);
		else
			mgmt_reply(q, HTTP_OK, exchange_json(x, vh->name));
	}
}

/* ---- definitions ------------------------------------------------------------ */

static const char *const vhost_sections[] = { "queues", "exchanges",
    "bindings" };

/*
 * /api/definitions/{vhost}: one vhost's queues, exchanges and bindings,
 * without their "vhost" members (GET); entries imported into the vhost
 * whatever vhost they name (POST), as RabbitMQ does.
 */
void mgmt_vhost_definitions(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	json_t *all, *out, *list, *e;
	char err[512];
	size_t i;

	if (vh == NULL)
		return;
	if (evhttp_request_get_command(q->r) == EVHTTP_REQ_POST) {
		if (q->body == NULL) {
			mgmt_error(q, HTTP_BADREQUEST, "bad_request",
			    "the definitions must be a JSON object");
			return;
		}
		out = json_object();
		for (size_t s = 0; s < 3; s++) {
			list = json_object_get(q->body, vhost_sections[s]);
			json_array_foreach(list, i, e)
				if (json_is_object(e))
					json_object_set_new(e, "vhost",
					    json_string(vh->name));
			if (list)
				json_object_set(out, vhost_sections[s], list);
		}
		if (!definitions_import(q->b, out, err, sizeof(err)))
			mgmt_error(q, HTTP_BADREQUEST, "bad_request", err);
		else
			mgmt_reply(q, HTTP_NOCONTENT, NULL);
		json_decref(out);
		return;
	}
	all = definitions_export(q->b);
	out = json_pack("{s:O, s:[], s:[]}", "rabbit_version",
	    json_object_get(all, "rabbit_version"), "parameters", "policies");
	for (size_t s = 0; s < 3; s++) {
		json_t *mine = json_array();

		json_array_foreach(json_object_get(all, vhost_sections[s]), i,
		    e) {
			json_t *v = json_object_get(e, "vhost");

			if (!json_is_string(v) ||
			    strcmp(json_string_value(v), vh->name) != 0)
				continue;
			json_object_del(e, "vhost");
			json_array_append(mine, e);
		}
		json_object_set_new(out, vhost_sections[s], mine);
	}
	json_decref(all);
	mgmt_reply(q, HTTP_OK, out);
}

void mgmt_definitions(struct mgmt_req *q)
{
	char err[512];

	if (evhttp_request_get_command(q->r) != EVHTTP_REQ_POST) {
		mgmt_reply(q, HTTP_OK, definitions_export(q->b));
		return;
	}
	if (q->body == NULL) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request",
		    "the definitions must be a JSON object");
		return;
	}
	if (!definitions_import(q->b, q->body, err, sizeof(err))) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", err);
		return;
	}
	broker_durable_changed(q->b);
	mgmt_reply(q, HTTP_NOCONTENT, NULL);
}
