/*
 * A channel's unacked ledger: every delivery awaiting an ack, in tag
 * order, in a ring that compacts itself.  Settling an entry (ack, nack,
 * reject, requeue, or a commit of the ones a transaction marked) hands it
 * back to its queue through queue_settle, so what settling means (dead-
 * lettering, the store's ACK record) is the queue's business.
 */
#include <stdlib.h>

#include "broker.h"
#include "channel.h"
#include "channel_ledger.h"
#include "connection.h"
#include "journal.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "queue_latency.h"
#include "vhost.h"

struct delivery *chan_ledger_at(struct channel *ch, uint32_t i)
{
	return &ch->ledger[(ch->ledger_head + i) & (ch->ledger_cap - 1)];
}

/* Move the entries into a ring of cap slots (a power of two). */
static void ledger_resize(struct channel *ch, uint32_t cap)
{
	struct delivery *ring = xmalloc(sizeof(*ring) * cap);

	for (uint32_t i = 0; i < ch->ledger_count; i++)
		ring[i] = *chan_ledger_at(ch, i);
	free(ch->ledger);
	ch->ledger = ring;
	ch->ledger_cap = cap;
	ch->ledger_head = 0;
}

void chan_ledger_append(struct channel *ch, struct delivery d)
{
	if (ch->ledger_count == ch->ledger_cap)
		ledger_resize(ch, ch->ledger_cap ? ch->ledger_cap * 2 : 64);
	d.tag = ch->next_tag++;
	d.q->unacked++;
	ch->unacked_bytes += d.e.msg->body_size;
	*chan_ledger_at(ch, ch->ledger_count++) = d;
}

/* The index of the entry for tag, or -1. */
static int64_t ledger_find(struct channel *ch, uint64_t tag)
{
	uint64_t first, lo = 0, hi;

	if (ch->ledger_count == 0 || tag < (first = chan_ledger_at(ch, 0)->tag))
		return -1;
	/* Tags only go missing, never repeat: tag sits at or before index
	 * tag - first, exactly there while acks come in order. */
	hi = tag - first + 1 < ch->ledger_count ? tag - first + 1 :
	    ch->ledger_count;
	if (chan_ledger_at(ch, (uint32_t)(hi - 1))->tag == tag)
		return (int64_t)(hi - 1);
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;

		if (chan_ledger_at(ch, (uint32_t)mid)->tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ch->ledger_count && chan_ledger_at(ch, (uint32_t)lo)->tag == tag ?
	    (int64_t)lo : -1;
}

/*
 * Drop settled entries: from the front at once, from the middle when they
 * are over half the ledger (one old unacked delivery must not keep every
 * later one's slot).  Indices change, so never call this while iterating.
 */
static void ledger_trim(struct channel *ch)
{
	while (ch->ledger_count && chan_ledger_at(ch, 0)->settled) {
		ch->ledger_head = (ch->ledger_head + 1) & (ch->ledger_cap - 1);
		ch->ledger_count--;
	}
	if (ch->ledger_count > 2 * ch->unacked + 32) {
		uint32_t kept = 0;

		for (uint32_t i = 0; i < ch->ledger_count; i++)
			if (!chan_ledger_at(ch, i)->settled)
				*chan_ledger_at(ch, kept++) = *chan_ledger_at(ch, i);
		ch->ledger_count = kept;
	}
	if (ch->ledger_cap > 64 && ch->ledger_count * 8 < ch->ledger_cap) {
		uint32_t cap = ch->ledger_cap;

		while (cap > 64 && ch->ledger_count * 8 < cap)
			cap /= 2;
		ledger_resize(ch, cap);
	}
}

bool chan_delivery_outstanding(const struct delivery *d)
{
	return !d->settled && !d->tx_held;
}

uint64_t chan_last_unsettled_tag(struct channel *ch)
{
	for (uint32_t i = ch->ledger_count; i-- > 0; )
		if (chan_delivery_outstanding(chan_ledger_at(ch, i)))
			return chan_ledger_at(ch, i)->tag;
	return 0;
}

static void settle_one(struct channel *ch, struct delivery *d,
    enum settle_how how)
{
	/*
	 * Requeueing or dead-lettering can deliver to this very channel and
	 * grow (move) the ledger: finish with *d before calling out.
	 */
	struct queue_entry e = d->e;
	struct queue *q = d->q;
	bool held = chan_over_memory_share(ch);

	d->settled = true;
	if (d->tx_held) {
		d->tx_held = false;
		ch->n_tx_held--;
	}
	d->e.msg = NULL;
	d->q = NULL;
	ch->unacked--;
	ch->unacked_bytes -= e.msg->body_size;
	q->unacked--;
	if (how == SETTLE_ACK) {
		uint64_t now = ch->conn->broker->clock_ms;

		qlat_note_ack(q, now, now > d->delivered_at ?
		    now - d->delivered_at : 0);
		ch->conn->broker->counters.messages_acknowledged++;
		ch->msgs.acked++;
		ch->conn->msgs.acked++;
		q->counters.acked++;
	}
	if (d->consumer && how == SETTLE_ACK && d->consumer->q == q &&
	    q->type->acked)
		q->type->acked(q, d->consumer, &e);
	if (d->consumer) {
		d->consumer->unacked--;
		if (d->consumer->q)
			queue_schedule_dispatch(d->consumer->q);
	}
	if (q->vh->journal)
		journal_note(q->vh->journal, how == SETTLE_ACK ? J_ACKED :
		    how == SETTLE_REQUEUE ? J_REQUEUED : J_REJECTED, e.msg,
		    ch->conn->id, ch->number, q->name, NULL);
	queue_settle(q, &e, how);
	/* A channel-wide limit frees credit for every consumer. */
	if (ch->prefetch_channel || (held && !chan_over_memory_share(ch)))
		chan_redispatch(ch);
	queue_unref(q);
}

/* The index of tag's outstanding delivery, or a 406 into err (-1). */
static int64_t find_outstanding(struct channel *ch, uint64_t tag,
    struct amqp_error *err)
{
	int64_t i = ledger_find(ch, tag);

	if (i < 0 || !chan_delivery_outstanding(chan_ledger_at(ch, (uint32_t)i))) {
		amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "unknown delivery tag %llu", (unsigned long long)tag);
		return -1;
	}
	return i;
}

int chan_settle_check(struct channel *ch, uint64_t tag, bool multiple,
    struct amqp_error *err)
{
	if (multiple && tag == 0)
		return 0;	/* "everything outstanding", even nothing */
	return find_outstanding(ch, tag, err) < 0 ? AMQP_PRECONDITION_FAILED : 0;
}

int chan_settle(struct channel *ch, uint64_t tag, bool multiple,
    enum settle_how how, struct amqp_error *err)
{
	int64_t at = 0;

	if (!(multiple && tag == 0) && (at = find_outstanding(ch, tag, err)) < 0)
		return AMQP_PRECONDITION_FAILED;
	if (multiple && tag == 0 && (tag = chan_last_unsettled_tag(ch)) == 0)
		return 0;
	/* Streams refuse nack and reject (RabbitMQ: 540) before anything. */
	for (uint32_t i = multiple ? 0 : (uint32_t)at; how != SETTLE_ACK &&
	    i < ch->ledger_count && chan_ledger_at(ch, i)->tag <= tag; i++) {
		struct delivery *d = chan_ledger_at(ch, i);
		int rc;

		if (!d->settled && d->q &&
		    (rc = queue_refuse(d->q, QUEUE_NACK, err)) != 0)
			return rc;
	}
	if (multiple) {
		/* Oldest first: dead-lettering keeps the order; requeueing
		 * goes by sequence number anyway.  Settling may deliver to
		 * this channel again: those entries come after tag. */
		for (uint32_t i = 0; i < ch->ledger_count &&
		    chan_ledger_at(ch, i)->tag <= tag; i++) {
			struct delivery *d = chan_ledger_at(ch, i);

			if (!d->settled)
				settle_one(ch, d, how);
		}
	} else {
		settle_one(ch, chan_ledger_at(ch, (uint32_t)at), how);
	}
	ledger_trim(ch);
	return 0;
}

void chan_requeue_all(struct channel *ch, bool with_tx_held)
{
	for (uint32_t i = ch->ledger_count; i-- > 0; ) {
		struct delivery *d = chan_ledger_at(ch, i);

		if (!d->settled && (with_tx_held || !d->tx_held))
			settle_one(ch, d, SETTLE_REQUEUE);
	}
	ledger_trim(ch);
}

void chan_tx_mark_settle(struct channel *ch, uint64_t tag, bool multiple,
    enum settle_how how)
{
	if (multiple && tag == 0 && (tag = chan_last_unsettled_tag(ch)) == 0)
		return;
	for (uint32_t i = multiple ? 0 : (uint32_t)ledger_find(ch, tag);
	    i < ch->ledger_count && chan_ledger_at(ch, i)->tag <= tag; i++) {
		struct delivery *d = chan_ledger_at(ch, i);

		if (chan_delivery_outstanding(d)) {
			d->tx_held = true;
			d->tx_how = (uint8_t)how;
			ch->n_tx_held++;
		}
	}
}

void chan_tx_settle_marked(struct channel *ch)
{
	/* Settling may deliver to this channel: new entries are unmarked. */
	for (uint32_t i = 0; ch->n_tx_held && i < ch->ledger_count; i++) {
		struct delivery *d = chan_ledger_at(ch, i);

		if (d->tx_held)
			settle_one(ch, d, (enum settle_how)d->tx_how);
	}
	ledger_trim(ch);
}

void chan_tx_unmark(struct channel *ch)
{
	for (uint32_t i = 0; ch->n_tx_held && i < ch->ledger_count; i++) {
		if (chan_ledger_at(ch, i)->tx_held) {
			chan_ledger_at(ch, i)->tx_held = false;
			ch->n_tx_held--;
		}
	}
}
