/*
 * The exchange class (declare, delete, bind, unbind) and queue.bind /
 * queue.unbind, with RabbitMQ's checks and reply codes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "exchange.h"
#include "field_table.h"
#include "log.h"
#include "method.h"
#include "queue.h"
#include "vhost.h"

bool headers_xmatch_valid(const struct field_table *args);

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

static const char *yesno(bool b)
{
	return b ? "true" : "false";
}

/* RabbitMQ's name for a field type, as its error texts print it. */
static const char *field_type_name(char type)
{
	switch (type) {
	case 'S': return "longstr";
	case 'x': return "binary";
	case 'I': return "signedint";
	case 'i': return "unsignedint";
	case 'b': return "byte";
	case 'B': return "unsignedbyte";
	case 's': return "short";
	case 'u': return "unsignedshort";
	case 'l': case 'L': return "long";
	case 'f': return "float";
	case 'd': return "double";
	case 'D': return "decimal";
	case 't': return "bool";
	case 'T': return "timestamp";
	case 'F': return "table";
	case 'A': return "array";
	case 'V': return "void";
	}
	return "unknown";
}

/*
 * A field value as RabbitMQ's texts show it: strings bare (quoted=false) or
 * as Erlang binaries <<"...">> (quoted=true); numbers and booleans plainly.
 */
static void format_field_value(const struct field_value *v, bool quoted,
    char *buf, size_t len)
{
	switch (v->type) {
	case 'S':
	case 'x':
		snprintf(buf, len, quoted ? "<<\"%.*s\">>" : "%.*s",
		    (int)(v->v.str.len > 200 ? 200 : v->v.str.len),
		    (const char *)v->v.str.ptr);
		return;
	case 'b': case 's': case 'I': case 'l':
		snprintf(buf, len, "%lld", (long long)v->v.i);
		return;
	case 'L':
		snprintf(buf, len, "%lld", (long long)(int64_t)v->v.u);
		return;
	case 'B': case 'u': case 'i': case 'T':
		snprintf(buf, len, "%llu", (unsigned long long)v->v.u);
		return;
	case 't':
		snprintf(buf, len, "%s", v->v.b ? "true" : "false");
		return;
	case 'f':
		snprintf(buf, len, "%g", (double)v->v.f);
		return;
	case 'd':
		snprintf(buf, len, "%g", v->v.d);
		return;
	case 'V':
		snprintf(buf, len, "undefined");
		return;
	}
	snprintf(buf, len, "...");
}

/*
 * Of an exchange's arguments RabbitMQ compares only alternate-exchange on
 * redeclare: equal when both are absent or the values are equal (a
 * longstr and a binary with the same bytes are).
 */
static int check_alternate_equivalent(struct exchange *x, struct bytes raw,
    struct amqp_error *err)
{
	struct field_table *t = ftable_decode(raw);
	const struct field_value *v = ftable_get(t, "alternate-exchange");
	char got[256];
	int rc = 0;

	if (v == NULL && x->alternate == NULL)
		goto done;
	if (v != NULL)
		format_field_value(v, false, got, sizeof(got));
	if (v == NULL)
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "inequivalent arg 'alternate-exchange' for exchange '%s' in "
		    "vhost '%s': received none but current is the value '%s' of "
		    "type 'longstr'", x->name, x->vh->name, x->alternate);
	else if (x->alternate == NULL)
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "inequivalent arg 'alternate-exchange' for exchange '%s' in "
		    "vhost '%s': received the value '%s' of type '%s' but current "
		    "is none", x->name, x->vh->name, got,
		    field_type_name(v->type));
	else if (!((v->type == 'S' || v->type == 'x') &&
	    bytes_eq(v->v.str, bytes_str(x->alternate))))
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "inequivalent arg 'alternate-exchange' for exchange '%s' in "
		    "vhost '%s': received '%s' but current is '%s'", x->name,
		    x->vh->name, got, x->alternate);
done:
	ftable_free(t);
	return rc;
}

static int check_equivalent(struct exchange *x, const struct exchange_type *type,
    const struct amqp_exchange_declare *a, struct amqp_error *err)
{
	const char *what = NULL;
	bool got = false, have = false;

	if (type != x->type)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "inequivalent arg 'type' for exchange '%s' in vhost '%s': "
		    "received '%.*s' but current is '%s'", x->name, x->vh->name,
		    BYTES_ARG(a->type), x->type->name);
	if (a->durable != x->durable)
		what = "durable", got = a->durable, have = x->durable;
	else if (a->auto_delete != x->auto_delete)
		what = "auto_delete", got = a->auto_delete, have = x->auto_delete;
	else if (a->internal != x->internal)
		what = "internal", got = a->internal, have = x->internal;
	if (what)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "inequivalent arg '%s' for exchange '%s' in vhost '%s': "
		    "received '%s' but current is '%s'", what, x->name,
		    x->vh->name, yesno(got), yesno(have));
	return check_alternate_equivalent(x, a->arguments, err);
}

struct exchange_declare_ctx {
	struct bytes name;
	struct vhost *vh;
};

/* The alternate-exchange argument, validated; *ae NULL when absent. */
static int parse_arguments(struct exchange_declare_ctx *c, struct bytes raw,
    char **ae, struct amqp_error *err)
{
	struct field_table *t = ftable_decode(raw);
	const struct field_value *v = ftable_get(t, "alternate-exchange");
	int rc = 0;

	*ae = NULL;
	if (v && v->type != 'S')
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid type '%s' for arg 'alternate-exchange' in exchange "
		    "'%.*s' in vhost '%s'", field_type_name(v->type),
		    BYTES_ARG(c->name), c->vh->name);
	else if (v)
		*ae = bytes_strdup(v->v.str);
	ftable_free(t);
	return rc;
}

int chan_exchange_declare(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	const struct amqp_exchange_declare *a = &m->a.exchange_declare;
	struct amqp_method ok = { .id = AMQP_exchange_declare_ok };
	struct vhost *vh = ch->conn->vh;
	const struct exchange_type *type;
	struct exchange *x;
	char *ae;
	int rc;

	/* RabbitMQ checks the type first, even for the default exchange. */
	type = exchange_type_find(a->type);
	if (!a->passive && type == NULL) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_COMMAND_INVALID,
		    "unknown exchange type '%.*s'", BYTES_ARG(a->type));
	}
	if ((rc = refuse_default(a->exchange, err)) != 0)
		return rc;
	x = vhost_find_exchange(vh, a->exchange);
	if (a->passive) {
		if (x == NULL)
			return chan_find_exchange(ch, a->exchange, &x, err);
	} else {
		if (x) {
			if ((rc = check_equivalent(x, type, a, err)) != 0)
				return rc;
		} else {
			if (a->exchange.len >= 4 &&
			    memcmp(a->exchange.ptr, "amq.", 4) == 0)
				return amqp_fail(err, AMQP_ACCESS_REFUSED,
				    "exchange name '%.*s' contains reserved "
				    "prefix 'amq.*'", BYTES_ARG(a->exchange));
			struct exchange_declare_ctx c = { a->exchange, vh };

			if ((rc = parse_arguments(&c, a->arguments, &ae, err)) != 0)
				return rc;
			x = vhost_add_exchange(vh, a->exchange, type);
			x->durable = a->durable;
			x->auto_delete = a->auto_delete;
			x->internal = a->internal;
			x->alternate = ae;
			if (a->arguments.len) {
				x->arguments = xmalloc(a->arguments.len);
				memcpy(x->arguments, a->arguments.ptr,
				    a->arguments.len);
				x->arguments_len = a->arguments.len;
			}
		}
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

/* The x-match argument of a headers binding, checked as RabbitMQ does. */
static int check_xmatch(struct bytes args, struct amqp_error *err)
{
	struct field_table *t = ftable_decode(args);
	const struct field_value *v = ftable_get(t, "x-match");
	char val[256];
	int rc = 0;

	if (v && !headers_xmatch_valid(t)) {
		format_field_value(v, true, val, sizeof(val));
		if (v->type == 'S')
			rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "Invalid x-match field value %s; expected all, any, "
			    "all-with-x, or any-with-x", val);
		else
			rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "Invalid x-match field type %s (value %s); expected "
			    "longstr", field_type_name(v->type), val);
	}
	ftable_free(t);
	return rc;
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
	if (source->type == &exchange_headers &&
	    (rc = check_xmatch(args, err)) != 0)
		return rc;
	if (dest_q && (rc = chan_check_exclusive(ch, dest_q, err)) != 0)
		return rc;
	if (exchange_find_binding(source, kind, dest, key, args) == NULL)
		exchange_bind(source, kind, dest, key, args);
	return 0;
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
