/*
 * The paged-out part of a queue: a first-in first-out list of entries
 * whose messages stay in the message store's log (store_loc), kept in a
 * file of its own so that a deep queue costs disk, not memory.  A queue
 * level holds its oldest messages in memory (its ring) and the rest here,
 * in order; entries come back to memory a batch at a time as the ring
 * drains.
 *
 * The file is private to this run: it is rewritten from the log at every
 * start, so it is never synced.  Entries are buffered in memory and
 * written in blocks; if the file cannot be written (a full disk) they stay
 * in memory, so nothing is ever dropped.  Once the tail is empty the file
 * is cut back to nothing.
 */
#ifndef WARREN_QUEUE_TAIL_H
#define WARREN_QUEUE_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_loc.h"

struct tail_entry {
	struct store_loc msg;		/* where the message is */
	uint64_t seq;			/* the queue entry's order */
	uint64_t expires_at;		/* monotonic ms; 0: never */
	uint32_t enq_seg;		/* its ENQ's segment; 0: held only */
	uint32_t body_len;		/* for the queue's byte count */
	bool redelivered;
	uint16_t returns;		/* as queue_entry's */
	uint32_t ret_seg;
	uint32_t enqueued_at;		/* as queue_entry's */
};

struct queue_tail;

/* An empty tail whose file (created when first needed) is path. */
struct queue_tail *tail_new(const char *path);
/* Free it and delete its file. */
void tail_free(struct queue_tail *t);

void tail_push(struct queue_tail *t, const struct tail_entry *e);
/* The oldest entry, without taking it; false when empty. */
bool tail_peek(struct queue_tail *t, struct tail_entry *out);
/* Take the oldest entry; false when empty. */
bool tail_pop(struct queue_tail *t, struct tail_entry *out);
uint64_t tail_count(const struct queue_tail *t);
/*
 * Copy up to n entries from position `from` (0: the oldest) into out,
 * taking nothing; returns how many (fewer at the end, or when the file
 * cannot be read).
 */
size_t tail_get(struct queue_tail *t, uint64_t from, struct tail_entry *out,
    size_t n);

#endif
