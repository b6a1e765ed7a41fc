/*
 * A record of how one message would be routed, for the route tracer
 * (POST /api/route, warrenctl trace route).  Routing itself writes it
 * (exchange.c) when given one, so what the tracer shows is what a publish
 * does: there is no second implementation of routing to drift.  Without
 * a trace, routing pays one pointer test per exchange and binding.
 */
#ifndef WARREN_ROUTE_TRACE_H
#define WARREN_ROUTE_TRACE_H

#include <stddef.h>

#include "wire.h"

struct binding;
struct exchange;
struct queue;

enum route_step {
	ROUTE_ENTERED,		/* x reached: published to, via a binding, or
				   as the alternate of another */
	ROUTE_REVISITED,	/* x reached again for the same key (a cycle
				   of bindings): not routed twice */
	ROUTE_MATCHED,		/* a binding matched (or, from the default
				   exchange, the queue named by the key) */
	ROUTE_NO_ALTERNATE,	/* x matched nothing and its alternate
				   exchange does not exist */
};

struct route_event {
	enum route_step step;
	struct bytes key;		/* the routing key (or a CC/BCC key) */
	struct exchange *x;		/* ENTERED, REVISITED, NO_ALTERNATE */
	struct binding *via;		/* ENTERED through it; MATCHED */
	struct exchange *alternate_of;	/* ENTERED as its alternate */
	struct queue *queue;		/* MATCHED from the default exchange */
};

struct route_trace {
	struct route_event *events;
	size_t n, cap;
	/* How routing is about to enter the next exchange. */
	struct binding *via;
	struct exchange *alternate_of;
};

void route_trace_add(struct route_trace *t, const struct route_event *ev);
void route_trace_free(struct route_trace *t);

#endif
