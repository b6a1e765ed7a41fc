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
#include "queue.h"
#include "vhost.h"

#define BYTES_ARG(b) (int)(b).len, (const char *)(b).ptr

static int refuse_default(struct bytes name, struct amqp_error *err)
{
	if (name.len == 0)
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "operation not permitted on the default exchange");
	return 0;
}

int chan_find_exchange(struct channel *ch, struct bytes name,
    struct exchange **out, struct amqp_error *err)
{
	struct vhost *vh = ch->conn->vh;

	*out = vhost_find_exchange(vh, name);
	if (*out == NULL)
		return amqp_fail(err, AMQP_NOT_FOUND,
		    "no exchange '%.*s' in vhost '%s'", BYTES_ARG(name), vh->name);
	return 0;
}

int chan_exchange_declare(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_exchange_declare *a = &m->a.exchange_declare;
	struct amqp_method ok = { .id = AMQP_exchange_declare_ok };
	struct vhost *vh = ch->conn->vh;
	struct exchange *x;
	int rc;

	if (a->passive) {
		if ((rc = refuse_default(a->exchange, err)) != 0)
			return rc;
		if ((rc = chan_find_exchange(ch, a->exchange, &x, err)) != 0)
			return rc;
	} else {
		const struct exchange_decl d = {
			.type = a->type, .durable = a->durable,
			.auto_delete = a->auto_delete, .internal = a->internal,
			.arguments = a->arguments,
		};

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
	struct vhost *vh = ch->conn->vh;
	struct exchange *x;
	int rc;

	if ((rc = refuse_default(a->exchange, err)) != 0)
		return rc;
	if (a->exchange.len >= 4 && memcmp(a->exchange.ptr, "amq.", 4) == 0)
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "deletion of system exchange '%.*s' in vhost '%s' not allowed",
		    BYTES_ARG(a->exchange), vh->name);
	/* Deleting an exchange that does not exist succeeds, as in RabbitMQ. */
	if ((x = vhost_find_exchange(vh, a->exchange)) != NULL) {
		if (a->if_unused && x->n_bindings)
			return amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "exchange '%s' in vhost '%s' in use", x->name,
			    vh->name);
		vhost_remove_exchange(vh, x);
	}
	if (!a->no_wait)
		conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}

/*
 * Bind or unbind source to a queue or exchange: the shared body of
 * queue.bind/unbind and exchange.bind/unbind, in RabbitMQ's order of
 * checks: the queue name shortcut, the default exchange, the source, the
 * destination, the binding's arguments, exclusive access.  Unbinding what
 * is not bound succeeds, even when the source or destination is missing.
 */
static int do_binding(struct channel *ch, bool bind, enum binding_dest kind,
    struct bytes dest_name, struct bytes source_name, struct bytes key,
    struct bytes args, struct amqp_error *err)
{
	struct vhost *vh = ch->conn->vh;
	struct exchange *source, *dest_x = NULL;
	struct queue *dest_q = NULL;
	struct binding *b;
	void *dest;
	int rc;

	if (kind == DEST_QUEUE && dest_name.len == 0) {
		/* RabbitMQ: queue "" is the channel's last declared queue,
		 * and with it routing key "" is that queue's name. */
		dest_name = bytes_str(ch->last_queue);
		if (dest_name.len == 0)
			return amqp_fail(err, AMQP_NOT_FOUND,
			    "no previously declared queue");
		if (key.len == 0)
			key = dest_name;
	}
	if (kind == DEST_EXCHANGE &&
	    (rc = refuse_default(dest_name, err)) != 0)
		return rc;
	if ((rc = refuse_default(source_name, err)) != 0)
		return rc;
	source = vhost_find_exchange(vh, source_name);
	if (kind == DEST_QUEUE)
		dest = dest_q = vhost_find_queue(vh, dest_name);
	else
		dest = dest_x = vhost_find_exchange(vh, dest_name);
	if (!bind) {
		if (source == NULL || dest == NULL ||
		    (b = exchange_find_binding(source, kind, dest, key,
		    args)) == NULL)
			return 0;
		if (dest_q && (rc = chan_check_exclusive(ch, dest_q, err)) != 0)
			return rc;
		vhost_unbind(vh, b);
		return 0;
	}
	if (source == NULL)
		return chan_find_exchange(ch, source_name, &source, err);
	if (dest == NULL) {
		if (kind == DEST_EXCHANGE)
			return chan_find_exchange(ch, dest_name, &dest_x, err);
		return amqp_fail(err, AMQP_NOT_FOUND,
		    "no queue '%.*s' in vhost '%s'", BYTES_ARG(dest_name),
		    vh->name);
	}
	if ((rc = declare_binding_args_valid(source, args, err)) != 0)
		return rc;
	if (dest_q && (rc = chan_check_exclusive(ch, dest_q, err)) != 0)
		return rc;
	return declare_binding(source, kind, dest, key, args, err);
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
