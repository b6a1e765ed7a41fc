/*
 * Broker operations (see operations.h).
 */
#include <string.h>

#include "amqp.h"
#include "amqp_error.h"
#include "declare.h"
#include "operations.h"
#include "queue.h"
#include "vhost.h"


int op_refuse_default(struct bytes name, struct amqp_error *err)
{
	if (name.len == 0)
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "operation not permitted on the default exchange");
	return 0;
}

int op_check_owner(const struct queue *q, uint64_t conn_id,
    struct amqp_error *err)
{
	if (q->exclusive && conn_id != OP_ADMIN && q->owner_conn != conn_id)
		return amqp_fail(err, AMQP_RESOURCE_LOCKED,
		    "cannot obtain exclusive access to locked queue '%s' in "
		    "vhost '%s'. It could be originally declared on another "
		    "connection or the exclusive property value does not "
		    "match that of the original declaration.", q->name,
		    q->vh->name);
	return 0;
}

int op_find_queue(struct vhost *vh, struct bytes name, uint64_t conn_id,
    struct queue **out, struct amqp_error *err)
{
	*out = vhost_find_queue(vh, name);
	if (*out == NULL)
		return amqp_fail(err, AMQP_NOT_FOUND,
		    "no queue '%.*s' in vhost '%s'", BYTES_ARG(name), vh->name);
	return op_check_owner(*out, conn_id, err);
}

int op_find_exchange(struct vhost *vh, struct bytes name,
    struct exchange **out, struct amqp_error *err)
{
	*out = vhost_find_exchange(vh, name);
	if (*out == NULL)
		return amqp_fail(err, AMQP_NOT_FOUND,
		    "no exchange '%.*s' in vhost '%s'", BYTES_ARG(name),
		    vh->name);
	return 0;
}

int op_delete_queue(struct vhost *vh, struct bytes name, bool if_unused,
    bool if_empty, uint64_t conn_id, bool must_exist, uint32_t *count,
    struct amqp_error *err)
{
	struct queue *q;
	int rc;

	*count = 0;
	if ((rc = op_find_queue(vh, name, conn_id, &q, err)) != 0)
		return rc == AMQP_NOT_FOUND && !must_exist ? 0 : rc;
	if (if_unused && q->n_consumers)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "queue '%s' in vhost '%s' in use", q->name, vh->name);
	if (if_empty && q->count)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "queue '%s' in vhost '%s' is not empty", q->name, vh->name);
	*count = q->count;
	vhost_remove_queue(vh, q);
	return 0;
}

int op_purge_queue(struct vhost *vh, struct bytes name, uint64_t conn_id,
    uint32_t *count, struct amqp_error *err)
{
	struct queue *q;
	int rc;

	*count = 0;
	if ((rc = op_find_queue(vh, name, conn_id, &q, err)) != 0)
		return rc;
	if ((rc = queue_refuse(q, QUEUE_PURGE, err)) != 0)
		return rc;
	*count = queue_purge(q);
	return 0;
}

int op_delete_exchange(struct vhost *vh, struct bytes name, bool if_unused,
    bool must_exist, struct amqp_error *err)
{
	struct exchange *x;
	int rc;

	if ((rc = op_refuse_default(name, err)) != 0)
		return rc;
	if (name.len >= 4 && memcmp(name.ptr, "amq.", 4) == 0)
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "deletion of system exchange '%.*s' in vhost '%s' not "
		    "allowed", BYTES_ARG(name), vh->name);
	if ((rc = op_find_exchange(vh, name, &x, err)) != 0)
		return must_exist ? rc : 0;
	if (if_unused && x->n_bindings)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "exchange '%s' in vhost '%s' in use", x->name, vh->name);
	vhost_remove_exchange(vh, x);
	return 0;
}

static int unbind(struct vhost *vh, struct exchange *source,
    enum binding_dest kind, void *dest, struct bytes key, struct bytes args,
    uint64_t conn_id, bool must_exist, struct amqp_error *err)
{
	struct binding *b = NULL;
	int rc;

	if (source && dest)
		b = exchange_find_binding(source, kind, dest, key, args);
	if (b == NULL)
		return must_exist ? amqp_fail(err, AMQP_NOT_FOUND,
		    "no binding with routing key '%.*s' in vhost '%s'",
		    BYTES_ARG(key), vh->name) : 0;
	if (kind == DEST_QUEUE && (rc = op_check_owner(dest, conn_id, err)))
		return rc;
	vhost_unbind(vh, b);
	return 0;
}

int op_bind(struct vhost *vh, bool bind, enum binding_dest kind,
    struct bytes dest_name, struct bytes source_name, struct bytes key,
    struct bytes args, uint64_t conn_id, bool must_exist,
    struct amqp_error *err)
{
	struct exchange *source;
	void *dest;
	int rc;

	if (kind == DEST_EXCHANGE &&
	    (rc = op_refuse_default(dest_name, err)) != 0)
		return rc;
	if ((rc = op_refuse_default(source_name, err)) != 0)
		return rc;
	source = vhost_find_exchange(vh, source_name);
	dest = kind == DEST_QUEUE ? (void *)vhost_find_queue(vh, dest_name) :
	    (void *)vhost_find_exchange(vh, dest_name);
	if (!bind)
		return unbind(vh, source, kind, dest, key, args, conn_id,
		    must_exist, err);
	if (source == NULL)
		return op_find_exchange(vh, source_name, &source, err);
	if (dest == NULL) {
		if (kind == DEST_EXCHANGE)
			return op_find_exchange(vh, dest_name,
			    (struct exchange **)&dest, err);
		return amqp_fail(err, AMQP_NOT_FOUND,
		    "no queue '%.*s' in vhost '%s'", BYTES_ARG(dest_name),
		    vh->name);
	}
	if ((rc = declare_binding_args_valid(source, key, args, err)) != 0)
		return rc;
	if (kind == DEST_QUEUE && (rc = op_check_owner(dest, conn_id, err)))
		return rc;
	return declare_binding(source, kind, dest, key, args, err);
}
