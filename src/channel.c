/*
 * Channels: the dispatch table, content assembly (method, header, bodies),
 * deliveries into the unacked ledger (channel_ledger.c) and channel close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "channel.h"
#include "channel_ledger.h"
#include "config.h"
#include "dead_letter.h"
#include "dedup.h"
#include "firehose.h"
#include "frame.h"
#include "journal.h"
#include "log.h"
#include "message.h"
#include "method.h"
#include "vhost.h"

struct chan_handler {
	uint32_t id;
	chan_method_fn *fn;
};

static int chan_channel_flow(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err);

/* Sorted by method id: looked up by binary search. */
static const struct chan_handler chan_handlers[] = {
	{ AMQP_channel_flow, chan_channel_flow },
	{ AMQP_exchange_declare, chan_exchange_declare },
	{ AMQP_exchange_delete, chan_exchange_delete },
	{ AMQP_exchange_bind, chan_exchange_bind },
	{ AMQP_exchange_unbind, chan_exchange_bind },
	{ AMQP_queue_declare, chan_queue_declare },
	{ AMQP_queue_bind, chan_queue_bind },
	{ AMQP_queue_purge, chan_queue_purge },
	{ AMQP_queue_delete, chan_queue_delete },
	{ AMQP_queue_unbind, chan_queue_bind },
	{ AMQP_basic_qos, chan_basic_qos },
	{ AMQP_basic_consume, chan_basic_consume },
	{ AMQP_basic_cancel, chan_basic_cancel },
	{ AMQP_basic_publish, chan_basic_publish },
	{ AMQP_basic_get, chan_basic_get },
	{ AMQP_basic_ack, chan_basic_ack },
	{ AMQP_basic_reject, chan_basic_reject },
	{ AMQP_basic_recover_async, chan_basic_recover },
	{ AMQP_basic_recover, chan_basic_recover },
	{ AMQP_basic_nack, chan_basic_nack },
	{ AMQP_confirm_select, chan_confirm_select },
	{ AMQP_tx_select, chan_tx_select },
	{ AMQP_tx_commit, chan_tx_commit },
	{ AMQP_tx_rollback, chan_tx_rollback },
};
#define N_HANDLERS (sizeof(chan_handlers) / sizeof(chan_handlers[0]))

static int handler_cmp(const void *key, const void *row)
{
	uint32_t id = *(const uint32_t *)key;
	uint32_t rid = ((const struct chan_handler *)row)->id;

	return id < rid ? -1 : id > rid;
}

static chan_method_fn *chan_lookup(uint32_t id)
{
	const struct chan_handler *h = bsearch(&id, chan_handlers, N_HANDLERS,
	    sizeof(chan_handlers[0]), handler_cmp);

	return h ? h->fn : NULL;
}

struct channel *chan_new(struct conn *c, uint16_t number)
{
	struct channel *ch = xcalloc(1, sizeof(*ch));

	ch->conn = c;
	ch->number = number;
	c->broker->counters.channels_opened++;
	ch->state = CHAN_OPEN;
	ch->next_tag = 1;
	TAILQ_INIT(&ch->consumers);
	return ch;
}

void chan_consumer_free(struct consumer *c, bool queue_going)
{
	struct channel *ch = c->ch;
	struct queue *q = c->q;

	TAILQ_REMOVE(&ch->consumers, c, chlink);
	ch->n_consumers--;
	if (ch->reply_consumer == c)
		ch->reply_consumer = NULL;
	if (q)
		queue_remove_consumer(q, c);
	for (uint32_t i = 0; i < ch->ledger_count; i++)
		if (chan_ledger_at(ch, i)->consumer == c)
			chan_ledger_at(ch, i)->consumer = NULL;
	free(c->tag);
	free(c);
	if (q && !queue_going && q->auto_delete && q->n_consumers == 0 &&
	    !q->deleted)
		vhost_remove_queue(q->vh, q);
}

void chan_free(struct channel *ch)
{
	struct channel **link;
	struct consumer *c;

	ch->conn->broker->counters.channels_closed++;
	/* Off the connection's list of pending confirms. */
	for (link = &ch->conn->confirm_dirty; *link; link = &(*link)->confirm_next_dirty)
		if (*link == ch) {
			*link = ch->confirm_next_dirty;
			break;
		}

	if (ch->commit_ticket)
		ch->conn->commit_waits--;
	broker_store_unwait(ch->conn->broker, ch);
	free(ch->cwait);

	/* Nothing may be delivered to it any more, not even requeues. */
	ch->state = CHAN_CLOSING;
	/* Unacked messages go back before an auto-delete queue can go. */
	chan_requeue_all(ch, true);
	while ((c = TAILQ_FIRST(&ch->consumers)) != NULL)
		chan_consumer_free(c, false);
	chan_requeue_all(ch, true);
	chan_tx_discard(ch);
	msg_unref(chan_take_pending(ch));
	free(ch->ledger);
	free(ch);
}

bool chan_over_memory_share(const struct channel *ch)
{
	struct broker *b = ch->conn->broker;

	/* Message memory now, not the alarm of the last tick: a fast reader
	 * would take tens of MB between ticks. */
	if (ch->unacked_bytes < b->memory_limit / UNACKED_MEMORY_SHARE ||
	    msg_live_bytes() <= b->memory_limit)
		return false;
	b->unacked_held = true;
	return true;
}

void chan_redispatch(struct channel *ch)
{
	struct consumer *c;

	TAILQ_FOREACH(c, &ch->consumers, chlink)
		if (c->q)
			queue_schedule_dispatch(c->q);
}

bool chan_consumer_has_credit(const struct consumer *c)
{
	const struct channel *ch = c->ch;

	if (ch->state != CHAN_OPEN ||
	    conn_output_congested(ch->conn))
		return false;
	if (c->no_ack)
		return true;
	if (chan_over_memory_share(ch))
		return false;
	if (c->prefetch && c->unacked >= c->prefetch)
		return false;
	return ch->prefetch_channel == 0 || ch->unacked < ch->prefetch_channel;
}

void chan_deliver(struct consumer *c, const struct queue_entry *e)
{
	struct message *msg = e->msg;
	struct channel *ch = c->ch;
	struct amqp_method m = { .id = AMQP_basic_deliver };
	struct amqp_basic_deliver *a = &m.a.basic_deliver;

	a->consumer_tag = bytes_str(c->tag);
	a->delivery_tag = ch->next_tag;
	a->redelivered = e->redelivered;
	if (c->q && c->q->vh->journal) {	/* none: direct reply-to */
		char detail[JOURNAL_NAME_MAX + 1];

		snprintf(detail, sizeof(detail), "consumer '%s'%s", c->tag,
		    c->no_ack ? ", no ack" : "");
		journal_note(c->q->vh->journal, J_DELIVERED, msg, ch->conn->id,
		    ch->number, c->q->name, detail);
		firehose_deliver(c->q, msg, e->redelivered, ch->conn,
		    ch->number);
	}
	ch->conn->broker->counters.messages_delivered++;
	ch->msgs.delivered++;
	ch->conn->msgs.delivered++;
	if (e->redelivered)
		ch->conn->broker->counters.messages_redelivered++;
	a->exchange = msg->exchange;
	a->routing_key = msg->routing_key;
	if (c->no_ack) {
		ch->next_tag++;
	} else {
		struct delivery d = { .e = *e, .q = queue_ref(c->q),
		    .consumer = c, .delivered_at = ch->conn->broker->clock_ms };

		msg_ref(msg);
		chan_ledger_append(ch, d);
		c->unacked++;
		ch->unacked++;
	}
	msg = queue_outgoing(c->q, e, false);
	conn_send_delivery(ch->conn, ch->number, &m, msg);
	msg_unref(msg);
}

void chan_record_get(struct channel *ch, const struct queue_entry *e,
    struct queue *q, bool no_ack)
{
	if (no_ack) {
		ch->next_tag++;
		return;
	}
	msg_ref(e->msg);
	chan_ledger_append(ch, (struct delivery){ .e = *e, .q = queue_ref(q),
	    .delivered_at = ch->conn->broker->clock_ms });
	ch->unacked++;
}

void chan_fail(struct channel *ch, const struct amqp_error *err)
{
	struct amqp_method m = { .id = AMQP_channel_close };
	char text[300];

	if (ch->state == CHAN_CLOSING)
		return;
	log_warning("conn %llu: %s: channel %u error %d %s - %s",
	    (unsigned long long)ch->conn->id, ch->conn->peer, ch->number,
	    err->code, amqp_reply_name(err->code), err->text);
	snprintf(text, sizeof(text), "%s - %s", amqp_reply_name(err->code),
	    err->text);
	m.a.channel_close.reply_code = (uint16_t)err->code;
	m.a.channel_close.reply_text = bytes_str(text);
	m.a.channel_close.class_id = AMQP_METHOD_CLASS(err->method_id);
	m.a.channel_close.method_id = AMQP_METHOD_INDEX(err->method_id);
	conn_send_method(ch->conn, ch->number, &m);
	ch->state = CHAN_CLOSING;
	ch->content = CONTENT_NONE;
	msg_unref(chan_take_pending(ch));
}

static int chan_channel_flow(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_channel_flow_ok };

	/* RabbitMQ no longer supports pausing deliveries this way. */
	if (!m->a.channel_flow.active) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_NOT_IMPLEMENTED, "active=false");
	}
	ok.a.channel_flow_ok.active = true;
	conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}

struct message *chan_take_pending(struct channel *ch)
{
	struct message *m = ch->pending;
	struct conn *c = ch->conn;
	uint64_t n;

	if (m == NULL)
		return NULL;
	n = m->header_len + m->body_len;
	c->content_bytes -= n;
	c->broker->content_bytes -= n;
	c->content_since_ms = c->broker->clock_ms;
	ch->pending = NULL;
	return m;
}

/*
 * n more bytes of ch's message have arrived.  Unfinished content is
 * bounded per connection (one largest message and its header over all
 * its channels, so a thousand channels each holding half a message cost
 * no more than one) and over the broker (the memory high watermark):
 * past either, the connection is closed with 506 rather than memory
 * growing without end.
 */
static int content_received(struct channel *ch, uint64_t n,
    struct amqp_error *err)
{
	struct conn *c = ch->conn;
	struct broker *b = c->broker;

	if (c->content_bytes == 0)
		c->content_since_ms = b->clock_ms;
	c->content_bytes += n;
	b->content_bytes += n;
	if (c->content_bytes > b->cfg->max_message_size + c->frame_max) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_RESOURCE_ERROR, "unfinished message "
		    "content on this connection exceeds max_message_size "
		    "(%llu bytes) and a header",
		    (unsigned long long)b->cfg->max_message_size);
	}
	if (b->content_bytes > b->memory_limit) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_RESOURCE_ERROR, "unfinished message "
		    "content on all connections exceeds the memory high "
		    "watermark (%llu bytes)", (unsigned long long)b->memory_limit);
	}
	return 0;
}

static int handle_header(struct channel *ch, const struct frame *f,
    struct amqp_error *err)
{
	const struct warren_config *cfg = ch->conn->broker->cfg;
	struct content_header h;
	int64_t ttl;
	int rc;

	err->method_id = AMQP_basic_publish;
	if ((rc = content_header_parse(f->payload, &h)) != 0)
		return amqp_fail(err, rc, "malformed content header");
	if (h.class_id != 60)
		return amqp_fail(err, AMQP_UNEXPECTED_FRAME,
		    "expected content header for class 60, got one for class %u "
		    "instead", h.class_id);
	ch->content = CONTENT_NONE;
	if (h.body_size > cfg->max_message_size)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "message size %llu is larger than configured max size %llu",
		    (unsigned long long)h.body_size,
		    (unsigned long long)cfg->max_message_size);
	if (!expiration_parse(h.props.expiration,
	    props_has(&h.props, PROP_expiration), &ttl))
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid expiration '%.*s'", (int)h.props.expiration.len,
		    (const char *)h.props.expiration.ptr);
	if (props_has(&h.props, PROP_user_id) &&
	    !bytes_eq_str(h.props.user_id, ch->conn->user))
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "user_id property set to '%.*s' but authenticated user was '%s'",
		    (int)h.props.user_id.len, (const char *)h.props.user_id.ptr,
		    ch->conn->user);
	ch->pending = msg_new(
	    (struct bytes){ ch->publish_exchange, ch->publish_exchange_len },
	    (struct bytes){ ch->publish_rkey, ch->publish_rkey_len },
	    f->payload, &h);
	if (ch->publishes_meet_dedup)
		dedup_prefetch(ch->pending);
	else
		dedup_prefetch_none();
	if ((rc = content_received(ch, f->payload.len, err)) != 0)
		return rc;
	if (h.body_size > 0) {
		ch->content = CONTENT_BODY;
		return 0;
	}
	return chan_publish_complete(ch, err);
}

static int handle_body(struct channel *ch, const struct frame *f,
    struct amqp_error *err)
{
	struct message *m = ch->pending;
	int rc;

	err->method_id = AMQP_basic_publish;
	if (f->payload.len > m->body_size - m->body_len)
		return amqp_fail(err, AMQP_FRAME_ERROR,
		    "content body exceeds the declared size %llu",
		    (unsigned long long)m->body_size);
	msg_append_body(m, f->payload.ptr, f->payload.len);
	if ((rc = content_received(ch, f->payload.len, err)) != 0)
		return rc;
	if (!msg_complete(m))
		return 0;
	ch->content = CONTENT_NONE;
	return chan_publish_complete(ch, err);
}

static int handle_method(struct channel *ch, const struct frame *f,
    struct amqp_error *err)
{
	struct amqp_method m;
	chan_method_fn *fn;
	int rc;

	if ((rc = method_decode(f->payload, &m)) != 0)
		return conn_decode_failed(&m, rc, err);
	err->method_id = m.id;
	if (ch->state == CHAN_CLOSING) {
		/* Waiting for close-ok: everything else is dropped. */
		if (m.id == AMQP_channel_close_ok) {
			conn_channel_closed(ch->conn, ch->number);
		} else if (m.id == AMQP_channel_close) {
			m.id = AMQP_channel_close_ok;
			conn_send_method(ch->conn, ch->number, &m);
			conn_channel_closed(ch->conn, ch->number);
		}
		return 0;
	}
	switch (m.id) {
	case AMQP_channel_open:
		return amqp_fail(err, AMQP_CHANNEL_ERROR,
		    "second 'channel.open' seen");
	case AMQP_channel_close:
		/* Confirms owed for this turn's publishes go out first. */
		if (ch->confirm_dirty)
			chan_confirm_flush(ch);
		m.id = AMQP_channel_close_ok;
		conn_send_method(ch->conn, ch->number, &m);
		conn_channel_closed(ch->conn, ch->number);
		return 0;
	case AMQP_channel_close_ok:
		return 0;
	}
	if (AMQP_METHOD_CLASS(m.id) == 10)
		return amqp_fail(err, AMQP_COMMAND_INVALID,
		    "'%s' is only allowed on channel 0", method_name(m.id));
	if ((fn = chan_lookup(m.id)) == NULL)
		return amqp_fail(err, AMQP_NOT_IMPLEMENTED,
		    "method '%s' is not implemented", method_name(m.id));
	return fn(ch, &m, err);
}

int chan_handle_frame(struct channel *ch, const struct frame *f,
    struct amqp_error *err)
{
	if (ch->state == CHAN_CLOSING && f->type != AMQP_FRAME_METHOD)
		return 0;
	switch (ch->content) {
	case CONTENT_HEADER:
		err->method_id = AMQP_basic_publish;
		if (f->type != AMQP_FRAME_HEADER)
			return amqp_fail(err, AMQP_UNEXPECTED_FRAME,
			    "expected content header for class 60, got non "
			    "content header frame instead");
		return handle_header(ch, f, err);
	case CONTENT_BODY:
		err->method_id = AMQP_basic_publish;
		if (f->type != AMQP_FRAME_BODY)
			return amqp_fail(err, AMQP_UNEXPECTED_FRAME,
			    "expected content body, got non content body "
			    "frame instead");
		return handle_body(ch, f, err);
	case CONTENT_NONE:
		break;
	}
	if (f->type != AMQP_FRAME_METHOD)
		return amqp_fail(err, AMQP_UNEXPECTED_FRAME,
		    "expected method frame, got non method frame instead");
	return handle_method(ch, f, err);
}

void chan_check_consumer_timeouts(struct channel *ch, uint64_t now)
{
	struct amqp_error err = { .method_id = 0 };

	if (ch->state != CHAN_OPEN)
		return;
	for (uint32_t i = 0; i < ch->ledger_count; i++) {
		struct delivery *d = chan_ledger_at(ch, i);
		uint64_t limit;

		/* Acked inside a transaction counts as acked (RabbitMQ). */
		if (!chan_delivery_outstanding(d))
			continue;
		limit = queue_consumer_timeout(d->q);
		if (now - d->delivered_at <= limit)
			continue;
		amqp_fail(&err, AMQP_PRECONDITION_FAILED,
		    "delivery acknowledgement on channel %u timed out. Timeout "
		    "value used: %llu ms. This timeout value can be configured, "
		    "see consumers doc guide to learn more", ch->number,
		    (unsigned long long)limit);
		chan_fail(ch, &err);
		/* Don't wait for close-ok: the messages go back now. */
		chan_requeue_all(ch, true);
		return;
	}
}

const struct consumer_ops chan_consumer_ops = {
	.has_credit = chan_consumer_has_credit,
	.deliver = chan_deliver,
	.cancelled = chan_consumer_cancelled,
};
