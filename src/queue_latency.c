/*
 * Per-queue latency figures (queue_latency.h).
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queue.h"
#include "queue_latency.h"

#define SLOTS 4
#define SLOT_MS 15000
#define SUB 4			/* buckets per power of two */
#define POWERS 26		/* to 2^26 ms, 18 h; longer: the last bucket */
#define BUCKETS (POWERS * SUB)

enum util_state { NO_CONSUMERS, CAN_DELIVER, BLOCKED };

struct histogram {
	uint32_t n[SLOTS][BUCKETS];
};

struct queue_latency {
	uint64_t slot_end;		/* when the current slot ends */
	unsigned slot;			/* the current one */
	struct histogram wait, ack;
	uint64_t consumer_ms[SLOTS];	/* time with consumers */
	uint64_t blocked_ms[SLOTS];	/* of it, messages waited, no credit */
	enum util_state state;
	uint64_t state_since;
};

static unsigned bucket_of(uint64_t ms)
{
	unsigned p, b;

	if (ms < SUB)
		return (unsigned)ms;
	p = 63u - (unsigned)__builtin_clzll(ms);	/* >= 2 */
	b = SUB * (p - 1) + (unsigned)((ms >> (p - 2)) & (SUB - 1));
	return b < BUCKETS ? b : BUCKETS - 1;
}

/* The largest value bucket b holds. */
static uint64_t bucket_top(unsigned b)
{
	unsigned p = b / SUB + 1;

	if (b < SUB)
		return b;
	return ((uint64_t)(SUB + b % SUB + 1) << (p - 2)) - 1;
}

/* Move to the slot of now, emptying those that fell out of the window. */
static void advance(struct queue_latency *l, uint64_t now)
{
	for (unsigned i = 0; i < SLOTS && now >= l->slot_end; i++) {
		l->slot = (l->slot + 1) % SLOTS;
		memset(l->wait.n[l->slot], 0, sizeof(l->wait.n[0]));
		memset(l->ack.n[l->slot], 0, sizeof(l->ack.n[0]));
		l->consumer_ms[l->slot] = l->blocked_ms[l->slot] = 0;
		l->slot_end += SLOT_MS;
	}
	if (now >= l->slot_end)		/* idle for longer than the window */
		l->slot_end = now - now % SLOT_MS + SLOT_MS;
}

static struct queue_latency *lat_of(struct queue *q, uint64_t now)
{
	struct queue_latency *l = q->lat;

	if (l == NULL) {
		l = q->lat = xcalloc(1, sizeof(*l));
		l->slot_end = now - now % SLOT_MS + SLOT_MS;
		l->state_since = now;
	}
	if (now >= l->slot_end)
		advance(l, now);
	return l;
}

void qlat_note_wait(struct queue *q, uint64_t now, uint32_t enqueued_at)
{
	struct queue_latency *l = lat_of(q, now);

	l->wait.n[l->slot][bucket_of(qlat_age(now, enqueued_at))]++;
}

void qlat_note_ack(struct queue *q, uint64_t now, uint64_t ms)
{
	struct queue_latency *l = lat_of(q, now);

	l->ack.n[l->slot][bucket_of(ms)]++;
}

/* Charge the time since the last change to the state it was in. */
static void account(struct queue_latency *l, uint64_t now)
{
	uint64_t spent = now > l->state_since ? now - l->state_since : 0;

	if (spent > (uint64_t)SLOTS * SLOT_MS)
		spent = (uint64_t)SLOTS * SLOT_MS;
	if (l->state != NO_CONSUMERS)
		l->consumer_ms[l->slot] += spent;
	if (l->state == BLOCKED)
		l->blocked_ms[l->slot] += spent;
	l->state_since = now;
}

void qlat_dispatched(struct queue *q, uint64_t now, bool more)
{
	struct queue_latency *l;
	enum util_state s = q->n_consumers == 0 ? NO_CONSUMERS :
	    q->count > 0 && !more ? BLOCKED : CAN_DELIVER;

	if (q->lat == NULL && s == NO_CONSUMERS)
		return;
	l = lat_of(q, now);
	if (s == l->state)
		return;
	account(l, now);
	l->state = s;
}

void qlat_free(struct queue_latency *l)
{
	free(l);
}

/* The p-th percentile (0..100) of h's window; false when empty. */
static uint64_t percentile(const struct histogram *h, uint64_t total,
    unsigned p)
{
	uint64_t rank = (total * p + 99) / 100, seen = 0;

	if (rank == 0)
		rank = 1;
	for (unsigned b = 0; b < BUCKETS; b++) {
		for (unsigned s = 0; s < SLOTS; s++)
			seen += h->n[s][b];
		if (seen >= rank)
			return bucket_top(b);
	}
	return bucket_top(BUCKETS - 1);
}

static uint64_t total_of(const struct histogram *h)
{
	uint64_t total = 0;

	for (unsigned s = 0; s < SLOTS; s++)
		for (unsigned b = 0; b < BUCKETS; b++)
			total += h->n[s][b];
	return total;
}

void qlat_report(struct queue *q, uint64_t now, struct qlat_report *out)
{
	struct queue_latency *l = q->lat;
	uint64_t with = 0, blocked = 0;

	memset(out, 0, sizeof(*out));
	out->utilisation = -1;
	if (l == NULL)
		return;
	if (now >= l->slot_end)
		advance(l, now);
	account(l, now);
	for (unsigned s = 0; s < SLOTS; s++) {
		with += l->consumer_ms[s];
		blocked += l->blocked_ms[s];
	}
	if (with)
		out->utilisation = 1.0 - (double)blocked / (double)with;
	else if (l->state != NO_CONSUMERS)
		out->utilisation = l->state == BLOCKED ? 0.0 : 1.0;
	if ((out->waits = total_of(&l->wait)) != 0) {
		out->has_waits = true;
		out->wait_p50 = percentile(&l->wait, out->waits, 50);
		out->wait_p99 = percentile(&l->wait, out->waits, 99);
	}
	if ((out->acks = total_of(&l->ack)) != 0) {
		out->has_acks = true;
		out->ack_p50 = percentile(&l->ack, out->acks, 50);
		out->ack_p99 = percentile(&l->ack, out->acks, 99);
	}
}
