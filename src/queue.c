/*
 * What every queue type shares: lifetime, consumers in priority order,
 * the dispatch pass that runs once per loop turn with a bounded batch,
 * and x-expires.  How messages are kept is the queue type's (see
 * queue.h; classic queues are queue_classic.c).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "amqp.h"
#include "broker.h"
#include "config.h"
#include "connection.h"
#include "log.h"
#include "dedup.h"
#include "journal.h"
#include "message.h"
#include "message_edit.h"
#include "queue.h"
#include "queue_latency.h"
#include "vhost.h"

/* Messages handed out per dispatch pass before yielding to the loop. */
#define DISPATCH_BUDGET 256

static void queue_dispatch(evutil_socket_t fd, short what, void *arg);
static void queue_idle_cb(evutil_socket_t fd, short what, void *arg);

struct queue *queue_new(struct vhost *vh, struct bytes name,
    struct queue_args *args)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	struct event_base *base = vh->broker->base;

	q->refs = 1;
	q->type = args->kind == QUEUE_KIND_STREAM ? &queue_stream :
	    &queue_classic;
	q->name = bytes_strdup(name);
	q->vh = vh;
	q->args = *args;
	memset(args, 0, sizeof(*args));
	TAILQ_INIT(&q->consumers);
	TAILQ_INIT(&q->inbound);
	q->dispatch_ev = event_new(base, -1, 0, queue_dispatch, q);
	q->idle_ev = evtimer_new(base, queue_idle_cb, q);
	if (!q->dispatch_ev || !q->idle_ev)
		fatalx("event_new failed");
	q->type->init(q);
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
	q->type->purge(q);
	q->type->destroy(q);
	event_free(q->dispatch_ev);
	event_free(q->idle_ev);
	dedup_free(q->dedup, false);
	qlat_free(q->lat);
	queue_args_free(&q->args);
	free(q->arguments);
	free(q->name);
	free(q);
}

bool queue_push(struct queue *q, struct message *msg, uint64_t *ticket)
{
	bool accepted;

	/* A duplicate is taken (and so confirmed) and goes no further. */
	if (q->dedup && dedup_seen(q->dedup, msg, ticket)) {
		if (q->vh->journal)
			journal_note(q->vh->journal, J_DUPLICATE, msg, 0, 0,
			    q->name, NULL);
		return true;
	}
	/* Before the push: a consumer waiting may get it at once. */
	if (q->vh->journal)
		journal_note(q->vh->journal, J_ENQUEUED, msg, 0, 0, q->name,
		    NULL);
	accepted = q->type->push(q, msg, ticket);
	if (!accepted && q->vh->journal)
		journal_note(q->vh->journal, J_DROPPED, msg, 0, 0, q->name,
		    "refused: the queue is full (x-overflow)");

	if (accepted)
		q->counters.published++;
	return accepted;
}

size_t queue_browse(struct queue *q, uint64_t offset, size_t count,
    queue_browse_fn *fn, void *arg)
{
	return q->type->browse ? q->type->browse(q, offset, count, fn, arg) :
	    0;
}

bool queue_browsable(const struct queue *q)
{
	return q->type->browse != NULL;
}

int64_t queue_oldest_age(struct queue *q, uint64_t now)
{
	uint32_t stamp;

	if (q->type->oldest == NULL || !q->type->oldest(q, &stamp))
		return -1;
	return (int64_t)qlat_age(now, stamp);
}

bool queue_pop(struct queue *q, struct queue_entry *out)
{
	bool got = q->type->pop(q, out);

	if (got) {
		q->counters.delivered++;
		qlat_note_wait(q, q->vh->broker->clock_ms, out->enqueued_at);
	}
	return got;
}

struct message *queue_outgoing(const struct queue *q,
    const struct queue_entry *e, bool get)
{
	if ((e->returns == 0 && !get) || q->args.delivery_limit < 0)
		return msg_ref(e->msg);
	return msg_with_header_long(e->msg, "x-delivery-count", e->returns);
}

void queue_settle(struct queue *q, const struct queue_entry *e,
    enum settle_how how)
{
	q->type->settle(q, e, how);
}

uint32_t queue_purge(struct queue *q)
{
	return q->type->purge(q);
}

bool queue_recover_entry(struct queue *q, const struct store_recovered *msg,
    const struct store_recovered_entry *entry)
{
	return q->type->recover_entry(q, msg, entry);
}

void queue_stats(const struct queue *q, struct queue_stats *out)
{
	q->type->stats(q, out);
	out->counters = q->counters;
	out->publish_rate = q->rates[0];
	out->deliver_rate = q->rates[1];
	out->ack_rate = q->rates[2];
}

uint64_t queue_memory(const struct queue *q)
{
	return q->type->memory(q);
}

void queue_sample_rates(struct queue *q, uint64_t now)
{
	double secs = (double)(now - q->rate_base_ms) / 1000.0;

	if (q->rate_base_ms != 0 && secs > 0) {
		q->rates[0] = (double)(q->counters.published -
		    q->rate_base.published) / secs;
		q->rates[1] = (double)(q->counters.delivered -
		    q->rate_base.delivered) / secs;
		q->rates[2] = (double)(q->counters.acked -
		    q->rate_base.acked) / secs;
	}
	q->rate_base = q->counters;
	q->rate_base_ms = now;
}

int queue_check_consumer(struct queue *q, struct consumer *c,
    struct bytes args, struct amqp_error *err)
{
	if (q->n_consumers && (c->exclusive ||
	    TAILQ_FIRST(&q->consumers)->exclusive))
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "queue '%s' in vhost '%s' in exclusive use", q->name,
		    q->vh->name);
	return q->type->check_consumer ?
	    q->type->check_consumer(q, c, args, err) : 0;
}

void queue_each_offset(const struct queue *q, queue_offset_fn *fn, void *arg)
{
	if (q->type->each_offset)
		q->type->each_offset(q, fn, arg);
}

int queue_refuse(struct queue *q, enum queue_request what,
    struct amqp_error *err)
{
	return q->type->refuse ? q->type->refuse(q, what, err) : 0;
}

void queue_touch(struct queue *q)
{
	if (q->args.expires < 0 || q->deleted)
		return;
	if (q->n_consumers)
		evtimer_del(q->idle_ev);
	else
		evtimer_in_ms(q->idle_ev, (uint64_t)q->args.expires);
}

static void queue_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	if (q->n_consumers == 0 && !q->deleted) {
		log_info("queue '%s' in vhost '%s' expired (x-expires)", q->name,
		    q->vh->name);
		vhost_remove_queue(q->vh, q);
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
	qlat_dispatched(q, q->vh->broker->clock_ms, q->count > 0);
	evtimer_del(q->idle_ev);
	queue_schedule_dispatch(q);
}

void queue_remove_consumer(struct queue *q, struct consumer *c)
{
	TAILQ_REMOVE(&q->consumers, c, qlink);
	q->n_consumers--;
	qlat_dispatched(q, q->vh->broker->clock_ms, false);
	if (q->type->consumer_removed)
		q->type->consumer_removed(q, c);
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
		c->ops->cancelled(c);
	queue_purge(q);
	event_del(q->dispatch_ev);
	evtimer_del(q->idle_ev);
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
struct consumer *queue_next_consumer(struct queue *q)
{
	struct consumer *c, *last;

	if (q->args.single_active_consumer) {
		c = TAILQ_FIRST(&q->consumers);
		return c && c->ops->has_credit(c) ? c : NULL;
	}
	TAILQ_FOREACH(c, &q->consumers, qlink)
		if (c->ops->has_credit(c))
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
	q->vh->broker->clock_ms = conn_now_ms();
	if (q->type->dispatch) {
		if (!q->type->dispatch(q, budget))
			queue_schedule_dispatch(q);
		queue_unref(q);
		return;
	}
	while (q->count && budget-- > 0 &&
	    (c = queue_next_consumer(q)) != NULL) {
		bool no_ack = c->no_ack;

		if (!queue_pop(q, &e))
			break;
		c->ops->deliver(c, &e);
		/* The ledger holds its own reference to what awaits an ack. */
		if (no_ack)
			queue_settle(q, &e, SETTLE_ACK);
		else
			msg_unref(e.msg);
	}
	/* Out of budget, not out of work: come back next turn. */
	if (budget < 0)
		queue_schedule_dispatch(q);
	qlat_dispatched(q, q->vh->broker->clock_ms, budget < 0);
	queue_unref(q);
}

uint64_t queue_consumer_timeout(const struct queue *q)
{
	if (q->args.consumer_timeout >= 0)
		return (uint64_t)q->args.consumer_timeout;
	return q->vh->broker->cfg->consumer_timeout;
}
