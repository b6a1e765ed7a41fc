/*
 * The exchange class (declare, delete, bind, unbind) and queue.bind /
 * queue.unbind, with RabbitMQ's checks and reply codes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "channel.h"
#include "declare.h"
#include "exchange.h"
#include "field_table.h"
#include "log.h"
#include "method.h"
#include "operations.h"
#include "queue.h"
#include "vhost.h"


int chan_exchange_declare(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_exchange_declare *a = &m->a.exchange_declare;
	struct amqp_method ok = { .id = AMQP_exchange_declare_ok };
	struct vhost *vh = ch->conn->vh;
	struct exchange *x;
	int rc;

	if (a->passive) {
		if ((rc = op_refuse_default(a->exchange, err)) != 0)
			return rc;
		if ((rc = op_find_exchange(vh, a->exchange, &x, err)) != 0)
			return rc;
	} else {
		const struct exchange_decl d = {
			.type = a->type, .durable = a->durable,
			.auto_delete = a->auto_delete, .internal = a->internal,
			.arguments = a->arguments,
		};

		/* Before the type and equivalence checks, as RabbitMQ. */
		if (a->exchange.len && (rc = chan_check_access(ch,
		    ACCESS_CONFIGURE, false, a->exchange, err)) != 0)
			return rc;
		if ((rc = declare_exchange(vh, a->exchange, &d, &x, err)) != 0)
			return rc;
	}
	if (!a->no_wait)
		conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}

int chan_exchange_delete(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_exchange_delete *a = &m->a.exchange_delete;
	struct amqp_method ok = { .id = AMQP_exchange_delete_ok };
	int rc;

	if (a->exchange.len && (rc = chan_check_access(ch, ACCESS_CONFIGURE,
	    false, a->exchange, err)) != 0)
		return rc;
	/* Deleting an exchange that does not exist succeeds, as in RabbitMQ. */
	rc = op_delete_exchange(ch->conn->vh, a->exchange, a->if_unused, false,
	    err);
	if (rc == 0 && !a->no_wait)
		conn_send_method(ch->conn, ch->number, &ok);
	return rc;
}

/*
 * queue.bind/unbind and exchange.bind/unbind: the channel's own shortcut
 * (queue "" is the last declared queue, and with it routing key "" is
 * that queue's name), then the broker operation.  Unbinding what is not
 * bound succeeds, even when the source or destination is missing.
 */
static int do_binding(struct channel *ch, bool bind, enum binding_dest kind,
    struct bytes dest_name, struct bytes source_name, struct bytes key,
    struct bytes args, struct amqp_error *err)
{
	int rc;

	if (kind == DEST_QUEUE && dest_name.len == 0) {
		dest_name = bytes_str(ch->last_queue);
		if (dest_name.len == 0)
			return amqp_fail(err, AMQP_NOT_FOUND,
			    "no previously declared queue");
		if (key.len == 0)
			key = dest_name;
	}
	/* RabbitMQ's order: write on the destination, the default exchange's
	 * refusal (in op_bind), read on the source. */
	if ((rc = chan_check_access(ch, ACCESS_WRITE, kind == DEST_QUEUE,
	    dest_name, err)) != 0)
		return rc;
	if (source_name.len && (kind != DEST_EXCHANGE || dest_name.len) &&
	    (rc = chan_check_access(ch, ACCESS_READ, false, source_name,
	    err)) != 0)
		return rc;
	if ((rc = chan_check_topic(ch, vhost_find_exchange(ch->conn->vh,
	    source_name), ACCESS_READ, key, err)) != 0)
		return rc;
	return op_bind(ch->conn->vh, bind, kind, dest_name, source_name, key,
	    args, ch->conn->id, false, err);
}

int chan_queue_bind(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_queue_bind_ok };
	int rc;

	if (m->id == AMQP_queue_bind) {
		const struct amqp_queue_bind *a = &m->a.queue_bind;

		rc = do_binding(ch, true, DEST_QUEUE, a->queue, a->exchange,
		    a->routing_key, a->arguments, err);
		if (rc || a->no_wait)
			return rc;
	} else {
		const struct amqp_queue_unbind *a = &m->a.queue_unbind;

		rc = do_binding(ch, false, DEST_QUEUE, a->queue, a->exchange,
		    a->routing_key, a->arguments, err);
		if (rc)
			return rc;
		ok.id = AMQP_queue_unbind_ok;
	}
	conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}

int chan_exchange_bind(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_exchange_bind_ok };
	bool bind = m->id == AMQP_exchange_bind;
	const struct amqp_exchange_bind *a = &m->a.exchange_bind;
	const struct amqp_exchange_unbind *u = &m->a.exchange_unbind;
	int rc;

	if (bind)
		rc = do_binding(ch, true, DEST_EXCHANGE, a->destination,
		    a->source, a->routing_key, a->arguments, err);
	else
		rc = do_binding(ch, false, DEST_EXCHANGE, u->destination,
		    u->source, u->routing_key, u->arguments, err);
	if (rc || (bind ? a->no_wait : u->no_wait))
		return rc;
	if (!bind)
		ok.id = AMQP_exchange_unbind_ok;
	conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}
