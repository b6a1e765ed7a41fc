/*
 * Permission checks on AMQP operations, as RabbitMQ makes them: the
 * user's configure, write or read regular expression for the vhost must
 * match the resource's name (the default exchange is "amq.default").  A
 * refusal is 403 ACCESS_REFUSED, channel-level, naming the resource and
 * the user, and is logged.
 */
#include <stdio.h>
#include <string.h>

#include "amqp.h"
#include "amqp_error.h"
#include "broker.h"
#include "channel.h"
#include "connection.h"
#include "exchange.h"
#include "log.h"
#include "users.h"
#include "vhost.h"

static const char *const access_names[] = {
	[ACCESS_CONFIGURE] = "configure",
	[ACCESS_WRITE] = "write",
	[ACCESS_READ] = "read",
};

int chan_check_access(struct channel *ch, enum access what, bool queue,
    struct bytes name, struct amqp_error *err)
{
	struct conn *c = ch->conn;
	char res[256];

	if (!queue && name.len == 0)
		snprintf(res, sizeof(res), "amq.default");
	else
		snprintf(res, sizeof(res), "%.*s", BYTES_ARG(name));
	if (userdb_permitted(c->broker->users, c->user, c->vh->name, what, res))
		return 0;
	log_warning("conn %llu: user '%s' refused %s access to %s '%s' in "
	    "vhost '%s'", (unsigned long long)c->id, c->user,
	    access_names[what], queue ? "queue" : "exchange", res, c->vh->name);
	return amqp_fail(err, AMQP_ACCESS_REFUSED,
	    "access to %s '%s' in vhost '%s' refused for user '%s'",
	    queue ? "queue" : "exchange", res, c->vh->name, c->user);
}

int chan_check_topic(struct channel *ch, const struct exchange *x,
    enum access what, struct bytes key, struct amqp_error *err)
{
	struct conn *c = ch->conn;
	struct user_db *db = c->broker->users;
	char k[256];

	if (x == NULL || x->type != &exchange_topic || db->n_topic_perms == 0)
		return 0;
	snprintf(k, sizeof(k), "%.*s", BYTES_ARG(key));
	if (userdb_topic_permitted(db, c->user, c->vh->name, x->name, what, k))
		return 0;
	log_warning("conn %llu: user '%s' refused %s access to topic '%s' in "
	    "exchange '%s' in vhost '%s'", (unsigned long long)c->id, c->user,
	    access_names[what], k, x->name, c->vh->name);
	return amqp_fail(err, AMQP_ACCESS_REFUSED, "access to topic '%s' in "
	    "exchange '%s' in vhost '%s' refused for user '%s'", k, x->name,
	    c->vh->name, c->user);
}

int chan_check_publish(struct channel *ch, struct bytes name,
    struct amqp_error *err)
{
	uint64_t gen = ch->conn->broker->users->generation;
	int rc;

	if (ch->write_ok_valid && ch->write_ok_gen == gen &&
	    ch->write_ok_len == name.len &&
	    memcmp(ch->write_ok, name.ptr, name.len) == 0)
		return 0;
	if ((rc = chan_check_access(ch, ACCESS_WRITE, false, name, err)) != 0)
		return rc;
	memcpy(ch->write_ok, name.ptr, name.len);
	ch->write_ok_len = (uint8_t)name.len;
	ch->write_ok_gen = gen;
	ch->write_ok_valid = true;
	return 0;
}
