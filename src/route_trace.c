/*
 * The route tracer's record (route_trace.h).
 */
#include <stdlib.h>

#include "log.h"
#include "route_trace.h"

void route_trace_add(struct route_trace *t, const struct route_event *ev)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->events = xrealloc(t->events, t->cap * sizeof(*t->events));
	}
	t->events[t->n++] = *ev;
}

void route_trace_free(struct route_trace *t)
{
	free(t->events);
	t->events = NULL;
	t->n = t->cap = 0;
}
