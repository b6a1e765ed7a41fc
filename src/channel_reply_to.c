/*
 * Direct reply-to, RabbitMQ's RPC shortcut.  A client consumes (no-ack)
 * from the pseudo-queue "amq.rabbitmq.reply-to" and publishes requests with
 * that reply_to; the broker rewrites reply_to into a key naming the
 * channel, "amq.rabbitmq.reply-to.<conn>.<channel>.<secret>", and a reply
 * published to that key on the default exchange goes straight to the
 * channel's reply consumer, with no queue in between.  The random secret
 * keeps other clients from guessing a live key.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "channel.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"
#include "method.h"

#define REPLY_TO "amq.rabbitmq.reply-to"

bool chan_is_reply_to(struct bytes name)
{
	return bytes_eq_str(name, REPLY_TO);
}

bool chan_is_reply_key(struct bytes name)
{
	size_t n = sizeof(REPLY_TO) - 1;

	return name.len > n + 1 && memcmp(name.ptr, REPLY_TO ".", n + 1) == 0;
}

int chan_reply_to_consume(struct channel *ch, struct consumer *c,
    struct amqp_error *err)
{
	char secret[40];

	if (!c->no_ack)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "reply consumer cannot acknowledge");
	if (ch->reply_consumer)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "reply consumer already set");
	ch->reply_consumer = c;
	if (ch->reply_key[0] == '\0') {
		chan_random_name("", secret, sizeof(secret));
		snprintf(ch->reply_key, sizeof(ch->reply_key),
		    REPLY_TO ".%" PRIu64 ".%u.%s", ch->conn->id, ch->number,
		    secret);
	}
	return 0;
}

int chan_reply_to_rewrite(struct channel *ch, struct message **msgp,
    struct amqp_error *err)
{
	struct message *old = *msgp;
	struct content_header h;

	if (ch->reply_consumer == NULL)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "fast reply consumer does not exist");
	msg_content_header(old, &h);
	h.props.reply_to = bytes_str(ch->reply_key);
	*msgp = msg_rewrite(old, old->exchange, old->routing_key, &h);
	msg_unref(old);
	return 0;
}

bool chan_reply_to_route(struct channel *ch, struct message *msg)
{
	char key[sizeof(ch->reply_key)], *end;
	const char *p;
	unsigned long long conn_id;
	unsigned long number;
	struct channel *target;
	struct conn *c;

	if (msg->routing_key.len >= sizeof(key))
		return false;
	memcpy(key, msg->routing_key.ptr, msg->routing_key.len);
	key[msg->routing_key.len] = '\0';
	p = key + sizeof(REPLY_TO);	/* past "amq.rabbitmq.reply-to." */
	conn_id = strtoull(p, &end, 10);
	if (end == p || *end != '.')
		return false;
	number = strtoul(end + 1, &end, 10);
	if (*end != '.' || number > UINT16_MAX)
		return false;
	c = broker_find_conn(ch->conn->broker, conn_id);
	/* A reply never crosses vhosts (stricter than RabbitMQ, which trusts
	 * the key's secret alone): a tenant cannot reach another's client. */
	if (c == NULL || c->state != CONN_RUNNING || c->vh != ch->conn->vh ||
	    number >= c->channels_cap)
		return false;
	target = c->channels[number];
	if (target == NULL || target->state != CHAN_OPEN ||
	    target->reply_consumer == NULL ||
	    strcmp(target->reply_key, key) != 0)
		return false;
	target->reply_consumer->ops->deliver(target->reply_consumer,
	    &(struct queue_entry){ .msg = msg });
	return true;
}
