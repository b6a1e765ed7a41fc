/*
 * Publisher confirms.  Every publish after confirm.select is numbered; a
 * publish is confirmed once every queue it was routed to holds it (all
 * in memory today, so at once; the store will make durable ones wait for
 * their fsync).  Confirms are batched: the acks settled while one batch of
 * input is handled go out as a single basic.ack with multiple=true.
 */
#include "channel.h"
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

void chan_confirm_publish(struct channel *ch, bool accepted)
{
	struct conn *c = ch->conn;

	ch->publish_seq++;
	if (!accepted) {
		/* Acks before it go first, then its nack: tags stay in order. */
		uint64_t before = ch->publish_seq - 1;

		if (before > ch->confirm_sent)
			send_confirm(ch, AMQP_basic_ack, before,
			    before - ch->confirm_sent > 1);
		send_confirm(ch, AMQP_basic_nack, ch->publish_seq, false);
		ch->confirm_sent = ch->publish_seq;
		return;
	}
	if (!ch->confirm_dirty) {
		ch->confirm_dirty = true;
		ch->confirm_next_dirty = c->confirm_dirty;
		c->confirm_dirty = ch;
	}
}

void chan_confirm_flush(struct channel *ch)
{
	ch->confirm_dirty = false;
	if (ch->publish_seq == ch->confirm_sent || ch->state != CHAN_OPEN)
		return;
	send_confirm(ch, AMQP_basic_ack, ch->publish_seq,
	    ch->publish_seq - ch->confirm_sent > 1);
	ch->confirm_sent = ch->publish_seq;
}
