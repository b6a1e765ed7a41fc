/*
 * Message journeys: with tracing on for a vhost (RabbitMQ's "tracing"
 * flag on the vhost; warrenctl trace on), a bounded ring of what happened
 * to its messages (published, routed into a queue, unroutable or
 * returned, delivered, acked, requeued, rejected, expired,
 * dead-lettered, dropped), searchable by message-id or correlation-id.
 *
 * Cost: off (the default), one pointer test at each step; on, one
 * fixed-size event (JOURNAL_EVENT_BYTES) copied into the ring per step
 * (about 100 ns),
 * JOURNAL_EVENTS of them per traced vhost (about 4 MB), the oldest
 * overwritten first.  Ids and names longer than the event keeps are cut.
 * Tracing also feeds RabbitMQ's firehose (amq.rabbitmq.trace), as there.
 */
#ifndef WARREN_JOURNAL_H
#define WARREN_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct message;
struct vhost;

#define JOURNAL_EVENTS 10000
#define JOURNAL_ID_MAX 64
#define JOURNAL_NAME_MAX 128

enum journal_step {
	J_PUBLISHED,	/* where: exchange; detail: routing key */
	J_ENQUEUED,	/* where: queue */
	J_UNROUTABLE,	/* where: exchange; no queue took it (dropped) */
	J_RETURNED,	/* where: exchange; mandatory, returned (312) */
	J_DELIVERED,	/* where: queue; detail: consumer tag, or basic.get */
	J_ACKED,	/* where: queue */
	J_REQUEUED,	/* where: queue; nack/reject/recover/closed channel */
	J_REJECTED,	/* where: queue; nack or reject without requeue */
	J_EXPIRED,	/* where: queue (TTL) */
	J_DEAD_LETTERED,	/* where: queue; detail: reason and target */
	J_DROPPED,	/* where: queue; detail: reason (no dead-letter exchange) */
	J_DUPLICATE,	/* where: queue or exchange (deduplication) */
	J_DELAYED,	/* where: exchange; detail: delay */
	J_STEPS
};

struct journal_event {
	uint64_t seq;			/* order among the vhost's events */
	uint64_t wall_ms;		/* Unix time, ms */
	enum journal_step step;
	uint64_t conn;			/* the connection's id; 0: none */
	uint16_t channel;
	char message_id[JOURNAL_ID_MAX + 1];
	char correlation_id[JOURNAL_ID_MAX + 1];
	char where[JOURNAL_NAME_MAX + 1];
	char detail[JOURNAL_NAME_MAX + 1];
};

#define JOURNAL_EVENT_BYTES sizeof(struct journal_event)

struct journal;

const char *journal_step_name(enum journal_step step);

struct journal *journal_new(void);
void journal_free(struct journal *j);

/* Record a step of msg's journey (msg may be NULL for none); a publish
 * without a detail gets its routing key. */
void journal_note(struct journal *j, enum journal_step step,
    const struct message *msg, uint64_t conn, uint16_t channel,
    const char *where, const char *detail);

/*
 * The events of messages whose message-id or correlation-id is id (all
 * events when id is NULL), oldest first, the newest `limit` of them, to
 * fn.  Returns how many matched.
 */
typedef void journal_event_fn(void *arg, const struct journal_event *ev);
size_t journal_find(const struct journal *j, const char *id, size_t limit,
    journal_event_fn *fn, void *arg);

#endif
