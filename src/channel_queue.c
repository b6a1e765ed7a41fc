/*
 * The queue class: declare, delete, purge; bind/unbind on the default
 * exchange (refused, as RabbitMQ refuses it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "channel.h"
#include "declare.h"
#include "log.h"
#include "method.h"
#include "operations.h"
#include "vhost.h"


static bool has_reserved_prefix(struct bytes name)
{
	return name.len >= 4 && memcmp(name.ptr, "amq.", 4) == 0;
}

int chan_queue_declare(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_queue_declare *a = &m->a.queue_declare;
	struct amqp_method ok = { .id = AMQP_queue_declare_ok };
	struct vhost *vh = ch->conn->vh;
	struct bytes name = a->queue;
	char generated[64];
	struct queue *q;
	bool existed = false;
	int rc;

	if (name.len == 0 && a->passive)
		name = bytes_str(ch->last_queue);
	if (chan_is_reply_to(name)) {
		/* The direct reply-to pseudo-queue "exists", as in RabbitMQ. */
		ok.a.queue_declare_ok.queue = name;
		ok.a.queue_declare_ok.consumer_count = 1;
		if (!a->no_wait)
			conn_send_method(ch->conn, ch->number, &ok);
		return 0;
	}
	if (name.len == 0) {
		chan_random_name("amq.gen-", generated, sizeof(generated));
		name = bytes_str(generated);
	} else if (!a->passive && has_reserved_prefix(name)) {
		/* Even redeclaring one's own amq.gen- queue: RabbitMQ's 403. */
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "queue name '%.*s' contains reserved prefix 'amq.*'",
		    (int)name.len, (const char *)name.ptr);
	}
	/* A passive declare checks no permission (RabbitMQ 3.10). */
	if (!a->passive &&
	    (rc = chan_check_access(ch, ACCESS_CONFIGURE, true, name, err)) != 0)
		return rc;
	q = vhost_find_queue(vh, name);
	if (q == NULL && a->passive)
		return amqp_fail(err, AMQP_NOT_FOUND, "no queue '%.*s' in vhost '%s'",
		    (int)name.len, (const char *)name.ptr, vh->name);
	if (q) {
		if ((rc = op_check_owner(q, ch->conn->id, err)) != 0)
			return rc;
		/* Redeclaring must not change exclusivity either way. */
		if (!a->passive && a->exclusive != q->exclusive)
			return amqp_fail(err, AMQP_RESOURCE_LOCKED,
			    "cannot obtain exclusive access to locked queue '%s' "
			    "in vhost '%s'. It could be originally declared on "
			    "another connection or the exclusive property value "
			    "does not match that of the original declaration.",
			    q->name, q->vh->name);
		existed = true;
	}
	if (!a->passive) {
		const struct queue_decl d = {
			.durable = a->durable, .exclusive = a->exclusive,
			.auto_delete = a->auto_delete,
			.owner_conn = ch->conn->id, .arguments = a->arguments,
		};

		if ((rc = declare_queue(vh, name, &d, &q, err)) != 0)
			return rc;
	}
	if (existed)
		queue_touch(q);
	snprintf(ch->last_queue, sizeof(ch->last_queue), "%s", q->name);
	if (!a->no_wait) {
		struct queue_stats st;

		queue_stats(q, &st);
		ok.a.queue_declare_ok.queue = bytes_str(q->name);
		ok.a.queue_declare_ok.message_count = (uint32_t)st.messages;
		ok.a.queue_declare_ok.consumer_count = st.consumers;
		conn_send_method(ch->conn, ch->number, &ok);
	}
	return 0;
}

int chan_queue_delete(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_queue_delete *a = &m->a.queue_delete;
	struct amqp_method ok = { .id = AMQP_queue_delete_ok };
	struct bytes name = a->queue.len ? a->queue : bytes_str(ch->last_queue);
	uint32_t count;
	int rc;

	if ((rc = chan_check_access(ch, ACCESS_CONFIGURE, true, name, err)) != 0)
		return rc;
	/* Deleting a queue that does not exist succeeds, as in RabbitMQ. */
	rc = op_delete_queue(ch->conn->vh, name, a->if_unused, a->if_empty,
	    ch->conn->id, false, &count, err);
	if (rc || a->no_wait)
		return rc;
	ok.a.queue_delete_ok.message_count = count;
	conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}

int chan_queue_purge(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_queue_purge *a = &m->a.queue_purge;
	struct amqp_method ok = { .id = AMQP_queue_purge_ok };
	struct queue *q;
	int rc;

	if ((rc = chan_find_queue(ch, a->queue, ACCESS_READ, &q, err)) != 0)
		return rc;
	if ((rc = queue_refuse(q, QUEUE_PURGE, err)) != 0)
		return rc;
	ok.a.queue_purge_ok.message_count = queue_purge(q);
	if (!a->no_wait)
		conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}
