/*
 * A queue: ready messages in FIFO order, the consumers attached to it, and
 * the dispatch that hands messages to consumers with credit, round-robin.
 * Dispatch runs from a libevent callback, a bounded batch per loop turn, so
 * one busy queue cannot starve other queues or connections.
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

struct consumer {
	struct queue *q;
	struct channel *ch;
	char *tag;
	bool no_ack;
	bool exclusive;
	int32_t priority;		/* x-priority: higher is served first */
	uint32_t prefetch;		/* 0: unlimited */
	uint32_t unacked;
	TAILQ_ENTRY(consumer) qlink;	/* in q->consumers */
	TAILQ_ENTRY(consumer) chlink;	/* in ch->consumers */
};
TAILQ_HEAD(consumer_list, consumer);

struct queue {
	unsigned refs;			/* the vhost's, plus one per delivery */
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

	/*
	 * Ready messages: one ring per priority level (one if no
	 * priorities), oldest first; past the paging limits a level's newer
	 * messages wait on disk in its tail (NULL: none yet).
	 */
	struct entry_ring *levels;
	struct queue_tail **tails;	/* n_levels of them, or NULL */
	uint32_t n_levels;
	uint32_t count;			/* ready messages, paged out or not */
	uint64_t bytes;			/* their body bytes */
	uint64_t next_seq;
	bool had_consumer;		/* auto-delete waits for the first */

	struct binding_list inbound;	/* bindings to this queue */
	uint64_t route_gen;		/* dedupe while routing */

	struct consumer_list consumers;
	uint32_t n_consumers;
	struct event *dispatch_ev;	/* a dispatch pass on the next turn */
	struct event *expiry_ev;	/* the head's TTL runs out */
	struct event *idle_ev;		/* x-expires */
	struct event *refill_ev;	/* paged-out messages not on disk yet */
};

/* A queue with these arguments (their strings now belong to the queue). */
struct queue *queue_new(struct vhost *vh, struct bytes name,
    struct queue_args *args);
struct queue *queue_ref(struct queue *q);
void queue_unref(struct queue *q);
/* Detach from the vhost: cancel consumers, drop ready messages. */
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
/* The queue was used (basic.get, redeclare): restart its x-expires clock. */
void queue_touch(struct queue *q);

/* Consumers are kept by priority (highest first), FIFO within one. */
void queue_add_consumer(struct queue *q, struct consumer *c);
void queue_remove_consumer(struct queue *q, struct consumer *c);

/* Ask for a dispatch pass on the next loop turn (cheap, idempotent). */
void queue_schedule_dispatch(struct queue *q);

/* The consumer timeout in ms that applies to deliveries from q. */
uint64_t queue_consumer_timeout(const struct queue *q);

#endif
