/*
 * queue.declare, exchange.declare and binding without the channel: the
 * checks, the equivalence rules and the texts RabbitMQ uses, shared by
 * the channel handlers and the definitions import.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"
#include "broker.h"
#include "config.h"
#include "connection.h"
#include "dedup.h"
#include "delayed.h"
#include "declare.h"
#include "exchange.h"
#include "field_table.h"
#include "log.h"
#include "queue.h"
#include "queue_args.h"
#include "resource_limits.h"
#include "store.h"
#include "vhost.h"

/* exchange_headers.c */


static const char *yesno(bool b)
{
	return b ? "true" : "false";
}

/* A declare's flag and the existing object's. */
struct flag {
	const char *what;
	bool got, have;
};

static int flags_equivalent(const struct flag *f, size_t n, const char *kind,
    const char *name, const char *vhost, struct amqp_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].got != f[i].have)
			return amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "inequivalent arg '%s' for %s '%s' in vhost '%s': "
			    "received '%s' but current is '%s'", f[i].what, kind,
			    name, vhost, yesno(f[i].got), yesno(f[i].have));
	return 0;
}

static int refuse_default(struct amqp_error *err)
{
	return amqp_fail(err, AMQP_ACCESS_REFUSED,
	    "operation not permitted on the default exchange");
}

const char *declare_type_name(char type)
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

void declare_format_value(const struct field_value *v, bool quoted,
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

/* The raw table kept for redeclare checks; NULL when empty. */
static uint8_t *args_copy(struct bytes args, uint32_t *len)
{
	uint8_t *p;

	*len = args.len;
	if (args.len == 0)
		return NULL;
	p = xmalloc(args.len);
	memcpy(p, args.ptr, args.len);
	return p;
}

/*
 * The dedup cache of a new queue or exchange: kept on disk for a durable
 * one (reloaded when restoring from definitions), else in memory.
 */
static struct dedup_cache *open_dedup(struct vhost *vh, const char *kind,
    const char *name, const struct dedup_args *a, bool durable,
    bool restoring)
{
	struct broker *b = vh->broker;
	char path[4096];

	if (!durable || b->store == NULL)
		return dedup_new(a, NULL, NULL, false);
	dedup_path(b->cfg->data_dir, kind, vh->name, name, path, sizeof(path));
	return dedup_new(a, b->store, path, restoring);
}

/* ---- queues ------------------------------------------------------------- */

/* The arguments RabbitMQ compares on redeclare; others may differ. */
static const char *const compared_args[] = {
	"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes",
	"x-overflow", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"x-max-priority", "x-single-active-consumer", "x-queue-type",
	"x-consumer-timeout", "x-max-age", "x-stream-max-segment-size-bytes",
	"x-delivery-limit",
};

static int queue_args_equivalent(struct queue *q, struct bytes given,
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

static int queue_equivalent(struct queue *q, const struct queue_decl *d,
    struct amqp_error *err)
{
	const struct flag f[] = {
		{ "durable", d->durable, q->durable },
		{ "auto_delete", d->auto_delete, q->auto_delete },
	};
	int rc;

	if ((rc = flags_equivalent(f, sizeof(f) / sizeof(f[0]), "queue",
	    q->name, q->vh->name, err)) != 0)
		return rc;
	return queue_args_equivalent(q, d->arguments, err);
}

/*
 * Names are C strings inside the broker (and in the definitions file), so
 * one with a NUL byte cannot be created: it would be stored under one name
 * and looked up, and removed, under another.
 */
static int refuse_nul(const char *what, struct amqp_error *err)
{
	return amqp_fail(err, AMQP_PRECONDITION_FAILED,
	    "%s name contains a NUL byte", what);
}

int declare_queue(struct vhost *vh, struct bytes name,
    const struct queue_decl *d, struct queue **out, struct amqp_error *err)
{
	struct queue_args args;
	struct queue *q;
	char *qname;
	int rc;

	if ((q = vhost_find_queue(vh, name)) != NULL) {
		if ((rc = queue_equivalent(q, d, err)) != 0)
			return rc;
		*out = q;
		return 0;
	}
	if (memchr(name.ptr, '\0', name.len) != NULL)
		return refuse_nul("queue", err);
	qname = bytes_strdup(name);
	if (!d->restoring && (rc = limits_check_queue(vh, qname, err)) != 0) {
		free(qname);
		return rc;
	}
	rc = queue_args_parse(d->arguments, qname, vh->name, &args, err);
	if (rc == 0 && args.kind == QUEUE_KIND_STREAM)
		rc = queue_stream.check_declare(d->arguments, d->durable,
		    d->exclusive,
		    d->auto_delete, qname, vh->name, err);
	free(qname);
	if (rc) {
		queue_args_free(&args);
		return rc;
	}
	q = vhost_add_queue(vh, name, &args);
	q->durable = d->durable;
	q->exclusive = d->exclusive;
	q->auto_delete = d->auto_delete;
	q->owner_conn = d->exclusive ? d->owner_conn : 0;
	/* Exclusive queues go with their connection, even durable. */
	if (q->durable && !q->exclusive) {
		q->store_qid = d->store_qid ? d->store_qid : store_new_qid();
		broker_durable_changed(vh->broker);
	}
	q->arguments = args_copy(d->arguments, &q->arguments_len);
	if (q->args.dedup.on)
		q->dedup = open_dedup(vh, "queue", q->name, &q->args.dedup,
		    q->store_qid != 0, d->restoring);
	if (q->type->open && (rc = q->type->open(q, err)) != 0) {
		vhost_remove_queue(vh, q);
		return rc;
	}
	*out = q;
	return 0;
}

/* ---- exchanges ---------------------------------------------------------- */

/*
 * Of an exchange's arguments RabbitMQ compares only alternate-exchange on
 * redeclare: equal when both are absent or the values are equal (a
 * longstr and a binary with the same bytes are).
 */
static int alternate_equivalent(struct exchange *x, struct bytes raw,
    struct amqp_error *err)
{
	struct field_table *t = ftable_decode(raw);
	const struct field_value *v = ftable_get(t, "alternate-exchange");
	char got[256];
	int rc = 0;

	if (v == NULL && x->alternate == NULL)
		goto done;
	if (v != NULL)
		declare_format_value(v, false, got, sizeof(got));
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
		    declare_type_name(v->type));
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

static int exchange_equivalent(struct exchange *x,
    const struct exchange_type *type, bool delayed,
    const struct exchange_decl *d, struct amqp_error *err)
{
	const struct flag f[] = {
		{ "durable", d->durable, x->durable },
		{ "auto_delete", d->auto_delete, x->auto_delete },
		{ "internal", d->internal, x->internal },
	};
	int rc;

	/* A delayed exchange's x-delayed-type is not compared (the plugin). */
	if (delayed != (x->delayed != NULL) || (!delayed && type != x->type))
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "inequivalent arg 'type' for exchange '%s' in vhost '%s': "
		    "received '%.*s' but current is '%s'", x->name,
		    x->vh->name, BYTES_ARG(d->type), exchange_type_name(x));
	if ((rc = flags_equivalent(f, sizeof(f) / sizeof(f[0]), "exchange",
	    x->name, x->vh->name, err)) != 0)
		return rc;
	return alternate_equivalent(x, d->arguments, err);
}

/* An x-delayed-message exchange's x-delayed-type, as the plugin checks it. */
static int delayed_type_parse(struct bytes raw,
    const struct exchange_type **type, struct amqp_error *err)
{
	struct field_table *t = raw.len ? ftable_decode(raw) : NULL;
	const struct field_value *v = t ? ftable_get(t, "x-delayed-type") : NULL;
	int rc = 0;

	if (v == NULL || (v->type != 'S' && v->type != 'x'))
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED, "Invalid argument, "
		    "'x-delayed-type' must be an existing exchange type");
	else if (bytes_eq_str(v->v.str, "x-delayed-message"))
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED, "Invalid argument, "
		    "'x-delayed-message' can't be used for 'x-delayed-type'");
	else if ((*type = exchange_type_find(v->v.str)) == NULL)
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "unknown exchange type '%.*s'", BYTES_ARG(v->v.str));
	ftable_free(t);
	return rc;
}

/* The exchange's x-message-deduplication arguments, validated. */
static int exchange_dedup_parse(struct vhost *vh, struct bytes name,
    struct bytes raw, struct dedup_args *out, struct amqp_error *err)
{
	struct field_table *t = raw.len ? ftable_decode(raw) : NULL;
	char *xname = bytes_strdup(name);
	int rc = dedup_args_parse(t, "exchange", xname, vh->name, out, err);

	free(xname);
	ftable_free(t);
	return rc;
}

/* The alternate-exchange argument, validated; *ae NULL when absent. */
static int alternate_parse(struct vhost *vh, struct bytes name,
    struct bytes raw, char **ae, struct amqp_error *err)
{
	struct field_table *t = ftable_decode(raw);
	const struct field_value *v = ftable_get(t, "alternate-exchange");
	int rc = 0;

	*ae = NULL;
	if (v && v->type != 'S')
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid type '%s' for arg 'alternate-exchange' in exchange "
		    "'%.*s' in vhost '%s'", declare_type_name(v->type),
		    BYTES_ARG(name), vh->name);
	else if (v)
		*ae = bytes_strdup(v->v.str);
	ftable_free(t);
	return rc;
}

int declare_exchange(struct vhost *vh, struct bytes name,
    const struct exchange_decl *d, struct exchange **out,
    struct amqp_error *err)
{
	bool delayed = bytes_eq_str(d->type, "x-delayed-message");
	const struct exchange_type *type = delayed ? NULL :
	    exchange_type_find(d->type);
	struct dedup_args dd;
	struct exchange *x;
	char *ae;
	int rc;

	if (type == NULL && !delayed) {
		err->connection_level = true;
		return amqp_fail(err, AMQP_COMMAND_INVALID,
		    "unknown exchange type '%.*s'", BYTES_ARG(d->type));
	}
	if (name.len == 0)
		return refuse_default(err);
	if ((x = vhost_find_exchange(vh, name)) != NULL) {
		if ((rc = exchange_equivalent(x, type, delayed, d, err)) != 0)
			return rc;
		*out = x;
		return 0;
	}
	if (memchr(name.ptr, '\0', name.len) != NULL)
		return refuse_nul("exchange", err);
	if (name.len >= 4 && memcmp(name.ptr, "amq.", 4) == 0)
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "exchange name '%.*s' contains reserved prefix 'amq.*'",
		    BYTES_ARG(name));
	if (delayed && (rc = delayed_type_parse(d->arguments, &type, err)) != 0)
		return rc;
	if (type->check_declare &&
	    (rc = type->check_declare(d->arguments, err)) != 0)
		return rc;
	if ((rc = alternate_parse(vh, name, d->arguments, &ae, err)) != 0)
		return rc;
	if ((rc = exchange_dedup_parse(vh, name, d->arguments, &dd, err)) != 0) {
		free(ae);
		return rc;
	}
	x = vhost_add_exchange(vh, name, type);
	x->durable = d->durable;
	x->auto_delete = d->auto_delete;
	x->internal = d->internal;
	x->alternate = ae;
	if (dd.on)
		x->dedup = open_dedup(vh, "exchange", x->name, &dd, x->durable,
		    d->restoring);
	if (delayed)
		x->delayed = delayed_new(x, x->durable ?
		    delayed_qid_for(vh->name, x->name) : 0);
	dedup_args_free(&dd);
	if (x->durable)
		broker_durable_changed(vh->broker);
	x->arguments = args_copy(d->arguments, &x->arguments_len);
	*out = x;
	return 0;
}

/* ---- bindings ----------------------------------------------------------- */

int declare_binding_args_valid(struct exchange *x, struct bytes key,
    struct bytes args, struct amqp_error *err)
{
	return x->type->check_binding ?
	    x->type->check_binding(key, args, err) : 0;
}

int declare_binding(struct exchange *x, enum binding_dest kind, void *dest,
    struct bytes key, struct bytes args, struct amqp_error *err)
{
	int rc;

	if (x->name[0] == '\0' || (kind == DEST_EXCHANGE &&
	    ((struct exchange *)dest)->name[0] == '\0'))
		return refuse_default(err);
	if ((rc = declare_binding_args_valid(x, key, args, err)) != 0)
		return rc;
	if (exchange_find_binding(x, kind, dest, key, args) == NULL)
		exchange_bind(x, kind, dest, key, args);
	return 0;
}
