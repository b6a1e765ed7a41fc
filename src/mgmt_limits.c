/*
 * Management API: vhost and user limits, as RabbitMQ's
 * /api/vhost-limits[/{vhost}[/{name}]] and /api/user-limits[/{user}[/{name}]]
 * (PUT {"value": N} sets one limit, DELETE clears it).  Changes are
 * durable: they go into the definitions file.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "broker.h"
#include "mgmt_handlers.h"
#include "resource_limits.h"
#include "users.h"
#include "vhost.h"

#define LIMIT_VALUE_MAX 2147483647LL

/* One {"<owner_key>": name, "value": {...}} entry, or NULL: no limits. */
static json_t *entry(const char *owner_key, const char *name, json_t *value)
{
	if (json_object_size(value) == 0) {
		json_decref(value);
		return NULL;
	}
	return json_pack("{s:s, s:o}", owner_key, name, "value", value);
}

static void append(json_t *list, json_t *e)
{
	if (e != NULL)
		json_array_append_new(list, e);
}

/* PUT {"value": N} or DELETE of the limit *field. */
static void change(struct mgmt_req *q, int64_t *field)
{
	long long value;

	if (field == NULL) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", "unknown limit");
		return;
	}
	if (evhttp_request_get_command(q->r) == EVHTTP_REQ_DELETE) {
		*field = -1;
	} else {
		/* Any negative value means no limit, as in RabbitMQ. */
		if (!mgmt_body_int(q, "value", -LIMIT_VALUE_MAX - 1,
		    -LIMIT_VALUE_MAX, LIMIT_VALUE_MAX, &value))
			return;
		*field = value < 0 ? -1 : value;
	}
	broker_durable_changed(q->b);
	mgmt_reply(q, HTTP_NOCONTENT, NULL);
}

void mgmt_vhost_limits(struct mgmt_req *q)
{
	json_t *list = json_array();
	struct vhost *vh, **vhs;
	size_t n;

	if (q->n_seg == 1) {
		vhs = mgmt_visible_vhosts(q, &n);
		for (size_t i = 0; i < n; i++)
			append(list, entry("vhost", vhs[i]->name,
			    limits_vhost_json(vhs[i])));
		free(vhs);
	} else if ((vh = mgmt_vhost(q, 1)) != NULL) {
		append(list, entry("vhost", vh->name, limits_vhost_json(vh)));
	} else {
		json_decref(list);
		return;
	}
	mgmt_reply(q, HTTP_OK, list);
}

void mgmt_vhost_limit(struct mgmt_req *q)
{
	struct vhost *vh = mgmt_vhost(q, 1);

	if (vh != NULL)
		change(q, limits_vhost_field(vh, q->seg[2]));
}

void mgmt_user_limits(struct mgmt_req *q)
{
	json_t *list = json_array();
	struct user **users, *u;
	size_t n;

	if (q->n_seg == 1) {
		users = userdb_sorted(q->b->users, &n);
		for (size_t i = 0; i < n; i++)
			append(list, entry("user", users[i]->name,
			    limits_user_json(users[i])));
		free(users);
	} else if ((u = userdb_find(q->b->users,
	    bytes_str(q->seg[1]))) != NULL) {
		append(list, entry("user", u->name, limits_user_json(u)));
	} else {
		json_decref(list);
		mgmt_not_found(q);
		return;
	}
	mgmt_reply(q, HTTP_OK, list);
}

void mgmt_user_limit(struct mgmt_req *q)
{
	struct user *u = userdb_find(q->b->users, bytes_str(q->seg[1]));

	if (u == NULL)
		mgmt_not_found(q);
	else
		change(q, limits_user_field(u, q->seg[2]));
}
