/*
 * The basic class: qos, consume, cancel, publish, get, ack/nack/reject,
 * recover, and routing a completed publish (the default exchange for now).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "broker.h"
#include "channel.h"
#include "exchange.h"
#include "frame.h"
#include "log.h"
#include "message.h"
#include "method.h"
#include "vhost.h"

int chan_find_queue(struct channel *ch, struct bytes name, struct queue **out,
    struct amqp_error *err)
{
	struct vhost *vh = ch->conn->vh;

	/* RabbitMQ: an empty name means the channel's last declared queue. */
	if (name.len == 0)
		name = bytes_str(ch->last_queue);
	if (name.len == 0)
		return amqp_fail(err, AMQP_NOT_FOUND,
		    "no previously declared queue");
	*out = vhost_find_queue(vh, name);
	if (*out == NULL)
		return amqp_fail(err, AMQP_NOT_FOUND,
		    "no queue '%.*s' in vhost '%s'", (int)name.len,
		    (const char *)name.ptr, vh->name);
	return chan_check_exclusive(ch, *out, err);
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
	if (a->global)
		ch->prefetch_channel = a->prefetch_count;
	else
		ch->prefetch_consumer = a->prefetch_count;
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

int chan_basic_consume(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_basic_consume *a = &m->a.basic_consume;
	struct amqp_method ok = { .id = AMQP_basic_consume_ok };
	struct consumer *c;
	struct queue *q;
	char tag[64];
	int rc;

	if ((rc = chan_find_queue(ch, a->queue, &q, err)) != 0)
		return rc;
	if (a->consumer_tag.len && find_consumer(ch, a->consumer_tag))
		return amqp_fail(err, AMQP_NOT_ALLOWED,
		    "attempt to reuse consumer tag '%.*s'",
		    (int)a->consumer_tag.len, (const char *)a->consumer_tag.ptr);
	if (a->exclusive && q->n_consumers)
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "queue '%s' in vhost '%s' in exclusive use", q->name,
		    q->vh->name);
	if (q->n_consumers && TAILQ_FIRST(&q->consumers)->exclusive)
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "queue '%s' in vhost '%s' in exclusive use", q->name,
		    q->vh->name);
	c = xcalloc(1, sizeof(*c));
	c->ch = ch;
	if (a->consumer_tag.len) {
		c->tag = bytes_strdup(a->consumer_tag);
	} else {
		chan_random_name("amq.ctag-", tag, sizeof(tag));
		c->tag = xstrdup(tag);
	}
	c->no_ack = a->no_ack;
	c->exclusive = a->exclusive;
	c->prefetch = ch->prefetch_consumer;
	TAILQ_INSERT_TAIL(&ch->consumers, c, chlink);
	if (!a->no_wait) {
		ok.a.basic_consume_ok.consumer_tag = bytes_str(c->tag);
		conn_send_method(ch->conn, ch->number, &ok);
	}
	/* Deliveries start on a later loop turn, after consume-ok. */
	queue_add_consumer(q, c);
	return 0;
}

static void consumer_free(struct channel *ch, struct consumer *c)
{
	TAILQ_REMOVE(&ch->consumers, c, chlink);
	if (c->q)
		queue_remove_consumer(c->q, c);
	for (uint32_t i = 0; i < ch->ledger_count; i++) {
		struct delivery *d = &ch->ledger[(ch->ledger_head + i) &
		    (ch->ledger_cap - 1)];

		if (d->consumer == c)
			d->consumer = NULL;
	}
	free(c->tag);
	free(c);
}

int chan_basic_cancel(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_basic_cancel *a = &m->a.basic_cancel;
	struct amqp_method ok = { .id = AMQP_basic_cancel_ok };
	struct consumer *c = find_consumer(ch, a->consumer_tag);

	if (c)
		consumer_free(ch, c);
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
	if (ch->state == CHAN_OPEN)
		conn_send_method(ch->conn, ch->number, &m);
	consumer_free(ch, c);
}

int chan_basic_publish(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_basic_publish *a = &m->a.basic_publish;

	if (a->immediate) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_NOT_IMPLEMENTED, "immediate=true");
	}
	memcpy(ch->publish_exchange, a->exchange.ptr, a->exchange.len);
	ch->publish_exchange_len = (uint8_t)a->exchange.len;
	memcpy(ch->publish_rkey, a->routing_key.ptr, a->routing_key.len);
	ch->publish_rkey_len = (uint8_t)a->routing_key.len;
	ch->publish_mandatory = a->mandatory;
	ch->content = CONTENT_HEADER;
	return 0;
}

static void send_return(struct channel *ch, struct message *msg)
{
	struct amqp_method m = { .id = AMQP_basic_return };

	m.a.basic_return.reply_code = AMQP_NO_ROUTE;
	m.a.basic_return.reply_text = BYTES_LIT("NO_ROUTE");
	m.a.basic_return.exchange = msg->exchange;
	m.a.basic_return.routing_key = msg->routing_key;
	conn_send_method(ch->conn, ch->number, &m);
	frame_put_content(conn_output(ch->conn), ch->number, msg,
	    ch->conn->frame_max);
}

int chan_publish_complete(struct channel *ch, struct amqp_error *err)
{
	struct message *msg = ch->pending;
	struct route_result r;
	struct exchange *x;
	int rc;

	ch->pending = NULL;
	err->method_id = AMQP_basic_publish;
	if ((rc = chan_find_exchange(ch, msg->exchange, &x, err)) != 0)
		goto done;
	if (x->internal) {
		rc = amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "cannot publish to internal exchange '%s' in vhost '%s'",
		    x->name, x->vh->name);
		goto done;
	}
	exchange_route(x, msg, &r);
	for (uint32_t i = 0; i < r.n; i++)
		queue_push(r.queues[i], msg);
	if (r.n == 0 && ch->publish_mandatory)
		send_return(ch, msg);
	route_result_free(&r);
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
	struct queue_entry e;
	struct queue *q;
	int rc;

	if ((rc = chan_find_queue(ch, a->queue, &q, err)) != 0)
		return rc;
	if (!queue_pop(q, &e)) {
		r.id = AMQP_basic_get_empty;
		conn_send_method(ch->conn, ch->number, &r);
		return 0;
	}
	ok->delivery_tag = ch->next_tag;
	ok->redelivered = e.redelivered;
	ok->exchange = e.msg->exchange;
	ok->routing_key = e.msg->routing_key;
	ok->message_count = q->count;
	chan_record_get(ch, e.msg, q, a->no_ack);
	conn_send_method(ch->conn, ch->number, &r);
	frame_put_content(conn_output(ch->conn), ch->number, e.msg,
	    ch->conn->frame_max);
	msg_unref(e.msg);
	return 0;
}

int chan_basic_ack(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	return chan_settle(ch, m->a.basic_ack.delivery_tag,
	    m->a.basic_ack.multiple, false, m->id, err);
}

int chan_basic_reject(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	return chan_settle(ch, m->a.basic_reject.delivery_tag, false,
	    m->a.basic_reject.requeue, m->id, err);
}

int chan_basic_nack(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	return chan_settle(ch, m->a.basic_nack.delivery_tag,
	    m->a.basic_nack.multiple, m->a.basic_nack.requeue, m->id, err);
}

int chan_basic_recover(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_basic_recover_ok };

	chan_requeue_all(ch);
	if (m->id == AMQP_basic_recover)
		conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}
