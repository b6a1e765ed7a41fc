/*
 * RabbitMQ's firehose: while a vhost traces (journal.h), every publish
 * and every delivery is also published to its amq.rabbitmq.trace (an
 * internal topic exchange) with routing key "publish.EXCHANGE" or
 * "deliver.QUEUE", the message's body, and the headers RabbitMQ's
 * rabbit_trace sets: exchange_name, routing_keys, properties (the
 * message's own, as a table), node, redelivered (deliveries), and
 * vhost, user, connection and channel.  Bind a queue to it with
 * "publish.#" or "deliver.#", as for RabbitMQ.
 */
#ifndef WARREN_FIREHOSE_H
#define WARREN_FIREHOSE_H

#include <stdbool.h>
#include <stdint.h>

struct conn;
struct exchange;
struct message;
struct queue;

/* msg was published to x over c's channel. */
void firehose_publish(struct exchange *x, const struct message *msg,
    struct conn *c, uint16_t channel);
/* msg was delivered from q to c's channel. */
void firehose_deliver(struct queue *q, const struct message *msg,
    bool redelivered, struct conn *c, uint16_t channel);

#endif
