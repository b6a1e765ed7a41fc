/*
 * Direct exchange: a hash map from routing key to the bindings with that
 * key.  Also the default exchange, whose implicit bindings are the vhost's
 * queues by name.
 */
#include <stdlib.h>

#include "exchange.h"
#include "log.h"
#include "message.h"
#include "strmap.h"
#include "vhost.h"

struct binding_vec {
	struct binding **items;
	uint32_t n, cap;
};

static void *direct_create(struct exchange *x)
{
	return strmap_new();
}

static void direct_destroy(void *state)
{
	struct bytes k;
	void *v;

	for (size_t it = 0; strmap_next(state, &it, &k, &v); ) {
		free(((struct binding_vec *)v)->items);
		free(v);
	}
	strmap_free(state);
}

static void direct_bind(void *state, struct binding *b)
{
	struct bytes key = { (const uint8_t *)b->key, b->key_len };
	struct binding_vec *vec = strmap_get(state, key);

	if (vec == NULL) {
		vec = xcalloc(1, sizeof(*vec));
		strmap_put(state, key, vec);
	}
	if (vec->n == vec->cap) {
		vec->cap = vec->cap ? vec->cap * 2 : 2;
		vec->items = xrealloc(vec->items, vec->cap * sizeof(*vec->items));
	}
	vec->items[vec->n++] = b;
}

static void direct_unbind(void *state, struct binding *b)
{
	struct bytes key = { (const uint8_t *)b->key, b->key_len };
	struct binding_vec *vec = strmap_get(state, key);

	if (vec == NULL)
		return;
	for (uint32_t i = 0; i < vec->n; i++) {
		if (vec->items[i] == b) {
			/* Keep binding order: routing order is visible. */
			for (; i + 1 < vec->n; i++)
				vec->items[i] = vec->items[i + 1];
			vec->n--;
			break;
		}
	}
	if (vec->n == 0) {
		strmap_del(state, key);
		free(vec->items);
		free(vec);
	}
}

static void direct_route(void *state, struct route_result *r)
{
	struct binding_vec *vec = strmap_get(state, r->key);

	for (uint32_t i = 0; vec && i < vec->n; i++)
		route_binding(r, vec->items[i]);
}

const struct exchange_type exchange_direct = {
	.name = "direct",
	.create = direct_create,
	.destroy = direct_destroy,
	.bind = direct_bind,
	.unbind = direct_unbind,
	.route = direct_route,
};

/* ---- the default exchange ------------------------------------------- */

static void *default_create(struct exchange *x)
{
	return x->vh;
}

static void default_destroy(void *state)
{
}

static void default_bind(void *state, struct binding *b)
{
	/* Never called: binding to the default exchange is refused. */
}

static void default_route(void *state, struct route_result *r)
{
	struct queue *q = vhost_find_queue(state, r->key);

	if (q)
		route_queue(r, q);
}

const struct exchange_type exchange_default = {
	.name = "direct",
	.create = default_create,
	.destroy = default_destroy,
	.bind = default_bind,
	.unbind = default_bind,
	.route = default_route,
};
