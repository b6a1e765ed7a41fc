/*
 * Publisher confirms.  Every publish after confirm.select is numbered; a
 * publish is confirmed once every queue it was routed to holds it.  In
 * memory that is at once; a persistent message in a durable queue is held
 * only when the store has synced it, which the routing reports as a sync
 * ticket.  Publishes waiting for a ticket, and every publish after them (a
 * confirm is cumulative), wait in the channel's confirm queue; the store's
 * completion releases them in order (chan_confirm_synced).  When the
 * store's writes fail (a full disk, EIO), every publish still waiting for
 * a sync is nacked, and so is every one that needs the store until it
 * writes again: the message may still be delivered (and stored once the
 * disk has room), but the broker no longer vouches for it, and the
 * publisher can retry.  Nothing already confirmed is affected.
 *
 * Confirms are batched: the acks released while one batch of input (or
 * one sync completion) is handled go out as a single basic.ack with
 * multiple=true.
 */
#include <stdlib.h>

#include "broker.h"
#include "channel.h"
#include "log.h"
#include "method.h"

int chan_confirm_select(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_confirm_select_ok };

	if (ch->tx_mode)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "cannot switch from tx to confirm mode");
	ch->confirm_mode = true;
	if (!m->a.confirm_select.nowait)
		conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}

static void send_confirm(struct channel *ch, uint32_t id, uint64_t tag,
    bool multiple)
{
	struct amqp_method m = { .id = id };

	/* basic.ack and basic.nack share delivery-tag and multiple. */
	if (id == AMQP_basic_ack) {
		m.a.basic_ack.delivery_tag = tag;
		m.a.basic_ack.multiple = multiple;
	} else {
		m.a.basic_nack.delivery_tag = tag;
		m.a.basic_nack.multiple = multiple;
		m.a.basic_nack.requeue = true;	/* what RabbitMQ sends */
	}
	conn_send_method(ch->conn, ch->number, &m);
}

/* Send the acks released up to confirm_ready, as one basic.ack. */
static void send_ready_acks(struct channel *ch)
{
	if (ch->confirm_ready == ch->confirm_sent || ch->state != CHAN_OPEN)
		return;
	send_confirm(ch, AMQP_basic_ack, ch->confirm_ready,
	    ch->confirm_ready - ch->confirm_sent > 1);
	ch->conn->broker->counters.messages_confirmed +=
	    ch->confirm_ready - ch->confirm_sent;
	ch->confirm_sent = ch->confirm_ready;
}

/* Publish seq is settled: ack it with the next flush, or nack it now. */
static void release(struct channel *ch, uint64_t seq, bool accepted)
{
	if (accepted) {
		ch->confirm_ready = seq;
		return;
	}
	/* Acks before it go first, then its nack: tags stay in order. */
	send_ready_acks(ch);
	if (ch->state == CHAN_OPEN)
		send_confirm(ch, AMQP_basic_nack, seq, false);
	ch->confirm_ready = ch->confirm_sent = seq;
}

static void mark_dirty(struct channel *ch)
{
	struct conn *c = ch->conn;

	if (!ch->confirm_dirty) {
		ch->confirm_dirty = true;
		ch->confirm_next_dirty = c->confirm_dirty;
		c->confirm_dirty = ch;
	}
}

static void wait_push(struct channel *ch, uint64_t seq, uint64_t ticket,
    bool accepted)
{
	struct confirm_wait *w;

	if (ch->cwait_count == ch->cwait_cap) {
		uint32_t cap = ch->cwait_cap ? 2 * ch->cwait_cap : 16;
		struct confirm_wait *n = xcalloc(cap, sizeof(*n));

		for (uint32_t i = 0; i < ch->cwait_count; i++)
			n[i] = ch->cwait[(ch->cwait_head + i) % ch->cwait_cap];
		free(ch->cwait);
		ch->cwait = n;
		ch->cwait_head = 0;
		ch->cwait_cap = cap;
	}
	w = &ch->cwait[(ch->cwait_head + ch->cwait_count++) % ch->cwait_cap];
	w->seq = seq;
	w->ticket = ticket;
	w->accepted = accepted;
	if (ch->cwait_count == 1)
		broker_store_wait(ch->conn->broker, ch);
}

void chan_confirm_publish(struct channel *ch, bool accepted, uint64_t ticket)
{
	ch->publish_seq++;
	/* The store cannot write: what needs it is nacked, not held. */
	if (ticket && (ch->conn->broker->alarms & ALARM_STORE)) {
		accepted = false;
		ticket = 0;
	}
	if (ticket == 0 && ch->cwait_count == 0) {
		release(ch, ch->publish_seq, accepted);
		if (accepted)
			mark_dirty(ch);
		return;
	}
	wait_push(ch, ch->publish_seq, ticket, accepted);
}

void chan_confirm_flush(struct channel *ch)
{
	ch->confirm_dirty = false;
	send_ready_acks(ch);
}

bool chan_confirm_synced(struct channel *ch, uint64_t synced,
    bool write_failed)
{
	while (ch->cwait_count) {
		struct confirm_wait *w = &ch->cwait[ch->cwait_head];

		if (w->ticket > synced && !write_failed)
			break;
		release(ch, w->seq, w->accepted && w->ticket <= synced);
		ch->cwait_head = (ch->cwait_head + 1) % ch->cwait_cap;
		ch->cwait_count--;
	}
	send_ready_acks(ch);
	return ch->cwait_count == 0;
}
