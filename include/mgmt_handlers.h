/*
 * What the management API's handlers share (see mgmt.h).
 */
#ifndef WARREN_MGMT_HANDLERS_H
#define WARREN_MGMT_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct broker;
struct evhttp_request;
struct evkeyvalq;
struct user;
struct vhost;
struct amqp_error;

#define MGMT_MAX_SEGMENTS 8

/* Who may call a route, by RabbitMQ's user tags. */
enum mgmt_access {
	ACCESS_MANAGEMENT,	/* any of management, policymaker, monitoring,
				 * administrator; vhosts it has permissions on */
	ACCESS_MONITORING,	/* monitoring or administrator: all vhosts */
	ACCESS_ADMIN,		/* administrator */
};

struct mgmt_req {
	struct broker *b;
	struct evhttp_request *r;
	const struct user *user;
	bool sees_all_vhosts;		/* monitoring or administrator */
	char *seg[MGMT_MAX_SEGMENTS];	/* decoded path segments after /api */
	int n_seg;
	json_t *body;			/* PUT/POST: the parsed JSON, or NULL */
	struct evkeyvalq *query;	/* ?key=value pairs */
};

typedef void mgmt_handler(struct mgmt_req *q);

/* A reply: the JSON (its reference taken), or no content for NULL. */
void mgmt_reply(struct mgmt_req *q, int status, json_t *json);
/* An error reply in RabbitMQ's form {"error": ..., "reason": ...}. */
void mgmt_error(struct mgmt_req *q, int status, const char *error,
    const char *reason);
/* An AMQP refusal as its HTTP status (404, 400, 405 ...). */
void mgmt_amqp_error(struct mgmt_req *q, const struct amqp_error *err);
void mgmt_not_found(struct mgmt_req *q);
/* One object of a list reply, found again by name when it is rendered. */
struct mgmt_item {
	char *vhost, *name;		/* owned by the list */
};
/* The item's JSON, or NULL when it is gone by the time it is rendered. */
typedef json_t *mgmt_item_json(struct broker *b, const struct mgmt_item *it);

/*
 * Reply with a list of items (taking them over), filtered and paged as the
 * query asks (RabbitMQ's name, use_regex, page, page_size), rendered and
 * sent a slice per loop turn, so a list of 10,000 queues never holds the
 * AMQP side up for more than a slice.
 */
void mgmt_reply_items(struct mgmt_req *q, struct mgmt_item *items,
    size_t n, mgmt_item_json *fn);

/* A query parameter, or NULL. */
const char *mgmt_query(struct mgmt_req *q, const char *key);
/* A non-negative integer query parameter, or dflt; -1 when malformed. */
long long mgmt_query_count(struct mgmt_req *q, const char *key,
    long long dflt);

/* The vhost named by segment i, if it exists and q's user may see it
 * (else a 404 is sent and NULL returned). */
struct vhost *mgmt_vhost(struct mgmt_req *q, int i);
/* The vhosts q's user may see, sorted by name (the array is the caller's). */
struct vhost **mgmt_visible_vhosts(struct mgmt_req *q, size_t *n);
/* Whether q's user may see vh (monitoring and administrators: all). */
bool mgmt_may_see(const struct mgmt_req *q, const struct vhost *vh);
/*
 * Whether q's user may do `what` to the queue (or exchange; "" is
 * amq.default) called name in vh, by its permissions there as over AMQP
 * (tags give no exemption: an administrator without permissions on a vhost
 * may list it but not change it, as in RabbitMQ).  When not, the refusal
 * is logged and 401 {"error": "not_authorised", "reason": "Access
 * refused."} sent, unless quiet (the caller words it).
 */
bool mgmt_permitted(struct mgmt_req *q, const struct vhost *vh, int what,
    bool queue, const char *name, bool quiet);
/* Message properties as RabbitMQ's API shows them (headers as JSON). */
struct basic_properties;
json_t *mgmt_props_json(const struct basic_properties *p);
/* An exchange named in a path ("amq.default" is the default exchange). */
const char *mgmt_exchange_name(const char *segment);
/* The body member key as a string (default dflt; NULL: required). */
bool mgmt_body_str(struct mgmt_req *q, const char *key, const char *dflt,
    const char **out);
bool mgmt_body_bool(struct mgmt_req *q, const char *key, bool dflt,
    bool *out);
/* An integer in [min, max] (or a decimal string); dflt when absent,
 * which makes the key required when dflt is out of range. */
bool mgmt_body_int(struct mgmt_req *q, const char *key, long long dflt,
    long long min, long long max, long long *out);

mgmt_handler mgmt_whoami, mgmt_users, mgmt_user, mgmt_user_permissions;
mgmt_handler mgmt_vhosts, mgmt_vhost_one, mgmt_vhost_permissions;
mgmt_handler mgmt_permissions, mgmt_permission, mgmt_topic_permissions;
mgmt_handler mgmt_topic_permission, mgmt_vhost_definitions;
mgmt_handler mgmt_overview, mgmt_queues, mgmt_queue, mgmt_queue_contents;
mgmt_handler mgmt_exchanges, mgmt_exchange, mgmt_definitions;
mgmt_handler mgmt_health_alarms, mgmt_health_listener, mgmt_health_vhosts;
mgmt_handler mgmt_aliveness;
mgmt_handler mgmt_bindings, mgmt_object_bindings, mgmt_bindings_between;
mgmt_handler mgmt_binding;
mgmt_handler mgmt_connections, mgmt_connection, mgmt_channels;
mgmt_handler mgmt_consumers, mgmt_publish, mgmt_get;
mgmt_handler mgmt_delayed_list, mgmt_delayed_cancel;
mgmt_handler mgmt_vhost_limits, mgmt_vhost_limit, mgmt_user_limits;
mgmt_handler mgmt_user_limit;
mgmt_handler mgmt_route, mgmt_browse, mgmt_trace;
/* A connection's name as the API lists it ("PEER -> LOCAL"). */
struct conn;
void mgmt_conn_name(struct conn *c, char *out, size_t len);

/*
 * The message a request body describes, as a publish through the API
 * would make it: "properties" (RabbitMQ's JSON), "payload" with
 * "payload_encoding" (required, or else empty), routing key key, on
 * exchange xname.  NULL after a 400 reply.
 */
struct message *mgmt_request_message(struct mgmt_req *q, struct bytes xname,
    const char *key, bool payload_required);
/* A binding as GET /api/bindings shows it. */
struct binding;
json_t *mgmt_binding_json(const struct binding *b);

#endif
