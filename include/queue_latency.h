/*
 * How long messages wait, per queue, for operators: the age of the
 * oldest ready message, time in queue (enqueue to delivery) and delivery
 * to ack as p50/p99 over the last minute, and consumer utilisation as
 * RabbitMQ defines it (the share of the time with consumers in which the
 * queue could deliver at once: not every consumer was out of credit
 * while messages waited).
 *
 * Cost: kept in four 15-second slots of log-scale histograms (4 buckets
 * per power of two: values to within 25%), allocated when a queue first
 * has a consumer or a delivery (about 3 KB; idle queues pay nothing).
 * The hot path adds a bucket increment per delivery and per ack; times
 * come from the broker's clock, read once per event-loop callback (a
 * read, a dispatch pass), not per message, so a time is good to the
 * millisecond-ish coarse clock plus one loop turn.
 */
#ifndef WARREN_QUEUE_LATENCY_H
#define WARREN_QUEUE_LATENCY_H

#include <stdbool.h>
#include <stdint.h>

struct queue;
struct queue_latency;

/* A wait (enqueued at enqueued_at on the 32-bit clock) ended at now. */
void qlat_note_wait(struct queue *q, uint64_t now, uint32_t enqueued_at);
/* A delivery of q was acked ms after it went out. */
void qlat_note_ack(struct queue *q, uint64_t now, uint64_t ms);
/*
 * The queue's state for utilisation may have changed (a dispatch pass
 * ended, unfinished when `more`; a consumer came or went).
 */
void qlat_dispatched(struct queue *q, uint64_t now, bool more);
void qlat_free(struct queue_latency *l);

struct qlat_report {
	bool has_waits, has_acks;
	uint64_t waits, acks;		/* samples in the window */
	uint64_t wait_p50, wait_p99;	/* ms */
	uint64_t ack_p50, ack_p99;	/* ms */
	double utilisation;		/* 0..1; < 0: no consumer in window */
};

void qlat_report(struct queue *q, uint64_t now, struct qlat_report *out);

/* The 32-bit enqueue clock: ms, wrapping after 49 days (ages beyond
 * that are not told apart). */
static inline uint32_t qlat_stamp(uint64_t now)
{
	return (uint32_t)now;
}

static inline uint64_t qlat_age(uint64_t now, uint32_t stamp)
{
	return (uint32_t)((uint32_t)now - stamp);
}

#endif
