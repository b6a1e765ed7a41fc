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
struct conn;

TAILQ_HEAD(conn_list, conn);

struct broker {
	struct event_base *base;
	const struct warren_config *cfg;
	struct strmap *vhosts;
	struct evconnlistener *listener;
	struct evconnlistener *tls_listener;	/* NULL: no TLS listener */
	struct ssl_ctx_st *tls_ctx;
	struct conn_list conns;
	struct strmap *conns_by_id;	/* 8-byte id -> conn (direct reply-to) */
	uint64_t next_conn_id;
	struct event *sig_term, *sig_int;
	struct event *tick;		/* memory alarm, consumer timeouts */
	uint64_t memory_limit;		/* message bytes that raise the alarm */
	bool memory_alarm;		/* publishers are blocked */
};

/* Set up the loop and listener; false (with a log line) on failure. */
bool broker_init(struct broker *b, const struct warren_config *cfg);
/* Run until SIGTERM/SIGINT; then close connections and return. */
void broker_run(struct broker *b);
void broker_free(struct broker *b);

struct vhost *broker_find_vhost(struct broker *b, struct bytes name);
/* Raise or clear the memory alarm (blocks and unblocks publishers). */
void broker_check_memory(struct broker *b);
/* The live connection with this id, or NULL. */
struct conn *broker_find_conn(struct broker *b, uint64_t id);

#endif
