/*
 * A virtual host: the namespace of exchanges and queues.
 */
#ifndef WARREN_VHOST_H
#define WARREN_VHOST_H

#include <stdbool.h>

#include "wire.h"

struct broker;
struct queue;
struct exchange;
struct binding;
struct exchange_type;
struct queue_args;

struct vhost {
	char *name;
	struct broker *broker;
	struct strmap *queues;
	struct strmap *exchanges;	/* includes "" and the amq.* ones */
	/* RabbitMQ's vhost limits (-1: none). */
	int64_t max_connections, max_queues;
	/* Tracing on (RabbitMQ's vhost "tracing"): journeys and the
	 * firehose; NULL: off (journal.h). */
	struct journal *journal;
};

/* A vhost with the default exchange and amq.direct/fanout/topic/headers/match. */
struct vhost *vhost_new(struct broker *b, const char *name);
void vhost_free(struct vhost *vh);

/* Tracing on or off (journal.h): off forgets the journeys kept. */
void vhost_set_tracing(struct vhost *vh, bool on);

struct queue *vhost_find_queue(struct vhost *vh, struct bytes name);
/* Create a queue named name (which must not exist); takes args' strings. */
struct queue *vhost_add_queue(struct vhost *vh, struct bytes name,
    struct queue_args *args);
/* Remove q and its bindings from the namespace and delete it. */
void vhost_remove_queue(struct vhost *vh, struct queue *q);

struct exchange *vhost_find_exchange(struct vhost *vh, struct bytes name);
struct exchange *vhost_add_exchange(struct vhost *vh, struct bytes name,
    const struct exchange_type *type);
/* Remove x, its bindings both ways, and auto-delete what that empties. */
void vhost_remove_exchange(struct vhost *vh, struct exchange *x);
/* Remove one binding; an auto-delete source left unbound goes too. */
void vhost_unbind(struct vhost *vh, struct binding *b);

/*
 * A stable digest (SHA-256) of an object's identity: what it is (kind:
 * "queue", "exchange", ...), its vhost and its name.  Names are any bytes
 * up to 255, so state kept for an object across restarts is named by this
 * (dedup cache files, delayed exchanges' store ids).
 */
void vhost_object_digest(const char *kind, const char *vhost, const char *name,
    unsigned char out[32]);

#endif
