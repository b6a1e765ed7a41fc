/*
 * The message store: persistent messages of durable queues in append-only
 * segment files (store_segment.h), with group commit on a thread of its
 * own and recovery at start.
 *
 * The log holds four kinds of record:
 *	MSG	a message, once, however many queues hold it: its id, exchange,
 *		routing key, raw content header and body, byte-exact
 *	ENQ	queue qid holds message id
 *	DLV	queue qid delivered message id (it comes back redelivered)
 *	ACK	queue qid is done with these message ids
 * Records are appended by the event loop into the current batch; the store
 * thread writes each batch and syncs it (fdatasync), many batches per sync
 * when the disk is slower than the loop.  A batch's number is its ticket:
 * whoever must wait for a record's durability (a publisher confirm, a
 * tx.commit-ok) waits until the store reports that ticket synced.
 *
 * A segment is deleted once nothing in it is live (no unacked ENQ, no MSG
 * still enqueued) and no older segment still holds an ENQ that one of its
 * ACKs cancels: deleting that ACK first would bring the message back.
 */
#ifndef WARREN_STORE_H
#define WARREN_STORE_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct message;
struct store;

struct store_options {
	uint64_t segment_size;		/* bytes per segment before rolling */
	uint32_t sync_delay_us;		/* wait to fill a batch; 0: none */
};

/* The store has synced every record up to this ticket. */
typedef void store_synced_fn(void *arg, uint64_t ticket);

/*
 * Open (creating) the store in dir.  Call store_recover before appending.
 * NULL with a message in err when dir cannot be used.
 */
struct store *store_open(struct event_base *base, const char *dir,
    const struct store_options *opt, store_synced_fn *synced, void *arg,
    char *err, size_t errlen);
/* Write and sync what is pending, stop the thread, free. */
void store_close(struct store *s);

/*
 * One recovered queue entry, in log order per queue (oldest first).
 * Return true when queue qid exists and took msg (with its own reference:
 * the store drops its own after the call); false drops the entry.
 */
typedef bool store_recover_fn(void *arg, uint64_t qid, struct message *msg,
    uint32_t enq_seg, bool delivered);

struct store_recovery {
	uint64_t segments, records, messages, entries, bytes;
	uint64_t corrupt_records, skipped_bytes, dropped_entries;
	uint64_t ms;
};

/* Read every segment and hand back the live entries; logs a summary. */
bool store_recover(struct store *s, store_recover_fn *fn, void *arg,
    struct store_recovery *out);

/*
 * Queue qid now holds msg: append its MSG record (the first time) and an
 * ENQ.  Returns the ENQ's segment (nonzero), which the queue keeps in its
 * entry and hands back to store_ack; *ticket rises to this batch's.
 */
uint32_t store_enqueue(struct store *s, uint64_t qid, struct message *msg,
    uint64_t *ticket);
/* Queue qid delivered msg for the first time. */
void store_delivered(struct store *s, uint64_t qid, const struct message *msg);
/* Queue qid is done with msg, enqueued in segment enq_seg. */
void store_ack(struct store *s, uint64_t qid, struct message *msg,
    uint32_t enq_seg);

/* A fresh random queue id for a durable queue (never 0). */
uint64_t store_new_qid(void);

/* For tests and stats: the number of segment files, the synced ticket. */
uint64_t store_segment_count(const struct store *s);

#endif
