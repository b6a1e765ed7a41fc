/*
 * Management API: the schedule of an x-delayed-message exchange, which
 * RabbitMQ's plugin does not show at all.
 *
 *   GET    /api/exchanges/{vhost}/{name}/delayed?count=N&offset=K
 *	{"messages": total, "next_in_ms": ms or null, "scheduled": [{"id",
 *	"due_in_ms", "routing_key", "delay", "payload_bytes", "properties"},
 *	...]}, soonest first (count 100 by default, at most 1000; offset at
 *	most 1,000,000)
 *   DELETE /api/exchanges/{vhost}/{name}/delayed/{id}
 *	cancels one: it is dropped (204; 404 when there is no such one)
 *
 * Listing needs read permission on the exchange, cancelling configure.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "delayed.h"
#include "exchange.h"
#include "message.h"
#include "mgmt_handlers.h"
#include "properties.h"
#include "users.h"
#include "vhost.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define OFFSET_MAX 1000000	/* listing walks offset + count entries */

/* The delayed exchange of the path, checked for `what`; NULL when refused
 * (and answered). */
static struct exchange *delayed_exchange(struct mgmt_req *q, int what)
{
	struct vhost *vh = mgmt_vhost(q, 1);
	struct exchange *x;
	char why[600];

	if (vh == NULL)
		return NULL;
	x = vhost_find_exchange(vh, bytes_str(mgmt_exchange_name(q->seg[2])));
	if (x == NULL) {
		mgmt_not_found(q);
		return NULL;
	}
	if (!mgmt_permitted(q, vh, what, false, x->name, false))
		return NULL;
	if (x->delayed == NULL) {
		snprintf(why, sizeof(why), "exchange '%s' in vhost '%s' is not "
		    "an x-delayed-message exchange", x->name, vh->name);
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
		return NULL;
	}
	return x;
}

static void list_one(void *arg, uint64_t id, uint64_t due_in_ms,
    const struct message *msg)
{
	json_t *o = json_pack("{s:I, s:I}", "id", (json_int_t)id, "due_in_ms",
	    (json_int_t)due_in_ms);

	if (msg != NULL) {
		struct basic_properties p;

		msg_props(msg, &p);
		json_object_set_new(o, "routing_key", json_stringn(
		    (const char *)msg->routing_key.ptr, msg->routing_key.len));
		json_object_set_new(o, "delay",
		    json_integer((json_int_t)delayed_delay_of(msg)));
		json_object_set_new(o, "payload_bytes",
		    json_integer((json_int_t)msg->body_len));
		json_object_set_new(o, "properties", mgmt_props_json(&p));
	}
	json_array_append_new(arg, o);
}

void mgmt_delayed_list(struct mgmt_req *q)
{
	struct exchange *x = delayed_exchange(q, ACCESS_READ);
	long long count = mgmt_query_count(q, "count", LIST_DEFAULT);
	long long offset = mgmt_query_count(q, "offset", 0);
	int64_t next;
	json_t *list;

	if (x == NULL)
		return;
	if (count < 0 || count > LIST_MAX || offset < 0 ||
	    offset > OFFSET_MAX) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", "count must be "
		    "0..1000 and offset 0..1000000");
		return;
	}
	list = json_array();
	delayed_list(x->delayed, (size_t)offset, (size_t)count, list_one, list);
	next = delayed_next_in(x->delayed);
	mgmt_reply(q, HTTP_OK, json_pack("{s:I, s:o, s:o}", "messages",
	    (json_int_t)delayed_count(x->delayed), "next_in_ms", next < 0 ?
	    json_null() : json_integer(next), "scheduled", list));
}

void mgmt_delayed_cancel(struct mgmt_req *q)
{
	struct exchange *x = delayed_exchange(q, ACCESS_CONFIGURE);
	const char *s = q->seg[4];
	unsigned long long id;
	char *end;

	if (x == NULL)
		return;
	id = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0' || !delayed_cancel(x->delayed, id)) {
		mgmt_not_found(q);
		return;
	}
	mgmt_reply(q, HTTP_NOCONTENT, NULL);
}
