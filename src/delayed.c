/*
 * Delayed-message schedules (delayed.h): a binary min-heap of compact
 * entries (due time, id, where the message is in the log) per exchange,
 * and one timer armed for the soonest.  Firing reads the message back,
 * routes it with the exchange's own type and lets its record go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker.h"
#include "connection.h"
#include "delayed.h"
#include "exchange.h"
#include "field_table.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"
#include "store.h"
#include "vhost.h"

/* Messages fired per loop turn: a burst of due ones cannot starve clients. */
#define FIRE_BUDGET 512

struct sched {
	uint64_t due;			/* monotonic ms */
	uint64_t id;			/* publish order: ties fire in it */
	struct store_loc loc;		/* the message's record */
	uint32_t enq_seg;		/* its ENQ's segment; 0: held only */
};

struct delayed {
	struct exchange *x;
	uint64_t qid;			/* 0: nothing kept across restarts */
	struct sched *heap;
	size_t n, cap;
	uint64_t next_id;
	struct event *timer;
};

_Static_assert(sizeof(struct sched) == DELAYED_ENTRY_BYTES,
    "DELAYED_ENTRY_BYTES is documented as the cost per message");

static struct store *store_of(const struct delayed *d)
{
	return d->x->vh->broker->store;
}

/* ---- the heap ------------------------------------------------------------ */

static bool before(const struct sched *a, const struct sched *b)
{
	return a->due < b->due || (a->due == b->due && a->id < b->id);
}

static void swap(struct sched *a, struct sched *b)
{
	struct sched t = *a;

	*a = *b;
	*b = t;
}

static void sift_up(struct sched *h, size_t i)
{
	while (i > 0 && before(&h[i], &h[(i - 1) / 2])) {
		swap(&h[i], &h[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
}

static void sift_down(struct sched *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < n && before(&h[l], &h[m]))
			m = l;
		if (r < n && before(&h[r], &h[m]))
			m = r;
		if (m == i)
			return;
		swap(&h[i], &h[m]);
		i = m;
	}
}

static void heap_push(struct delayed *d, const struct sched *s)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->heap = xrealloc(d->heap, d->cap * sizeof(*d->heap));
	}
	d->heap[d->n] = *s;
	sift_up(d->heap, d->n++);
}

/* Remove entry i (into *out). */
static void heap_remove(struct delayed *d, size_t i, struct sched *out)
{
	*out = d->heap[i];
	d->heap[i] = d->heap[--d->n];
	if (i < d->n) {
		sift_down(d->heap, d->n, i);
		sift_up(d->heap, i);
	}
	/* Give memory back once a burst has fired. */
	if (d->cap > 1024 && d->n < d->cap / 4) {
		d->cap /= 2;
		d->heap = xrealloc(d->heap, d->cap * sizeof(*d->heap));
	}
}

/* ---- the timer ------------------------------------------------------------- */

static void arm(struct delayed *d)
{
	uint64_t now = conn_now_ms();

	if (d->n == 0) {
		evtimer_del(d->timer);
		return;
	}
	evtimer_in_ms(d->timer, d->heap[0].due > now ? d->heap[0].due - now : 0);
}

/* Its record is done with: the log may collect it. */
static void settle(struct delayed *d, const struct sched *s)
{
	struct store *store = store_of(d);

	if (store == NULL)
		return;		/* shutting down: the log keeps it */
	if (s->enq_seg)
		store_ack(store, d->qid, &s->loc, s->enq_seg);
	else
		store_release(store, &s->loc);
}

/* Route a due message as the plugin does: x-delay now minus the delay. */
static void fire(struct delayed *d, const struct sched *s)
{
	struct message *m = store_read(store_of(d), &s->loc), *out;
	bool accepted;

	if (m == NULL)
		return;		/* logged by store_read: it is lost */
	out = msg_with_header_long(m, "x-delay",
	    -(int64_t)delayed_delay_of(m));
	exchange_deliver(d->x, out, NULL, &accepted);
	msg_unref(out);
	msg_unref(m);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;
	uint64_t now = conn_now_ms();
	struct store *store = store_of(d);
	struct sched s;

	(void)fd;
	(void)what;
	for (int n = 0; n < FIRE_BUDGET && d->n && d->heap[0].due <= now;
	    n++) {
		if (store == NULL || !store_readable(store, &d->heap[0].loc)) {
			/* Not on disk yet: read it once it is. */
			evtimer_in_ms(d->timer, 1);
			return;
		}
		heap_remove(d, 0, &s);
		fire(d, &s);
		settle(d, &s);
	}
	arm(d);
}

/* ---- the interface ------------------------------------------------------------ */

struct delayed *delayed_new(struct exchange *x, uint64_t qid)
{
	struct delayed *d = xcalloc(1, sizeof(*d));

	d->x = x;
	d->qid = qid;
	d->next_id = 1;
	d->timer = evtimer_new(x->vh->broker->base, on_timer, d);
	if (d->timer == NULL)
		fatalx("evtimer_new failed");
	return d;
}

void delayed_free(struct delayed *d, bool discard)
{
	if (d == NULL)
		return;
	if (discard)
		for (size_t i = 0; i < d->n; i++)
			settle(d, &d->heap[i]);
	event_free(d->timer);
	free(d->heap);
	free(d);
}

uint64_t delayed_qid(const struct delayed *d)
{
	return d->qid;
}

uint64_t delayed_qid_for(const char *vhost, const char *name)
{
	unsigned char digest[32];
	uint64_t id = 0;

	/* Stable across restarts without being written anywhere. */
	vhost_object_digest("x-delayed-message", vhost, name, digest);
	for (int i = 0; i < 8; i++)
		id = id << 8 | digest[i];
	return id ? id : 1;
}

uint64_t delayed_delay_of(const struct message *msg)
{
	struct field_table *t;
	const struct field_value *v;
	int64_t delay = 0;

	if (msg->headers.len == 0 || (t = ftable_decode(msg->headers)) == NULL)
		return 0;
	if ((v = ftable_get(t, "x-delay")) != NULL &&
	    !fvalue_int64(v, &delay)) {
		/* The plugin reads a string holding an integer too. */
		if (v->type == 'S' && v->v.str.len > 0 && v->v.str.len < 20) {
			char buf[24], *end;

			memcpy(buf, v->v.str.ptr, v->v.str.len);
			buf[v->v.str.len] = '\0';
			delay = strtoll(buf, &end, 10);
			if (*end != '\0')
				delay = 0;
		} else if (v->type == 'f' || v->type == 'd') {
			double f = v->type == 'f' ? v->v.f : v->v.d;

			delay = f > 0 && f < 4294967296.0 ? (int64_t)f : 0;
		}
	}
	ftable_free(t);
	return delay > 0 && delay <= 4294967295LL ? (uint64_t)delay : 0;
}

void delayed_schedule(struct delayed *d, struct message *msg,
    uint64_t delay_ms, uint64_t *ticket)
{
	struct store *store = store_of(d);
	struct sched s = { .due = conn_now_ms() + delay_ms, .id = d->next_id++ };

	if (store == NULL)
		return;		/* shutting down */
	if (d->qid && msg->persistent) {
		s.enq_seg = store_enqueue(store, d->qid, msg, delay_ms, ticket);
		s.loc = msg->stored;
	} else {
		store_hold(store, msg, &s.loc);
	}
	heap_push(d, &s);
	if (d->heap[0].id == s.id)
		arm(d);
}

bool delayed_recover(struct delayed *d, const struct store_recovered *rec,
    const struct store_recovered_entry *entry)
{
	/* Due when it would have been; past due fires at once. */
	struct sched s = {
		.due = conn_now_ms() + (entry->expires_in > 0 ?
		    (uint64_t)entry->expires_in : 0),
		.id = d->next_id++, .loc = rec->loc, .enq_seg = entry->enq_seg,
	};

	heap_push(d, &s);
	if (d->heap[0].id == s.id)
		arm(d);
	return true;
}

uint64_t delayed_count(const struct delayed *d)
{
	return d->n;
}

int64_t delayed_next_in(const struct delayed *d)
{
	uint64_t now = conn_now_ms();

	if (d->n == 0)
		return -1;
	return d->heap[0].due > now ? (int64_t)(d->heap[0].due - now) : 0;
}

/* Candidate indices into d's heap, themselves a min-heap by entry. */
struct cands {
	const struct sched *h;
	size_t *i, n;
};

static bool cand_before(const struct cands *c, size_t a, size_t b)
{
	return before(&c->h[c->i[a]], &c->h[c->i[b]]);
}

static void cand_push(struct cands *c, size_t idx)
{
	size_t k = c->n++;

	c->i[k] = idx;
	while (k > 0 && cand_before(c, k, (k - 1) / 2)) {
		size_t t = c->i[k];

		c->i[k] = c->i[(k - 1) / 2];
		c->i[(k - 1) / 2] = t;
		k = (k - 1) / 2;
	}
}

static size_t cand_pop(struct cands *c)
{
	size_t top = c->i[0], k = 0;

	c->i[0] = c->i[--c->n];
	for (;;) {
		size_t l = 2 * k + 1, r = l + 1, m = k, t;

		if (l < c->n && cand_before(c, l, m))
			m = l;
		if (r < c->n && cand_before(c, r, m))
			m = r;
		if (m == k)
			return top;
		t = c->i[k];
		c->i[k] = c->i[m];
		c->i[m] = t;
		k = m;
	}
}

/*
 * The soonest offset + n without sorting the heap: the smallest is the
 * root, and the next is always a child of one already taken, so a heap of
 * candidates (each taken one adding its children) yields them in order in
 * O(k log k).
 */
size_t delayed_list(struct delayed *d, size_t offset, size_t n,
    delayed_list_fn *fn, void *arg)
{
	size_t want = offset + n, listed = 0, seen = 0;
	struct cands c = { d->heap, NULL, 0 };
	struct store *store = store_of(d);
	uint64_t now = conn_now_ms();

	if (d->n == 0 || n == 0)
		return 0;
	c.i = xmalloc(sizeof(*c.i) * (want + 2));
	cand_push(&c, 0);
	while (c.n && seen < want) {
		size_t i = cand_pop(&c);
		const struct sched *s = &d->heap[i];
		struct message *m;

		if (2 * i + 1 < d->n)
			cand_push(&c, 2 * i + 1);
		if (2 * i + 2 < d->n)
			cand_push(&c, 2 * i + 2);
		if (seen++ < offset)
			continue;
		m = store && store_readable(store, &s->loc) ?
		    store_read(store, &s->loc) : NULL;
		fn(arg, s->id, s->due > now ? s->due - now : 0, m);
		msg_unref(m);
		listed++;
	}
	free(c.i);
	return listed;
}

bool delayed_cancel(struct delayed *d, uint64_t id)
{
	struct sched s;

	for (size_t i = 0; i < d->n; i++)
		if (d->heap[i].id == id) {
			heap_remove(d, i, &s);
			settle(d, &s);
			arm(d);
			return true;
		}
	return false;
}
