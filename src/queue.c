/*
 * Queues: a ring of ready messages, consumers in round-robin order, and a
 * dispatch pass that runs once per loop turn with a bounded batch.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker.h"
#include "channel.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "vhost.h"

/* Messages handed out per dispatch pass before yielding to the loop. */
#define DISPATCH_BUDGET 256

static void queue_dispatch(evutil_socket_t fd, short what, void *arg);

struct queue *queue_new(struct vhost *vh, struct bytes name)
{
	struct queue *q = xcalloc(1, sizeof(*q));

	q->refs = 1;
	q->name = bytes_strdup(name);
	q->vh = vh;
	TAILQ_INIT(&q->consumers);
	TAILQ_INIT(&q->inbound);
	q->dispatch_ev = event_new(vh->broker->base, -1, 0, queue_dispatch, q);
	if (q->dispatch_ev == NULL)
		fatalx("event_new failed");
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
	free(q->ring);
	free(q->arguments);
	free(q->name);
	free(q);
}

static struct queue_entry *ring_at(struct queue *q, uint32_t i)
{
	return &q->ring[(q->head + i) & (q->cap - 1)];
}

static void ring_grow(struct queue *q)
{
	uint32_t cap = q->cap ? q->cap * 2 : 64;
	struct queue_entry *ring = xmalloc(sizeof(*ring) * cap);

	for (uint32_t i = 0; i < q->count; i++)
		ring[i] = *ring_at(q, i);
	free(q->ring);
	q->ring = ring;
	q->cap = cap;
	q->head = 0;
}

void queue_push(struct queue *q, struct message *msg)
{
	if (q->count == q->cap)
		ring_grow(q);
	*ring_at(q, q->count) = (struct queue_entry){ msg_ref(msg), q->next_seq++,
	    false };
	q->count++;
	if (q->n_consumers)
		queue_schedule_dispatch(q);
}

void queue_requeue(struct queue *q, struct message *msg, uint64_t seq)
{
	uint32_t pos = 0;

	if (q->deleted) {
		msg_unref(msg);
		return;
	}
	if (q->count == q->cap)
		ring_grow(q);
	/* Requeued messages sit near the head: scan from there. */
	while (pos < q->count && ring_at(q, pos)->seq < seq)
		pos++;
	q->head = (q->head - 1) & (q->cap - 1);
	for (uint32_t i = 0; i < pos; i++)
		*ring_at(q, i) = *ring_at(q, i + 1);
	q->count++;
	*ring_at(q, pos) = (struct queue_entry){ msg, seq, true };
	if (q->n_consumers)
		queue_schedule_dispatch(q);
}

bool queue_pop(struct queue *q, struct queue_entry *out)
{
	if (q->count == 0)
		return false;
	*out = *ring_at(q, 0);
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	return true;
}

uint32_t queue_purge(struct queue *q)
{
	uint32_t n = q->count;
	struct queue_entry e;

	while (queue_pop(q, &e))
		msg_unref(e.msg);
	return n;
}

void queue_add_consumer(struct queue *q, struct consumer *c)
{
	struct consumer *after = NULL, *it;

	c->q = q;
	TAILQ_FOREACH(it, &q->consumers, qlink)
		if (it->priority >= c->priority)
			after = it;
	if (after)
		TAILQ_INSERT_AFTER(&q->consumers, after, c, qlink);
	else
		TAILQ_INSERT_HEAD(&q->consumers, c, qlink);
	q->n_consumers++;
	q->had_consumer = true;
	queue_schedule_dispatch(q);
}

void queue_remove_consumer(struct queue *q, struct consumer *c)
{
	TAILQ_REMOVE(&q->consumers, c, qlink);
	q->n_consumers--;
	c->q = NULL;
}

void queue_delete(struct queue *q)
{
	struct consumer *c;

	q->deleted = true;
	while ((c = TAILQ_FIRST(&q->consumers)) != NULL)
		queue_remove_consumer(q, c);
	queue_purge(q);
	event_del(q->dispatch_ev);
}

void queue_schedule_dispatch(struct queue *q)
{
	/* event_active on an already active event is a no-op. */
	if (!q->deleted && q->count && q->n_consumers)
		event_active(q->dispatch_ev, EV_TIMEOUT, 0);
}

/*
 * The first consumer with credit in priority order; it then moves behind
 * the others of its priority, so equal consumers take turns.
 */
static struct consumer *next_consumer(struct queue *q)
{
	struct consumer *c, *last;

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
	while (q->count && budget-- > 0 && (c = next_consumer(q)) != NULL) {
		if (!queue_pop(q, &e))
			break;
		chan_deliver(c, e.msg, e.seq, e.redelivered);
		msg_unref(e.msg);
	}
	/* Out of budget, not out of work: come back next turn. */
	if (budget < 0)
		queue_schedule_dispatch(q);
	queue_unref(q);
}
