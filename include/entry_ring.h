/*
 * A FIFO of queue entries in a power-of-two ring, with insertion by
 * sequence number for requeued messages.
 */
#ifndef WARREN_ENTRY_RING_H
#define WARREN_ENTRY_RING_H

#include <stdbool.h>
#include <stdint.h>

struct message;

struct queue_entry {
	struct message *msg;
	uint64_t seq;			/* enqueue order: requeue puts it back */
	uint64_t expires_at;		/* monotonic ms; 0: never */
	bool redelivered;
	uint16_t returns;		/* times requeued (x-delivery-count) */
	uint32_t store_seg;		/* its ENQ record's segment; 0: none */
	uint32_t ret_seg;		/* its newest RET record's; 0: none */
	uint32_t enqueued_at;		/* qlat_stamp of its first enqueue */
};

struct entry_ring {
	struct queue_entry *slots;
	uint32_t head, count, cap;
};

void ring_push(struct entry_ring *r, struct queue_entry e);
/* Insert keeping the ring ordered by seq (scans from the head). */
void ring_insert_by_seq(struct entry_ring *r, struct queue_entry e);
struct queue_entry *ring_head(struct entry_ring *r);	/* NULL if empty */
bool ring_pop(struct entry_ring *r, struct queue_entry *out);
void ring_free(struct entry_ring *r);
/* Entry i from the head (0 <= i < r->count). */
const struct queue_entry *ring_at(const struct entry_ring *r, uint32_t i);

#endif
