/*
 * Management API: publishing and getting messages, as RabbitMQ's
 * POST /api/exchanges/{vhost}/{name}/publish and
 * POST /api/queues/{vhost}/{name}/get do it: for trying things out and for
 * operators, not for throughput.  A publish routes through the exchange
 * like an AMQP one (persistent messages are stored, alternate exchanges
 * and dead-lettering apply); a get takes up to count messages at once and
 * then settles them all as ackmode says, so requeued ones are not fetched
 * twice.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/evp.h>

#include "amqp_error.h"
#include "definitions.h"
#include "broker.h"
#include "connection.h"
#include "exchange.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"
#include "mgmt_handlers.h"
#include "operations.h"
#include "properties.h"
#include "queue.h"
#include "users.h"
#include "vhost.h"

#define MAX_GET 10000

/* ---- properties as JSON (RabbitMQ's names) -------------------------------- */

json_t *mgmt_props_json(const struct basic_properties *p)
{
	json_t *o = json_object();

#define JSON_shortstr(v)  json_stringn((const char *)(v).ptr, (v).len)
#define JSON_octet(v)     json_integer(v)
#define JSON_timestamp(v) json_integer((json_int_t)(v))
#define JSON_table(v)     definitions_args_to_json((v).ptr, (v).len)
#define X(name, type)							\
	if (props_has(p, PROP_##name))					\
		json_object_set_new(o, #name, JSON_##type(p->name));
	BASIC_PROPERTIES(X)
#undef X
#undef JSON_shortstr
#undef JSON_octet
#undef JSON_timestamp
#undef JSON_table
	return o;
}

static bool prop_shortstr(json_t *v, struct bytes *out)
{
	if (!json_is_string(v) || json_string_length(v) > 255)
		return false;
	*out = (struct bytes){ (const uint8_t *)json_string_value(v),
	    (uint32_t)json_string_length(v) };
	return true;
}

static bool prop_octet(json_t *v, uint8_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 255)
		return false;
	*out = (uint8_t)json_integer_value(v);
	return true;
}

static bool prop_timestamp(json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* headers: the table's bytes live in *table until the header is encoded. */
static bool prop_table(json_t *v, struct bytes *out, struct wbuf *table)
{
	char why[200];

	if (!definitions_json_to_args(v, table, why, sizeof(why)))
		return false;
	*out = (struct bytes){ table->p, (uint32_t)table->len };
	return true;
}

/* "properties" of a publish into p; false with why naming the property. */
static bool props_from_json(json_t *o, struct basic_properties *p,
    struct wbuf *table, char *why, size_t whylen)
{
	json_t *v;

	memset(p, 0, sizeof(*p));
	if (o != NULL && !json_is_object(o)) {
		snprintf(why, whylen, "'properties' must be an object");
		return false;
	}
#define PARSE_shortstr(v, f) prop_shortstr(v, &(f))
#define PARSE_octet(v, f) prop_octet(v, &(f))
#define PARSE_timestamp(v, f) prop_timestamp(v, &(f))
#define PARSE_table(v, f) prop_table(v, &(f), table)
#define X(name, type)							\
	if ((v = json_object_get(o, #name)) != NULL) {			\
		if (!PARSE_##type(v, p->name)) {			\
			snprintf(why, whylen, "property '%s' is not "	\
			    "valid", #name);				\
			return false;					\
		}							\
		p->flags |= PROP_FLAG(PROP_##name);			\
	}
	BASIC_PROPERTIES(X)
#undef X
#undef PARSE_shortstr
#undef PARSE_octet
#undef PARSE_timestamp
#undef PARSE_table
	return true;
}

/* ---- publish ---------------------------------------------------------------- */

/* The payload as bytes (malloc'd into *buf); false: not valid. */
static bool payload_bytes(json_t *body, uint8_t **buf, size_t *len)
{
	json_t *payload = json_object_get(body, "payload");
	json_t *enc = json_object_get(body, "payload_encoding");
	const char *text;
	size_t n, pad = 0;
	int got;

	if (!json_is_string(payload) || (enc && !json_is_string(enc)))
		return false;
	text = json_string_value(payload);
	n = json_string_length(payload);
	if (enc == NULL || strcmp(json_string_value(enc), "string") == 0) {
		*buf = xmalloc(n + 1);
		memcpy(*buf, text, n);
		*len = n;
		return true;
	}
	if (strcmp(json_string_value(enc), "base64") != 0 || n % 4 != 0)
		return false;
	*buf = xmalloc(n / 4 * 3 + 1);
	if ((got = EVP_DecodeBlock(*buf, (const unsigned char *)text,
	    (int)n)) < 0) {
		free(*buf);
		return false;
	}
	while (pad < 2 && n > pad && text[n - 1 - pad] == '=')
		pad++;
	*len = (size_t)got - pad;
	return true;
}

struct message *mgmt_request_message(struct mgmt_req *q, struct bytes xname,
    const char *key, bool payload_required)
{
	struct content_header h = { .class_id = 60 }, parsed;
	struct wbuf table, hdr;
	struct message *m = NULL;
	uint8_t *payload = NULL;
	size_t len = 0;
	char why[256];

	if ((payload_required || json_object_get(q->body, "payload")) &&
	    !payload_bytes(q->body, &payload, &len)) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", "'payload' must "
		    "be a string, with payload_encoding string or base64");
		return NULL;
	}
	wbuf_init(&table);
	wbuf_init(&hdr);
	if (!props_from_json(json_object_get(q->body, "properties"), &h.props,
	    &table, why, sizeof(why))) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
		goto out;
	}
	h.body_size = len;
	content_header_encode(&hdr, &h);
	if (content_header_parse((struct bytes){ hdr.p, (uint32_t)hdr.len },
	    &parsed) != 0) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request",
		    "the properties do not make a valid content header");
		goto out;
	}
	m = msg_new(xname, bytes_str(key), (struct bytes){ hdr.p,
	    (uint32_t)hdr.len }, &parsed);
	msg_append_body(m, payload, (uint32_t)len);
out:
	wbuf_free(&hdr);
	wbuf_free(&table);
	free(payload);
	return m;
}

void mgmt_publish(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	struct bytes xname = bytes_str(mgmt_exchange_name(q->seg[2]));
	struct amqp_error err;
	bool routed, accepted;
	struct exchange *x;
	struct message *m;
	const char *key;
	char why[256];

	if (vh == NULL)
		return;
	/* RabbitMQ words this one as the AMQP refusal, in a 400. */
	if (!mgmt_permitted(q, vh, ACCESS_WRITE, false,
	    (const char *)xname.ptr, true)) {
		snprintf(why, sizeof(why), "403 ACCESS_REFUSED - access to "
		    "exchange '%s' in vhost '%s' refused for user '%s'",
		    xname.len ? (const char *)xname.ptr : "amq.default",
		    vh->name, q->user->name);
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
		return;
	}
	if (op_find_exchange(vh, xname, &x, &err)) {
		mgmt_amqp_error(q, &err);
		return;
	}
	if (x->internal) {
		mgmt_error(q, 403, "access_refused", "cannot publish to an "
		    "internal exchange");
		return;
	}
	if (q->body == NULL || !mgmt_body_str(q, "routing_key", NULL, &key))
		return;
	if (x->type == &exchange_topic && !userdb_topic_permitted(q->b->users,
	    q->user->name, vh->name, x->name, ACCESS_WRITE, key)) {
		snprintf(why, sizeof(why), "403 ACCESS_REFUSED - access to topic "
		    "'%s' in exchange '%s' in vhost '%s' refused for user '%s'",
		    key, x->name, vh->name, q->user->name);
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
		return;
	}
	if ((m = mgmt_request_message(q, xname, key, true)) == NULL)
		return;
	routed = exchange_publish(x, m, NULL, &accepted);
	mgmt_reply(q, HTTP_OK, json_pack("{s:b}", "routed", routed));
	msg_unref(m);
}

/* ---- get ---------------------------------------------------------------- */

/* The body's first `truncate` bytes: as text when it is (UTF-8 without
 * NULs) unless base64 is asked for, else base64; *text says which. */
static json_t *payload_json(const struct message *m, bool base64,
    size_t truncate, bool *text)
{
	size_t n = m->body_len < truncate ? m->body_len : truncate;
	json_t *payload;

	*text = !base64 && memchr(msg_body(m), 0, n) == NULL;
	payload = *text ? json_stringn((const char *)msg_body(m), n) : NULL;
	if (payload == NULL) {
		char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);

		EVP_EncodeBlock((unsigned char *)b64, msg_body(m), (int)n);
		payload = json_string(b64);
		free(b64);
		*text = false;
	}
	return payload;
}

/*
 * The queue of the path's third segment, when q's user may read it
 * (checked before its existence, as over AMQP, with RabbitMQ's text);
 * NULL after a 401 or 404.
 */
static struct queue *readable_queue(struct mgmt_req *q, struct vhost *vh)
{
	struct amqp_error err;
	struct queue *qu;
	char why[400];

	if (!mgmt_permitted(q, vh, ACCESS_READ, true, q->seg[2], true)) {
		snprintf(why, sizeof(why), "ACCESS_REFUSED - access to queue "
		    "'%s' in vhost '%s' refused for user '%s'", q->seg[2],
		    vh->name, q->user->name);
		mgmt_error(q, 401, "not_authorised", why);
		return NULL;
	}
	if (op_find_queue(vh, bytes_str(q->seg[2]), OP_ADMIN, &qu, &err)) {
		mgmt_amqp_error(q, &err);
		return NULL;
	}
	return qu;
}

/* What every message shown carries: RabbitMQ's /get fields. */
static json_t *message_fields(const struct message *m, bool redelivered,
    bool base64, size_t truncate)
{
	struct basic_properties p;
	bool text;
	json_t *payload = payload_json(m, base64, truncate, &text);

	msg_props(m, &p);
	return json_pack("{s:I, s:b, s:s%, s:s%, s:o, s:o, s:s}",
	    "payload_bytes", (json_int_t)m->body_len, "redelivered",
	    redelivered, "exchange", (const char *)m->exchange.ptr,
	    (size_t)m->exchange.len, "routing_key",
	    (const char *)m->routing_key.ptr, (size_t)m->routing_key.len,
	    "properties", mgmt_props_json(&p), "payload", payload,
	    "payload_encoding", text ? "string" : "base64");
}

static json_t *message_json(const struct queue_entry *e, uint32_t left,
    bool base64, size_t truncate)
{
	json_t *o = message_fields(e->msg, e->redelivered, base64, truncate);

	json_object_set_new(o, "message_count", json_integer(left));
	return o;
}

void mgmt_get(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	long long count, truncate;
	json_t *list;
	const char *ackmode, *encoding;
	enum settle_how how;
	struct queue_entry *taken;
	struct queue *qu;
	size_t n = 0;

	if (vh == NULL || (qu = readable_queue(q, vh)) == NULL)
		return;
	if (!mgmt_body_int(q, "count", -1, 1, MAX_GET, &count) ||
	    !mgmt_body_int(q, "truncate", LLONG_MAX, 0, LLONG_MAX, &truncate))
		return;
	if (!mgmt_body_str(q, "ackmode", NULL, &ackmode) ||
	    !mgmt_body_str(q, "encoding", "auto", &encoding))
		return;
	if (strcmp(ackmode, "ack_requeue_true") == 0 ||
	    strcmp(ackmode, "reject_requeue_true") == 0)
		how = SETTLE_REQUEUE;
	else if (strcmp(ackmode, "ack_requeue_false") == 0)
		how = SETTLE_ACK;
	else if (strcmp(ackmode, "reject_requeue_false") == 0)
		how = SETTLE_REJECT;
	else {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", "'ackmode' must "
		    "be ack_requeue_true, ack_requeue_false, "
		    "reject_requeue_true or reject_requeue_false");
		return;
	}
	taken = xcalloc((size_t)count, sizeof(*taken));
	list = json_array();
	while (n < (size_t)count && queue_pop(qu, &taken[n])) {
		json_array_append_new(list, message_json(&taken[n], qu->count,
		    strcmp(encoding, "base64") == 0, (size_t)truncate));
		n++;
	}
	/* All taken first: a requeued message is not fetched again. */
	for (size_t i = 0; i < n; i++)
		queue_settle(qu, &taken[i], how);
	free(taken);
	mgmt_reply(q, HTTP_OK, list);
}

/* ---- browse ------------------------------------------------------------- */

#define BROWSE_DEFAULT 20
#define BROWSE_MAX 1000
#define PREVIEW_DEFAULT 1024

struct browse {
	json_t *list;
	uint64_t position;
	size_t preview;
	uint64_t now;
};

static void browse_one(void *arg, const struct queue_entry *e,
    uint32_t level, bool paged_out)
{
	struct browse *b = arg;
	json_t *o;

	if (e->msg == NULL) {
		o = json_pack("{s:s}", "unreadable", "the message store has not "
		    "written it yet");
	} else {
		o = message_fields(e->msg, e->redelivered, false, b->preview);
		json_object_set_new(o, "payload_truncated",
		    json_boolean(e->msg->body_len > b->preview));
	}
	json_object_set_new(o, "position", json_integer((json_int_t)
	    b->position++));
	json_object_set_new(o, "priority_level", json_integer(level));
	json_object_set_new(o, "paged_out", json_boolean(paged_out));
	json_object_set_new(o, "delivery_count", json_integer(e->returns));
	if (e->expires_at)
		json_object_set_new(o, "expires_in_ms", json_integer(
		    e->expires_at > b->now ? (json_int_t)(e->expires_at -
		    b->now) : 0));
	json_array_append_new(b->list, o);
}

/*
 * GET /api/queues/{vhost}/{name}/browse?count=N&offset=K&preview=B: up
 * to N ready messages from the K-th, in the order consumers would get
 * them, with B bytes of each body; nothing is taken, requeued or
 * reordered, and paged-out messages are read from disk.  Needs read
 * permission on the queue, as a get does.
 */
void mgmt_browse(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	long long count = mgmt_query_count(q, "count", BROWSE_DEFAULT);
	long long offset = mgmt_query_count(q, "offset", 0);
	long long preview = mgmt_query_count(q, "preview", PREVIEW_DEFAULT);
	struct browse b = { NULL, 0, 0, conn_now_ms() };
	struct queue_stats st;
	struct queue *qu;

	if (vh == NULL || (qu = readable_queue(q, vh)) == NULL)
		return;
	if (count < 0 || count > BROWSE_MAX || offset < 0 || preview < 0) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", "count must be "
		    "0..1000, offset and preview 0 or more");
		return;
	}
	if (!queue_browsable(qu)) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", "a stream is "
		    "read by consumers with x-stream-offset, not browsed");
		return;
	}
	b.list = json_array();
	b.position = (uint64_t)offset;
	b.preview = (size_t)preview;
	queue_browse(qu, (uint64_t)offset, (size_t)count, browse_one, &b);
	queue_stats(qu, &st);
	mgmt_reply(q, HTTP_OK, json_pack("{s:s, s:s, s:I, s:I, s:o}", "name",
	    qu->name, "vhost", vh->name, "messages_ready",
	    (json_int_t)st.messages, "offset", (json_int_t)offset,
	    "messages", b.list));
}
