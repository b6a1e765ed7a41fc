/*
 * Management API: who am I, users, vhosts, permissions (RabbitMQ's
 * /api/whoami, /api/users, /api/vhosts, /api/permissions and
 * /api/topic-permissions).  Every change is durable: it marks the
 * definitions for saving at the end of the loop turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "broker.h"
#include "definitions_access.h"
#include "log.h"
#include "mgmt_handlers.h"
#include "queue.h"
#include "strmap.h"
#include "users.h"
#include "vhost.h"

static json_t *tags_json(const struct user *u)
{
	json_t *tags = json_array();

	for (uint32_t i = 0; i < u->n_tags; i++)
		json_array_append_new(tags, json_string(u->tags[i]));
	return tags;
}

void mgmt_whoami(struct mgmt_req *q)
{
	mgmt_reply(q, HTTP_OK, json_pack("{s:s, s:o}", "name", q->user->name,
	    "tags", tags_json(q->user)));
}

/* A DELETE's reply: 204 (the change saved), or 404 if nothing was there. */
static void reply_deleted(struct mgmt_req *q, bool deleted)
{
	if (!deleted) {
		mgmt_not_found(q);
		return;
	}
	broker_durable_changed(q->b);
	mgmt_reply(q, HTTP_NOCONTENT, NULL);
}

/* A GET's reply: the object's JSON, or 404 (json NULL). */
static void reply_found(struct mgmt_req *q, json_t *json)
{
	if (json == NULL)
		mgmt_not_found(q);
	else
		mgmt_reply(q, HTTP_OK, json);
}

/* ---- users ---------------------------------------------------------------- */

static json_t *user_json(const struct user *u)
{
	return json_pack("{s:s, s:s, s:s, s:o, s:{}}", "name", u->name,
	    "password_hash", u->password_hash, "hashing_algorithm",
	    user_hashing_name(u), "tags", tags_json(u), "limits");
}

void mgmt_users(struct mgmt_req *q)
{
	json_t *list = json_array();
	size_t n;
	struct user **users = userdb_sorted(q->b->users, &n);

	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, user_json(users[i]));
	free(users);
	mgmt_reply(q, HTTP_OK, list);
}

/* PUT's "tags": "a,b" (RabbitMQ's API) or ["a", "b"]; into csv. */
static bool body_tags(struct mgmt_req *q, char *csv, size_t len)
{
	json_t *t = json_object_get(q->body, "tags"), *v;
	size_t i, at = 0;

	csv[0] = '\0';
	if (t == NULL || json_is_string(t)) {
		snprintf(csv, len, "%s", t ? json_string_value(t) : "");
		return true;
	}
	if (json_is_array(t)) {
		json_array_foreach(t, i, v) {
			if (!json_is_string(v))
				break;
			at += (size_t)snprintf(csv + at, at < len ? len - at : 0,
			    "%s%s", i ? "," : "", json_string_value(v));
		}
		if (i == json_array_size(t) && at < len)
			return true;
	}
	mgmt_error(q, HTTP_BADREQUEST, "bad_request",
	    "'tags' must be a string or a list of strings");
	return false;
}

static void put_user(struct mgmt_req *q, bool existed)
{
	const char *name = q->seg[1], *password = NULL, *hash = NULL;
	const char *algorithm = NULL;
	char tags[1024], err[256];
	int rc;

	if (json_object_get(q->body, "password") &&
	    !mgmt_body_str(q, "password", NULL, &password))
		return;
	if (json_object_get(q->body, "password_hash") &&
	    (!mgmt_body_str(q, "password_hash", NULL, &hash) ||
	    !mgmt_body_str(q, "hashing_algorithm", "", &algorithm)))
		return;
	if (password == NULL && hash == NULL && !existed) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request",
		    "password or password_hash must be set");
		return;
	}
	if (!body_tags(q, tags, sizeof(tags)))
		return;
	/* The hash first: nothing changes if it is refused. */
	if (hash)
		rc = userdb_put_hash(q->b->users, name, hash, algorithm, NULL, 0,
		    err, sizeof(err));
	else
		rc = 0;
	if (rc == 0)
		rc = userdb_put(q->b->users, name, password, tags, err,
		    sizeof(err));
	if (rc != 0) {
		if (!existed)
			userdb_delete(q->b->users, name);
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", err);
		return;
	}
	broker_durable_changed(q->b);
	mgmt_reply(q, existed ? HTTP_NOCONTENT : 201, NULL);
}

void mgmt_user(struct mgmt_req *q)
{
	struct user *u = userdb_find(q->b->users, bytes_str(q->seg[1]));

	switch (evhttp_request_get_command(q->r)) {
	case EVHTTP_REQ_PUT:
		put_user(q, u != NULL);
		return;
	case EVHTTP_REQ_DELETE:
		reply_deleted(q, userdb_delete(q->b->users, q->seg[1]));
		return;
	default:
		reply_found(q, u ? user_json(u) : NULL);
	}
}

/* ---- permissions ---------------------------------------------------------- */

static json_t *permission_json(const struct permission *p)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", p->user,
	    "vhost", p->vhost, "configure", p->configure, "write", p->write,
	    "read", p->read);
}

/* Permissions of user (or on vhost; NULL: any). */
static json_t *permissions_json(const struct user_db *db, const char *user,
    const char *vhost)
{
	json_t *list = json_array();

	for (uint32_t i = 0; i < db->n_perms; i++) {
		const struct permission *p = &db->perms[i];

		if ((user == NULL || strcmp(p->user, user) == 0) &&
		    (vhost == NULL || strcmp(p->vhost, vhost) == 0))
			json_array_append_new(list, permission_json(p));
	}
	return list;
}

void mgmt_permissions(struct mgmt_req *q)
{
	mgmt_reply(q, HTTP_OK, permissions_json(q->b->users, NULL, NULL));
}

void mgmt_user_permissions(struct mgmt_req *q)
{
	if (userdb_find(q->b->users, bytes_str(q->seg[1])) == NULL)
		mgmt_not_found(q);
	else
		mgmt_reply(q, HTTP_OK, permissions_json(q->b->users,
		    q->seg[1], NULL));
}

void mgmt_vhost_permissions(struct mgmt_req *q)
{
	if (mgmt_vhost(q, 1) != NULL)
		mgmt_reply(q, HTTP_OK, permissions_json(q->b->users, NULL,
		    q->seg[1]));
}

void mgmt_permission(struct mgmt_req *q)
{
	const char *vhost = q->seg[1], *user = q->seg[2];
	const struct permission *p;
	const char *conf, *write, *read;
	char err[256];
	bool existed;

	if (mgmt_vhost(q, 1) == NULL)
		return;
	p = userdb_permissions(q->b->users, user, vhost);
	switch (evhttp_request_get_command(q->r)) {
	case EVHTTP_REQ_PUT:
		existed = p != NULL;
		if (!mgmt_body_str(q, "configure", NULL, &conf) ||
		    !mgmt_body_str(q, "write", NULL, &write) ||
		    !mgmt_body_str(q, "read", NULL, &read))
			return;
		if (userdb_set_permissions(q->b->users, user, vhost, conf,
		    write, read, err, sizeof(err)) != 0) {
			mgmt_error(q, HTTP_BADREQUEST, "bad_request", err);
			return;
		}
		broker_durable_changed(q->b);
		mgmt_reply(q, existed ? HTTP_NOCONTENT : 201, NULL);
		return;
	case EVHTTP_REQ_DELETE:
		reply_deleted(q, userdb_clear_permissions(q->b->users, user,
		    vhost));
		return;
	default:
		reply_found(q, p ? permission_json(p) : NULL);
	}
}

void mgmt_topic_permissions(struct mgmt_req *q)
{
	mgmt_reply(q, HTTP_OK, access_export_topic_permissions(q->b->users));
}

/* /api/topic-permissions/{vhost}/{user}: list, set one exchange's, or
 * clear them all. */
void mgmt_topic_permission(struct mgmt_req *q)
{
	const char *vhost = q->seg[1], *user = q->seg[2];
	const char *exchange, *write, *read;
	struct user_db *db = q->b->users;
	json_t *list;
	char err[256];

	if (mgmt_vhost(q, 1) == NULL)
		return;
	switch (evhttp_request_get_command(q->r)) {
	case EVHTTP_REQ_PUT:
		if (!mgmt_body_str(q, "exchange", NULL, &exchange) ||
		    !mgmt_body_str(q, "write", NULL, &write) ||
		    !mgmt_body_str(q, "read", NULL, &read))
			return;
		if (userdb_set_topic_permissions(db, user, vhost, exchange,
		    write, read, err, sizeof(err)) != 0) {
			mgmt_error(q, HTTP_BADREQUEST, "bad_request", err);
			return;
		}
		broker_durable_changed(q->b);
		mgmt_reply(q, 201, NULL);
		return;
	case EVHTTP_REQ_DELETE:
		reply_deleted(q, userdb_clear_topic_permissions(db, user, vhost,
		    NULL));
		return;
	default:
		list = json_array();
		for (uint32_t i = 0; i < db->n_topic_perms; i++) {
			const struct topic_permission *p = &db->topic_perms[i];

			if (strcmp(p->vhost, vhost) == 0 &&
			    strcmp(p->user, user) == 0)
				json_array_append_new(list, json_pack(
				    "{s:s, s:s, s:s, s:s, s:s}", "user", user,
				    "vhost", vhost, "exchange", p->exchange,
				    "write", p->write, "read", p->read));
		}
		if (json_array_size(list) == 0) {
			json_decref(list);
			list = NULL;
		}
		reply_found(q, list);
	}
}

/* ---- vhosts ---------------------------------------------------------------- */

static json_t *vhost_json(const struct vhost *vh)
{
	uint64_t ready = 0, unacked = 0;
	struct bytes k;
	void *v;

	for (size_t it = 0; strmap_next(vh->queues, &it, &k, &v); ) {
		struct queue_stats st;

		queue_stats(v, &st);
		ready += st.messages;
		unacked += st.unacked;
	}
	return json_pack("{s:s, s:s, s:[], s:b, s:I, s:I, s:I}", "name",
	    vh->name, "description", "", "tags", "tracing", vh->journal != NULL,
	    "messages", (json_int_t)(ready + unacked), "messages_ready",
	    (json_int_t)ready, "messages_unacknowledged", (json_int_t)unacked);
}

void mgmt_vhosts(struct mgmt_req *q)
{
	size_t n;
	struct vhost **vhs = mgmt_visible_vhosts(q, &n);
	json_t *list = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, vhost_json(vhs[i]));
	free(vhs);
	mgmt_reply(q, HTTP_OK, list);
}

void mgmt_vhost_one(struct mgmt_req *q)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(q->r);
	struct vhost *vh = broker_find_vhost(q->b, bytes_str(q->seg[1]));
	bool tracing;
	char err[256];

	if (cmd != EVHTTP_REQ_GET && !user_has_tag(q->user, "administrator")) {
		mgmt_error(q, 401, "not_authorized", "Not administrator user");
		return;
	}
	switch (cmd) {
	case EVHTTP_REQ_PUT:
		if (!mgmt_body_bool(q, "tracing", vh && vh->journal, &tracing))
			return;
		if (vh) {
			vhost_set_tracing(vh, tracing);
			mgmt_reply(q, HTTP_NOCONTENT, NULL);
			return;
		}
		if (q->seg[1][0] == '\0') {
			mgmt_error(q, HTTP_BADREQUEST, "bad_request",
			    "a vhost name must not be empty");
			return;
		}
		vh = broker_add_vhost(q->b, q->seg[1]);
		if (vh)
			vhost_set_tracing(vh, tracing);
		/* As RabbitMQ's API: its creator may use the new vhost. */
		if (userdb_set_permissions(q->b->users, q->user->name,
		    q->seg[1], ".*", ".*", ".*", err, sizeof(err)) != 0)
			log_warning("new vhost '%s': %s", q->seg[1], err);
		broker_durable_changed(q->b);
		mgmt_reply(q, 201, NULL);
		return;
	case EVHTTP_REQ_DELETE:
		if (vh)
			broker_delete_vhost(q->b, vh);
		reply_deleted(q, vh != NULL);
		return;
	default:
		if ((vh = mgmt_vhost(q, 1)) != NULL)
			mgmt_reply(q, HTTP_OK, vhost_json(vh));
	}
}
