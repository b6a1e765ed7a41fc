/*
 * Queue arguments, with RabbitMQ's names and checks: x-message-ttl,
 * x-expires, x-max-length, x-max-length-bytes, x-overflow,
 * x-dead-letter-exchange, x-dead-letter-routing-key, x-max-priority,
 * x-single-active-consumer, x-consumer-timeout, x-queue-type,
 * x-delivery-limit.
 */
#ifndef WARREN_QUEUE_ARGS_H
#define WARREN_QUEUE_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "dedup.h"
#include "wire.h"

struct amqp_error;

enum overflow { OVERFLOW_DROP_HEAD, OVERFLOW_REJECT_PUBLISH,
    OVERFLOW_REJECT_PUBLISH_DLX };

/* x-queue-type */
enum queue_kind { QUEUE_KIND_CLASSIC, QUEUE_KIND_STREAM };

struct queue_args {
	int64_t message_ttl;		/* ms; -1: none */
	int64_t expires;		/* ms; -1: never */
	int64_t max_length;		/* messages; -1: no limit */
	int64_t max_length_bytes;	/* body bytes; -1: no limit */
	enum overflow overflow;
	char *dlx;			/* NULL: no dead-lettering */
	char *dl_routing_key;		/* NULL: the message's own keys */
	uint8_t max_priority;		/* 0: not a priority queue */
	bool single_active_consumer;
	int64_t consumer_timeout;	/* ms; -1: the broker's default */
	enum queue_kind kind;
	int64_t max_age_ms;		/* x-max-age (streams); -1: none */
	int64_t max_segment_size;	/* x-stream-max-segment-size-bytes;
					 * -1: the default */
	int64_t delivery_limit;		/* x-delivery-limit: returns allowed;
					 * -1: no limit */
	struct dedup_args dedup;	/* x-message-deduplication and co. */
};

/*
 * Parse and check a queue.declare arguments table (raw, validated).
 * On error return AMQP_PRECONDITION_FAILED with a message naming the
 * argument, for queue `name` in vhost `vhost`.
 */
int queue_args_parse(struct bytes raw, const char *name, const char *vhost,
    struct queue_args *out, struct amqp_error *err);
void queue_args_free(struct queue_args *a);

/*
 * A message's expiration property as a TTL in ms: true and *ttl set, or
 * *ttl = -1 when absent; false when it is not a non-negative integer.
 */
bool expiration_parse(struct bytes expiration, bool present, int64_t *ttl);

/*
 * RabbitMQ's durations (x-max-age, stream offsets): an integer above 0 and
 * one unit of Y, M, D, h, m, s; false otherwise.
 */
bool duration_parse(struct bytes s, int64_t *ms);

#endif
