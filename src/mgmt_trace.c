/*
 * Message journeys through the API (journal.h):
 *   GET /api/trace/{vhost}?message_id=ID (or correlation_id=ID, or id=ID
 *   for either; none: every event) [&limit=N]
 * answers the newest N (1000) matching events, oldest first.  Tracing is
 * turned on and off with RabbitMQ's PUT /api/vhosts/{vhost}
 * {"tracing": true}.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <jansson.h>

#include "broker.h"
#include "connection.h"
#include "journal.h"
#include "mgmt_handlers.h"
#include "strmap.h"
#include "vhost.h"

#define TRACE_LIMIT_DEFAULT 1000

struct trace_list {
	struct broker *b;
	json_t *events;
};

static void event_json(void *arg, const struct journal_event *ev)
{
	struct trace_list *t = arg;
	struct conn *c = ev->conn ? strmap_get(t->b->conns_by_id,
	    (struct bytes){ (const uint8_t *)&ev->conn, sizeof(ev->conn) }) :
	    NULL;
	char name[200], when[40];
	time_t secs = (time_t)(ev->wall_ms / 1000);
	struct tm tm;
	json_t *o;

	gmtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03uZ",
	    (unsigned)(ev->wall_ms % 1000));
	o = json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "seq",
	    (json_int_t)ev->seq, "time", when, "timestamp",
	    (json_int_t)ev->wall_ms, "step",
	    journal_step_name(ev->step), "message_id", ev->message_id,
	    "correlation_id", ev->correlation_id, "where", ev->where,
	    "detail", ev->detail);

	if (ev->conn) {
		/* Its name while it is open, as /api/connections lists it. */
		if (c)
			mgmt_conn_name(c, name, sizeof(name));
		else
			snprintf(name, sizeof(name), "#%llu (closed)",
			    (unsigned long long)ev->conn);
		json_object_set_new(o, "connection", json_string(name));
		json_object_set_new(o, "channel", json_integer(ev->channel));
	}
	json_array_append_new(t->events, o);
}

void mgmt_trace(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	const char *id = mgmt_query(q, "message_id");
	long long limit = mgmt_query_count(q, "limit", TRACE_LIMIT_DEFAULT);
	struct trace_list t = { q->b, NULL };
	size_t matched = 0;

	if (vh == NULL)
		return;
	if (id == NULL)
		id = mgmt_query(q, "correlation_id");
	if (id == NULL)
		id = mgmt_query(q, "id");
	if (limit < 0) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", "limit must be a "
		    "number");
		return;
	}
	t.events = json_array();
	if (vh->journal)
		matched = journal_find(vh->journal, id, (size_t)limit,
		    event_json, &t);
	mgmt_reply(q, HTTP_OK, json_pack("{s:s, s:b, s:I, s:o}", "vhost",
	    vh->name, "tracing", vh->journal != NULL, "matched",
	    (json_int_t)matched, "events", t.events));
}
