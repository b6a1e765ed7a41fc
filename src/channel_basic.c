/*
 * The basic class: qos, consume, cancel, publish, get, ack/nack/reject,
 * recover, and routing a completed publish (the default exchange for now).
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "broker.h"
#include "channel.h"
#include "config.h"
#include "dedup.h"
#include "exchange.h"
#include "field_table.h"
#include "firehose.h"
#include "journal.h"
#include "frame.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"
#include "method.h"
#include "operations.h"
#include "vhost.h"

int chan_find_queue(struct channel *ch, struct bytes name, enum access what,
    struct queue **out, struct amqp_error *err)
{
	struct vhost *vh = ch->conn->vh;
	int rc;

	/* RabbitMQ: an empty name means the channel's last declared queue. */
	if (name.len == 0)
		name = bytes_str(ch->last_queue);
	if (name.len == 0)
		return amqp_fail(err, AMQP_NOT_FOUND,
		    "no previously declared queue");
	/* Permission first: a queue one may not see does not say it exists. */
	if ((rc = chan_check_access(ch, what, true, name, err)) != 0)
		return rc;
	return op_find_queue(vh, name, ch->conn->id, out, err);
}

int chan_basic_qos(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_basic_qos *a = &m->a.basic_qos;
	struct amqp_method ok = { .id = AMQP_basic_qos_ok };
	struct consumer *c;

	if (a->prefetch_size != 0)
		return amqp_fail(err, AMQP_NOT_IMPLEMENTED,
		    "prefetch_size!=0 (%u)", a->prefetch_size);
	/* As RabbitMQ: a per-consumer qos also lifts the channel limit. */
	if (a->global) {
		ch->prefetch_channel = a->prefetch_count;
	} else {
		ch->prefetch_consumer = a->prefetch_count;
		ch->prefetch_channel = 0;
	}
	conn_send_method(ch->conn, ch->number, &ok);
	/* A raised limit may let consumers take more now. */
	TAILQ_FOREACH(c, &ch->consumers, chlink)
		if (c->q)
			queue_schedule_dispatch(c->q);
	return 0;
}

static struct consumer *find_consumer(struct channel *ch, struct bytes tag)
{
	struct consumer *c;

	TAILQ_FOREACH(c, &ch->consumers, chlink)
		if (bytes_eq_str(tag, c->tag))
			return c;
	return NULL;
}

/* "amq.ctag-" or "amq.gen-" followed by 22 url-safe random characters. */
void chan_random_name(const char *prefix, char *out, size_t outlen)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char rnd[22];
	size_t n = strlen(prefix);

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatalx("RAND_bytes failed");
	snprintf(out, outlen, "%s", prefix);
	for (size_t i = 0; i < sizeof(rnd) && n + i + 1 < outlen; i++) {
		out[n + i] = alphabet[rnd[i] & 63];
		out[n + i + 1] = '\0';
	}
}

/* The x-priority consumer argument: any integer type, default 0. */
static int consumer_priority(struct bytes args, int32_t *out,
    struct amqp_error *err)
{
	struct field_table *t;
	const struct field_value *v;
	int rc = 0;

	*out = 0;
	if (args.len == 0)
		return 0;
	t = ftable_decode(args);
	v = ftable_get(t, "x-priority");
	if (v) {
		switch (v->type) {
		case 'b': case 's': case 'I': case 'l':
			if (v->v.i < INT32_MIN || v->v.i > INT32_MAX)
				rc = 1;
			else
				*out = (int32_t)v->v.i;
			break;
		case 'B': case 'u': case 'i': case 'L':
			if (v->v.u > INT32_MAX)
				rc = 1;
			else
				*out = (int32_t)v->v.u;
			break;
		default:
			rc = 1;
		}
	}
	ftable_free(t);
	if (rc)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid arg 'x-priority': expected an integer");
	return 0;
}

int chan_basic_consume(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_basic_consume *a = &m->a.basic_consume;
	struct amqp_method ok = { .id = AMQP_basic_consume_ok };
	struct consumer *c;
	struct queue *q;
	int32_t priority;
	char tag[64];
	int rc;

	if (a->consumer_tag.len && find_consumer(ch, a->consumer_tag)) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_NOT_ALLOWED,
		    "attempt to reuse consumer tag '%.*s'",
		    (int)a->consumer_tag.len, (const char *)a->consumer_tag.ptr);
	}
	if (ch->n_consumers >= ch->conn->broker->cfg->consumer_max_per_channel) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_NOT_ALLOWED, "reached maximum (%u) of "
		    "consumers per channel",
		    ch->conn->broker->cfg->consumer_max_per_channel);
	}
	if ((rc = consumer_priority(a->arguments, &priority, err)) != 0)
		return rc;
	if (chan_is_reply_to(a->queue)) {
		q = NULL;
	} else {
		if ((rc = chan_find_queue(ch, a->queue, ACCESS_READ, &q, err)) != 0)
			return rc;
	}
	c = xcalloc(1, sizeof(*c));
	c->ops = &chan_consumer_ops;
	c->ch = ch;
	if (a->consumer_tag.len) {
		c->tag = bytes_strdup(a->consumer_tag);
	} else {
		chan_random_name("amq.ctag-", tag, sizeof(tag));
		c->tag = xstrdup(tag);
	}
	c->no_ack = a->no_ack;
	c->exclusive = a->exclusive;
	c->priority = priority;
	c->prefetch = ch->prefetch_consumer;
	rc = q ? queue_check_consumer(q, c, a->arguments, err) :
	    chan_reply_to_consume(ch, c, err);
	if (rc != 0) {
		free(c->tag);
		free(c);
		return rc;
	}
	TAILQ_INSERT_TAIL(&ch->consumers, c, chlink);
	ch->n_consumers++;
	if (!a->no_wait) {
		ok.a.basic_consume_ok.consumer_tag = bytes_str(c->tag);
		conn_send_method(ch->conn, ch->number, &ok);
	}
	/* Deliveries start on a later loop turn, after consume-ok. */
	if (q)
		queue_add_consumer(q, c);
	return 0;
}

int chan_basic_cancel(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_basic_cancel *a = &m->a.basic_cancel;
	struct amqp_method ok = { .id = AMQP_basic_cancel_ok };
	struct consumer *c = find_consumer(ch, a->consumer_tag);

	if (c)
		chan_consumer_free(c, false);
	if (!a->no_wait) {
		ok.a.basic_cancel_ok.consumer_tag = a->consumer_tag;
		conn_send_method(ch->conn, ch->number, &ok);
	}
	return 0;
}

void chan_consumer_cancelled(struct consumer *c)
{
	struct channel *ch = c->ch;
	struct amqp_method m = { .id = AMQP_basic_cancel };

	m.a.basic_cancel.consumer_tag = bytes_str(c->tag);
	m.a.basic_cancel.no_wait = true;
	/* Only clients that said they understand it get basic.cancel. */
	if (ch->state == CHAN_OPEN && ch->conn->cancel_notify)
		conn_send_method(ch->conn, ch->number, &m);
	chan_consumer_free(c, true);
}

int chan_basic_publish(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_basic_publish *a = &m->a.basic_publish;

	int rc;

	if (a->immediate) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_NOT_IMPLEMENTED, "immediate=true");
	}
	if ((rc = chan_check_publish(ch, a->exchange, err)) != 0)
		return rc;
	if (ch->conn->broker->users->n_topic_perms > 0 &&
	    (rc = chan_check_topic(ch, vhost_find_exchange(ch->conn->vh,
	    a->exchange), ACCESS_WRITE, a->routing_key, err)) != 0)
		return rc;
	memcpy(ch->publish_exchange, a->exchange.ptr, a->exchange.len);
	ch->publish_exchange_len = (uint8_t)a->exchange.len;
	memcpy(ch->publish_rkey, a->routing_key.ptr, a->routing_key.len);
	ch->publish_rkey_len = (uint8_t)a->routing_key.len;
	ch->publish_mandatory = a->mandatory;
	ch->content = CONTENT_HEADER;
	if (!ch->conn->published) {
		ch->conn->published = true;
		if (ch->conn->broker->alarms)
			conn_set_blocked(ch->conn, true);
		if (ch->conn->broker->store_behind)
			conn_set_flow(ch->conn, true);
	}
	return 0;
}

void chan_send_return(struct channel *ch, struct message *msg)
{
	struct amqp_method m = { .id = AMQP_basic_return };

	m.a.basic_return.reply_code = AMQP_NO_ROUTE;
	m.a.basic_return.reply_text = BYTES_LIT("NO_ROUTE");
	m.a.basic_return.exchange = msg->exchange;
	m.a.basic_return.routing_key = msg->routing_key;
	conn_send_delivery(ch->conn, ch->number, &m, msg);
}

bool chan_route(struct channel *ch, struct exchange *x, struct message *msg,
    bool mandatory, uint64_t *ticket)
{
	struct broker_counters *counters = &ch->conn->broker->counters;
	struct journal *journal = x->vh->journal;
	bool routed, accepted = true;

	if (journal) {
		journal_note(journal, J_PUBLISHED, msg, ch->conn->id,
		    ch->number, x->name, NULL);
		firehose_publish(x, msg, ch->conn, ch->number);
	}
	if (x->name[0] == '\0' && chan_is_reply_key(msg->routing_key))
		routed = chan_reply_to_route(ch, msg);
	else
		routed = exchange_publish(x, msg, ticket, &accepted);
	counters->messages_received++;
	ch->msgs.published++;
	ch->conn->msgs.published++;
	if (routed)
		counters->messages_routed++;
	else if (mandatory)
		counters->unroutable_returned++;
	else
		counters->unroutable_dropped++;
	if (!routed && mandatory)
		chan_send_return(ch, msg);
	if (!routed && journal)
		journal_note(journal, mandatory ? J_RETURNED : J_UNROUTABLE, msg,
		    ch->conn->id, ch->number, x->name, NULL);
	return accepted;
}

/* Is the reply_to property the direct reply-to pseudo-queue? */
static bool is_direct_reply_to(const struct message *msg)
{
	struct bytes reply_to;

	return msg_string_prop(msg, PROP_reply_to, &reply_to) &&
	    bytes_eq_str(reply_to, "amq.rabbitmq.reply-to");
}

int chan_publish_complete(struct channel *ch, struct amqp_error *err)
{
	struct message *msg = chan_take_pending(ch);
	struct exchange *x;
	uint64_t ticket = 0, lookups;
	bool accepted;
	int rc;

	err->method_id = AMQP_basic_publish;
	if ((rc = op_find_exchange(ch->conn->vh, msg->exchange, &x,
	    err)) != 0)
		goto done;
	if (x->internal) {
		rc = amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "cannot publish to internal exchange '%s' in vhost '%s'",
		    x->name, x->vh->name);
		goto done;
	}
	if (msg_has_prop(msg, PROP_reply_to) && is_direct_reply_to(msg) &&
	    (rc = chan_reply_to_rewrite(ch, &msg, err)) != 0)
		goto done;
	if (ch->tx_mode) {
		chan_tx_hold(ch, msg, ch->publish_mandatory);
		goto done;
	}
	lookups = dedup_lookups();
	dedup_publish_begin(msg);
	accepted = chan_route(ch, x, msg, ch->publish_mandatory, &ticket);
	dedup_publish_end();
	ch->publishes_meet_dedup = dedup_lookups() != lookups;
	broker_check_memory(ch->conn->broker);
	if (ch->confirm_mode)
		chan_confirm_publish(ch, accepted, ticket);
done:
	msg_unref(msg);
	return rc;
}

int chan_basic_get(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_basic_get *a = &m->a.basic_get;
	struct amqp_method r = { .id = AMQP_basic_get_ok };
	struct amqp_basic_get_ok *ok = &r.a.basic_get_ok;
	struct message *out;
	struct queue_entry e;
	struct queue *q;
	int rc;

	if ((rc = chan_find_queue(ch, a->queue, ACCESS_READ, &q, err)) != 0)
		return rc;
	if ((rc = queue_refuse(q, QUEUE_GET, err)) != 0)
		return rc;
	queue_touch(q);
	if ((!a->no_ack && chan_over_memory_share(ch)) || !queue_pop(q, &e)) {
		r.id = AMQP_basic_get_empty;
		conn_send_method(ch->conn, ch->number, &r);
		return 0;
	}
	ok->delivery_tag = ch->next_tag;
	ok->redelivered = e.redelivered;
	ch->conn->broker->counters.messages_get++;
	ch->msgs.delivered++;
	ch->conn->msgs.delivered++;
	if (e.redelivered)
		ch->conn->broker->counters.messages_redelivered++;
	ok->exchange = e.msg->exchange;
	ok->routing_key = e.msg->routing_key;
	ok->message_count = q->count;
	if (q->vh->journal) {
		journal_note(q->vh->journal, J_DELIVERED, e.msg, ch->conn->id,
		    ch->number, q->name, a->no_ack ? "basic.get, no ack" :
		    "basic.get");
		firehose_deliver(q, e.msg, e.redelivered, ch->conn,
		    ch->number);
	}
	chan_record_get(ch, &e, q, a->no_ack);
	out = queue_outgoing(q, &e, true);
	conn_send_delivery(ch->conn, ch->number, &r, out);
	msg_unref(out);
	if (a->no_ack)
		queue_settle(q, &e, SETTLE_ACK);
	else
		msg_unref(e.msg);
	return 0;
}

/* ack / nack / reject: now, or at tx.commit in a transaction. */
static int settle(struct channel *ch, uint64_t tag, bool multiple,
    enum settle_how how, struct amqp_error *err)
{
	int rc;

	if (!ch->tx_mode)
		return chan_settle(ch, tag, multiple, how, err);
	if ((rc = chan_settle_check(ch, tag, multiple, err)) != 0)
		return rc;
	chan_tx_mark_settle(ch, tag, multiple, how);
	return 0;
}

static enum settle_how requeue_or_reject(bool requeue)
{
	return requeue ? SETTLE_REQUEUE : SETTLE_REJECT;
}

int chan_basic_ack(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	return settle(ch, m->a.basic_ack.delivery_tag, m->a.basic_ack.multiple,
	    SETTLE_ACK, err);
}

int chan_basic_reject(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	return settle(ch, m->a.basic_reject.delivery_tag, false,
	    requeue_or_reject(m->a.basic_reject.requeue), err);
}

int chan_basic_nack(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	return settle(ch, m->a.basic_nack.delivery_tag, m->a.basic_nack.multiple,
	    requeue_or_reject(m->a.basic_nack.requeue), err);
}

int chan_basic_recover(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_basic_recover_ok };
	bool requeue = m->id == AMQP_basic_recover ?
	    m->a.basic_recover.requeue : m->a.basic_recover_async.requeue;

	if (!requeue) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_NOT_IMPLEMENTED, "requeue=false");
	}
	chan_requeue_all(ch, false);
	if (m->id == AMQP_basic_recover)
		conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}
