/*
 * Queues: ready messages (one ring per priority level), consumers, and the
 * dispatch pass that runs once per loop turn with a bounded batch.  TTL,
 * length limits and x-expires live here; what dies goes to dead_letter().
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker.h"
#include "channel.h"
#include "config.h"
#include "dead_letter.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "queue_tail.h"
#include "store.h"
#include "vhost.h"

/* Messages handed out per dispatch pass before yielding to the loop. */
#define DISPATCH_BUDGET 256

static void queue_dispatch(evutil_socket_t fd, short what, void *arg);
static void queue_expiry_cb(evutil_socket_t fd, short what, void *arg);
static void queue_idle_cb(evutil_socket_t fd, short what, void *arg);
static void queue_refill_cb(evutil_socket_t fd, short what, void *arg);
static void arm_expiry(struct queue *q);
static void expire_heads(struct queue *q);
static void enforce_length(struct queue *q);

/* Entries a level keeps in memory once past the paging watermark. */
#define PAGE_MIN 64

struct queue *queue_new(struct vhost *vh, struct bytes name,
    struct queue_args *args)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	struct event_base *base = vh->broker->base;

	q->refs = 1;
	q->name = bytes_strdup(name);
	q->vh = vh;
	q->args = *args;
	memset(args, 0, sizeof(*args));
	q->n_levels = 1u + q->args.max_priority;
	q->levels = xcalloc(q->n_levels, sizeof(*q->levels));
	TAILQ_INIT(&q->consumers);
	TAILQ_INIT(&q->inbound);
	q->dispatch_ev = event_new(base, -1, 0, queue_dispatch, q);
	q->expiry_ev = evtimer_new(base, queue_expiry_cb, q);
	q->idle_ev = evtimer_new(base, queue_idle_cb, q);
	q->refill_ev = evtimer_new(base, queue_refill_cb, q);
	if (!q->dispatch_ev || !q->expiry_ev || !q->idle_ev || !q->refill_ev)
		fatalx("event_new failed");
	queue_touch(q);
	return q;
}

struct queue *queue_ref(struct queue *q)
{
	q->refs++;
	return q;
}

void queue_unref(struct queue *q)
{
	if (--q->refs > 0)
		return;
	queue_purge(q);
	event_free(q->dispatch_ev);
	event_free(q->expiry_ev);
	event_free(q->idle_ev);
	event_free(q->refill_ev);
	for (uint32_t i = 0; i < q->n_levels; i++) {
		ring_free(&q->levels[i]);
		if (q->tails)
			tail_free(q->tails[i]);
	}
	free(q->tails);
	free(q->levels);
	queue_args_free(&q->args);
	free(q->arguments);
	free(q->name);
	free(q);
}

static void timer_in_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

static uint32_t level_of(const struct queue *q, const struct message *m)
{
	uint8_t p = m->priority;

	return p < q->n_levels ? p : q->n_levels - 1;
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
	if (e->store_seg && store)
		store_ack(store, q->store_qid, &e->msg->stored, e->store_seg);
	msg_unref(e->msg);
}

/* ---- paging ------------------------------------------------------------- */

static uint64_t tail_len(const struct queue *q, uint32_t level)
{
	return q->tails && q->tails[level] ? tail_count(q->tails[level]) : 0;
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
	uint32_t in_memory = q->levels[level].count;

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

	if (q->tails == NULL)
		q->tails = xcalloc(q->n_levels, sizeof(*q->tails));
	if (q->tails[level] == NULL) {
		broker_tail_path(q->vh->broker, path, sizeof(path));
		q->tails[level] = tail_new(path);
	}
	return q->tails[level];
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
		.redelivered = e->redelivered,
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
	if (q->tails && q->tails[level] && tail_count(q->tails[level]) == 0) {
		tail_free(q->tails[level]);
		q->tails[level] = NULL;
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
	if (te->enq_seg)
		store_ack(store, q->store_qid, &te->msg, te->enq_seg);
	else
		store_release(store, &te->msg);
}

/*
 * Bring a level's paged-out entries back into memory once its ring has
 * drained to half the limit, in order, up to the limit.  An entry whose
 * record is not on disk yet is retried shortly.
 */
static void refill(struct queue *q, uint32_t level)
{
	struct store *store = q->vh->broker->store;
	struct entry_ring *r = &q->levels[level];
	uint32_t limit = q->vh->broker->cfg->queue_memory_messages;
	struct tail_entry te;

	if (tail_len(q, level) == 0 || store == NULL ||
	    r->count >= (limit + 1) / 2)
		return;
	while ((r->count < limit || r->count == 0) &&
	    tail_peek(q->tails[level], &te)) {
		struct message *m;

		if (!store_readable(store, &te.msg)) {
			if (!evtimer_pending(q->refill_ev, NULL))
				timer_in_ms(q->refill_ev, 1);
			return;
		}
		tail_pop(q->tails[level], &te);
		if ((m = store_read(store, &te.msg)) == NULL) {
			/* Logged by store_read: that message is lost. */
			tail_entry_done(q, &te);
			continue;
		}
		if (te.enq_seg == 0)
			store_release(store, &te.msg);
		ring_push(r, (struct queue_entry){ m, te.seq, te.expires_at,
		    te.redelivered, te.enq_seg });
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
	for (uint32_t i = q->n_levels; i-- > 0; ) {
		refill(q, i);
		if (q->levels[i].count)
			return &q->levels[i];
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

	for (uint32_t i = 0; i < q->n_levels; i++) {
		struct entry_ring *r = &q->levels[i];
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

	for (uint32_t i = 0; i < q->n_levels; i++) {
		struct queue_entry *h = ring_head(&q->levels[i]);

		if (h && h->expires_at && (next == 0 || h->expires_at < next))
			next = h->expires_at;
	}
	if (next == 0 || q->deleted) {
		evtimer_del(q->expiry_ev);
		return;
	}
	now = conn_now_ms();
	timer_in_ms(q->expiry_ev, next > now ? next - now : 0);
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

static struct consumer *next_consumer(struct queue *q);

bool queue_push(struct queue *q, struct message *msg, uint64_t *ticket)
{
	int64_t ttl = q->args.message_ttl;
	struct queue_entry e = { NULL, q->next_seq++, 0, false, 0 };
	struct store *store = store_for(q, msg);
	uint32_t level = level_of(q, msg);
	struct consumer *c;

	if (msg->ttl >= 0 && (ttl < 0 || msg->ttl < ttl))
		ttl = msg->ttl;
	/* Nothing waits ahead of it: a consumer with credit takes it now. */
	if (q->count == 0 && q->n_consumers && (c = next_consumer(q)) != NULL) {
		e.msg = msg;
		if (ttl > 0)
			e.expires_at = conn_now_ms() + (uint64_t)ttl;
		/* Until acked it must survive a crash, delivered once. */
		if (store && !c->no_ack) {
			e.store_seg = store_enqueue(store, q->store_qid, msg,
			    ttl_left(e.expires_at), ticket);
			store_delivered(store, q->store_qid, msg->stored.id);
		}
		chan_deliver(c, &e);
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
		ring_push(&q->levels[level], e);
		account_add(q, msg);
	}
	enforce_length(q);
	if (ttl > 0 && !evtimer_pending(q->expiry_ev, NULL))
		arm_expiry(q);
	if (q->n_consumers)
		queue_schedule_dispatch(q);
	return true;
}

static void requeue(struct queue *q, const struct queue_entry *e)
{
	struct queue_entry back = *e;

	if (q->deleted) {
		entry_done(q, e);
		return;
	}
	/* Back to its place, keeping its expiry time. */
	back.redelivered = true;
	ring_insert_by_seq(&q->levels[level_of(q, e->msg)], back);
	account_add(q, e->msg);
	enforce_length(q);
	if (back.expires_at)
		arm_expiry(q);
	if (q->n_consumers)
		queue_schedule_dispatch(q);
}

void queue_settle(struct queue *q, const struct queue_entry *e,
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

bool queue_pop(struct queue *q, struct queue_entry *out)
{
	bool got;

	expire_heads(q);
	got = take_top(q, out);
	if (!got)
		return false;
	/* Out to a consumer: after a crash it comes back redelivered. */
	if (out->store_seg && !out->redelivered && q->vh->broker->store)
		store_delivered(q->vh->broker->store, q->store_qid,
		    out->msg->stored.id);
	/* The new head may be due already, or need the timer. */
	expire_heads(q);
	return true;
}

bool queue_recover_entry(struct queue *q, const struct store_recovered *rec,
    const struct store_recovered_entry *re)
{
	uint32_t level = rec->priority < q->n_levels ? rec->priority :
	    q->n_levels - 1;
	struct queue_entry e = { NULL, q->next_seq++, 0, re->delivered,
	    re->enq_seg };

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
		    re->enq_seg, rec->body_len, re->delivered };

		tail_push(tail_of(q, level), &te);
		q->count++;
		q->bytes += rec->body_len;
		/* Something may expire: read the head once started. */
		if (e.expires_at && !evtimer_pending(q->refill_ev, NULL))
			timer_in_ms(q->refill_ev, 1);
		return true;
	}
	if ((e.msg = store_read(q->vh->broker->store, &rec->loc)) == NULL)
		return false;
	ring_push(&q->levels[level], e);
	account_add(q, e.msg);
	if (e.expires_at && !evtimer_pending(q->expiry_ev, NULL))
		arm_expiry(q);
	return true;
}

uint32_t queue_purge(struct queue *q)
{
	uint32_t n = q->count;
	struct queue_entry e;
	struct tail_entry te;

	/* Paged-out entries go without being read back. */
	for (uint32_t i = 0; i < q->n_levels; i++) {
		while (ring_pop(&q->levels[i], &e)) {
			account_remove(q, e.msg);
			entry_done(q, &e);
		}
		while (q->tails && q->tails[i] && tail_pop(q->tails[i], &te))
			tail_entry_done(q, &te);
		drop_empty_tail(q, i);
	}
	if (q->expiry_ev)
		evtimer_del(q->expiry_ev);
	return n;
}

void queue_touch(struct queue *q)
{
	if (q->args.expires < 0 || q->deleted)
		return;
	if (q->n_consumers)
		evtimer_del(q->idle_ev);
	else
		timer_in_ms(q->idle_ev, (uint64_t)q->args.expires);
}

static void queue_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	if (q->n_consumers == 0 && !q->deleted) {
		log_info("queue '%s' in vhost '%s' expired (x-expires)", q->name,
		    q->vh->name);
		chan_delete_queue(q);
	}
}

void queue_add_consumer(struct queue *q, struct consumer *c)
{
	struct consumer *after = NULL, *it;

	c->q = q;
	/* Single active consumer: registration order decides who is next. */
	TAILQ_FOREACH(it, &q->consumers, qlink)
		if (q->args.single_active_consumer || it->priority >= c->priority)
			after = it;
	if (after)
		TAILQ_INSERT_AFTER(&q->consumers, after, c, qlink);
	else
		TAILQ_INSERT_HEAD(&q->consumers, c, qlink);
	q->n_consumers++;
	q->had_consumer = true;
	evtimer_del(q->idle_ev);
	queue_schedule_dispatch(q);
}

void queue_remove_consumer(struct queue *q, struct consumer *c)
{
	TAILQ_REMOVE(&q->consumers, c, qlink);
	q->n_consumers--;
	c->q = NULL;
	if (q->n_consumers == 0)
		queue_touch(q);
	else
		queue_schedule_dispatch(q);	/* maybe a new active one */
}

void queue_delete(struct queue *q)
{
	struct consumer *c;

	q->deleted = true;
	while ((c = TAILQ_FIRST(&q->consumers)) != NULL)
		queue_remove_consumer(q, c);
	queue_purge(q);
	event_del(q->dispatch_ev);
	evtimer_del(q->idle_ev);
	evtimer_del(q->refill_ev);
}

void queue_schedule_dispatch(struct queue *q)
{
	/* event_active on an already active event is a no-op. */
	if (!q->deleted && q->count && q->n_consumers)
		event_active(q->dispatch_ev, EV_TIMEOUT, 0);
}

/*
 * The first consumer with credit in priority order; it then moves behind
 * the others of its priority, so equal consumers take turns.  With a
 * single active consumer only the first one may receive.
 */
static struct consumer *next_consumer(struct queue *q)
{
	struct consumer *c, *last;

	if (q->args.single_active_consumer) {
		c = TAILQ_FIRST(&q->consumers);
		return c && chan_consumer_has_credit(c) ? c : NULL;
	}
	TAILQ_FOREACH(c, &q->consumers, qlink)
		if (chan_consumer_has_credit(c))
			break;
	if (c == NULL)
		return NULL;
	for (last = c; TAILQ_NEXT(last, qlink) &&
	    TAILQ_NEXT(last, qlink)->priority == c->priority;
	    last = TAILQ_NEXT(last, qlink))
		;
	if (last != c) {
		TAILQ_REMOVE(&q->consumers, c, qlink);
		TAILQ_INSERT_AFTER(&q->consumers, last, c, qlink);
	}
	return c;
}

static void queue_dispatch(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct queue_entry e;
	int budget = DISPATCH_BUDGET;
	struct consumer *c;

	queue_ref(q);
	expire_heads(q);
	while (q->count && budget-- > 0 && (c = next_consumer(q)) != NULL) {
		bool no_ack = c->no_ack;

		if (!queue_pop(q, &e))
			break;
		chan_deliver(c, &e);
		/* The ledger holds its own reference to what awaits an ack. */
		if (no_ack)
			queue_settle(q, &e, SETTLE_ACK);
		else
			msg_unref(e.msg);
	}
	/* Out of budget, not out of work: come back next turn. */
	if (budget < 0)
		queue_schedule_dispatch(q);
	queue_unref(q);
}

uint64_t queue_consumer_timeout(const struct queue *q)
{
	if (q->args.consumer_timeout >= 0)
		return (uint64_t)q->args.consumer_timeout;
	return q->vh->broker->cfg->consumer_timeout;
}
