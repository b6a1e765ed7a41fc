/*
 * A channel: method dispatch, content assembly, its consumers and the ledger
 * of unacknowledged deliveries.
 */
#ifndef WARREN_CHANNEL_H
#define WARREN_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "connection.h"
#include "properties.h"
#include "queue.h"
#include "users.h"

struct frame;
struct exchange;
struct message;

enum chan_state {
	CHAN_OPEN,
	CHAN_CLOSING,		/* sent channel.close, waiting for close-ok */
};

enum content_state {
	CONTENT_NONE,
	CONTENT_HEADER,		/* after basic.publish */
	CONTENT_BODY,		/* after the content header */
};

/* One unacknowledged delivery, kept in the channel's ledger. */
struct delivery {
	uint64_t tag;
	struct queue_entry e;		/* as it left the queue */
	struct queue *q;		/* holds a queue reference */
	struct consumer *consumer;	/* NULL for basic.get or cancelled */
	uint64_t delivered_at;		/* monotonic ms, for consumer_timeout */
	bool settled;
	/*
	 * Acked, nacked or rejected inside a transaction: done at tx.commit,
	 * forgotten at tx.rollback, and meanwhile no longer outstanding (as
	 * RabbitMQ collects a tx's acks when they arrive).
	 */
	bool tx_held;
	uint8_t tx_how;			/* enum settle_how, when tx_held */
};

/* A confirm waiting for the store to sync (and those behind it). */
struct confirm_wait {
	uint64_t seq;			/* publish number */
	uint64_t ticket;		/* store sync it waits for; 0: none */
	bool accepted;			/* ack, or nack */
};

/* A publish held back until tx.commit. */
struct tx_publish {
	struct message *msg;
	bool mandatory;
};

struct channel {
	struct conn *conn;
	uint16_t number;
	enum chan_state state;

	/* content being assembled */
	enum content_state content;
	uint8_t publish_exchange[256];
	uint8_t publish_rkey[256];
	uint8_t publish_exchange_len, publish_rkey_len;
	bool publish_mandatory;
	bool publishes_meet_dedup;	/* its last publish met a dedup cache */
	/* The last exchange a publish was allowed to write to, while the
	 * permissions are those of write_ok_gen (user_db generation). */
	uint8_t write_ok[256];
	uint8_t write_ok_len;
	bool write_ok_valid;
	uint64_t write_ok_gen;
	struct message *pending;

	/*
	 * Deliveries awaiting settlement, a ring in tag order.  No-ack
	 * deliveries take a tag but no entry; settled entries linger only
	 * until trimmed from the front or compacted away, so the ledger
	 * follows the unacked count, not the span of unacked tags.
	 */
	struct delivery *ledger;
	uint32_t ledger_head, ledger_count, ledger_cap;
	uint32_t unacked;		/* unsettled entries in the ledger */
	uint64_t unacked_bytes;		/* their bodies' sizes */
	uint64_t next_tag;

	char last_queue[256];		/* for queue name "" (RabbitMQ) */
	struct msg_counters msgs;	/* for the statistics */
	uint32_t prefetch_consumer;	/* basic.qos global=false */
	uint32_t prefetch_channel;	/* basic.qos global=true */
	struct consumer_list consumers;
	uint32_t n_consumers;

	/* publisher confirms: publishes are numbered from 1 */
	bool confirm_mode;
	uint64_t publish_seq;		/* the last publish's number */
	uint64_t confirm_ready;		/* settled up to here */
	uint64_t confirm_sent;		/* acked up to here */
	bool confirm_dirty;		/* on conn->confirm_dirty list */
	struct channel *confirm_next_dirty;
	struct confirm_wait *cwait;	/* ring: confirms awaiting a sync */
	uint32_t cwait_head, cwait_count, cwait_cap;

	/* waiting for a store sync (confirms or tx.commit-ok) */
	bool store_waiting;
	TAILQ_ENTRY(channel) store_link;	/* in broker->store_waiters */
	uint64_t commit_ticket;		/* tx.commit-ok waits for this sync */

	/* transactions */
	bool tx_mode;
	struct tx_publish *tx_publishes;
	uint32_t n_tx_publishes, cap_tx_publishes;
	uint32_t n_tx_held;		/* ledger entries with tx_held */

	/* direct reply-to: the channel's amq.rabbitmq.reply-to consumer */
	struct consumer *reply_consumer;
	char reply_key[80];		/* "amq.rabbitmq.reply-to.<conn>.<ch>.<secret>" */
};

struct channel *chan_new(struct conn *c, uint16_t number);
/* Requeue unacked messages, cancel consumers, free. */
void chan_free(struct channel *ch);

/* Feed one frame addressed to this channel; errors come back in err. */
int chan_handle_frame(struct channel *ch, const struct frame *f,
    struct amqp_error *err);
/* Soft error: send channel.close and wait for close-ok. */
void chan_fail(struct channel *ch, const struct amqp_error *err);

/*
 * What queues call on AMQP consumers (basic.consume) and the direct
 * reply-to consumer: the consumer_ops of queue.h.
 */
extern const struct consumer_ops chan_consumer_ops;

/* Queue dispatch asks these. */
bool chan_consumer_has_credit(const struct consumer *c);
/* Send basic.deliver + content; c->q is NULL for direct reply-to. */
void chan_deliver(struct consumer *c, const struct queue_entry *e);
/*
 * Detach and free a consumer.  An auto-delete queue left without
 * consumers goes too, unless the queue itself is what is going away.
 */
void chan_consumer_free(struct consumer *c, bool queue_going);

/* channel_basic.c / channel_queue.c handlers */
typedef int chan_method_fn(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err);
chan_method_fn chan_basic_qos, chan_basic_consume, chan_basic_cancel,
    chan_basic_publish, chan_basic_get, chan_basic_ack, chan_basic_reject,
    chan_basic_nack, chan_basic_recover;
chan_method_fn chan_queue_declare, chan_queue_delete, chan_queue_purge,
    chan_queue_bind;
chan_method_fn chan_exchange_declare, chan_exchange_delete, chan_exchange_bind;
chan_method_fn chan_confirm_select, chan_tx_select, chan_tx_commit,
    chan_tx_rollback;
/*
 * Take ch->pending off the channel (NULL if none), no longer counted as
 * unfinished content of its connection.
 */
struct message *chan_take_pending(struct channel *ch);
/* ch->pending is complete: route it and let it go. */
int chan_publish_complete(struct channel *ch, struct amqp_error *err);
/*
 * Every unacked delivery back to its queue: on close and timeout even
 * those a transaction has settled but not committed; basic.recover leaves
 * those to the commit.
 */
void chan_requeue_all(struct channel *ch, bool with_tx_held);
/* Record a basic.get delivery in the ledger (or just take a tag). */
void chan_record_get(struct channel *ch, const struct queue_entry *e,
    struct queue *q, bool no_ack);
/*
 * Unacked messages are never paged out, so past the memory watermark a
 * channel holding 1/UNACKED_MEMORY_SHARE of the watermark in unacked
 * bodies gets no more deliveries (and basic.get finds nothing) until it
 * settles some: a consumer with no prefetch limit that never acks cannot
 * pull a whole paged-out queue into memory, while channels that hold
 * little keep draining.
 */
#define UNACKED_MEMORY_SHARE 16
bool chan_over_memory_share(const struct channel *ch);
/* Let each of ch's consumers' queues try delivering again. */
void chan_redispatch(struct channel *ch);

/* Close channels whose oldest unacked delivery is past its timeout. */
void chan_check_consumer_timeouts(struct channel *ch, uint64_t now);
/* The newest delivery still outstanding, or 0. */
uint64_t chan_last_unsettled_tag(struct channel *ch);
/* 406 unless tag (or, with multiple, tag 0) names outstanding deliveries. */
int chan_settle_check(struct channel *ch, uint64_t tag, bool multiple,
    struct amqp_error *err);
/* In a transaction: mark what an ack/nack/reject settles, for commit. */
void chan_tx_mark_settle(struct channel *ch, uint64_t tag, bool multiple,
    enum settle_how how);
/* tx.commit: settle what was marked; tx.rollback: unmark it. */
void chan_tx_settle_marked(struct channel *ch);
void chan_tx_unmark(struct channel *ch);

/*
 * channel_confirm.c: a publish is settled: ack it (batched per turn), or
 * nack it when a queue refused it (x-overflow reject-publish).
 */
void chan_confirm_publish(struct channel *ch, bool accepted, uint64_t ticket);
/* Send the acks batched since the last flush (end of the input turn). */
void chan_confirm_flush(struct channel *ch);
/*
 * The store synced up to ticket synced: release confirms, nacking those
 * still waiting when its writes failed; true when none still wait.
 */
bool chan_confirm_synced(struct channel *ch, uint64_t synced,
    bool write_failed);
/* The same for a tx.commit-ok waiting on the store; true when done. */
bool chan_tx_synced(struct channel *ch, uint64_t synced);
/*
 * Route a complete message from exchange x (publish or tx.commit); false
 * when a queue refused it.  *ticket becomes the store sync the publish
 * must wait for (when a durable queue took a persistent message), or is
 * left alone.
 */
bool chan_route(struct channel *ch, struct exchange *x, struct message *msg,
    bool mandatory, uint64_t *ticket);
/* channel_tx.c: hold a publish until commit; free held publishes. */
void chan_tx_hold(struct channel *ch, struct message *msg, bool mandatory);
void chan_tx_discard(struct channel *ch);

/* channel_reply_to.c: direct reply-to. */
int chan_reply_to_consume(struct channel *ch, struct consumer *c,
    struct amqp_error *err);
/* A publish whose reply_to is the pseudo-queue: rewrite it (new message). */
int chan_reply_to_rewrite(struct channel *ch, struct message **msg,
    struct amqp_error *err);
/* Route a reply to "amq.rabbitmq.reply-to.<key>"; false if nobody's there. */
bool chan_reply_to_route(struct channel *ch, struct message *msg);
/* The pseudo-queue name itself / a rewritten reply key. */
bool chan_is_reply_to(struct bytes name);
bool chan_is_reply_key(struct bytes name);
/* basic.return 312 NO_ROUTE with the message. */
void chan_send_return(struct channel *ch, struct message *msg);
/* The queue went away under a consumer: tell the client (basic.cancel). */
void chan_consumer_cancelled(struct consumer *c);
/* "amq.gen-" / "amq.ctag-" plus 22 random url-safe characters. */
void chan_random_name(const char *prefix, char *out, size_t outlen);
/* Settle delivery tag (or up to it, if multiple). */
int chan_settle(struct channel *ch, uint64_t tag, bool multiple,
    enum settle_how how, struct amqp_error *err);
/* Queue lookup shared by handlers: 404 when missing, 405 when locked. */
/* The queue called name ("" the last declared) after checking that the
 * user may `what` it (chan_check_access). */
int chan_find_queue(struct channel *ch, struct bytes name, enum access what,
    struct queue **out, struct amqp_error *err);
/*
 * RabbitMQ's permission check (channel_access.c): may the channel's user
 * do `what` to the queue (or exchange) called name?  0, or a logged 403
 * ACCESS_REFUSED naming the resource and the user.
 */
int chan_check_access(struct channel *ch, enum access what, bool queue,
    struct bytes name, struct amqp_error *err);
/* The same for a publish to exchange name, cached for repeated ones. */
/*
 * Topic permissions: when x is a topic exchange, whether ch's user may
 * publish (ACCESS_WRITE) or bind (ACCESS_READ) with key on it; 403 naming
 * the topic otherwise.
 */
int chan_check_topic(struct channel *ch, const struct exchange *x,
    enum access what, struct bytes key, struct amqp_error *err);
int chan_check_publish(struct channel *ch, struct bytes name,
    struct amqp_error *err);

#endif
