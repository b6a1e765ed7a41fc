/*
 * Vhost and user limits, checked where RabbitMQ checks them and refused
 * with its codes and texts.  Counting walks the connections, and only
 * when a limit is set: opening connections and channels is rare next to
 * messages, and a counter kept in step with every close path is a bug
 * waiting to happen.
 */
#include <stdio.h>
#include <string.h>

#include "amqp.h"
#include "amqp_error.h"
#include "broker.h"
#include "config.h"
#include "connection.h"
#include "resource_limits.h"
#include "strmap.h"
#include "users.h"
#include "vhost.h"

/* Connections open in vh, or authenticated as user (either may be NULL). */
static uint64_t count_open(struct broker *b, const struct vhost *vh,
    const char *user, uint64_t *channels)
{
	struct conn *c;
	uint64_t n = 0;

	*channels = 0;
	TAILQ_FOREACH(c, &b->conns, link) {
		if (c->state != CONN_RUNNING || c->vh == NULL)
			continue;
		if ((vh && c->vh != vh) || (user && strcmp(c->user, user) != 0))
			continue;
		n++;
		*channels += c->n_channels;
	}
	return n;
}

int limits_check_connection(struct conn *c, struct vhost *vh,
    struct amqp_error *err)
{
	struct user *u = userdb_find(c->broker->users, bytes_str(c->user));
	uint32_t node_max = c->broker->cfg->connection_max;
	uint64_t channels;

	if (c->broker->n_open_conns >= node_max)
		return amqp_fail(err, AMQP_NOT_ALLOWED, "connection refused: "
		    "node connection limit (%u) is reached", node_max);
	if (vh->max_connections >= 0 && count_open(c->broker, vh, NULL,
	    &channels) >= (uint64_t)vh->max_connections)
		return amqp_fail(err, AMQP_NOT_ALLOWED, "access to vhost '%s' "
		    "refused for user '%s': connection limit (%lld) is reached",
		    vh->name, c->user, (long long)vh->max_connections);
	if (u && u->max_connections >= 0 && count_open(c->broker, NULL,
	    c->user, &channels) >= (uint64_t)u->max_connections)
		return amqp_fail(err, AMQP_NOT_ALLOWED, "connection refused for "
		    "user '%s': user connection limit (%lld) is reached",
		    c->user, (long long)u->max_connections);
	return 0;
}

int limits_check_channel(struct conn *c, struct amqp_error *err)
{
	struct user *u = userdb_find(c->broker->users, bytes_str(c->user));
	uint64_t channels;

	if (u == NULL || u->max_channels < 0)
		return 0;
	count_open(c->broker, NULL, c->user, &channels);
	if (channels < (uint64_t)u->max_channels)
		return 0;
	err->connection_level = true;
	return amqp_fail(err, AMQP_NOT_ALLOWED, "number of channels opened "
	    "for user '%s' has reached the maximum allowed user limit of "
	    "(%lld)", c->user, (long long)u->max_channels);
}

int limits_check_queue(struct vhost *vh, const char *name,
    struct amqp_error *err)
{
	if (vh->max_queues < 0 ||
	    strmap_count(vh->queues) < (uint64_t)vh->max_queues)
		return 0;
	return amqp_fail(err, AMQP_PRECONDITION_FAILED, "cannot declare queue "
	    "'%s': queue limit in vhost '%s' (%lld) is reached", name,
	    vh->name, (long long)vh->max_queues);
}

/* ---- names and JSON ------------------------------------------------------ */

struct limit_name {
	const char *name;
	size_t offset;
};

static const struct limit_name vhost_limits[] = {
	{ "max-connections", offsetof(struct vhost, max_connections) },
	{ "max-queues", offsetof(struct vhost, max_queues) },
};

static const struct limit_name user_limits[] = {
	{ "max-connections", offsetof(struct user, max_connections) },
	{ "max-channels", offsetof(struct user, max_channels) },
};

#define N_LIMITS 2

static int64_t *field(void *obj, const struct limit_name *names,
    const char *name)
{
	for (size_t i = 0; i < N_LIMITS; i++)
		if (strcmp(names[i].name, name) == 0)
			return (int64_t *)((char *)obj + names[i].offset);
	return NULL;
}

int64_t *limits_vhost_field(struct vhost *vh, const char *name)
{
	return field(vh, vhost_limits, name);
}

int64_t *limits_user_field(struct user *u, const char *name)
{
	return field(u, user_limits, name);
}

static json_t *to_json(const void *obj, const struct limit_name *names)
{
	json_t *o = json_object();

	for (size_t i = 0; i < N_LIMITS; i++) {
		int64_t v = *(const int64_t *)((const char *)obj +
		    names[i].offset);

		if (v >= 0)
			json_object_set_new(o, names[i].name, json_integer(v));
	}
	return o;
}

json_t *limits_vhost_json(const struct vhost *vh)
{
	return to_json(vh, vhost_limits);
}

json_t *limits_user_json(const struct user *u)
{
	return to_json(u, user_limits);
}

static bool from_json(void *obj, const struct limit_name *names, json_t *in,
    char *why, size_t len)
{
	int64_t values[N_LIMITS];
	const char *key;
	json_t *v;

	if (!json_is_object(in)) {
		snprintf(why, len, "limits must be a JSON object");
		return false;
	}
	for (size_t i = 0; i < N_LIMITS; i++)
		values[i] = -1;
	json_object_foreach(in, key, v) {
		size_t i = 0;

		while (i < N_LIMITS && strcmp(names[i].name, key) != 0)
			i++;
		if (i == N_LIMITS) {
			snprintf(why, len, "unknown limit '%s'", key);
			return false;
		}
		if (!json_is_integer(v)) {
			snprintf(why, len, "limit '%s' must be an integer", key);
			return false;
		}
		values[i] = json_integer_value(v) < 0 ? -1 :
		    json_integer_value(v);
	}
	for (size_t i = 0; i < N_LIMITS; i++)
		*(int64_t *)((char *)obj + names[i].offset) = values[i];
	return true;
}

bool limits_vhost_from_json(struct vhost *vh, json_t *obj, char *why,
    size_t len)
{
	return from_json(vh, vhost_limits, obj, why, len);
}

bool limits_user_from_json(struct user *u, json_t *obj, char *why,
    size_t len)
{
	return from_json(u, user_limits, obj, why, len);
}
