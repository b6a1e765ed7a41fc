/*
 * RabbitMQ's firehose (firehose.h).
 */
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "config.h"
#include "connection.h"
#include "exchange.h"
#include "field_table.h"
#include "firehose.h"
#include "journal.h"
#include "message.h"
#include "mgmt_handlers.h"
#include "properties.h"
#include "queue.h"
#include "vhost.h"

#define TRACE_EXCHANGE "amq.rabbitmq.trace"

/* The message's properties as a table, named as RabbitMQ names them. */
static void properties_table(struct wbuf *b, const struct message *msg)
{
	struct basic_properties p;
	size_t t = ftw_table_begin(b, "properties");

	msg_props(msg, &p);
#define STR(name)							\
	if (props_has(&p, PROP_##name))					\
		ftw_bytes(b, #name, p.name);
	STR(content_type)
	STR(content_encoding)
	if (props_has(&p, PROP_headers))
		ftw_raw_table(b, "headers", p.headers);
	if (props_has(&p, PROP_delivery_mode))
		ftw_i32(b, "delivery_mode", p.delivery_mode);
	if (props_has(&p, PROP_priority))
		ftw_i32(b, "priority", p.priority);
	STR(correlation_id)
	STR(reply_to)
	STR(expiration)
	STR(message_id)
	if (props_has(&p, PROP_timestamp))
		ftw_timestamp(b, "timestamp", p.timestamp);
	STR(type)
	STR(user_id)
	STR(app_id)
	STR(cluster_id)
#undef STR
	ftw_end(b, t);
}

static void publish_trace(struct vhost *vh, const char *kind,
    const char *name, const struct message *msg, int redelivered,
    struct conn *c, uint16_t channel)
{
	struct exchange *tx = vhost_find_exchange(vh, bytes_str(TRACE_EXCHANGE));
	struct content_header h = { .class_id = 60 }, parsed;
	struct journal *journal = vh->journal;
	struct wbuf headers, hdr;
	char key[300], conn[200];
	struct message *t;
	size_t table, keys;
	bool accepted;

	/* Nobody listens, or msg is a trace itself (as rabbit_trace: a
	 * consumer of the firehose is not traced into it again). */
	if (tx == NULL || tx->n_bindings == 0 ||
	    bytes_eq_str(msg->exchange, TRACE_EXCHANGE))
		return;
	wbuf_init(&headers);
	table = ftw_begin(&headers);
	ftw_bytes(&headers, "exchange_name", msg->exchange);
	keys = ftw_array_begin(&headers, "routing_keys");
	ftw_array_bytes(&headers, msg->routing_key);
	ftw_end(&headers, keys);
	properties_table(&headers, msg);
	ftw_longstr(&headers, "node", vh->broker->cfg->node_name);
	if (redelivered >= 0)
		ftw_i32(&headers, "redelivered", redelivered);
	ftw_longstr(&headers, "vhost", vh->name);
	if (c) {
		mgmt_conn_name(c, conn, sizeof(conn));
		ftw_longstr(&headers, "user", c->user ? c->user : "");
		ftw_longstr(&headers, "connection", conn);
		ftw_i32(&headers, "channel", channel);
	}
	ftw_end(&headers, table);
	h.props.flags = PROP_FLAG(PROP_headers);
	h.props.headers = (struct bytes){ headers.p + 4,
	    (uint32_t)headers.len - 4 };
	h.body_size = msg->body_len;
	wbuf_init(&hdr);
	content_header_encode(&hdr, &h);
	snprintf(key, sizeof(key), "%s.%s", kind, name);
	if (content_header_parse((struct bytes){ hdr.p, (uint32_t)hdr.len },
	    &parsed) == 0) {
		t = msg_new(bytes_str(TRACE_EXCHANGE), bytes_str(key),
		    (struct bytes){ hdr.p, (uint32_t)hdr.len }, &parsed);
		msg_append_body(t, msg_body(msg), (uint32_t)msg->body_len);
		/* The trace copies are no journey of their own. */
		vh->journal = NULL;
		(void)exchange_deliver(tx, t, NULL, &accepted);
		vh->journal = journal;
		msg_unref(t);
	}
	wbuf_free(&hdr);
	wbuf_free(&headers);
}

void firehose_publish(struct exchange *x, const struct message *msg,
    struct conn *c, uint16_t channel)
{
	publish_trace(x->vh, "publish", x->name, msg, -1, c, channel);
}

void firehose_deliver(struct queue *q, const struct message *msg,
    bool redelivered, struct conn *c, uint16_t channel)
{
	publish_trace(q->vh, "deliver", q->name, msg, redelivered, c,
	    channel);
}
