/*
 * Classic queues: ready messages in one ring per priority level, oldest
 * first, whose newer entries page out to a tail file on disk past the
 * paging limits.  TTL and length limits live here; what dies goes to
 * dead_letter().  Persistent messages of durable queues are recorded in
 * the store (ENQ when queued, DLV when first delivered, ACK when gone).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker.h"
#include "config.h"
#include "connection.h"
#include "dead_letter.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "queue_latency.h"
#include "queue_tail.h"
#include "store.h"
#include "vhost.h"

/* Entries a level keeps in memory once past the paging watermark. */
#define PAGE_MIN 64

struct classic {
	/*
	 * One ring per priority level (one if no priorities), oldest
	 * first; past the paging limits a level's newer messages wait on
	 * disk in its tail (NULL: none yet).
	 */
	struct entry_ring *levels;
	struct queue_tail **tails;	/* n_levels of them, or NULL */
	uint32_t n_levels;
	uint64_t next_seq;
	struct event *expiry_ev;	/* the head's TTL runs out */
	struct event *refill_ev;	/* paged-out messages not on disk yet */
};

static inline struct classic *cq(const struct queue *q)
{
	return q->state;
}

static void queue_expiry_cb(evutil_socket_t fd, short what, void *arg);
static void queue_refill_cb(evutil_socket_t fd, short what, void *arg);
static void arm_expiry(struct queue *q);
static void expire_heads(struct queue *q);
static void enforce_length(struct queue *q);

static void classic_init(struct queue *q)
{
	struct event_base *base = q->vh->broker->base;
	struct classic *c = xcalloc(1, sizeof(*c));

	q->state = c;
	c->n_levels = 1u + q->args.max_priority;
	c->levels = xcalloc(c->n_levels, sizeof(*c->levels));
	c->expiry_ev = evtimer_new(base, queue_expiry_cb, q);
	c->refill_ev = evtimer_new(base, queue_refill_cb, q);
	if (!c->expiry_ev || !c->refill_ev)
		fatalx("event_new failed");
}

static void classic_destroy(struct queue *q)
{
	struct classic *c = cq(q);

	event_free(c->expiry_ev);
	event_free(c->refill_ev);
	for (uint32_t i = 0; i < c->n_levels; i++) {
		ring_free(&c->levels[i]);
		if (c->tails)
			tail_free(c->tails[i]);
	}
	free(c->tails);
	free(c->levels);
	free(c);
	q->state = NULL;
}

static uint32_t level_of(const struct queue *q, const struct message *m)
{
	uint8_t p = m->priority;

	return p < cq(q)->n_levels ? p : cq(q)->n_levels - 1;
}

static void account_add(struct queue *q, const struct message *m)
{
	q->count++;
	q->bytes += m->body_len;
}

static void account_remove(struct queue *q, const struct message *m)
{
	q->count--;
	q->bytes -= m->body_len;
}

/* What is left of an entry's TTL, for the store; 0: it never expires. */
static uint64_t ttl_left(uint64_t expires_at)
{
	uint64_t now = conn_now_ms();

	if (expires_at == 0)
		return 0;
	return expires_at > now ? expires_at - now : 1;
}

/* The store, when q keeps m across restarts (durable and persistent). */
static struct store *store_for(const struct queue *q, const struct message *m)
{
	return q->store_qid && m->persistent ? q->vh->broker->store : NULL;
}

/* An entry is finished with: its message leaves this queue for good. */
static void entry_done(struct queue *q, const struct queue_entry *e)
{
	struct store *store = q->vh->broker->store;

	/* No store: shutting down, and what is in memory stays on disk. */
	if (e->store_seg && store) {
		store_ack(store, q->store_qid, &e->msg->stored, e->store_seg);
		store_forget_returns(store, e->ret_seg);
	}
	msg_unref(e->msg);
}

/* ---- paging ------------------------------------------------------------- */

static uint64_t tail_len(const struct queue *q, uint32_t level)
{
	return cq(q)->tails && cq(q)->tails[level] ? tail_count(cq(q)->tails[level]) : 0;
}

/*
 * Whether a new entry of this level goes to the tail: always once the
 * tail has entries (order); past the paging watermark of message memory,
 * once the ring holds a few; and for a message the store keeps anyway
 * (paging it out costs no write), once the ring is full.  A transient
 * message goes out only past the watermark: it has to be written first.
 */
static bool pages_out(const struct queue *q, uint32_t level, bool stored)
{
	const struct broker *b = q->vh->broker;
	uint32_t limit = b->cfg->queue_memory_messages;
	uint32_t in_memory = cq(q)->levels[level].count;

	if (tail_len(q, level))
		return true;
	if (b->store == NULL || limit == 0)
		return false;
	if (in_memory >= PAGE_MIN && msg_live_bytes() > b->paging_watermark)
		return true;
	return stored && in_memory >= limit;
}

static struct queue_tail *tail_of(struct queue *q, uint32_t level)
{
	char path[4096];

	if (cq(q)->tails == NULL)
		cq(q)->tails = xcalloc(cq(q)->n_levels, sizeof(*cq(q)->tails));
	if (cq(q)->tails[level] == NULL) {
		broker_tail_path(q->vh->broker, path, sizeof(path));
		cq(q)->tails[level] = tail_new(path);
	}
	return cq(q)->tails[level];
}

/*
 * Page e out to its level's tail; the message is left to the caller.  A
 * message the store keeps for this queue gets its ENQ, any other is held
 * in the log for as long as the entry is out.
 */
static void page_out(struct queue *q, uint32_t level, struct message *msg,
    const struct queue_entry *e, uint64_t *ticket)
{
	struct store *store = q->vh->broker->store;
	struct tail_entry te = {
		.seq = e->seq, .expires_at = e->expires_at,
		.body_len = (uint32_t)msg->body_len,
		.redelivered = e->redelivered, .returns = e->returns,
		.ret_seg = e->ret_seg, .enqueued_at = e->enqueued_at,
	};

	if (store_for(q, msg)) {
		te.enq_seg = store_enqueue(store, q->store_qid, msg,
		    ttl_left(e->expires_at), ticket);
		te.msg = msg->stored;
	} else {
		store_hold(store, msg, &te.msg);
	}
	tail_push(tail_of(q, level), &te);
	account_add(q, msg);
}

/* A tail that emptied gives back its buffers (a later one starts anew). */
static void drop_empty_tail(struct queue *q, uint32_t level)
{
	if (cq(q)->tails && cq(q)->tails[level] && tail_count(cq(q)->tails[level]) == 0) {
		tail_free(cq(q)->tails[level]);
		cq(q)->tails[level] = NULL;
	}
}

/* A paged-out entry leaves the queue without being read back. */
static void tail_entry_done(struct queue *q, const struct tail_entry *te)
{
	struct store *store = q->vh->broker->store;

	q->count--;
	q->bytes -= te->body_len;
	/* No store: shutting down, and the log stays as it is. */
	if (store == NULL)
		return;
	if (te->enq_seg) {
		store_ack(store, q->store_qid, &te->msg, te->enq_seg);
		store_forget_returns(store, te->ret_seg);
	} else
		store_release(store, &te->msg);
}

/*
 * How many entries a ring refills to: the limit, or only PAGE_MIN past the
 * paging watermark (as pages_out keeps), so that reading a deep queue back
 * cannot itself push message memory to the alarm.
 */
static uint32_t refill_target(const struct queue *q)
{
	const struct broker *b = q->vh->broker;
	uint32_t limit = b->cfg->queue_memory_messages;

	return limit > PAGE_MIN && msg_live_bytes() > b->paging_watermark ?
	    PAGE_MIN : limit;
}

/*
 * Bring a level's paged-out entries back into memory once its ring has
 * drained to half its target, in order, up to the target.  An entry whose
 * record is not on disk yet is retried shortly.
 */
static void refill(struct queue *q, uint32_t level)
{
	struct store *store = q->vh->broker->store;
	struct entry_ring *r = &cq(q)->levels[level];
	struct tail_entry te;

	if (tail_len(q, level) == 0 || store == NULL ||
	    r->count >= (refill_target(q) + 1) / 2)
		return;
	while ((r->count < refill_target(q) || r->count == 0) &&
	    tail_peek(cq(q)->tails[level], &te)) {
		struct message *m;

		if (!store_readable(store, &te.msg)) {
			if (!evtimer_pending(cq(q)->refill_ev, NULL))
				evtimer_in_ms(cq(q)->refill_ev, 1);
			return;
		}
		tail_pop(cq(q)->tails[level], &te);
		if ((m = store_read(store, &te.msg)) == NULL) {
			/* Logged by store_read: that message is lost. */
			tail_entry_done(q, &te);
			continue;
		}
		if (te.enq_seg == 0)
			store_release(store, &te.msg);
		ring_push(r, (struct queue_entry){ .msg = m, .seq = te.seq,
		    .expires_at = te.expires_at, .redelivered = te.redelivered,
		    .returns = te.returns, .store_seg = te.enq_seg,
		    .ret_seg = te.ret_seg, .enqueued_at = te.enqueued_at });
	}
	drop_empty_tail(q, level);
}

static void queue_refill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	/* What waited for the refill: expiry, length limits, consumers. */
	expire_heads(q);
	enforce_length(q);
	queue_schedule_dispatch(q);
}

/* The highest level with something ready in memory, or NULL. */
static struct entry_ring *top_level(struct queue *q)
{
	for (uint32_t i = cq(q)->n_levels; i-- > 0; ) {
		refill(q, i);
		if (cq(q)->levels[i].count)
			return &cq(q)->levels[i];
	}
	return NULL;
}

/* Remove the top entry, whatever its state. */
static bool take_top(struct queue *q, struct queue_entry *out)
{
	struct entry_ring *r = top_level(q);

	if (r == NULL || !ring_pop(r, out))
		return false;
	account_remove(q, out->msg);
	return true;
}

/* Dead-letter (or drop) expired messages at the head of each level. */
static void expire_heads(struct queue *q)
{
	uint64_t now = conn_now_ms();

	for (uint32_t i = 0; i < cq(q)->n_levels; i++) {
		struct entry_ring *r = &cq(q)->levels[i];
		struct queue_entry *h, e;

		for (;;) {
			refill(q, i);
			h = ring_head(r);
			if (h == NULL || h->expires_at == 0 ||
			    h->expires_at > now)
				break;
			ring_pop(r, &e);
			account_remove(q, e.msg);
			dead_letter(q, e.msg, DEATH_EXPIRED);
			entry_done(q, &e);
		}
	}
	arm_expiry(q);
}

static void arm_expiry(struct queue *q)
{
	uint64_t next = 0, now;

	for (uint32_t i = 0; i < cq(q)->n_levels; i++) {
		struct queue_entry *h = ring_head(&cq(q)->levels[i]);

		if (h && h->expires_at && (next == 0 || h->expires_at < next))
			next = h->expires_at;
	}
	if (next == 0 || q->deleted) {
		evtimer_del(cq(q)->expiry_ev);
		return;
	}
	now = conn_now_ms();
	evtimer_in_ms(cq(q)->expiry_ev, next > now ? next - now : 0);
}

static void queue_expiry_cb(evutil_socket_t fd, short what, void *arg)
{
	expire_heads(arg);
}

/* Drop from the head until within x-max-length / x-max-length-bytes. */
static void enforce_length(struct queue *q)
{
	struct queue_entry e;

	while ((q->args.max_length >= 0 && q->count > (uint64_t)q->args.max_length) ||
	    (q->args.max_length_bytes >= 0 &&
	    q->bytes > (uint64_t)q->args.max_length_bytes)) {
		if (!take_top(q, &e))
			break;
		dead_letter(q, e.msg, DEATH_MAXLEN);
		entry_done(q, &e);
	}
}

static bool would_overflow(const struct queue *q, const struct message *m)
{
	return (q->args.max_length >= 0 &&
	    q->count + 1 > (uint64_t)q->args.max_length) ||
	    (q->args.max_length_bytes >= 0 &&
	    q->bytes + m->body_len > (uint64_t)q->args.max_length_bytes);
}

static bool classic_push(struct queue *q, struct message *msg, uint64_t *ticket)
{
	int64_t ttl = q->args.message_ttl;
	uint64_t now = q->vh->broker->clock_ms;
	struct queue_entry e = { .seq = cq(q)->next_seq++,
	    .enqueued_at = qlat_stamp(now) };
	struct store *store = store_for(q, msg);
	uint32_t level = level_of(q, msg);
	struct consumer *c;

	if (msg->ttl >= 0 && (ttl < 0 || msg->ttl < ttl))
		ttl = msg->ttl;
	/* Nothing waits ahead of it: a consumer with credit takes it now. */
	if (q->count == 0 && q->n_consumers && (c = queue_next_consumer(q)) != NULL) {
		e.msg = msg;
		if (ttl > 0)
			e.expires_at = conn_now_ms() + (uint64_t)ttl;
		/* Until acked it must survive a crash, delivered once. */
		if (store && !c->no_ack) {
			e.store_seg = store_enqueue(store, q->store_qid, msg,
			    ttl_left(e.expires_at), ticket);
			store_delivered(store, q->store_qid, msg->stored.id);
		}
		q->counters.delivered++;
		qlat_note_wait(q, now, e.enqueued_at);	/* no wait */
		c->ops->deliver(c, &e);
		return true;
	}
	if (ttl == 0) {
		/* Undeliverable now and expired already (RabbitMQ). */
		dead_letter(q, msg, DEATH_EXPIRED);
		return true;
	}
	if (q->args.overflow != OVERFLOW_DROP_HEAD && would_overflow(q, msg)) {
		if (q->args.overflow == OVERFLOW_REJECT_PUBLISH_DLX)
			dead_letter(q, msg, DEATH_MAXLEN);
		return false;
	}
	if (ttl > 0)
		e.expires_at = conn_now_ms() + (uint64_t)ttl;
	if (pages_out(q, level, store != NULL)) {
		page_out(q, level, msg, &e, ticket);
	} else {
		e.msg = msg_ref(msg);
		if (store)
			e.store_seg = store_enqueue(store, q->store_qid, msg,
			    ttl_left(e.expires_at), ticket);
		ring_push(&cq(q)->levels[level], e);
		account_add(q, msg);
	}
	enforce_length(q);
	if (ttl > 0 && !evtimer_pending(cq(q)->expiry_ev, NULL))
		arm_expiry(q);
	if (q->n_consumers)
		queue_schedule_dispatch(q);
	return true;
}

static void requeue(struct queue *q, const struct queue_entry *e)
{
	struct store *store = q->vh->broker->store;
	struct queue_entry back = *e;

	if (q->deleted) {
		entry_done(q, e);
		return;
	}
	if (back.returns < UINT16_MAX)
		back.returns++;
	if (q->args.delivery_limit >= 0) {
		/* As a quorum queue: returned more than the limit, it goes. */
		if (back.returns > q->args.delivery_limit) {
			dead_letter(q, e->msg, DEATH_DELIVERY_LIMIT);
			entry_done(q, e);
			return;
		}
		if (back.store_seg && store)
			back.ret_seg = store_returned(store, q->store_qid,
			    e->msg->stored.id, back.returns, e->ret_seg);
	}
	/* Back to its place, keeping its expiry time. */
	back.redelivered = true;
	ring_insert_by_seq(&cq(q)->levels[level_of(q, e->msg)], back);
	account_add(q, e->msg);
	enforce_length(q);
	if (back.expires_at)
		arm_expiry(q);
	if (q->n_consumers)
		queue_schedule_dispatch(q);
}

static void classic_settle(struct queue *q, const struct queue_entry *e,
    enum settle_how how)
{
	switch (how) {
	case SETTLE_REQUEUE:
		requeue(q, e);
		return;
	case SETTLE_REJECT:
		if (!q->deleted)
			dead_letter(q, e->msg, DEATH_REJECTED);
		break;
	case SETTLE_ACK:
		break;
	}
	entry_done(q, e);
}

static bool classic_pop(struct queue *q, struct queue_entry *out)
{
	bool got;

	expire_heads(q);
	got = take_top(q, out);
	if (!got)
		return false;
	/*
	 * Out to a consumer: after a crash it comes back redelivered, and
	 * where returns are counted, that delivery counts as one.
	 */
	if (out->store_seg && q->vh->broker->store &&
	    (!out->redelivered || q->args.delivery_limit >= 0))
		store_delivered(q->vh->broker->store, q->store_qid,
		    out->msg->stored.id);
	/* The new head may be due already, or need the timer. */
	expire_heads(q);
	return true;
}

static bool classic_recover_entry(struct queue *q,
    const struct store_recovered *rec, const struct store_recovered_entry *re)
{
	uint32_t level = rec->priority < cq(q)->n_levels ? rec->priority :
	    cq(q)->n_levels - 1;
	/* How long it waited before the restart is not kept: from now. */
	struct queue_entry e = { .seq = cq(q)->next_seq++,
	    .redelivered = re->delivered, .store_seg = re->enq_seg,
	    .returns = re->returns > UINT16_MAX ? UINT16_MAX :
	    (uint16_t)re->returns, .ret_seg = re->ret_seg,
	    .enqueued_at = qlat_stamp(conn_now_ms()) };

	/* It expires when it would have without the restart (or now). */
	if (re->expires_in >= 0)
		e.expires_at = conn_now_ms() + (uint64_t)re->expires_in;
	if (q->vh->broker->cfg->queue_memory_messages) {
		/*
		 * Not read now: every entry starts paged out and is read
		 * when the queue is used, so the broker accepts connections
		 * as soon as the log is scanned, however deep its queues.
		 */
		struct tail_entry te = { rec->loc, e.seq, e.expires_at,
		    re->enq_seg, rec->body_len, re->delivered, e.returns,
		    e.ret_seg, e.enqueued_at };

		tail_push(tail_of(q, level), &te);
		q->count++;
		q->bytes += rec->body_len;
		/* Something may expire: read the head once started. */
		if (e.expires_at && !evtimer_pending(cq(q)->refill_ev, NULL))
			evtimer_in_ms(cq(q)->refill_ev, 1);
		return true;
	}
	if ((e.msg = store_read(q->vh->broker->store, &rec->loc)) == NULL)
		return false;
	ring_push(&cq(q)->levels[level], e);
	account_add(q, e.msg);
	if (e.expires_at && !evtimer_pending(cq(q)->expiry_ev, NULL))
		arm_expiry(q);
	return true;
}

static uint32_t classic_purge(struct queue *q)
{
	uint32_t n = q->count;
	struct queue_entry e;
	struct tail_entry te;

	/* Paged-out entries go without being read back. */
	for (uint32_t i = 0; i < cq(q)->n_levels; i++) {
		while (ring_pop(&cq(q)->levels[i], &e)) {
			account_remove(q, e.msg);
			entry_done(q, &e);
		}
		while (cq(q)->tails && cq(q)->tails[i] && tail_pop(cq(q)->tails[i], &te))
			tail_entry_done(q, &te);
		drop_empty_tail(q, i);
	}
	evtimer_del(cq(q)->expiry_ev);
	evtimer_del(cq(q)->refill_ev);
	return n;
}

/* The oldest ready message's stamp: the oldest of the levels' heads. */
static bool classic_oldest(struct queue *q, uint32_t *enqueued_at)
{
	uint64_t now = q->vh->broker->clock_ms, best = 0;
	bool any = false;

	for (uint32_t level = 0; level < cq(q)->n_levels; level++) {
		const struct entry_ring *r = &cq(q)->levels[level];
		struct tail_entry te;
		uint32_t stamp;

		if (r->count)
			stamp = ring_at(r, 0)->enqueued_at;
		else if (cq(q)->tails && cq(q)->tails[level] &&
		    tail_peek(cq(q)->tails[level], &te))
			stamp = te.enqueued_at;
		else
			continue;
		if (!any || qlat_age(now, stamp) > best) {
			best = qlat_age(now, stamp);
			*enqueued_at = stamp;
		}
		any = true;
	}
	return any;
}

/* A paged-out entry as browsing sees it (its message read for the call). */
static void browse_paged(struct queue *q, const struct tail_entry *te,
    uint32_t level, queue_browse_fn *fn, void *arg)
{
	struct store *store = q->vh->broker->store;
	struct queue_entry e = { .seq = te->seq, .expires_at = te->expires_at,
	    .redelivered = te->redelivered, .returns = te->returns };

	if (store && store_readable(store, &te->msg))
		e.msg = store_read(store, &te->msg);
	fn(arg, &e, level, true);
	msg_unref(e.msg);
}

/* Levels from the highest priority, each its ring then its tail: the
 * order consumers get them. */
static size_t classic_browse(struct queue *q, uint64_t offset, size_t count,
    queue_browse_fn *fn, void *arg)
{
	struct tail_entry batch[64];
	size_t seen = 0;

	for (uint32_t level = cq(q)->n_levels; level-- > 0 && seen < count; ) {
		const struct entry_ring *r = &cq(q)->levels[level];
		uint64_t in_tail = tail_len(q, level);

		for (uint32_t i = 0; i < r->count && seen < count; i++) {
			if (offset) {
				offset--;
				continue;
			}
			fn(arg, ring_at(r, i), level, false);
			seen++;
		}
		if (offset >= in_tail) {
			offset -= in_tail;
			continue;
		}
		while (seen < count && offset < in_tail) {
			size_t want = count - seen < 64 ? count - seen : 64;
			size_t got = tail_get(cq(q)->tails[level], offset,
			    batch, want);

			if (got == 0)
				break;
			for (size_t i = 0; i < got; i++)
				browse_paged(q, &batch[i], level, fn, arg);
			seen += got;
			offset += got;
		}
		offset = 0;
	}
	return seen;
}

static void classic_stats(const struct queue *q, struct queue_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->messages = q->count;
	out->bytes = q->bytes;
	for (uint32_t i = 0; i < cq(q)->n_levels; i++)
		out->paged_out += tail_len(q, i);
	out->consumers = q->n_consumers;
	out->unacked = q->unacked;
}

static uint64_t classic_memory(const struct queue *q)
{
	const struct classic *c = cq(q);
	uint64_t bytes = sizeof(*q) + sizeof(*c) +
	    c->n_levels * sizeof(*c->levels);

	for (uint32_t i = 0; i < c->n_levels; i++) {
		const struct entry_ring *r = &c->levels[i];

		bytes += (uint64_t)r->cap * sizeof(struct queue_entry);
		for (uint32_t j = 0; j < r->count; j++) {
			const struct message *m = ring_at(r, j)->msg;

			bytes += m->alloc_size + m->body_len;
		}
	}
	return bytes;
}

const struct queue_type queue_classic = {
	.name = "classic",
	.init = classic_init,
	.destroy = classic_destroy,
	.push = classic_push,
	.pop = classic_pop,
	.settle = classic_settle,
	.purge = classic_purge,
	.recover_entry = classic_recover_entry,
	.check_consumer = NULL,
	.stats = classic_stats,
	.memory = classic_memory,
	.browse = classic_browse,
	.oldest = classic_oldest,
};
