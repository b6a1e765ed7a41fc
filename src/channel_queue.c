/*
 * The queue class: declare, delete, purge; bind/unbind on the default
 * exchange (refused, as RabbitMQ refuses it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "field_table.h"
#include "queue_args.h"
#include "log.h"
#include "method.h"
#include "vhost.h"


static bool has_reserved_prefix(struct bytes name)
{
	return name.len >= 4 && memcmp(name.ptr, "amq.", 4) == 0;
}

static const char *yesno(bool b)
{
	return b ? "true" : "false";
}

/* The arguments RabbitMQ compares on redeclare; others may differ. */
static const char *const compared_args[] = {
	"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes",
	"x-overflow", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"x-max-priority", "x-single-active-consumer", "x-queue-type",
	"x-consumer-timeout",
};

static int check_equivalent_args(struct queue *q, struct bytes given,
    struct amqp_error *err)
{
	struct field_table *now = ftable_decode((struct bytes){ q->arguments,
	    q->arguments_len });
	struct field_table *got = ftable_decode(given);
	const char *bad = NULL;

	for (size_t i = 0; i < sizeof(compared_args) / sizeof(compared_args[0]) &&
	    bad == NULL; i++) {
		const struct field_value *a = ftable_get(now, compared_args[i]);
		const struct field_value *b = ftable_get(got, compared_args[i]);

		if ((a == NULL) != (b == NULL) ||
		    (a && !fvalue_equivalent(a, b)))
			bad = compared_args[i];
	}
	ftable_free(now);
	ftable_free(got);
	if (bad)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "inequivalent arg '%s' for queue '%s' in vhost '%s'", bad,
		    q->name, q->vh->name);
	return 0;
}

/* An existing queue must be redeclared with the same properties. */
static int check_equivalent(struct queue *q,
    const struct amqp_queue_declare *a, struct amqp_error *err)
{
	const char *what = NULL;
	bool got = false, have = false;

	if (a->durable != q->durable)
		what = "durable", got = a->durable, have = q->durable;
	else if (a->auto_delete != q->auto_delete)
		what = "auto_delete", got = a->auto_delete, have = q->auto_delete;
	if (what)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "inequivalent arg '%s' for queue '%s' in vhost '%s': "
		    "received '%s' but current is '%s'", what, q->name,
		    q->vh->name, yesno(got), yesno(have));
	return check_equivalent_args(q, a->arguments, err);
}

int chan_check_exclusive(struct channel *ch, struct queue *q,
    struct amqp_error *err)
{
	if (q->exclusive && q->owner_conn != ch->conn->id)
		return amqp_fail(err, AMQP_RESOURCE_LOCKED,
		    "cannot obtain exclusive access to locked queue '%s' in "
		    "vhost '%s'. It could be originally declared on another "
		    "connection or the exclusive property value does not "
		    "match that of the original declaration.", q->name,
		    q->vh->name);
	return 0;
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
	q = vhost_find_queue(vh, name);
	if (q == NULL && a->passive)
		return amqp_fail(err, AMQP_NOT_FOUND, "no queue '%.*s' in vhost '%s'",
		    (int)name.len, (const char *)name.ptr, vh->name);
	if (q) {
		if ((rc = chan_check_exclusive(ch, q, err)) != 0)
			return rc;
		/* Redeclaring must not change exclusivity either way. */
		if (!a->passive && a->exclusive != q->exclusive)
			return amqp_fail(err, AMQP_RESOURCE_LOCKED,
			    "cannot obtain exclusive access to locked queue '%s' "
			    "in vhost '%s'. It could be originally declared on "
			    "another connection or the exclusive property value "
			    "does not match that of the original declaration.",
			    q->name, q->vh->name);
		if (!a->passive && (rc = check_equivalent(q, a, err)) != 0)
			return rc;
		queue_touch(q);
	} else {
		struct queue_args args;
		char *qname = bytes_strdup(name);

		rc = queue_args_parse(a->arguments, qname, vh->name, &args, err);
		free(qname);
		if (rc)
			return rc;
		q = vhost_add_queue(vh, name, &args);
		q->durable = a->durable;
		q->exclusive = a->exclusive;
		q->auto_delete = a->auto_delete;
		q->owner_conn = a->exclusive ? ch->conn->id : 0;
		if (a->arguments.len) {
			q->arguments = xmalloc(a->arguments.len);
			memcpy(q->arguments, a->arguments.ptr, a->arguments.len);
			q->arguments_len = a->arguments.len;
		}
	}
	snprintf(ch->last_queue, sizeof(ch->last_queue), "%s", q->name);
	if (!a->no_wait) {
		ok.a.queue_declare_ok.queue = bytes_str(q->name);
		ok.a.queue_declare_ok.message_count = q->count;
		ok.a.queue_declare_ok.consumer_count = q->n_consumers;
		conn_send_method(ch->conn, ch->number, &ok);
	}
	return 0;
}

/* Delete q, telling its consumers with basic.cancel. */
void chan_delete_queue(struct queue *q)
{
	struct consumer *c;

	while ((c = TAILQ_FIRST(&q->consumers)) != NULL)
		chan_consumer_cancelled(c);
	vhost_remove_queue(q->vh, q);
}

int chan_queue_delete(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_queue_delete *a = &m->a.queue_delete;
	struct amqp_method ok = { .id = AMQP_queue_delete_ok };
	struct bytes name = a->queue.len ? a->queue : bytes_str(ch->last_queue);
	struct queue *q = vhost_find_queue(ch->conn->vh, name);
	uint32_t count = 0;
	int rc;

	/* Deleting a queue that does not exist succeeds, as in RabbitMQ. */
	if (q) {
		if ((rc = chan_check_exclusive(ch, q, err)) != 0)
			return rc;
		if (a->if_unused && q->n_consumers)
			return amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "queue '%s' in vhost '%s' in use", q->name,
			    q->vh->name);
		if (a->if_empty && q->count)
			return amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "queue '%s' in vhost '%s' is not empty", q->name,
			    q->vh->name);
		count = q->count;
		chan_delete_queue(q);
	}
	if (!a->no_wait) {
		ok.a.queue_delete_ok.message_count = count;
		conn_send_method(ch->conn, ch->number, &ok);
	}
	return 0;
}

int chan_queue_purge(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_queue_purge *a = &m->a.queue_purge;
	struct amqp_method ok = { .id = AMQP_queue_purge_ok };
	struct queue *q;
	int rc;

	if ((rc = chan_find_queue(ch, a->queue, &q, err)) != 0)
		return rc;
	ok.a.queue_purge_ok.message_count = queue_purge(q);
	if (!a->no_wait)
		conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}
