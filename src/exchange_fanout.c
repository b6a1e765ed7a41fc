/*
 * Fanout exchange: every binding matches.
 */
#include "exchange.h"

static void *fanout_create(struct exchange *x)
{
	return x;
}

static void fanout_nothing(void *state)
{
}

static void fanout_bind(void *state, struct binding *b)
{
	/* The exchange's own binding list is the index. */
}

static void fanout_route(void *state, struct route_result *r)
{
	struct exchange *x = state;
	struct binding *b;

	TAILQ_FOREACH(b, &x->bindings, src_link)
		route_binding(r, b);
}

const struct exchange_type exchange_fanout = {
	.name = "fanout",
	.create = fanout_create,
	.destroy = fanout_nothing,
	.bind = fanout_bind,
	.unbind = fanout_bind,
	.route = fanout_route,
};
