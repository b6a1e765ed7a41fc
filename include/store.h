/*
 * The message store: persistent messages of durable queues in append-only
 * segment files (store_segment.h), with group commit on a thread of its
 * own and recovery at start.
 *
 * The log holds four kinds of record:
 *	MSG	a message, once, however many queues hold it: its id, exchange,
 *		routing key, raw content header and body, byte-exact
 *	ENQ	queue qid holds message id, until a wall-clock expiry (or 0)
 *	DLV	queue qid delivered message id (it comes back redelivered)
 *	RET	queue qid had message id returned (requeued) n times so far
 *	ACK	queue qid is done with message id
 *	TMSG	a message paged out by a transient queue, skipped at recovery
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

#include "store_loc.h"

struct event_base;
struct message;
struct store;

struct store_options {
	uint64_t segment_size;		/* bytes per segment before rolling */
	uint32_t sync_delay_us;		/* wait to fill a batch; 0: none */
	uint64_t max_pending;		/* unwritten bytes before "behind" */
};

/* What the store tells its owner, whenever any of it changes. */
struct store_state {
	uint64_t synced;		/* every record up to this ticket is
					 * on disk */
	bool failing;			/* writes fail (a full disk, an I/O
					 * error) and are being retried */
	bool behind;			/* more than max_pending bytes wait to
					 * be written (until a quarter do) */
	uint64_t peak_pending;		/* the most that waited since behind
					 * last changed */
};
typedef void store_state_fn(void *arg, const struct store_state *st);

/*
 * Open (creating) the store in dir.  Call store_recover before appending.
 * NULL with a message in err when dir cannot be used.
 */
struct store *store_open(struct event_base *base, const char *dir,
    const struct store_options *opt, store_state_fn *changed, void *arg,
    char *err, size_t errlen);
/* Write and sync what is pending, stop the thread, free. */
void store_close(struct store *s);

/* A recovered message: where it is, and what a queue needs to place it. */
struct store_recovered {
	struct store_loc loc;
	uint32_t body_len;
	uint8_t priority;
};

/* One recovered queue entry of a message. */
struct store_recovered_entry {
	uint32_t enq_seg;		/* its ENQ's segment */
	bool delivered;			/* it comes back redelivered */
	int64_t expires_in;		/* ms from now (0: due); -1: never */
	uint32_t returns;		/* times returned, the crash included */
	uint32_t ret_seg;		/* its RET's segment (to hand back) */
};

/*
 * One recovered queue entry, in log order per queue (oldest first);
 * store_read makes the message when it is wanted.  Return true when queue
 * qid exists and took it; false drops the entry.
 */
typedef bool store_recover_fn(void *arg, uint64_t qid,
    const struct store_recovered *msg,
    const struct store_recovered_entry *entry);

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
 * entry and hands back to store_ack; *ticket rises to this batch's.  The
 * MSG record stays while any ENQ of it is not acked.  ttl_ms: the entry
 * expires that far from now (kept as a wall-clock time, so that it still
 * expires on time after a restart); 0: never.
 */
uint32_t store_enqueue(struct store *s, uint64_t qid, struct message *msg,
    uint64_t ttl_ms, uint64_t *ticket);
/*
 * Queue qid delivered message msg_id (the first time; every time where
 * returns are counted, so a delivery a crash ends counts as one).
 */
void store_delivered(struct store *s, uint64_t qid, uint64_t msg_id);
/*
 * Queue qid had message msg_id returned, `returns` times so far (queues
 * with a delivery limit).  The record's segment is kept until the entry
 * is done: the returned segment number replaces old_ret_seg (0: none),
 * and store_forget_returns lets the last one go.
 */
uint32_t store_returned(struct store *s, uint64_t qid, uint64_t msg_id,
    uint32_t returns, uint32_t old_ret_seg);
void store_forget_returns(struct store *s, uint32_t ret_seg);
/* Queue qid is done with the message at msg, enqueued in enq_seg. */
void store_ack(struct store *s, uint64_t qid, const struct store_loc *msg,
    uint32_t enq_seg);

/*
 * Keep msg's bytes in the log for a queue that pages it out but does not
 * keep it across restarts (a transient message, or any message in a
 * transient queue): its MSG record if it has one, else a record that
 * recovery ignores.  *loc says where; store_release lets it go.
 */
void store_hold(struct store *s, struct message *msg, struct store_loc *loc);
void store_release(struct store *s, const struct store_loc *loc);

/* Whether the record at loc can be read back yet (it is on disk). */
bool store_readable(const struct store *s, const struct store_loc *loc);
/*
 * The message whose record is at loc, read from its segment: a new
 * message (one reference), remembering loc; NULL (logged) if the record
 * cannot be read or is damaged.
 */
struct message *store_read(struct store *s, const struct store_loc *loc);

/*
 * Other files written and synced by the store thread with the log, so one
 * ticket covers both: stream queues keep their own segment files this way
 * (stream_log.c).  A flusher is called on the loop just before the
 * current batch closes, to hand its bytes over with store_write_file;
 * store_want_flush queues it (once) and returns the batch's ticket.
 */
struct store_flusher {
	void (*fn)(void *arg);
	void *arg;
	struct store_flusher *next;
	bool queued;
};
uint64_t store_want_flush(struct store *s, struct store_flusher *f);
void store_cancel_flush(struct store *s, struct store_flusher *f);
/*
 * Write len bytes of data (malloc'd, cap bytes; the store frees it) at
 * offset off of file fd (duplicated: the caller keeps its own), in the
 * current batch, synced with it.  False, and nothing taken, when fd cannot
 * be duplicated.
 */
bool store_write_file(struct store *s, int fd, uint64_t off, uint8_t *data,
    size_t len, size_t cap);
/*
 * Sync file fd (duplicated) with the current batch: what the caller wrote
 * to it before is durable once the batch's ticket is.  False when fd
 * cannot be duplicated.
 */
bool store_sync_file(struct store *s, int fd);
/* The ticket of the batch being filled (what a record appended now gets). */
uint64_t store_current_ticket(const struct store *s);
/* The last ticket the owner was told is on disk. */
uint64_t store_synced(const struct store *s);

/* A fresh random queue id for a durable queue (never 0). */
uint64_t store_new_qid(void);

/* For tests and stats: the number of segment files, the synced ticket. */
uint64_t store_segment_count(const struct store *s);

/* Upper bounds of the sync-latency histogram's buckets, in seconds. */
#define STORE_SYNC_BUCKETS 12
extern const double store_sync_bucket_le[STORE_SYNC_BUCKETS];

/* What the store has done, for the metrics; counters only grow. */
struct store_metrics {
	uint64_t segments;		/* segment files now */
	uint64_t bytes_written;		/* to segment files */
	uint64_t pending;		/* handed to the writer, not written */
	uint64_t syncs;			/* fdatasyncs that succeeded */
	uint64_t sync_le[STORE_SYNC_BUCKETS];	/* syncs within each bound */
	double sync_seconds;		/* their total time */
};
void store_get_metrics(struct store *s, struct store_metrics *out);

#endif
