/*
 * Exchanges and bindings.  One interface (struct exchange_type) with one
 * file per type: exchange_direct.c, exchange_fanout.c, exchange_topic.c,
 * exchange_headers.c.  The type indexes bindings for routing; the exchange
 * keeps the list of all its bindings for identity checks and deletion.
 */
#ifndef WARREN_EXCHANGE_H
#define WARREN_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "wire.h"

struct vhost;
struct queue;
struct message;
struct field_table;
struct amqp_error;
struct route_trace;

enum binding_dest { DEST_QUEUE, DEST_EXCHANGE };

struct binding {
	struct exchange *source;
	enum binding_dest kind;
	union {
		struct queue *queue;
		struct exchange *exchange;
	} dest;
	char *key;			/* routing key / pattern */
	uint32_t key_len;
	uint8_t *args;			/* raw arguments table */
	uint32_t args_len;
	struct field_table *args_tree;	/* decoded, for the headers type */
	TAILQ_ENTRY(binding) src_link;	/* in source->bindings */
	TAILQ_ENTRY(binding) dst_link;	/* in the destination's inbound list */
};
TAILQ_HEAD(binding_list, binding);

/* Collects a publish's destinations; each queue at most once. */
/* Most publishes reach a few queues: those fit without an allocation. */
#define ROUTE_INLINE_QUEUES 8

/* Not to be copied: queues may point into the struct itself. */
struct route_result {
	struct queue **queues;		/* inline_queues, or allocated */
	uint32_t n, cap;
	struct queue *inline_queues[ROUTE_INLINE_QUEUES];
	uint64_t gen;			/* stamps collected queues */
	uint64_t xgen;			/* stamps exchanges visited for key */
	const struct message *msg;
	struct bytes key;		/* the routing key being routed */
	struct field_table *headers;	/* decoded lazily for headers type */
	bool headers_decoded;
	uint32_t matched;		/* bindings matched so far */
	struct route_trace *trace;	/* the route tracer's record, or NULL */
};

struct exchange_type {
	const char *name;
	void *(*create)(struct exchange *x);
	void (*destroy)(void *state);
	void (*bind)(void *state, struct binding *b);
	void (*unbind)(void *state, struct binding *b);
	/* Call route_binding for every binding the message matches. */
	void (*route)(void *state, struct route_result *r);
	/* Optional: refuse an exchange.declare's arguments, or a binding's
	 * key and arguments, before anything changes (0 or amqp_fail). */
	int (*check_declare)(struct bytes arguments, struct amqp_error *err);
	int (*check_binding)(struct bytes key, struct bytes args,
	    struct amqp_error *err);
};

extern const struct exchange_type exchange_direct, exchange_fanout,
    exchange_topic, exchange_headers, exchange_consistent_hash,
    exchange_default;

/* "direct", "fanout", "topic", "headers", "x-consistent-hash"; NULL when
 * unknown. */
const struct exchange_type *exchange_type_find(struct bytes name);
/* The type x was declared with ("x-delayed-message" for a delayed one). */
const char *exchange_type_name(const struct exchange *x);

struct exchange {
	char *name;
	struct vhost *vh;
	const struct exchange_type *type;
	void *state;
	bool durable, auto_delete, internal;
	uint8_t *arguments;
	uint32_t arguments_len;
	char *alternate;		/* alternate-exchange argument, or NULL */
	struct dedup_cache *dedup;	/* x-message-deduplication, or NULL */
	struct delayed *delayed;	/* x-delayed-message: its schedule */
	struct binding_list bindings;	/* this exchange as source */
	uint32_t n_bindings;
	struct binding_list inbound;	/* exchange-to-exchange, as dest */
	uint64_t route_gen;		/* cycle breaking during routing */
};

struct exchange *exchange_new(struct vhost *vh, struct bytes name,
    const struct exchange_type *type);
/* Remove every binding to and from x, then free it. */
void exchange_free(struct exchange *x);
/*
 * x is deleted for good (not shutting down): what it keeps across
 * restarts goes too, its dedup cache's file and its scheduled messages.
 */
void exchange_discard_state(struct exchange *x);

/* The binding of x to dest with key and args, or NULL. */
struct binding *exchange_find_binding(struct exchange *x,
    enum binding_dest kind, void *dest, struct bytes key, struct bytes args);
struct binding *exchange_bind(struct exchange *x, enum binding_dest kind,
    void *dest, struct bytes key, struct bytes args);
/* Unlink and free b (source and destination lists, type index). */
void exchange_unbind(struct binding *b);
/* Survives a restart: both ends durable (RabbitMQ's rule). */
bool binding_is_durable(const struct binding *b);

/* The hooks types call for each matched binding (or queue, for the
 * default exchange). */
void route_binding(struct route_result *r, struct binding *b);
void route_queue(struct route_result *r, struct queue *q);
/* The message's headers table, decoded once per routing; NULL if none. */
const struct field_table *route_headers(struct route_result *r);
/*
 * Route msg from x; fills r->queues (deduplicated), following
 * exchange-to-exchange bindings without looping and alternate exchanges
 * when nothing matched.  Routes by the routing key and, as RabbitMQ's
 * sender-selected distribution, by every key in the CC and BCC headers.
 * Free with route_result_free.
 */
void exchange_route(struct exchange *x, const struct message *msg,
    struct route_result *r);
/* The same, writing every step into trace (route_trace.h). */
void exchange_route_traced(struct exchange *x, const struct message *msg,
    struct route_result *r, struct route_trace *trace);
void route_result_free(struct route_result *r);

/*
 * Route msg from x and push it to every queue reached (without BCC, which
 * is never delivered); *ticket rises for a confirm.  Returns how many
 * queues it reached; *accepted false when one of them refused it.
 */
uint32_t exchange_deliver(struct exchange *x, struct message *msg,
    uint64_t *ticket, bool *accepted);
/*
 * What a publish to x does (AMQP and the management API alike): a
 * duplicate (x-message-deduplication) is dropped, a message with an
 * x-delay on a delayed exchange is scheduled, both taken as routed (so
 * confirmed, never returned); anything else is delivered.  True when
 * routed; *ticket and *accepted as for exchange_deliver.
 */
bool exchange_publish(struct exchange *x, struct message *msg,
    uint64_t *ticket, bool *accepted);

/* The strings of header `name` (an array of longstrs), appended to out. */
uint32_t message_header_keys(const struct field_table *headers,
    const char *name, struct bytes *out, uint32_t max);

#endif
