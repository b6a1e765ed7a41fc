/*
 * The broker: the one event loop that owns all state, the listener, the
 * vhosts and the live connections.
 */
#ifndef WARREN_BROKER_H
#define WARREN_BROKER_H

#include <stdint.h>
#include <sys/queue.h>

#include "wire.h"

struct event_base;
struct evconnlistener;
struct warren_config;
struct vhost;
struct queue;
struct user_db;
struct mgmt;
struct conn;
struct channel;
struct store;
struct stream_reader;

TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(channel_list, channel);

/* Resource alarms, as RabbitMQ's: either blocks publishing connections. */
enum broker_alarm {
	ALARM_MEMORY = 1,	/* vm_memory_high_watermark */
	ALARM_DISK = 2,		/* disk_free_limit */
	ALARM_STORE = 4,	/* the message store's writes fail */
};

/*
 * Counters that only grow, for RabbitMQ's global metrics
 * (rabbitmq_global_*, rabbitmq_*_opened_total ...) and the management
 * API's totals.
 */
struct broker_counters {
	uint64_t messages_received;	/* publishes taken for routing */
	uint64_t messages_routed;	/* ... that reached a queue */
	uint64_t unroutable_returned;	/* mandatory, returned */
	uint64_t unroutable_dropped;
	uint64_t messages_confirmed;	/* publisher confirms (basic.ack) */
	uint64_t messages_delivered;	/* to consumers, no-ack included */
	uint64_t messages_get;		/* basic.get (and the API's get) */
	uint64_t messages_redelivered;	/* delivered again after a requeue */
	uint64_t messages_acknowledged;	/* acks from consumers */
	uint64_t connections_opened, connections_closed;
	uint64_t channels_opened, channels_closed;
	uint64_t queues_created, queues_deleted;
};

struct broker {
	struct event_base *base;
	const struct warren_config *cfg;
	struct strmap *vhosts;
	struct evconnlistener *listener;
	struct evconnlistener *tls_listener;	/* NULL: no TLS listener */
	struct ssl_ctx_st *tls_ctx;
	struct conn_list conns;
	struct conn_list output_pending;	/* written at the turn's end */
	struct event *flush_ev;			/* conn_output.c's writer */
	struct strmap *conns_by_id;	/* 8-byte id -> conn (direct reply-to) */
	uint64_t next_conn_id;
	uint32_t n_open_conns;		/* past connection.open-ok */
	uint32_t n_handshaking;		/* not yet open */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *tick;		/* alarms, consumer timeouts */
	/* The loop's clock: monotonic ms read once per callback (a read, a
	 * dispatch pass, the tick), for figures that need no fresh read per
	 * message (queue_latency.h). */
	uint64_t clock_ms;
	/* SIGTERM/SIGINT: clients were told 320; the loop ends once every
	 * connection has sent it (or gone), or at shutdown_deadline_ms. */
	bool shutting_down;
	struct event *shutdown_timer;	/* checks every 10 ms */
	uint64_t shutdown_deadline_ms;
	/* SIGHUP: reload what can change at run time (set by warrend). */
	void (*on_reload)(struct broker *b, void *arg);
	void *on_reload_arg;
	uint64_t memory_limit;		/* message bytes that raise the alarm */
	uint64_t paging_watermark;	/* above it transient messages page */
	uint64_t next_tail;		/* names paged-out queue files */
	unsigned alarms;		/* enum broker_alarm bits: publishers
					   are blocked while any is set */
	bool store_behind;		/* flow: publishers are not read */
	uint64_t memory_alarm_since;	/* monotonic ms the memory alarm rose */
	bool unacked_held;	/* a channel held back by chan_over_memory_share */
	uint64_t content_bytes;		/* unfinished content, all connections */
	struct store *store;		/* the message store; NULL: none */
	struct stream_reader *stream_reader;	/* stream reads, off the loop */
	int lock_fd;			/* holds data_dir/warrend.lock; -1 */
	bool durable_dirty;		/* definitions to save */
	bool stopping;			/* shutting down: save nothing more */
	struct channel_list store_waiters;	/* waiting for a sync */
	struct user_db *users;		/* users and their permissions */
	struct login_throttle *login_throttle;	/* failed logins per address */
	struct mgmt *mgmt;		/* the management API; NULL: none */
	struct broker_counters counters;
	/* publish, deliver-or-get and ack per second (broker.c's tick) */
	double rates[3];
	uint64_t rate_base[3], rates_at_ms;
};

/* Set up the loop and listener; false (with a log line) on failure. */
bool broker_init(struct broker *b, const struct warren_config *cfg);
/*
 * Run until SIGTERM/SIGINT: then stop listening, close every client
 * connection with 320 CONNECTION_FORCED (waiting, at most
 * warren.shutdown_timeout, until that has been sent), finish the
 * store's writes and return.
 */
void broker_run(struct broker *b);

void broker_free(struct broker *b);

struct vhost *broker_find_vhost(struct broker *b, struct bytes name);
/* fn(q, arg) for every queue of every vhost; fn must not delete queues. */
void broker_each_queue(struct broker *b, void (*fn)(struct queue *, void *),
    void *arg);
/* The vhost called name, created (with its amq.* exchanges) if need be. */
struct vhost *broker_add_vhost(struct broker *b, const char *name);
/*
 * Delete vh: its connections are closed (320), its queues deleted (their
 * stored messages with them), its exchanges and permissions forgotten.
 */
void broker_delete_vhost(struct broker *b, struct vhost *vh);
/*
 * First start (or no user left): the config's default user, tagged
 * administrator, with every permission on the default vhost, which is
 * created too, as RabbitMQ seeds an empty database.
 */
void broker_seed_access(struct broker *b);
/* Raise or clear the memory alarm (blocks and unblocks publishers). */
void broker_check_memory(struct broker *b);
/* Set or clear one alarm; publishers are blocked while any is set. */
void broker_set_alarm(struct broker *b, enum broker_alarm which, bool on);
/* Flow control on or off: publishing connections are (not) read. */
void broker_set_flow(struct broker *b, bool on);
/* Raise or clear the disk alarm from the data directory's free space. */
void broker_check_disk(struct broker *b);
/* connection.blocked's reason: RabbitMQ's text for the first alarm set. */
const char *broker_alarm_reason(const struct broker *b);
/* ch waits for a store sync (confirms, tx.commit-ok); idempotent. */
void broker_store_wait(struct broker *b, struct channel *ch);
/* ch goes away: it waits for nothing any more. */
void broker_store_unwait(struct broker *b, struct channel *ch);
/* The store has synced every record up to ticket synced; write_failed:
 * its writes fail (confirms still waiting are nacked). */
void broker_store_synced(struct broker *b, uint64_t synced,
    bool write_failed);
/*
 * durability.c: load the definitions and recover the message store (before
 * listening); durable metadata changed (saved by broker_save_definitions,
 * at the latest before the reply leaves); close the store at shutdown.
 */
bool broker_recover(struct broker *b);
/* A new file name for a queue's paged-out entries (queue_tail.h). */
void broker_tail_path(struct broker *b, char *out, size_t len);
void broker_durable_changed(struct broker *b);
void broker_save_definitions(struct broker *b);
void broker_close_store(struct broker *b);
/* The live connection with this id, or NULL. */
struct conn *broker_find_conn(struct broker *b, uint64_t id);

#endif
