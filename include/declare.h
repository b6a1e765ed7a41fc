/*
 * Declaring queues, exchanges and bindings with RabbitMQ's checks and
 * texts, for everything that declares them: the AMQP channel and the
 * definitions import (definitions.c).  What only a channel has stays with
 * it: passive declares, server-named queues, the last declared queue, the
 * reserved "amq." prefix for queue names (an exported amq.gen- queue must
 * import), and the exclusive ownership of an existing queue.
 *
 * Each returns 0, or an AMQP reply code with err filled and nothing
 * created.  Argument tables are raw and already validated
 * (ftable_validate).
 */
#ifndef WARREN_DECLARE_H
#define WARREN_DECLARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exchange.h"
#include "wire.h"

struct amqp_error;
struct field_value;
struct queue;
struct vhost;

struct queue_decl {
	bool durable, exclusive, auto_delete;
	uint64_t owner_conn;		/* exclusive: the owner's connection id */
	uint64_t store_qid;		/* durable: keep this id; 0: a fresh one */
	struct bytes arguments;
	bool restoring;			/* from definitions: the vhost's
					 * max-queues does not apply */
};

/*
 * Queue name in vh: an existing one must be equivalent (durable,
 * auto_delete and the arguments RabbitMQ compares) and is returned as it
 * is; a new one is created once its arguments pass queue_args_parse.
 */
int declare_queue(struct vhost *vh, struct bytes name,
    const struct queue_decl *d, struct queue **out, struct amqp_error *err);

struct exchange_decl {
	struct bytes type;		/* "direct", "fanout", "topic", "headers" */
	bool durable, auto_delete, internal;
	struct bytes arguments;
	bool restoring;			/* from definitions: reload its state */
};

/*
 * Exchange name in vh, in RabbitMQ's order of checks: the type (unknown:
 * a connection-level COMMAND_INVALID), the default exchange, equivalence
 * of an existing one (type, flags, alternate-exchange), the reserved
 * "amq." prefix, the arguments.
 */
int declare_exchange(struct vhost *vh, struct bytes name,
    const struct exchange_decl *d, struct exchange **out,
    struct amqp_error *err);

/*
 * Bind x to dest (a struct queue or struct exchange, by kind) unless that
 * binding exists; the default exchange is refused at either end, and a
 * headers exchange checks x-match.
 */
int declare_binding(struct exchange *x, enum binding_dest kind, void *dest,
    struct bytes key, struct bytes args, struct amqp_error *err);

/* What x's type checks of a binding (headers: x-match; x-consistent-hash:
 * the key is a weight). */
int declare_binding_args_valid(struct exchange *x, struct bytes key,
    struct bytes args, struct amqp_error *err);

/* RabbitMQ's name for a field type, as its error texts print it. */
const char *declare_type_name(char type);
/*
 * A field value as RabbitMQ's texts show it: strings bare (quoted=false) or
 * as Erlang binaries <<"...">> (quoted=true); numbers and booleans plainly.
 */
void declare_format_value(const struct field_value *v, bool quoted,
    char *buf, size_t len);

#endif
