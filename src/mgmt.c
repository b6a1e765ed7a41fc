/*
 * The management API's server (see mgmt.h): listener, authentication,
 * routes, replies.
 */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "amqp.h"
#include "amqp_error.h"
#include "broker.h"
#include "config.h"
#include "connection.h"
#include "log.h"
#include "login_throttle.h"
#include "mgmt.h"
#include "mgmt_console.h"
#include "metrics.h"
#include "mgmt_handlers.h"
#include "strmap.h"
#include "tls.h"
#include "users.h"
#include "vhost.h"

/* Larger bodies get 413 from evhttp (RabbitMQ's default limit is 20 MB). */
#define MGMT_MAX_BODY (20u << 20)
#define MGMT_MAX_HEADERS (64u << 10)
#define MGMT_IDLE_TIMEOUT_S 60

enum { GET = 1, PUT = 2, POST = 4, DELETE = 8 };

struct route {
	unsigned methods;
	const char *path[MGMT_MAX_SEGMENTS];	/* "*": any one segment */
	enum mgmt_access access;
	mgmt_handler *fn;
};

#define M ACCESS_MANAGEMENT
#define A ACCESS_ADMIN
static const struct route routes[] = {
	{ GET, { "overview" }, M, mgmt_overview },
	{ GET, { "whoami" }, M, mgmt_whoami },
	{ GET, { "users" }, A, mgmt_users },
	{ GET | PUT | DELETE, { "users", "*" }, A, mgmt_user },
	{ GET, { "users", "*", "permissions" }, A, mgmt_user_permissions },
	{ GET, { "vhosts" }, M, mgmt_vhosts },
	{ GET | PUT | DELETE, { "vhosts", "*" }, M, mgmt_vhost_one },
	{ GET, { "vhosts", "*", "permissions" }, A, mgmt_vhost_permissions },
	{ GET, { "permissions" }, A, mgmt_permissions },
	{ GET | PUT | DELETE, { "permissions", "*", "*" }, A, mgmt_permission },
	{ GET, { "topic-permissions" }, A, mgmt_topic_permissions },
	{ GET | PUT | DELETE, { "topic-permissions", "*", "*" }, A,
	    mgmt_topic_permission },
	{ GET, { "vhost-limits" }, M, mgmt_vhost_limits },
	{ GET, { "vhost-limits", "*" }, M, mgmt_vhost_limits },
	{ PUT | DELETE, { "vhost-limits", "*", "*" }, A, mgmt_vhost_limit },
	{ GET, { "user-limits" }, A, mgmt_user_limits },
	{ GET, { "user-limits", "*" }, A, mgmt_user_limits },
	{ PUT | DELETE, { "user-limits", "*", "*" }, A, mgmt_user_limit },
	{ GET, { "queues" }, M, mgmt_queues },
	{ GET, { "queues", "*" }, M, mgmt_queues },
	{ GET | PUT | DELETE, { "queues", "*", "*" }, M, mgmt_queue },
	{ DELETE, { "queues", "*", "*", "contents" }, M, mgmt_queue_contents },
	{ GET, { "exchanges" }, M, mgmt_exchanges },
	{ GET, { "exchanges", "*" }, M, mgmt_exchanges },
	{ GET | PUT | DELETE, { "exchanges", "*", "*" }, M, mgmt_exchange },
	{ POST, { "exchanges", "*", "*", "publish" }, M, mgmt_publish },
	{ GET, { "exchanges", "*", "*", "delayed" }, M, mgmt_delayed_list },
	{ DELETE, { "exchanges", "*", "*", "delayed", "*" }, M,
	    mgmt_delayed_cancel },
	{ POST, { "queues", "*", "*", "get" }, M, mgmt_get },
	{ GET, { "queues", "*", "*", "browse" }, M, mgmt_browse },
	{ GET, { "trace", "*" }, M, mgmt_trace },
	{ POST, { "route", "*", "*" }, M, mgmt_route },
	{ GET, { "exchanges", "*", "*", "bindings", "source" }, M,
	    mgmt_object_bindings },
	{ GET, { "exchanges", "*", "*", "bindings", "destination" }, M,
	    mgmt_object_bindings },
	{ GET, { "queues", "*", "*", "bindings" }, M, mgmt_object_bindings },
	{ GET, { "bindings" }, M, mgmt_bindings },
	{ GET, { "bindings", "*" }, M, mgmt_bindings },
	{ GET | POST, { "bindings", "*", "e", "*", "q", "*" }, M,
	    mgmt_bindings_between },
	{ GET | POST, { "bindings", "*", "e", "*", "e", "*" }, M,
	    mgmt_bindings_between },
	{ GET | DELETE, { "bindings", "*", "e", "*", "q", "*", "*" }, M,
	    mgmt_binding },
	{ GET | DELETE, { "bindings", "*", "e", "*", "e", "*", "*" }, M,
	    mgmt_binding },
	{ GET, { "connections" }, M, mgmt_connections },
	{ GET | DELETE, { "connections", "*" }, M, mgmt_connection },
	{ GET, { "channels" }, M, mgmt_channels },
	{ GET, { "consumers" }, M, mgmt_consumers },
	{ GET, { "consumers", "*" }, M, mgmt_consumers },
	{ GET | POST, { "definitions" }, A, mgmt_definitions },
	{ GET | POST, { "definitions", "*" }, A, mgmt_vhost_definitions },
	{ GET, { "health", "checks", "alarms" }, M, mgmt_health_alarms },
	{ GET, { "health", "checks", "local-alarms" }, M, mgmt_health_alarms },
	{ GET, { "health", "checks", "port-listener", "*" }, M,
	    mgmt_health_listener },
	{ GET, { "health", "checks", "protocol-listener", "*" }, M,
	    mgmt_health_listener },
	{ GET, { "health", "checks", "virtual-hosts" }, M,
	    mgmt_health_vhosts },
	{ GET, { "health", "checks", "node-is-quorum-critical" }, M,
	    mgmt_health_vhosts },
	{ GET, { "health", "checks", "node-is-mirror-sync-critical" }, M,
	    mgmt_health_vhosts },
	{ GET, { "aliveness-test", "*" }, M, mgmt_aliveness },
};
#undef M
#undef A

struct mgmt {
	struct evhttp *http;		/* the API; NULL: off */
	struct evhttp *https;		/* the API over TLS; NULL: off */
	SSL_CTX *tls;
	struct evhttp *metrics;		/* Prometheus; NULL: off */
};

/* ---- replies ------------------------------------------------------------ */

void mgmt_reply(struct mgmt_req *q, int status, json_t *json)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(q->r);
	struct evkeyvalq *h = evhttp_request_get_output_headers(q->r);
	char *text;

	evhttp_add_header(h, "Cache-Control", "no-cache");
	if (json == NULL) {
		evhttp_send_reply(q->r, status, NULL, NULL);
		return;
	}
	evhttp_add_header(h, "Content-Type", "application/json");
	text = json_dumps(json, JSON_COMPACT);
	json_decref(json);
	if (text) {
		evbuffer_add(out, text, strlen(text));
		free(text);
	}
	evhttp_send_reply(q->r, status, NULL, NULL);
}

void mgmt_error(struct mgmt_req *q, int status, const char *error,
    const char *reason)
{
	mgmt_reply(q, status, json_pack("{s:s, s:s}", "error", error,
	    "reason", reason));
}

void mgmt_not_found(struct mgmt_req *q)
{
	mgmt_error(q, HTTP_NOTFOUND, "Object Not Found", "Not Found");
}

void mgmt_amqp_error(struct mgmt_req *q, const struct amqp_error *err)
{
	switch (err->code) {
	case AMQP_NOT_FOUND:
		mgmt_error(q, HTTP_NOTFOUND, "Object Not Found", err->text);
		return;
	case AMQP_ACCESS_REFUSED:
		mgmt_error(q, 403, "access_refused", err->text);
		return;
	default:
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", err->text);
	}
}

long long mgmt_query_count(struct mgmt_req *q, const char *key,
    long long dflt)
{
	const char *v = mgmt_query(q, key);
	char *end;
	long long n;

	if (v == NULL)
		return dflt;
	n = strtoll(v, &end, 10);
	return *v == '\0' || *end != '\0' || n < 0 ? -1 : n;
}

const char *mgmt_query(struct mgmt_req *q, const char *key)
{
	return evhttp_find_header(q->query, key);
}

/* ---- access --------------------------------------------------------------- */

bool mgmt_may_see(const struct mgmt_req *q, const struct vhost *vh)
{
	return q->sees_all_vhosts ||
	    userdb_permissions(q->b->users, q->user->name, vh->name) != NULL;
}

struct vhost **mgmt_visible_vhosts(struct mgmt_req *q, size_t *n)
{
	size_t count, i = 0;
	struct strmap_entry *all = strmap_sorted(q->b->vhosts, &count);
	struct vhost **out = xcalloc(count + 1, sizeof(*out));

	for (size_t j = 0; j < count; j++)
		if (mgmt_may_see(q, all[j].value))
			out[i++] = all[j].value;
	free(all);
	*n = i;
	return out;
}

struct vhost *mgmt_vhost(struct mgmt_req *q, int i)
{
	struct vhost *vh = broker_find_vhost(q->b, bytes_str(q->seg[i]));

	if (vh == NULL) {
		mgmt_not_found(q);
		return NULL;
	}
	if (!mgmt_may_see(q, vh)) {
		/* RabbitMQ's answer: the vhost exists, this user may not use it. */
		mgmt_error(q, 401, "not_authorised",
		    "User not authorised to access virtual host");
		return NULL;
	}
	return vh;
}

const char *mgmt_exchange_name(const char *segment)
{
	return strcmp(segment, "amq.default") == 0 ? "" : segment;
}

bool mgmt_body_str(struct mgmt_req *q, const char *key, const char *dflt,
    const char **out)
{
	json_t *v = json_object_get(q->body, key);
	char why[128];

	if (v == NULL && dflt != NULL) {
		*out = dflt;
		return true;
	}
	if (!json_is_string(v)) {
		snprintf(why, sizeof(why), "'%s' must be a string", key);
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

/*
 * RabbitMQ's API takes "true"/"false" and decimal strings where it means
 * booleans and integers, and rabbitmqadmin sends them so.
 */
bool mgmt_body_bool(struct mgmt_req *q, const char *key, bool dflt,
    bool *out)
{
	json_t *v = json_object_get(q->body, key);
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	char why[128];

	if (v == NULL || json_is_boolean(v)) {
		*out = v ? json_is_true(v) : dflt;
		return true;
	}
	if (s && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
		*out = strcmp(s, "true") == 0;
		return true;
	}
	snprintf(why, sizeof(why), "'%s' must be true or false", key);
	mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
	return false;
}

bool mgmt_body_int(struct mgmt_req *q, const char *key, long long dflt,
    long long min, long long max, long long *out)
{
	json_t *v = json_object_get(q->body, key);
	char why[160], *end;

	if (v == NULL) {
		*out = dflt;		/* out of range: the key is required */
	} else if (json_is_integer(v)) {
		*out = json_integer_value(v);
	} else if (json_is_string(v) && *json_string_value(v)) {
		errno = 0;
		*out = strtoll(json_string_value(v), &end, 10);
		if (*end != '\0' || errno != 0)
			*out = min - 1;
	} else {
		*out = min - 1;
	}
	if (*out >= min && *out <= max)
		return true;
	snprintf(why, sizeof(why), "'%s' must be an integer from %lld to %lld",
	    key, min, max);
	mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
	return false;
}

/* The user of an "Authorization: Basic ..." header, or NULL. */
static const struct user *authenticate(struct broker *b, const char *header)
{
	unsigned char decoded[512];
	const struct user *u;
	const char *colon;
	size_t n, len;
	int got;

	if (header == NULL || strncasecmp(header, "Basic ", 6) != 0)
		return NULL;
	header += 6;
	n = strlen(header);
	if (n == 0 || n % 4 != 0 || n / 4 * 3 >= sizeof(decoded))
		return NULL;
	if ((got = EVP_DecodeBlock(decoded, (const unsigned char *)header,
	    (int)n)) < 0)
		return NULL;
	len = (size_t)got;
	while (len > 0 && n > 0 && header[--n] == '=')
		len--;
	if ((colon = memchr(decoded, ':', len)) == NULL)
		return NULL;
	u = userdb_find(b->users, (struct bytes){ decoded,
	    (uint32_t)(colon - (const char *)decoded) });
	if (u == NULL || !user_password_ok(u, (struct bytes){
	    (const uint8_t *)colon + 1,
	    (uint32_t)(len - (size_t)(colon + 1 - (const char *)decoded)) }))
		return NULL;
	return u;
}

bool mgmt_permitted(struct mgmt_req *q, const struct vhost *vh, int what,
    bool queue, const char *name, bool quiet)
{
	static const char *const verbs[] = { "configure", "write", "read" };
	const char *res = !queue && *name == '\0' ? "amq.default" : name;

	if (userdb_permitted(q->b->users, q->user->name, vh->name,
	    (enum access)what, res))
		return true;
	log_warning("management API: user '%s' refused %s access to %s '%s' "
	    "in vhost '%s'", q->user->name, verbs[what], queue ? "queue" :
	    "exchange", res, vh->name);
	if (!quiet)
		mgmt_error(q, 401, "not_authorised", "Access refused.");
	return false;
}

static bool allowed(const struct user *u, enum mgmt_access need)
{
	bool admin = user_has_tag(u, "administrator");
	bool monitoring = admin || user_has_tag(u, "monitoring");

	switch (need) {
	case ACCESS_ADMIN:
		return admin;
	case ACCESS_MONITORING:
		return monitoring;
	case ACCESS_MANAGEMENT:
		break;
	}
	return monitoring || user_has_tag(u, "management") ||
	    user_has_tag(u, "policymaker");
}

/* ---- requests ------------------------------------------------------------- */

static unsigned method_bit(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		return GET;
	case EVHTTP_REQ_PUT:
		return PUT;
	case EVHTTP_REQ_POST:
		return POST;
	case EVHTTP_REQ_DELETE:
		return DELETE;
	default:
		return 0;
	}
}

/* Split and decode the path after "/api/"; false if it is not one. */
static bool split_path(struct mgmt_req *q, const char *path)
{
	const char *p;

	if (path == NULL || strncmp(path, "/api/", 5) != 0)
		return false;
	p = path + 5;
	while (*p) {
		size_t n = strcspn(p, "/"), len;
		char *raw, *seg;

		if (q->n_seg == MGMT_MAX_SEGMENTS)
			return false;
		raw = xmalloc(n + 1);
		memcpy(raw, p, n);
		raw[n] = '\0';
		seg = evhttp_uridecode(raw, 0, &len);
		free(raw);
		/* A NUL inside a name is never a valid name. */
		if (seg == NULL || strlen(seg) != len) {
			free(seg);
			return false;
		}
		q->seg[q->n_seg++] = seg;
		p += n;
		if (*p == '/' && *++p == '\0')
			break;		/* a trailing slash */
	}
	return q->n_seg > 0;
}

static const struct route *find_route(const struct mgmt_req *q,
    bool *path_known)
{
	*path_known = false;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *rt = &routes[i];
		int n = 0;

		while (n < MGMT_MAX_SEGMENTS && rt->path[n])
			n++;
		if (n != q->n_seg)
			continue;
		for (n = 0; n < q->n_seg; n++)
			if (strcmp(rt->path[n], "*") != 0 &&
			    strcmp(rt->path[n], q->seg[n]) != 0)
				break;
		if (n == q->n_seg) {
			*path_known = true;
			if (rt->methods &
			    method_bit(evhttp_request_get_command(q->r)))
				return rt;
		}
	}
	return NULL;
}

static bool read_body(struct mgmt_req *q)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(q->r);
	size_t n = evbuffer_get_length(in);
	json_error_t jerr;
	char why[256];

	if (n == 0)
		return true;
	q->body = json_loadb((const char *)evbuffer_pullup(in, -1), n, 0,
	    &jerr);
	if (q->body == NULL || !json_is_object(q->body)) {
		snprintf(why, sizeof(why), "not a JSON object: %s",
		    q->body ? "another JSON value" : jerr.text);
		mgmt_error(q, HTTP_BADREQUEST, "bad_request", why);
		return false;
	}
	return true;
}

/*
 * Authenticate q's request into q->user, within the per-address budget of
 * failed logins that AMQP logins share: an address out of it is answered
 * 429 without its password being checked (false), as a guesser that
 * switches protocols gets no second budget.  A request without credentials
 * is no failed guess (browsers send one first).
 */
static bool login_allowed(struct mgmt_req *q)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(q->r);
	const char *auth = evhttp_find_header(
	    evhttp_request_get_input_headers(q->r), "Authorization");
	char *address = NULL;
	const char *peer;
	ev_uint16_t port;

	if (conn != NULL)
		evhttp_connection_get_peer(conn, &address, &port);
	peer = address != NULL ? address : "";
	if (!login_throttle_admits(q->b->login_throttle, peer)) {
		evhttp_add_header(evhttp_request_get_output_headers(q->r),
		    "Retry-After", "1");
		mgmt_error(q, 429, "too_many_requests",
		    "Too many failed logins from this address; try again later");
		return false;
	}
	q->user = authenticate(q->b, auth);
	if (q->user == NULL && auth != NULL) {
		login_throttle_failed(q->b->login_throttle, peer);
		log_warning("management API: login failed from %s", peer);
	}
	return true;
}

static void on_request(struct evhttp_request *r, void *arg)
{
	struct broker *b = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r);
	struct evkeyvalq query;
	struct mgmt_req q = { .b = b, .r = r, .query = &query };
	const struct route *rt;
	bool path_known;

	b->clock_ms = conn_now_ms();	/* ages and latencies are read now */
	if (mgmt_console_path(evhttp_uri_get_path(uri))) {
		mgmt_console_serve(r, b->cfg, evhttp_uri_get_path(uri));
		return;
	}
	TAILQ_INIT(&query);
	if (evhttp_uri_get_query(uri) &&
	    evhttp_parse_query_str(evhttp_uri_get_query(uri), &query) != 0) {
		mgmt_error(&q, HTTP_BADREQUEST, "bad_request",
		    "malformed query string");
		goto done;
	}
	if (!split_path(&q, evhttp_uri_get_path(uri))) {
		mgmt_not_found(&q);
		goto done;
	}
	if (!login_allowed(&q))
		goto done;
	if (q.user == NULL || !allowed(q.user, ACCESS_MANAGEMENT)) {
		/* Not to a script (the web console), whose browser would
		 * put up its own password dialog over the page's. */
		if (evhttp_find_header(evhttp_request_get_input_headers(r),
		    "X-Requested-With") == NULL)
			evhttp_add_header(evhttp_request_get_output_headers(r),
			    "WWW-Authenticate",
			    "Basic realm=\"RabbitMQ Management\"");
		mgmt_error(&q, 401, "not_authorized", q.user ?
		    "Not management user" : "Login failed");
		goto done;
	}
	q.sees_all_vhosts = allowed(q.user, ACCESS_MONITORING);
	if ((rt = find_route(&q, &path_known)) == NULL) {
		if (path_known)
			mgmt_error(&q, 405, "Method Not Allowed",
			    "Method Not Allowed");
		else
			mgmt_not_found(&q);
		goto done;
	}
	if (!allowed(q.user, rt->access)) {
		mgmt_error(&q, 401, "not_authorized", "Not administrator user");
		goto done;
	}
	if (read_body(&q))
		rt->fn(&q);
	/*
	 * A change is on disk before its reply: the reply is only queued
	 * so far, and leaves on a later loop turn.
	 */
	broker_save_definitions(b);
done:
	evhttp_clear_headers(&query);
	json_decref(q.body);
	for (int i = 0; i < q.n_seg; i++)
		free(q.seg[i]);
}

/* /metrics and /metrics/per-object, without authentication (RabbitMQ's). */
static void on_metrics(struct evhttp_request *r, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(r));
	struct evbuffer *out = evhttp_request_get_output_buffer(r);
	bool per_object;

	if (path && strcmp(path, "/metrics") == 0)
		per_object = false;
	else if (path && strcmp(path, "/metrics/per-object") == 0)
		per_object = true;
	else {
		evhttp_send_error(r, HTTP_NOTFOUND, NULL);
		return;
	}
	metrics_render(arg, per_object, out);
	evhttp_add_header(evhttp_request_get_output_headers(r),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(r, HTTP_OK, NULL, NULL);
}

/* An HTTP server on ip:port calling cb; NULL (logged) if it cannot be. */
static struct evhttp *serve(struct broker *b, const char *what,
    const char *ip, uint16_t port, void (*cb)(struct evhttp_request *,
    void *))
{
	struct evhttp *http = evhttp_new(b->base);

	if (http == NULL) {
		log_error("%s: evhttp_new failed", what);
		return NULL;
	}
	evhttp_set_max_body_size(http, MGMT_MAX_BODY);
	/* A client that sends endless headers, or nothing, is dropped. */
	evhttp_set_max_headers_size(http, MGMT_MAX_HEADERS);
	evhttp_set_timeout(http, MGMT_IDLE_TIMEOUT_S);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(http, cb, b);
	if (evhttp_bind_socket(http, ip, port) != 0) {
		log_error("%s: cannot listen on %s:%u", what, ip, port);
		evhttp_free(http);
		return NULL;
	}
	log_info("%s listening on %s:%u", what, ip, port);
	return http;
}

/* Each HTTPS connection gets a TLS bufferevent on the API's context. */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);

	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static SSL_CTX *https_context(const struct warren_config *cfg, char *err,
    size_t errlen)
{
	const struct tls_files f = { "management.ssl", cfg->mgmt_ssl_certfile,
	    cfg->mgmt_ssl_keyfile, cfg->mgmt_ssl_cacertfile, false, false,
	    cfg->ssl_versions, cfg->ssl_ciphers };

	return tls_context(&f, err, errlen);
}

void mgmt_reload_tls(struct broker *b)
{
	struct mgmt *m = b->mgmt;
	char err[512];
	SSL_CTX *ctx;

	if (m == NULL || m->https == NULL)
		return;
	if ((ctx = https_context(b->cfg, err, sizeof(err))) == NULL) {
		log_error("management API: TLS files not reloaded: %s", err);
		return;
	}
	/* Connections made with the old context keep it (each SSL holds a
	 * reference); new ones get the new. */
	evhttp_set_bevcb(m->https, tls_bev, ctx);
	SSL_CTX_free(m->tls);
	m->tls = ctx;
	log_info("management API: TLS certificate and key reloaded");
}

static bool start_https(struct broker *b, struct mgmt *m)
{
	const struct warren_config *cfg = b->cfg;
	char err[512];

	if (cfg->mgmt_ssl_certfile == NULL || cfg->mgmt_ssl_keyfile == NULL) {
		log_error("management.ssl.port needs management.ssl.certfile "
		    "and management.ssl.keyfile");
		return false;
	}
	if ((m->tls = https_context(cfg, err, sizeof(err))) == NULL) {
		log_error("%s", err);
		return false;
	}
	if ((m->https = serve(b, "management API (HTTPS)", cfg->mgmt_ssl_ip,
	    cfg->mgmt_ssl_port, on_request)) == NULL)
		return false;
	evhttp_set_bevcb(m->https, tls_bev, m->tls);
	return true;
}

bool mgmt_start(struct broker *b)
{
	const struct warren_config *cfg = b->cfg;
	struct mgmt *m = xcalloc(1, sizeof(*m));

	b->mgmt = m;
	if (cfg->mgmt_port && (m->http = serve(b, "management API",
	    cfg->mgmt_ip, cfg->mgmt_port, on_request)) == NULL)
		return false;
	if (cfg->mgmt_ssl_port && !start_https(b, m))
		return false;
	if (cfg->prometheus_port && (m->metrics = serve(b,
	    "Prometheus metrics", cfg->prometheus_ip, cfg->prometheus_port,
	    on_metrics)) == NULL)
		return false;
	return true;
}

void mgmt_stop(struct broker *b)
{
	if (b->mgmt == NULL)
		return;
	if (b->mgmt->http)
		evhttp_free(b->mgmt->http);
	if (b->mgmt->metrics)
		evhttp_free(b->mgmt->metrics);
	if (b->mgmt->https)
		evhttp_free(b->mgmt->https);
	SSL_CTX_free(b->mgmt->tls);
	free(b->mgmt);
	b->mgmt = NULL;
}

/* ---- list replies, a slice per loop turn ---------------------------------- */

/* Items rendered per loop turn: ~25 us each for a queue. */
#define STREAM_SLICE 100
#define MAX_PAGE_SIZE 500

struct stream {
	struct evhttp_request *r;
	bool gone;			/* the client went away */
	struct evhttp_connection *evcon;
	struct broker *b;
	struct mgmt_item *items;
	size_t n, at, emitted;
	mgmt_item_json *fn;
	bool paged;
	struct event *ev;
	struct evbuffer *chunk;
};

static void free_items(struct mgmt_item *items, size_t from, size_t n)
{
	for (size_t i = from; i < n; i++) {
		free(items[i].vhost);
		free(items[i].name);
	}
}

static void stream_free(struct stream *s)
{
	if (s->evcon)
		evhttp_connection_set_closecb(s->evcon, NULL, NULL);
	free_items(s->items, 0, s->n);
	free(s->items);
	event_free(s->ev);
	evbuffer_free(s->chunk);
	free(s);
}

/*
 * The client closed mid-reply: evhttp has detached the request from its
 * connection, and ending the reply is what frees it.
 */
static void stream_gone(struct evhttp_connection *evcon, void *arg)
{
	struct stream *s = arg;

	(void)evcon;
	s->gone = true;
	s->evcon = NULL;
}

static void stream_slice(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	size_t end = s->at + STREAM_SLICE < s->n ? s->at + STREAM_SLICE : s->n;

	(void)fd;
	(void)what;
	if (s->gone) {
		evhttp_send_reply_end(s->r);
		stream_free(s);
		return;
	}
	for (; s->at < end; s->at++) {
		json_t *j = s->fn(s->b, &s->items[s->at]);
		char *text;

		if (j == NULL)
			continue;	/* deleted since the list was taken */
		text = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (text == NULL)
			continue;
		if (s->emitted++)
			evbuffer_add(s->chunk, ",", 1);
		evbuffer_add(s->chunk, text, strlen(text));
		free(text);
	}
	if (s->at == s->n)
		evbuffer_add_printf(s->chunk, "]%s", s->paged ? "}" : "");
	evhttp_send_reply_chunk(s->r, s->chunk);
	if (s->at < s->n) {
		/*
		 * A zero timer, not event_active: an event activated from a
		 * callback runs in the same pass, before any socket is
		 * polled; a timer waits for the next turn.
		 */
		static const struct timeval now = { 0, 0 };

		evtimer_add(s->ev, &now);
		return;
	}
	evhttp_send_reply_end(s->r);
	stream_free(s);
}

/* Whether name passes the query's name filter (substring or regex). */
static bool name_matches(const char *name, const char *filter,
    const regex_t *re)
{
	if (filter == NULL)
		return true;
	return re ? regexec(re, name, 0, NULL, 0) == 0 :
	    strstr(name, filter) != NULL;
}

/* page and page_size from the query; false: a 400 was sent. */
static bool paging(struct mgmt_req *q, long *page, long *size)
{
	const char *p = mgmt_query(q, "page"), *ps = mgmt_query(q, "page_size");
	char *end;

	*page = 0;
	*size = 100;		/* RabbitMQ's default page size */
	if (p == NULL)
		return true;
	*page = strtol(p, &end, 10);
	if (*end || *page < 1) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request",
		    "page must be a positive integer");
		return false;
	}
	if (ps) {
		*size = strtol(ps, &end, 10);
		if (*end || *size < 1 || *size > MAX_PAGE_SIZE) {
			mgmt_error(q, HTTP_BADREQUEST, "bad_request",
			    "page_size must be between 1 and 500");
			return false;
		}
	}
	return true;
}

void mgmt_reply_items(struct mgmt_req *q, struct mgmt_item *items,
    size_t n, mgmt_item_json *fn)
{
	const char *filter = mgmt_query(q, "name");
	const char *use_regex = mgmt_query(q, "use_regex");
	size_t kept = 0, total = n, first, count;
	struct stream *s;
	long page, size;
	regex_t re;
	bool regex = filter && use_regex && strcmp(use_regex, "true") == 0;

	if (!paging(q, &page, &size))
		goto refused;
	if (regex && regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0) {
		mgmt_error(q, HTTP_BADREQUEST, "bad_request",
		    "name is not a valid regular expression");
		goto refused;
	}
	for (size_t i = 0; i < n; i++) {
		if (name_matches(items[i].name, filter, regex ? &re : NULL))
			items[kept++] = items[i];
		else
			free_items(items, i, i + 1);
	}
	if (regex)
		regfree(&re);
	first = page ? (size_t)(page - 1) * (size_t)size : 0;
	if (first > kept)
		first = kept;
	count = page ? ((size_t)size < kept - first ? (size_t)size :
	    kept - first) : kept;
	free_items(items, 0, first);
	free_items(items, first + count, kept);
	if (count)
		memmove(items, items + first, count * sizeof(*items));

	s = xcalloc(1, sizeof(*s));
	s->r = q->r;
	s->b = q->b;
	s->items = items;
	s->n = count;
	s->fn = fn;
	s->paged = page != 0;
	s->chunk = evbuffer_new();
	s->ev = evtimer_new(q->b->base, stream_slice, s);
	if (s->chunk == NULL || s->ev == NULL)
		fatalx("out of memory streaming a reply");
	s->evcon = evhttp_request_get_connection(q->r);
	evhttp_connection_set_closecb(s->evcon, stream_gone, s);
	evhttp_add_header(evhttp_request_get_output_headers(q->r),
	    "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(q->r),
	    "Cache-Control", "no-cache");
	evhttp_send_reply_start(q->r, HTTP_OK, NULL);
	if (s->paged)
		evbuffer_add_printf(s->chunk, "{\"filtered_count\":%zu,"
		    "\"item_count\":%zu,\"page\":%ld,\"page_count\":%zu,"
		    "\"page_size\":%ld,\"total_count\":%zu,\"items\":[", kept,
		    count, page, (kept + (size_t)size - 1) / (size_t)size,
		    size, total);
	else
		evbuffer_add(s->chunk, "[", 1);
	stream_slice(-1, 0, s);
	return;
refused:
	free_items(items, 0, n);
	free(items);
}
