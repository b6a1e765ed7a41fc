/*
 * A queue: what every queue has (a name, bindings, the consumers attached
 * to it, the dispatch that hands messages to consumers with credit,
 * round-robin, x-expires), and a queue type that keeps its messages.  The
 * classic type (queue_classic.c) is a FIFO per priority level whose
 * backlog pages out to disk; stream queues will be another type.
 * Dispatch runs from a libevent callback, a bounded batch per loop turn, so
 * one busy queue cannot starve other queues or connections.
 *
 * Consumers are anything that implements consumer_ops: AMQP consumers
 * and direct reply-to (channel.c), and the unit tests' own.
 */
#ifndef WARREN_QUEUE_H
#define WARREN_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "entry_ring.h"
#include "exchange.h"
#include "queue_args.h"
#include "wire.h"

struct amqp_error;
struct message;
struct queue_tail;
struct store_recovered;
struct store_recovered_entry;
struct channel;
struct vhost;
struct event;

/* What an ack, nack or reject does with a delivery. */
enum settle_how {
	SETTLE_ACK,		/* done with it */
	SETTLE_REQUEUE,		/* back to its queue */
	SETTLE_REJECT,		/* dropped, or dead-lettered as "rejected" */
};

struct consumer;
struct queue_entry;

/* Requests a queue type may refuse (queue_refuse). */
enum queue_request { QUEUE_GET, QUEUE_PURGE, QUEUE_NACK };

/* What a queue asks of a consumer. */
struct consumer_ops {
	/* May it take one more message now? */
	bool (*has_credit)(const struct consumer *c);
	/*
	 * Take entry e (the queue keeps its reference; a consumer that
	 * holds on to the message takes its own).  A no-ack consumer's
	 * entry is settled as acked by the queue right after.
	 */
	void (*deliver)(struct consumer *c, const struct queue_entry *e);
	/*
	 * The queue is going away: tell whoever consumes and detach (by
	 * queue_remove_consumer) before returning.
	 */
	void (*cancelled)(struct consumer *c);
};

struct consumer {
	const struct consumer_ops *ops;
	struct queue *q;
	struct channel *ch;		/* AMQP consumers: their channel */
	char *tag;
	bool no_ack;
	bool exclusive;
	int32_t priority;		/* x-priority: higher is served first */
	uint32_t prefetch;		/* 0: unlimited */
	uint32_t unacked;
	void *type_state;		/* the queue type's (a stream's reader) */
	TAILQ_ENTRY(consumer) qlink;	/* in q->consumers */
	TAILQ_ENTRY(consumer) chlink;	/* in ch->consumers */
};
TAILQ_HEAD(consumer_list, consumer);

/* What went through a queue since it was made; only grows. */
struct queue_counters {
	uint64_t published;		/* accepted by push */
	uint64_t delivered;		/* to consumers and basic.get */
	uint64_t acked;			/* acked by consumers */
};

/* A queue's numbers, as queue.declare-ok and the management API report
 * them, read through queue_stats. */
struct queue_stats {
	uint64_t messages;		/* ready, in memory or paged out */
	uint64_t bytes;			/* their body bytes */
	uint64_t paged_out;		/* of them, waiting on disk */
	uint64_t unacked;		/* delivered, not yet settled */
	uint32_t consumers;
	struct queue_counters counters;
	/* The counters' rates over the last sampling interval, per second. */
	double publish_rate, deliver_rate, ack_rate;
	/* Stream queues only (stream is false for the others). */
	bool stream;
	uint64_t first_offset;		/* the oldest kept */
	uint64_t next_offset;		/* the next appended gets this one */
	uint64_t segments, disk_bytes;	/* its segment files */
};

/* A stream consumer name and the offset stored for it. */
typedef void queue_offset_fn(void *arg, struct bytes name, uint64_t offset);

/*
 * A ready message as browsing sees it: e->msg is NULL when a paged-out
 * message cannot be read (yet); level is its priority level; paged_out:
 * it waits on disk.  The entry and message are valid during the call.
 */
typedef void queue_browse_fn(void *arg, const struct queue_entry *e,
    uint32_t level, bool paged_out);

/*
 * A queue type: how a queue keeps, hands out and settles its messages.
 * The public queue_* functions below call these; only queue.c calls them
 * directly.
 */
struct queue_type {
	const char *name;		/* x-queue-type */
	void (*init)(struct queue *q);	/* q->state from q->args */
	void (*destroy)(struct queue *q);	/* after purge */
	bool (*push)(struct queue *q, struct message *msg, uint64_t *ticket);
	bool (*pop)(struct queue *q, struct queue_entry *out);
	void (*settle)(struct queue *q, const struct queue_entry *e,
	    enum settle_how how);
	uint32_t (*purge)(struct queue *q);
	bool (*recover_entry)(struct queue *q,
	    const struct store_recovered *msg,
	    const struct store_recovered_entry *entry);
	/*
	 * May c (its fields filled from basic.consume, with its arguments
	 * table args) attach to q?  A type that keeps per-consumer state
	 * sets c->type_state here and frees it in consumer_removed.
	 */
	int (*check_consumer)(struct queue *q, struct consumer *c,
	    struct bytes args, struct amqp_error *err);
	void (*consumer_removed)(struct queue *q, struct consumer *c);
	/* Optional: c acked e (before settle; streams track offsets). */
	void (*acked)(struct queue *q, struct consumer *c,
	    const struct queue_entry *e);
	void (*stats)(const struct queue *q, struct queue_stats *out);
	/* Bytes held in memory (walks the entries: for the API only). */
	uint64_t (*memory)(const struct queue *q);
	/*
	 * Optional: visit up to count ready messages from position offset
	 * (0: the next one a consumer would get) in delivery order, taking,
	 * requeuing and reordering nothing; returns how many were visited.
	 */
	size_t (*browse)(struct queue *q, uint64_t offset, size_t count,
	    queue_browse_fn *fn, void *arg);
	/* Optional: the qlat_stamp of the oldest ready message; false when
	 * there is none. */
	bool (*oldest)(struct queue *q, uint32_t *enqueued_at);

	/* Optional. */
	/* Refuse a declare this type cannot make (before it exists). */
	int (*check_declare)(struct bytes arguments, bool durable,
	    bool exclusive, bool auto_delete, const char *name,
	    const char *vhost, struct amqp_error *err);
	/* After declare set durability and store_qid: open what it keeps. */
	int (*open)(struct queue *q, struct amqp_error *err);
	/* A dispatch pass of its own (consumers reading at their own
	 * positions); returns false when it stopped for the budget. */
	bool (*dispatch)(struct queue *q, int budget);
	/* Stored consumer offsets (streams), for the admin interfaces. */
	void (*each_offset)(const struct queue *q, queue_offset_fn *fn,
	    void *arg);
	/* basic.get, queue.purge: refused by types that cannot (0: allowed). */
	int (*refuse)(struct queue *q, enum queue_request what,
	    struct amqp_error *err);
};

extern const struct queue_type queue_classic, queue_stream;

struct queue {
	unsigned refs;			/* the vhost's, plus one per delivery */
	const struct queue_type *type;
	void *state;			/* the type's */
	char *name;
	struct vhost *vh;
	bool deleted;
	bool durable, exclusive, auto_delete;
	uint64_t store_qid;		/* its persistent messages are stored
					 * under this id; 0: it keeps none */
	uint64_t owner_conn;		/* exclusive queues: the owner's id */
	uint8_t *arguments;		/* raw table, for redeclare checks */
	uint32_t arguments_len;
	struct queue_args args;
	struct dedup_cache *dedup;	/* x-message-deduplication, or NULL */
	struct queue_latency *lat;	/* queue_latency.h; NULL until used */

	/* Kept up to date by the type, read by everyone. */
	uint32_t count;			/* ready messages, paged out or not */
	uint64_t bytes;			/* their body bytes */
	uint32_t unacked;		/* in channels' ledgers (channel_ledger.c) */
	struct queue_counters counters;
	struct queue_counters rate_base;	/* at the last sample */
	uint64_t rate_base_ms;
	double rates[3];		/* publish, deliver, ack per second */
	bool had_consumer;		/* auto-delete waits for the first */

	struct binding_list inbound;	/* bindings to this queue */
	uint64_t route_gen;		/* dedupe while routing */

	struct consumer_list consumers;
	uint32_t n_consumers;
	struct event *dispatch_ev;	/* a dispatch pass on the next turn */
	struct event *idle_ev;		/* x-expires */
};

/* A queue with these arguments (their strings now belong to the queue). */
struct queue *queue_new(struct vhost *vh, struct bytes name,
    struct queue_args *args);
struct queue *queue_ref(struct queue *q);
void queue_unref(struct queue *q);
/*
 * The queue is going away (queue.delete, x-expires, auto-delete, its
 * exclusive owner gone, vhost deleted): cancel its consumers through
 * their operations, drop ready messages.  Called by vhost_remove_queue.
 */
void queue_delete(struct queue *q);

/*
 * Enqueue msg (taking a new reference), or hand it straight to a consumer
 * when nothing is waiting ahead of it.  Applies TTL and the length limit;
 * false when the overflow policy refused it (reject-publish*).  When the
 * store must sync the message before it counts as held, *ticket is raised
 * to that sync's ticket.
 */
bool queue_push(struct queue *q, struct message *msg, uint64_t *ticket);
/*
 * An entry that left the queue (delivered or fetched) is settled: acked
 * (done), requeued to the place it had by its sequence number, marked
 * redelivered as RabbitMQ does, or rejected (dead-lettered when the queue
 * says so).  Takes over the entry's message reference.  Every entry that
 * leaves a queue comes back through here, which is where the store
 * records that a persistent message is gone.
 */
/*
 * The message to send for entry e of q (a reference the caller drops):
 * e's own, or, where q counts returns (x-delivery-limit), a copy carrying
 * the x-delivery-count header: once e has been returned, and for
 * basic.get (`get`) always, 0 the first time (RabbitMQ's quorum queues).
 */
struct message *queue_outgoing(const struct queue *q,
    const struct queue_entry *e, bool get);
void queue_settle(struct queue *q, const struct queue_entry *e,
    enum settle_how how);
/*
 * Dequeue the next message (highest priority first), dropping expired ones
 * on the way; false when empty.  The caller owns the reference and settles
 * the entry with queue_settle (at once, for no-ack deliveries).
 */
bool queue_pop(struct queue *q, struct queue_entry *out);
/*
 * A message the store kept across a restart (msg: where it is in the log;
 * entry: this queue's ENQ of it), back at the tail; false if it cannot be
 * read.
 */
bool queue_recover_entry(struct queue *q, const struct store_recovered *msg,
    const struct store_recovered_entry *entry);
/* Drop every ready message; returns how many. */
uint32_t queue_purge(struct queue *q);
void queue_stats(const struct queue *q, struct queue_stats *out);
/*
 * Bytes the queue holds in memory: its structures, its in-memory entries
 * and their messages (a message several queues hold counts in each, as a
 * shared body would in RabbitMQ's per-queue memory).  It walks the
 * entries, so only the management API's queue listing asks.
 */
uint64_t queue_memory(const struct queue *q);
/* Turn the counters since the last sample into rates (now: monotonic ms). */
void queue_sample_rates(struct queue *q, uint64_t now);
/* Whether c may attach (exclusive consumers, the type's own rules, which
 * read the basic.consume arguments args). */
int queue_check_consumer(struct queue *q, struct consumer *c,
    struct bytes args, struct amqp_error *err);
/*
 * Up to count of q's ready messages from position offset, in delivery
 * order, to fn, changing nothing; returns how many (0 for a type that
 * cannot be browsed: queue_browsable).
 */
size_t queue_browse(struct queue *q, uint64_t offset, size_t count,
    queue_browse_fn *fn, void *arg);
bool queue_browsable(const struct queue *q);
/* How long the oldest ready message has waited (ms); -1: none, or a
 * type that does not tell. */
int64_t queue_oldest_age(struct queue *q, uint64_t now);
/* Every stored consumer offset of q (none unless it is a stream). */
void queue_each_offset(const struct queue *q, queue_offset_fn *fn, void *arg);
/* Whether q's type refuses the request (0: go ahead). */
int queue_refuse(struct queue *q, enum queue_request what,
    struct amqp_error *err);
/* The queue was used (basic.get, redeclare): restart its x-expires clock. */
void queue_touch(struct queue *q);

/* Consumers are kept by priority (highest first), FIFO within one. */
void queue_add_consumer(struct queue *q, struct consumer *c);
void queue_remove_consumer(struct queue *q, struct consumer *c);

/* Ask for a dispatch pass on the next loop turn (cheap, idempotent). */
void queue_schedule_dispatch(struct queue *q);
/*
 * For queue types: the consumer that should take the next message (it
 * then moves behind its equals), or NULL when none has credit.
 */
struct consumer *queue_next_consumer(struct queue *q);

/* The consumer timeout in ms that applies to deliveries from q. */
uint64_t queue_consumer_timeout(const struct queue *q);

#endif
