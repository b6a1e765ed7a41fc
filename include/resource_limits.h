/*
 * RabbitMQ's per-vhost limits (max-connections, max-queues) and per-user
 * limits (max-connections, max-channels), and the node's connection_max:
 * where they are checked, how they are named, and their JSON form (the
 * management API's /api/vhost-limits and /api/user-limits, and the
 * definitions file).  A limit is an int64: negative means none, 0 means
 * nothing is allowed, as in RabbitMQ.
 */
#ifndef WARREN_RESOURCE_LIMITS_H
#define WARREN_RESOURCE_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct amqp_error;
struct broker;
struct conn;
struct user;
struct vhost;

/* connection.open: the vhost's and the user's max-connections. */
int limits_check_connection(struct conn *c, struct vhost *vh,
    struct amqp_error *err);
/* channel.open: the user's max-channels over all its connections. */
int limits_check_channel(struct conn *c, struct amqp_error *err);
/* A new queue called name in vh: the vhost's max-queues. */
int limits_check_queue(struct vhost *vh, const char *name,
    struct amqp_error *err);

/*
 * The limit called name ("max-connections", ...) of vh or u, or NULL if
 * there is none by that name.
 */
int64_t *limits_vhost_field(struct vhost *vh, const char *name);
int64_t *limits_user_field(struct user *u, const char *name);
/* {"max-connections": 2, ...} of the limits set (an empty object: none). */
json_t *limits_vhost_json(const struct vhost *vh);
json_t *limits_user_json(const struct user *u);
/*
 * Set vh's or u's limits from an object like the above (unknown names and
 * non-integers refused; names absent are cleared).  false with why set.
 */
bool limits_vhost_from_json(struct vhost *vh, json_t *obj, char *why,
    size_t len);
bool limits_user_from_json(struct user *u, json_t *obj, char *why,
    size_t len);

#endif
