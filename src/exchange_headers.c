/*
 * Headers exchange: a binding matches on the message's headers table.
 *
 * As RabbitMQ: x-match = all (default) | any | all-with-x | any-with-x;
 * binding arguments starting with "x-" take part only in the -with-x
 * kinds; a void binding value matches any value of a present header;
 * otherwise values match as RabbitMQ's Erlang `==` on the decoded values
 * (fvalue_equivalent in field_table.c): numbers by value across all
 * integer and float types, 'S' and 'x' by bytes, anything else only
 * within its own type.
 */
#include <math.h>
#include <string.h>

#include "amqp.h"
#include "amqp_error.h"
#include "declare.h"
#include "exchange.h"
#include "field_table.h"

enum xmatch { XMATCH_ALL, XMATCH_ANY, XMATCH_ALL_X, XMATCH_ANY_X, XMATCH_BAD };

static enum xmatch binding_xmatch(const struct field_table *args)
{
	const struct field_value *v = ftable_get(args, "x-match");

	if (v == NULL)
		return XMATCH_ALL;
	if (v->type != 'S')
		return XMATCH_BAD;
	if (bytes_eq_str(v->v.str, "all"))
		return XMATCH_ALL;
	if (bytes_eq_str(v->v.str, "any"))
		return XMATCH_ANY;
	if (bytes_eq_str(v->v.str, "all-with-x"))
		return XMATCH_ALL_X;
	if (bytes_eq_str(v->v.str, "any-with-x"))
		return XMATCH_ANY_X;
	return XMATCH_BAD;
}

/* The x-match argument of a binding, checked as RabbitMQ does. */
static int headers_check_binding(struct bytes key, struct bytes args,
    struct amqp_error *err)
{
	struct field_table *t = ftable_decode(args);
	const struct field_value *v = ftable_get(t, "x-match");
	char val[256];
	int rc = 0;

	(void)key;
	if (v && binding_xmatch(t) == XMATCH_BAD) {
		declare_format_value(v, true, val, sizeof(val));
		if (v->type == 'S')
			rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "Invalid x-match field value %s; expected all, any, "
			    "all-with-x, or any-with-x", val);
		else
			rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "Invalid x-match field type %s (value %s); expected "
			    "longstr", declare_type_name(v->type), val);
	}
	ftable_free(t);
	return rc;
}

static bool binding_matches(const struct field_table *args,
    const struct field_table *headers)
{
	enum xmatch kind = binding_xmatch(args);
	bool with_x = kind == XMATCH_ALL_X || kind == XMATCH_ANY_X;
	bool all = kind == XMATCH_ALL || kind == XMATCH_ALL_X;
	bool any_matched = false;

	for (uint32_t i = 0; args && i < args->n; i++) {
		const struct field_entry *e = &args->entries[i];
		const struct field_value *h;
		bool ok;

		if (bytes_eq_str(e->key, "x-match"))
			continue;
		if (!with_x && e->key.len >= 2 && memcmp(e->key.ptr, "x-", 2) == 0)
			continue;
		h = NULL;
		for (uint32_t j = 0; headers && j < headers->n; j++) {
			if (bytes_eq(headers->entries[j].key, e->key)) {
				h = &headers->entries[j].value;
				break;
			}
		}
		ok = h && (e->value.type == 'V' || fvalue_equivalent(&e->value, h));
		if (all && !ok)
			return false;
		if (!all && ok)
			return true;
		any_matched = any_matched || ok;
	}
	return all ? true : any_matched;
}

static void *headers_create(struct exchange *x)
{
	return x;
}

static void headers_nothing(void *state)
{
}

static void headers_bind(void *state, struct binding *b)
{
	/* Every binding is checked on each message: no index. */
}

static void headers_route(void *state, struct route_result *r)
{
	struct exchange *x = state;
	const struct field_table *headers = route_headers(r);
	struct binding *b;

	TAILQ_FOREACH(b, &x->bindings, src_link)
		if (binding_matches(b->args_tree, headers))
			route_binding(r, b);
}

const struct exchange_type exchange_headers = {
	.name = "headers",
	.create = headers_create,
	.destroy = headers_nothing,
	.bind = headers_bind,
	.unbind = headers_bind,
	.route = headers_route,
	.check_binding = headers_check_binding,
};
