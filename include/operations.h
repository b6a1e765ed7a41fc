/*
 * Broker operations on a vhost's objects, for every front end: the AMQP
 * channel, the management API, definitions import.  Each rule (exclusive
 * ownership, if-unused / if-empty, the default and amq.* exchanges,
 * RabbitMQ's error texts) lives here once; declaring is declare.h's.
 *
 * Each returns 0 or an AMQP reply code with err filled.  `conn_id` is the
 * AMQP connection asking (exclusive queues belong to one), or OP_ADMIN for
 * front ends that act for an administrator (the management API), which
 * may touch any queue.  An object that does not exist is 404 NOT_FOUND
 * when must_exist, else success with nothing done (AMQP's delete and
 * unbind succeed on what is not there).
 */
#ifndef WARREN_OPERATIONS_H
#define WARREN_OPERATIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "exchange.h"
#include "wire.h"

struct amqp_error;
struct queue;
struct vhost;

#define OP_ADMIN 0

int op_find_queue(struct vhost *vh, struct bytes name, uint64_t conn_id,
    struct queue **out, struct amqp_error *err);
int op_find_exchange(struct vhost *vh, struct bytes name,
    struct exchange **out, struct amqp_error *err);
/* 403 for the default exchange (""), which no operation may name. */
int op_refuse_default(struct bytes name, struct amqp_error *err);
/* 405 RESOURCE_LOCKED when q is another connection's exclusive queue. */
int op_check_owner(const struct queue *q, uint64_t conn_id,
    struct amqp_error *err);

/* *count: the ready messages it held. */
int op_delete_queue(struct vhost *vh, struct bytes name, bool if_unused,
    bool if_empty, uint64_t conn_id, bool must_exist, uint32_t *count,
    struct amqp_error *err);
int op_purge_queue(struct vhost *vh, struct bytes name, uint64_t conn_id,
    uint32_t *count, struct amqp_error *err);
int op_delete_exchange(struct vhost *vh, struct bytes name, bool if_unused,
    bool must_exist, struct amqp_error *err);

/*
 * Bind (or unbind) source to a queue or exchange, in RabbitMQ's order of
 * checks: the default exchange, the source, the destination, the
 * binding's arguments, exclusive access.  Unbinding what is not bound
 * succeeds unless must_exist.
 */
int op_bind(struct vhost *vh, bool bind, enum binding_dest kind,
    struct bytes dest, struct bytes source, struct bytes key,
    struct bytes args, uint64_t conn_id, bool must_exist,
    struct amqp_error *err);

#endif
