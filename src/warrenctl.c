/*
 * warrenctl: administer a running warrend through its management API (see
 * ctl.h and warrenctl(1)).  Global options, then a verb of one to three
 * words, then the verb's arguments and options.  Credentials come from
 * the command line, the environment (WARRENCTL_*) or an rc file
 * (~/.warrenctlrc, or $WARRENCTL_RC), in that order of precedence.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif

#define MAX_OPTS 32

/* A verb's command line after its words: positionals and --options. */
struct args {
	const char *pos[16];
	int n_pos;
	const char *opt[MAX_OPTS], *val[MAX_OPTS];	/* val NULL: a flag */
	int n_opt;
};

struct verb {
	const char *words;		/* "list queues" */
	int min_pos, max_pos;
	const char *flags;		/* options without a value, "|a|b|" */
	const char *valued;		/* options with one */
	const char *usage;		/* arguments and options */
	const char *help;
	int (*run)(struct ctl *, const struct verb *, struct args *);
};

static const char *prog = "warrenctl";

static int usage_error(const struct verb *v, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	if (v)
		fprintf(stderr, "\nusage: %s %s %s\n(%s %s --help says more)\n",
		    prog, v->words, v->usage, prog, v->words);
	else
		fprintf(stderr, "\n(%s --help lists the verbs)\n", prog);
	return CTL_USAGE;
}

static const char *opt(const struct args *a, const char *name)
{
	for (int i = 0; i < a->n_opt; i++)
		if (strcmp(a->opt[i], name) == 0)
			return a->val[i] ? a->val[i] : "";
	return NULL;
}

/* ---- requests ------------------------------------------------------------ */

/* Run a request; on failure print why (with what to do) and return its
 * exit code, else CTL_OK with the reply in *r (ctl_reply_free it). */
static int call(struct ctl *c, const char *method, const char *path,
    json_t *body, struct ctl_reply *r)
{
	bool answered = ctl_request(c, method, path, body, r);

	json_decref(body);
	if (!answered) {
		fprintf(stderr, "%s: cannot reach the management API at "
		    "http://%s:%u: %s\n(is warrend running with "
		    "management.tcp.port = %u? -H and -P choose another)\n",
		    prog, c->host, c->port, r->error, c->port);
		return CTL_UNREACHABLE;
	}
	if (r->status >= 200 && r->status < 300)
		return CTL_OK;
	{
		json_t *reason = json_object_get(r->json, "reason");

		fprintf(stderr, "%s: %s %s: %s (HTTP %d)\n", prog, method,
		    path, json_is_string(reason) ? json_string_value(reason) :
		    "refused", r->status);
		if (r->status == 401)
			fprintf(stderr, "(check the user and password: -u, -p, "
			    "WARRENCTL_USER, WARRENCTL_PASSWORD or "
			    "~/.warrenctlrc; the user needs the "
			    "administrator tag for most changes)\n");
	}
	ctl_reply_free(r);
	return CTL_REFUSED;
}

/* A request whose reply only says yes or no. */
static int simple(struct ctl *c, const char *method, const char *path,
    json_t *body, const char *done)
{
	struct ctl_reply r;
	int rc = call(c, method, path, body, &r);

	if (rc == CTL_OK) {
		ctl_reply_free(&r);
		if (c->json)
			printf("{\"ok\": true}\n");
		else if (done)
			printf("%s\n", done);
	}
	return rc;
}

/* "/api/" + the segments, each percent-encoded. */
static char *api_path(const char *first, ...)
{
	char *path = strdup("/api"), *next;
	const char *seg;
	va_list ap;

	va_start(ap, first);
	for (seg = first; seg; seg = va_arg(ap, const char *)) {
		char *e = ctl_encode(seg);
		size_t n = strlen(path) + strlen(e) + 2;

		next = malloc(n);
		if (next == NULL)
			exit(CTL_UNREACHABLE);
		snprintf(next, n, "%s/%s", path, e);
		free(e);
		free(path);
		path = next;
	}
	va_end(ap);
	return path;
}

/* Options KEY=VALUE: --arg, and -H/--header (a trace's headers). */
static bool key_value_option(const char *name)
{
	return strcmp(name, "--arg") == 0 || strcmp(name, "-H") == 0 ||
	    strcmp(name, "--header") == 0;
}

/* The KEY=VALUE options of kind like (VALUE as JSON if it parses, else a
 * string) as an object. */
static json_t *key_values(const struct args *a, bool (*like)(const char *))
{
	json_t *o = json_object();

	for (int i = 0; i < a->n_opt; i++) {
		const char *kv = a->val[i], *eq;
		json_t *v;

		if (!like(a->opt[i]) || kv == NULL ||
		    (eq = strchr(kv, '=')) == NULL)
			continue;
		v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
		if (v == NULL)
			v = json_string(eq + 1);
		{
			char *key = strndup(kv, (size_t)(eq - kv));

			json_object_set_new(o, key, v);
			free(key);
		}
	}
	return o;
}

static bool is_arg(const char *name)
{
	return strcmp(name, "--arg") == 0;
}

static bool is_header(const char *name)
{
	return strcmp(name, "-H") == 0 || strcmp(name, "--header") == 0;
}

/* --arg KEY=VALUE options as an arguments object. */
static json_t *arguments(const struct args *a)
{
	return key_values(a, is_arg);
}

static int check_args(const struct args *a, const struct verb *v)
{
	for (int i = 0; i < a->n_opt; i++)
		if (key_value_option(a->opt[i]) &&
		    (a->val[i] == NULL || strchr(a->val[i], '=') == NULL)) {
			fprintf(stderr, "%s: %s wants KEY=VALUE\n", prog,
			    a->opt[i]);
			return usage_error(v, "not '%s'", a->val[i] ?
			    a->val[i] : "");
		}
	return CTL_OK;
}

/* ---- verbs ---------------------------------------------------------------- */

static int run_status(struct ctl *c, const struct verb *v, struct args *a)
{
	static const char *const keys[] = { "product_name", "product_version",
	    "rabbitmq_version", "node", "object_totals.connections",
	    "object_totals.channels", "object_totals.queues",
	    "object_totals.exchanges", "object_totals.consumers",
	    "queue_totals.messages", "queue_totals.messages_ready",
	    "queue_totals.messages_unacknowledged" };
	struct ctl_reply r;
	int rc = call(c, "GET", "/api/overview", NULL, &r);

	(void)v;
	(void)a;
	if (rc)
		return rc;
	if (c->json)
		ctl_print_json(r.json);
	else
		ctl_print_fields(r.json, keys, sizeof(keys) / sizeof(keys[0]));
	ctl_reply_free(&r);
	return CTL_OK;
}

static const struct listing {
	const char *what;
	bool per_vhost;			/* /api/WHAT/{vhost} */
	const char *columns[7];
} listings[] = {
	{ "queues", true, { "name", "type", "durable", "messages_ready",
	    "messages_unacknowledged", "consumers", "oldest_ready_age_ms" } },
	{ "exchanges", true, { "name", "type", "durable", "auto_delete",
	    "internal" } },
	{ "bindings", true, { "source", "destination", "destination_type",
	    "routing_key", "arguments" } },
	{ "connections", false, { "name", "user", "vhost", "channels",
	    "state" } },
	{ "channels", false, { "name", "user", "vhost", "consumer_count",
	    "messages_unacknowledged", "prefetch_count" } },
	{ "consumers", true, { "consumer_tag", "queue.name", "ack_required",
	    "prefetch_count", "channel_details.name" } },
	{ "users", false, { "name", "tags" } },
	{ "vhosts", false, { "name", "messages", "messages_ready",
	    "messages_unacknowledged" } },
	{ "permissions", false, { "user", "vhost", "configure", "write",
	    "read" } },
	{ "vhost-limits", true, { "vhost", "value" } },
	{ "user-limits", false, { "user", "value" } },
};

static int run_list(struct ctl *c, const struct verb *v, struct args *a)
{
	const char *what = a->pos[0];
	const struct listing *l = NULL;
	struct ctl_reply r;
	size_t n = 0;
	char *path;
	int rc;

	for (size_t i = 0; i < sizeof(listings) / sizeof(listings[0]); i++)
		if (strcmp(listings[i].what, what) == 0)
			l = &listings[i];
	if (l == NULL)
		return usage_error(v, "cannot list '%s'", what);
	if (strcmp(what, "permissions") == 0 && opt(a, "--all-vhosts") == NULL)
		path = api_path("vhosts", c->vhost, "permissions", NULL);
	else if (l->per_vhost && opt(a, "--all-vhosts") == NULL)
		path = api_path(what, c->vhost, NULL);
	else
		path = api_path(what, NULL);
	rc = call(c, "GET", path, NULL, &r);
	free(path);
	if (rc)
		return rc;
	while (n < 7 && l->columns[n])
		n++;
	if (c->json)
		ctl_print_json(r.json);
	else
		ctl_print_table(r.json, l->columns, n);
	ctl_reply_free(&r);
	return CTL_OK;
}

static int run_declare_queue(struct ctl *c, const struct verb *v,
    struct args *a)
{
	char *path;
	int rc;

	if ((rc = check_args(a, v)) != 0)
		return rc;
	path = api_path("queues", c->vhost, a->pos[0], NULL);
	rc = simple(c, "PUT", path, json_pack("{s:b, s:b, s:o}", "durable",
	    opt(a, "--transient") == NULL, "auto_delete",
	    opt(a, "--auto-delete") != NULL, "arguments", arguments(a)),
	    "queue declared");
	free(path);
	return rc;
}

static int run_declare_exchange(struct ctl *c, const struct verb *v,
    struct args *a)
{
	char *path;
	int rc;

	if ((rc = check_args(a, v)) != 0)
		return rc;
	path = api_path("exchanges", c->vhost, a->pos[0], NULL);
	rc = simple(c, "PUT", path, json_pack("{s:s, s:b, s:b, s:b, s:o}",
	    "type", a->pos[1], "durable", opt(a, "--transient") == NULL,
	    "auto_delete", opt(a, "--auto-delete") != NULL, "internal",
	    opt(a, "--internal") != NULL, "arguments", arguments(a)),
	    "exchange declared");
	free(path);
	return rc;
}

/* /api/bindings/{vhost}/e/{source}/{q|e}/{destination} */
static char *binding_path(struct ctl *c, struct args *a)
{
	return api_path("bindings", c->vhost, "e", a->pos[0],
	    opt(a, "--to-exchange") ? "e" : "q", a->pos[1], NULL);
}

static int run_declare_binding(struct ctl *c, const struct verb *v,
    struct args *a)
{
	const char *key = opt(a, "--routing-key");
	char *path;
	int rc;

	if ((rc = check_args(a, v)) != 0)
		return rc;
	path = binding_path(c, a);
	rc = simple(c, "POST", path, json_pack("{s:s, s:o}", "routing_key",
	    key ? key : "", "arguments", arguments(a)), "binding declared");
	free(path);
	return rc;
}

/* Every binding from source to destination with the routing key goes. */
static int run_delete_binding(struct ctl *c, const struct verb *v,
    struct args *a)
{
	const char *key = opt(a, "--routing-key");
	struct ctl_reply r;
	char *path = binding_path(c, a);
	size_t i, deleted = 0;
	json_t *b;
	int rc;

	(void)v;
	if ((rc = call(c, "GET", path, NULL, &r)) != 0) {
		free(path);
		return rc;
	}
	json_array_foreach(r.json, i, b) {
		const char *rk = json_string_value(json_object_get(b,
		    "routing_key"));
		const char *props = json_string_value(json_object_get(b,
		    "properties_key"));
		char *one, *e;
		size_t n;

		if (rk == NULL || props == NULL || strcmp(rk, key ? key : ""))
			continue;
		e = ctl_encode(props);
		n = strlen(path) + strlen(e) + 2;
		if ((one = malloc(n)) == NULL)
			exit(CTL_UNREACHABLE);
		snprintf(one, n, "%s/%s", path, e);
		free(e);
		rc = simple(c, "DELETE", one, NULL, NULL);
		free(one);
		if (rc)
			break;
		deleted++;
	}
	ctl_reply_free(&r);
	free(path);
	if (rc == CTL_OK && deleted == 0) {
		fprintf(stderr, "%s: no binding from '%s' to '%s' with routing "
		    "key '%s' in vhost '%s'\n", prog, a->pos[0], a->pos[1],
		    key ? key : "", c->vhost);
		return CTL_REFUSED;
	}
	if (rc == CTL_OK && !c->json)
		printf("%zu binding%s deleted\n", deleted, deleted == 1 ? "" :
		    "s");
	return rc;
}

static int run_delete_object(struct ctl *c, const struct verb *v,
    struct args *a)
{
	/* "delete queue" -> queues, "delete exchange" -> exchanges */
	bool queue = strcmp(v->words, "delete queue") == 0;
	char *path = api_path(queue ? "queues" : "exchanges", c->vhost,
	    a->pos[0], NULL), *full;
	size_t n = strlen(path) + 40;
	int rc;

	if ((full = malloc(n)) == NULL)
		exit(CTL_UNREACHABLE);
	snprintf(full, n, "%s%s%s%s", path,
	    opt(a, "--if-empty") || opt(a, "--if-unused") ? "?" : "",
	    opt(a, "--if-empty") ? "if-empty=true" : "",
	    opt(a, "--if-unused") ? (opt(a, "--if-empty") ?
	    "&if-unused=true" : "if-unused=true") : "");
	rc = simple(c, "DELETE", full, NULL, queue ? "queue deleted" :
	    "exchange deleted");
	free(full);
	free(path);
	return rc;
}

/* A stream's offsets and files, then its named consumers' offsets. */
static int run_show_stream(struct ctl *c, const struct verb *v,
    struct args *a)
{
	static const char *const fields[] = { "first_offset", "last_offset",
	    "segments", "disk_bytes" };
	static const char *const columns[] = { "name", "offset", "lag" };
	char *path = api_path("queues", c->vhost, a->pos[0], NULL);
	struct ctl_reply r;
	json_t *stream;
	int rc = call(c, "GET", path, NULL, &r);

	free(path);
	if (rc)
		return rc;
	stream = json_object_get(r.json, "stream");
	if (stream == NULL) {
		ctl_reply_free(&r);
		return usage_error(v, "'%s' is not a stream", a->pos[0]);
	}
	if (c->json) {
		ctl_print_json(stream);
	} else {
		ctl_print_fields(stream, fields, 4);
		ctl_print_table(json_object_get(stream, "consumer_offsets"),
		    columns, 3);
	}
	ctl_reply_free(&r);
	return CTL_OK;
}

static bool digits(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

/*
 * GET path and print the reply: as JSON with --format json, else the
 * fields of the object, then (if list is not NULL) its member `list` as
 * a table of columns.
 */
static int show(struct ctl *c, const char *path, const char *const *fields,
    size_t n_fields, const char *list, const char *const *columns,
    size_t n_columns)
{
	struct ctl_reply r;
	int rc = call(c, "GET", path, NULL, &r);

	if (rc)
		return rc;
	if (c->json) {
		ctl_print_json(r.json);
	} else {
		ctl_print_fields(r.json, fields, n_fields);
		if (list)
			ctl_print_table(json_object_get(r.json, list), columns,
			    n_columns);
	}
	ctl_reply_free(&r);
	return CTL_OK;
}

static int run_show_queue(struct ctl *c, const struct verb *v,
    struct args *a)
{
	static const char *const fields[] = { "name", "type", "durable",
	    "messages_ready", "messages_unacknowledged", "messages_paged_out",
	    "consumers", "oldest_ready_age_ms", "time_in_queue_ms.p50",
	    "time_in_queue_ms.p99", "delivery_to_ack_ms.p50",
	    "delivery_to_ack_ms.p99", "consumer_utilisation",
	    "message_stats.publish_details.rate",
	    "message_stats.deliver_get_details.rate",
	    "message_stats.ack_details.rate" };
	char *path = api_path("queues", c->vhost, a->pos[0], NULL);
	int rc = show(c, path, fields, sizeof(fields) / sizeof(fields[0]),
	    NULL, NULL, 0);

	(void)v;
	free(path);
	return rc;
}

static int run_show_delayed(struct ctl *c, const struct verb *v,
    struct args *a)
{
	static const char *const fields[] = { "messages", "next_in_ms" };
	static const char *const columns[] = { "id", "due_in_ms", "delay",
	    "routing_key", "properties.message_id", "payload_bytes" };
	const char *count = opt(a, "--count"), *offset = opt(a, "--offset");
	char *base, path[4200];

	count = count ? count : "100";
	offset = offset ? offset : "0";
	if (!digits(count) || !digits(offset))
		return usage_error(v, "%s", "--count and --offset take numbers");
	base = api_path("exchanges", c->vhost, a->pos[0], "delayed", NULL);
	snprintf(path, sizeof(path), "%s?count=%.9s&offset=%.9s", base, count,
	    offset);
	free(base);
	return show(c, path, fields, 2, "scheduled", columns, 6);
}

static int run_cancel_delayed(struct ctl *c, const struct verb *v,
    struct args *a)
{
	char *path = api_path("exchanges", c->vhost, a->pos[0], "delayed",
	    a->pos[1], NULL);
	int rc = simple(c, "DELETE", path, NULL, "delayed message cancelled");

	(void)v;
	free(path);
	return rc;
}

static int run_purge(struct ctl *c, const struct verb *v, struct args *a)
{
	char *path = api_path("queues", c->vhost, a->pos[0], "contents", NULL);
	int rc = simple(c, "DELETE", path, NULL, "queue purged");

	(void)v;
	free(path);
	return rc;
}

/* A password argument: "-" reads it from the first line of stdin. */
static const char *password_arg(const char *arg, char *buf, size_t len)
{
	if (strcmp(arg, "-") != 0)
		return arg;
	if (fgets(buf, (int)len, stdin) == NULL)
		buf[0] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf;
}

/* The user's current JSON, or NULL (error printed, *rc set). */
static json_t *get_user(struct ctl *c, const char *name, int *rc)
{
	struct ctl_reply r;
	char *path = api_path("users", name, NULL);

	*rc = call(c, "GET", path, NULL, &r);
	free(path);
	return *rc ? NULL : r.json;
}

static int run_add_user(struct ctl *c, const struct verb *v, struct args *a)
{
	const char *tags = opt(a, "--tags");
	char buf[1024], *path = api_path("users", a->pos[0], NULL);
	int rc;

	(void)v;
	rc = simple(c, "PUT", path, json_pack("{s:s, s:s}", "password",
	    password_arg(a->pos[1], buf, sizeof(buf)), "tags", tags ? tags :
	    ""), "user added");
	free(path);
	return rc;
}

/* PUT the user again with a new password or new tags, keeping the rest. */
static int update_user(struct ctl *c, const char *name, const char *password,
    json_t *tags, const char *done)
{
	json_t *u, *body;
	char *path;
	int rc;

	if ((u = get_user(c, name, &rc)) == NULL) {
		json_decref(tags);
		return rc;
	}
	body = json_pack("{s:O}", "tags", tags ? tags :
	    json_object_get(u, "tags"));
	json_decref(tags);
	if (password)
		json_object_set_new(body, "password", json_string(password));
	else
		json_object_set(body, "password_hash",
		    json_object_get(u, "password_hash"));
	json_object_set(body, "hashing_algorithm",
	    json_object_get(u, "hashing_algorithm"));
	if (password)
		json_object_del(body, "hashing_algorithm");
	json_decref(u);
	path = api_path("users", name, NULL);
	rc = simple(c, "PUT", path, body, done);
	free(path);
	return rc;
}

static int run_change_password(struct ctl *c, const struct verb *v,
    struct args *a)
{
	char buf[1024];

	(void)v;
	return update_user(c, a->pos[0], password_arg(a->pos[1], buf,
	    sizeof(buf)), NULL, "password changed");
}

static int run_set_tags(struct ctl *c, const struct verb *v, struct args *a)
{
	json_t *tags = json_array();

	(void)v;
	for (int i = 1; i < a->n_pos; i++)
		json_array_append_new(tags, json_string(a->pos[i]));
	return update_user(c, a->pos[0], NULL, tags, "tags set");
}

static int run_delete_named(struct ctl *c, const struct verb *v,
    struct args *a)
{
	/* "delete user" -> users, "delete vhost" -> vhosts */
	const char *what = strchr(v->words, ' ') + 1;
	char kind[16], *path, done[48];
	int rc;

	snprintf(kind, sizeof(kind), "%ss", what);
	snprintf(done, sizeof(done), "%s deleted", what);
	path = api_path(kind, a->pos[0], NULL);
	rc = simple(c, "DELETE", path, NULL, done);
	free(path);
	return rc;
}

static int run_add_vhost(struct ctl *c, const struct verb *v, struct args *a)
{
	char *path = api_path("vhosts", a->pos[0], NULL);
	int rc = simple(c, "PUT", path, NULL, "vhost added");

	(void)v;
	free(path);
	return rc;
}

static int run_set_permissions(struct ctl *c, const struct verb *v,
    struct args *a)
{
	char *path = api_path("permissions", c->vhost, a->pos[0], NULL);
	int rc = simple(c, "PUT", path, json_pack("{s:s, s:s, s:s}",
	    "configure", a->pos[1], "write", a->pos[2], "read", a->pos[3]),
	    "permissions set");

	(void)v;
	free(path);
	return rc;
}

static int run_clear_permissions(struct ctl *c, const struct verb *v,
    struct args *a)
{
	char *path = api_path("permissions", c->vhost, a->pos[0], NULL);
	int rc = simple(c, "DELETE", path, NULL, "permissions cleared");

	(void)v;
	free(path);
	return rc;
}

/* A limit's value: an integer (negative: no limit), as RabbitMQ's. */
static bool limit_value(const char *s, json_int_t *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return *s != '\0' && *end == '\0' && errno == 0;
}

/* set/clear vhost limit NAME [VALUE] on --vhost; set/clear user limit
 * USER NAME [VALUE]. */
static int run_limit(struct ctl *c, const struct verb *v, struct args *a)
{
	bool user = strstr(v->words, "user") != NULL;
	bool set = strncmp(v->words, "set", 3) == 0;
	const char *value = a->pos[user ? 2 : 1];
	char *path = user ? api_path("user-limits", a->pos[0], a->pos[1], NULL) :
	    api_path("vhost-limits", c->vhost, a->pos[0], NULL);
	json_int_t n = 0;
	int rc;

	if (set && !limit_value(value, &n)) {
		free(path);
		return usage_error(v, "'%s' is not an integer", value);
	}
	rc = simple(c, set ? "PUT" : "DELETE", path, set ?
	    json_pack("{s:I}", "value", n) : NULL, set ? "limit set" :
	    "limit cleared");
	free(path);
	return rc;
}

static int run_close(struct ctl *c, const struct verb *v, struct args *a)
{
	char *path = api_path("connections", a->pos[0], NULL);
	int rc;

	(void)v;
	/* The reason travels in X-Reason, which only the API reads; it
	 * says "Closed via management plugin" otherwise. */
	rc = simple(c, "DELETE", path, NULL, "connection closed");
	free(path);
	return rc;
}

static int run_publish(struct ctl *c, const struct verb *v, struct args *a)
{
	const char *payload = a->n_pos > 2 ? a->pos[2] : NULL;
	/* The API names the default exchange "amq.default". */
	char *path = api_path("exchanges", c->vhost, *a->pos[0] ? a->pos[0] :
	    "amq.default", "publish", NULL), *in = NULL;
	json_t *props = json_object();
	struct ctl_reply r;
	int rc;

	(void)v;
	if (payload == NULL) {		/* the body from stdin */
		size_t len = 0, cap = 0, got;

		do {
			if (len + 4096 > cap) {
				cap = cap ? 2 * cap : 8192;
				if ((in = realloc(in, cap + 1)) == NULL)
					exit(CTL_UNREACHABLE);
			}
			got = fread(in + len, 1, cap - len, stdin);
			len += got;
		} while (got > 0);
		in[len] = '\0';
		payload = in;
	}
	if (opt(a, "--persistent"))
		json_object_set_new(props, "delivery_mode", json_integer(2));
	rc = call(c, "POST", path, json_pack("{s:s, s:s, s:s, s:o}",
	    "routing_key", a->pos[1], "payload", payload, "payload_encoding",
	    "string", "properties", props), &r);
	free(path);
	free(in);
	if (rc)
		return rc;
	if (c->json)
		ctl_print_json(r.json);
	else
		printf("%s\n", json_is_true(json_object_get(r.json, "routed")) ?
		    "message published" : "message published but not routed "
		    "to any queue");
	ctl_reply_free(&r);
	return CTL_OK;
}

/* One binding as "SOURCE -> queue DEST ('KEY')". */
static void print_binding(json_t *b)
{
	const char *src = json_string_value(json_object_get(b, "source"));

	printf("%s -> %s %s ('%s')", src && *src ? src : "(default)",
	    json_string_value(json_object_get(b, "destination_type")),
	    json_string_value(json_object_get(b, "destination")),
	    json_string_value(json_object_get(b, "routing_key")));
}

static void print_step(json_t *s)
{
	const char *step = json_string_value(json_object_get(s, "step"));
	const char *x = json_string_value(json_object_get(s, "exchange"));
	const char *reached = json_string_value(json_object_get(s, "reached"));
	json_t *b = json_object_get(s, "binding");

	printf("  [%s] ", json_string_value(json_object_get(s, "routing_key")));
	if (strcmp(step, "exchange") == 0) {
		printf("exchange '%s' (%s): ", *x ? x : "(default)",
		    json_string_value(json_object_get(s, "type")));
		if (strcmp(reached, "binding") == 0) {
			printf("reached through ");
			print_binding(b);
		} else if (strcmp(reached, "alternate") == 0) {
			printf("the alternate exchange of '%s', which matched "
			    "nothing", json_string_value(json_object_get(s,
			    "alternate_of")));
		} else {
			printf("published to");
		}
	} else if (strcmp(step, "matched") == 0 && b) {
		printf("matched ");
		print_binding(b);
	} else if (strcmp(step, "matched") == 0) {
		printf("matched queue %s: %s", json_string_value(
		    json_object_get(s, "queue")), json_string_value(
		    json_object_get(s, "why")));
	} else {
		printf("exchange '%s': %s", x, json_string_value(
		    json_object_get(s, "why")));
	}
	printf("\n");
}

static int run_trace_route(struct ctl *c, const struct verb *v,
    struct args *a)
{
	char *path = api_path("route", a->pos[0], *a->pos[1] ? a->pos[1] :
	    "amq.default", NULL);
	json_t *props = json_object(), *list, *item;
	struct ctl_reply r;
	size_t i;
	int rc;

	if ((rc = check_args(a, v)) != CTL_OK) {
		free(path);
		json_decref(props);
		return rc;
	}
	json_object_set_new(props, "headers", key_values(a, is_header));
	rc = call(c, "POST", path, json_pack("{s:s, s:o}", "routing_key",
	    a->pos[2], "properties", props), &r);
	free(path);
	if (rc)
		return rc;
	if (c->json) {
		ctl_print_json(r.json);
		ctl_reply_free(&r);
		return CTL_OK;
	}
	printf("routing key '%s' from exchange '%s' in vhost '%s':\n",
	    a->pos[2], *a->pos[1] ? a->pos[1] : "(default)", a->pos[0]);
	json_array_foreach(json_object_get(r.json, "steps"), i, item)
		print_step(item);
	list = json_object_get(r.json, "not_matched");
	if (json_array_size(list))
		printf("not matched:\n");
	json_array_foreach(list, i, item) {
		printf("  ");
		print_binding(item);
		printf(": %s\n", json_string_value(json_object_get(item,
		    "why")));
	}
	if ((item = json_object_get(r.json, "delayed_ms")) != NULL)
		printf("delayed %lld ms first (x-delay)\n",
		    (long long)json_integer_value(item));
	list = json_object_get(r.json, "queues");
	if (json_array_size(list) == 0)
		printf("reaches no queue: %s; a publish would be unroutable\n",
		    json_string_value(json_object_get(r.json,
		    "unroutable_why")));
	else
		printf("reaches %zu queue%s:", json_array_size(list),
		    json_array_size(list) == 1 ? "" : "s");
	json_array_foreach(list, i, item)
		printf(" %s", json_string_value(item));
	if (json_array_size(list))
		printf("\n");
	ctl_reply_free(&r);
	return CTL_OK;
}

static int run_browse(struct ctl *c, const struct verb *v, struct args *a)
{
	static const char *const fields[] = { "messages_ready" };
	static const char *const columns[] = { "position", "priority_level",
	    "paged_out", "delivery_count", "redelivered", "routing_key",
	    "properties.message_id", "payload_bytes", "payload" };
	const char *count = opt(a, "-n"), *offset = opt(a, "--offset");
	const char *preview = opt(a, "--preview");
	char *base, path[4300];

	count = count ? count : "20";
	offset = offset ? offset : "0";
	preview = preview ? preview : "64";
	if (!digits(count) || !digits(offset) || !digits(preview))
		return usage_error(v, "%s", "-n, --offset and --preview take "
		    "numbers");
	base = api_path("queues", a->pos[0], a->pos[1], "browse", NULL);
	snprintf(path, sizeof(path), "%s?count=%.9s&offset=%.12s&preview=%.9s",
	    base, count, offset, preview);
	free(base);
	return show(c, path, fields, 1, "messages", columns, 9);
}

static int run_trace_switch(struct ctl *c, const struct verb *v,
    struct args *a)
{
	bool on = strcmp(v->words, "trace on") == 0;
	char *path = api_path("vhosts", a->pos[0], NULL);
	int rc = simple(c, "PUT", path, json_pack("{s:b}", "tracing", on),
	    on ? "tracing on: journeys are kept and the firehose "
	    "(amq.rabbitmq.trace) publishes" : "tracing off");

	free(path);
	return rc;
}

static int run_trace_show(struct ctl *c, const struct verb *v,
    struct args *a)
{
	static const char *const columns[] = { "time", "step", "where",
	    "detail", "connection", "channel", "message_id",
	    "correlation_id" };
	const char *limit = opt(a, "--limit");
	char *base = api_path("trace", a->pos[0], NULL), *id, path[4400];
	struct ctl_reply r;
	int rc;

	limit = limit ? limit : "1000";
	if (!digits(limit)) {
		free(base);
		return usage_error(v, "%s", "--limit takes a number");
	}
	id = ctl_encode(a->pos[1]);
	snprintf(path, sizeof(path), "%s?id=%.1000s&limit=%.9s", base, id,
	    limit);
	free(id);
	free(base);
	if ((rc = call(c, "GET", path, NULL, &r)) != CTL_OK)
		return rc;
	if (c->json)
		ctl_print_json(r.json);
	else if (!json_is_true(json_object_get(r.json, "tracing")))
		printf("tracing is off in vhost '%s' (warrenctl trace on %s)\n",
		    a->pos[0], a->pos[0]);
	else
		ctl_print_table(json_object_get(r.json, "events"), columns, 8);
	ctl_reply_free(&r);
	return CTL_OK;
}

static int run_get(struct ctl *c, const struct verb *v, struct args *a)
{
	static const char *const columns[] = { "routing_key", "exchange",
	    "redelivered", "payload_bytes", "payload" };
	const char *count = opt(a, "--count"), *mode = "ack_requeue_true";
	char *path, *end;
	struct ctl_reply r;
	long n = 1;
	int rc;

	if (count) {
		errno = 0;
		n = strtol(count, &end, 10);
		if (*end || n < 1 || errno)
			return usage_error(v, "--count wants a positive number, "
			    "not '%s'", count);
	}
	if (opt(a, "--ack"))
		mode = "ack_requeue_false";
	else if (opt(a, "--reject"))
		mode = "reject_requeue_false";
	path = api_path("queues", c->vhost, a->pos[0], "get", NULL);
	rc = call(c, "POST", path, json_pack("{s:i, s:s, s:s}", "count",
	    (int)n, "ackmode", mode, "encoding", "auto"), &r);
	free(path);
	if (rc)
		return rc;
	if (c->json)
		ctl_print_json(r.json);
	else
		ctl_print_table(r.json, columns, 5);
	ctl_reply_free(&r);
	return CTL_OK;
}

static int run_export(struct ctl *c, const struct verb *v, struct args *a)
{
	const char *file = a->pos[0];
	struct ctl_reply r;
	FILE *f;
	int rc;

	(void)v;
	if ((rc = call(c, "GET", "/api/definitions", NULL, &r)) != 0)
		return rc;
	f = strcmp(file, "-") == 0 ? stdout : fopen(file, "w");
	if (f == NULL || json_dumpf(r.json, f, JSON_INDENT(2)) != 0 ||
	    fputc('\n', f) == EOF || (f != stdout && fclose(f) != 0)) {
		fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
		ctl_reply_free(&r);
		return CTL_REFUSED;
	}
	ctl_reply_free(&r);
	if (f != stdout && !c->json)
		printf("definitions exported to %s\n", file);
	return CTL_OK;
}

static int run_import(struct ctl *c, const struct verb *v, struct args *a)
{
	const char *file = a->pos[0];
	json_error_t jerr;
	json_t *defs;

	(void)v;
	defs = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr) :
	    json_load_file(file, 0, &jerr);
	if (defs == NULL) {
		fprintf(stderr, "%s: %s:%d: %s\n", prog, file, jerr.line,
		    jerr.text);
		return CTL_REFUSED;
	}
	return simple(c, "POST", "/api/definitions", defs,
	    "definitions imported");
}

static const struct verb verbs[] = {
	{ "status", 0, 0, "", "", "",
	    "the broker's version and totals", run_status },
	{ "list", 1, 1, "|--all-vhosts|", "", "WHAT [--all-vhosts]",
	    "list queues, exchanges, bindings, connections, channels, "
	    "consumers, users, vhosts, permissions, vhost-limits or "
	    "user-limits (queues, exchanges, bindings, consumers, "
	    "permissions and vhost-limits of --vhost unless --all-vhosts)",
	    run_list },
	{ "declare queue", 1, 1, "|--transient|--auto-delete|", "|--arg|",
	    "NAME [--transient] [--auto-delete] [--arg KEY=VALUE]...",
	    "declare a queue (durable unless --transient); VALUE is JSON "
	    "when it parses (--arg x-max-length=10), else a string",
	    run_declare_queue },
	{ "declare exchange", 2, 2, "|--transient|--auto-delete|--internal|",
	    "|--arg|", "NAME TYPE [--transient] [--auto-delete] [--internal] "
	    "[--arg KEY=VALUE]...", "declare an exchange of TYPE direct, "
	    "fanout, topic, headers or x-consistent-hash", run_declare_exchange },
	{ "declare binding", 2, 2, "|--to-exchange|", "|--routing-key|--arg|",
	    "SOURCE DESTINATION [--routing-key KEY] [--to-exchange] "
	    "[--arg KEY=VALUE]...", "bind queue DESTINATION (or exchange, "
	    "with --to-exchange) to exchange SOURCE", run_declare_binding },
	{ "delete queue", 1, 1, "|--if-empty|--if-unused|", "",
	    "NAME [--if-empty] [--if-unused]", "delete a queue",
	    run_delete_object },
	{ "delete exchange", 1, 1, "|--if-unused|", "", "NAME [--if-unused]",
	    "delete an exchange", run_delete_object },
	{ "delete binding", 2, 2, "|--to-exchange|", "|--routing-key|",
	    "SOURCE DESTINATION [--routing-key KEY] [--to-exchange]",
	    "delete the bindings from SOURCE to DESTINATION with KEY",
	    run_delete_binding },
	{ "purge queue", 1, 1, "", "", "NAME", "drop a queue's ready messages",
	    run_purge },
	{ "show queue", 1, 1, "", "", "NAME", "a queue's depth, consumers, "
	    "rates, and how long its messages wait: the oldest ready "
	    "message's age, time in queue and delivery to ack (p50, p99, ms, "
	    "over the last minute) and consumer utilisation", run_show_queue },
	{ "show delayed", 1, 1, "", "|--count|--offset|",
	    "EXCHANGE [--count N] [--offset K]", "an x-delayed-message "
	    "exchange's scheduled messages, soonest first: how many, when the "
	    "next fires, and N of them (100) from the K-th (0)",
	    run_show_delayed },
	{ "cancel delayed", 2, 2, "", "", "EXCHANGE ID", "drop the scheduled "
	    "message ID (as show delayed lists it) of an x-delayed-message "
	    "exchange", run_cancel_delayed },
	{ "show stream", 1, 1, "", "", "NAME", "a stream's first and last "
	    "offsets, segment files and bytes on disk, and the offsets stored "
	    "for its named consumers with their lag", run_show_stream },
	{ "add user", 2, 2, "", "|--tags|", "NAME PASSWORD [--tags TAG,...]",
	    "add a user (PASSWORD - reads it from stdin)", run_add_user },
	{ "delete user", 1, 1, "", "", "NAME", "delete a user",
	    run_delete_named },
	{ "change password", 2, 2, "", "", "NAME PASSWORD",
	    "change a user's password (PASSWORD - reads it from stdin)",
	    run_change_password },
	{ "set user tags", 1, 8, "", "", "NAME [TAG]...",
	    "set a user's tags (none clears them): administrator, monitoring, "
	    "management, policymaker", run_set_tags },
	{ "set permissions", 4, 4, "", "", "USER CONFIGURE WRITE READ",
	    "set USER's permissions on --vhost (regular expressions)",
	    run_set_permissions },
	{ "clear permissions", 1, 1, "", "", "USER",
	    "remove USER's permissions on --vhost", run_clear_permissions },
	{ "set vhost limit", 2, 2, "", "", "NAME VALUE", "set --vhost's "
	    "limit NAME (max-connections or max-queues; negative: none)",
	    run_limit },
	{ "clear vhost limit", 1, 1, "", "", "NAME", "remove --vhost's limit "
	    "NAME", run_limit },
	{ "set user limit", 3, 3, "", "", "USER NAME VALUE", "set USER's limit "
	    "NAME (max-connections or max-channels; negative: none)",
	    run_limit },
	{ "clear user limit", 2, 2, "", "", "USER NAME", "remove USER's limit "
	    "NAME", run_limit },
	{ "add vhost", 1, 1, "", "", "NAME", "add a vhost", run_add_vhost },
	{ "delete vhost", 1, 1, "", "", "NAME",
	    "delete a vhost, everything in it, and its connections",
	    run_delete_named },
	{ "close connection", 1, 1, "", "", "NAME",
	    "close a connection (320 CONNECTION_FORCED); NAME as listed",
	    run_close },
	{ "publish", 2, 3, "|--persistent|", "",
	    "EXCHANGE ROUTING_KEY [PAYLOAD] [--persistent]",
	    "publish a message (PAYLOAD, or stdin); \"\" is the default "
	    "exchange", run_publish },
	{ "trace route", 3, 3, "", "|-H|--header|",
	    "VHOST EXCHANGE ROUTING_KEY [-H NAME=VALUE]...",
	    "which queues a message with ROUTING_KEY and these headers would "
	    "reach from EXCHANGE (\"\" is the default exchange), through "
	    "which bindings, exchange-to-exchange hops and alternate "
	    "exchanges, and why the other bindings it passed did not match; "
	    "nothing is published (VALUE is JSON when it parses, else a "
	    "string)", run_trace_route },
	{ "trace on", 1, 1, "", "", "VHOST", "keep message journeys in VHOST "
	    "(a bounded ring, searchable with trace show) and publish "
	    "RabbitMQ's firehose to amq.rabbitmq.trace", run_trace_switch },
	{ "trace off", 1, 1, "", "", "VHOST", "stop tracing VHOST and forget "
	    "its journeys", run_trace_switch },
	{ "trace show", 2, 2, "", "|--limit|", "VHOST ID [--limit N]",
	    "the journey of the messages whose message-id or correlation-id "
	    "is ID: published, enqueued, delivered, acked, requeued, "
	    "rejected, expired, dead-lettered, returned (the newest N events, "
	    "1000)", run_trace_show },
	{ "browse", 2, 2, "", "|-n|--offset|--preview|",
	    "VHOST QUEUE [-n N] [--offset K] [--preview BYTES]",
	    "show N (20) ready messages of QUEUE from the K-th (0) in the order "
	    "consumers would get them, with BYTES (64) of each body, without "
	    "taking, requeuing or reordering anything (paged-out messages are "
	    "read from disk)", run_browse },
	{ "get", 1, 1, "|--ack|--reject|", "|--count|",
	    "QUEUE [--count N] [--ack | --reject]",
	    "show up to N ready messages, requeued unless --ack or --reject",
	    run_get },
	{ "export", 1, 1, "", "", "FILE",
	    "write the broker's definitions (RabbitMQ's format) to FILE "
	    "(- for stdout)", run_export },
	{ "import", 1, 1, "", "", "FILE",
	    "import definitions (RabbitMQ's format) from FILE (- for stdin)",
	    run_import },
};
#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))

/* ---- the command line ------------------------------------------------------- */

static void print_usage(FILE *f)
{
	fprintf(f, "usage: %s [-H HOST] [-P PORT] [-u USER] [-p PASSWORD] "
	    "[--vhost VHOST]\n                 [--format table|json] VERB "
	    "[ARGUMENTS]\n\nverbs:\n", prog);
	for (size_t i = 0; i < N_VERBS; i++)
		fprintf(f, "  %s %s\n", verbs[i].words, verbs[i].usage);
	fprintf(f, "\n%s VERB --help describes one; warrenctl(1) all.\n"
	    "Credentials: -u/-p, WARRENCTL_USER/WARRENCTL_PASSWORD, or "
	    "~/.warrenctlrc.\n", prog);
}

static void verb_help(const struct verb *v)
{
	printf("usage: %s [GLOBAL OPTIONS] %s %s\n\n%s.\n", prog, v->words,
	    v->usage, v->help);
}

/* The rc file's values live for the whole run. */
static char host[256], user[256], password[256], vhost[256];

static const char *keep(char *dst, size_t len, const char *val)
{
	snprintf(dst, len, "%s", val);
	return dst;
}

/* "key = value" lines of the rc file into c (what is not set already). */
static int read_rc(struct ctl *c, const bool *set)
{
	const char *path = getenv("WARRENCTL_RC"), *home = getenv("HOME");
	char def[512], line[1024];
	int lineno = 0;
	FILE *f;

	if (path == NULL) {
		if (home == NULL)
			return CTL_OK;
		snprintf(def, sizeof(def), "%s/.warrenctlrc", home);
		path = def;
	}
	if ((f = fopen(path, "r")) == NULL)
		return CTL_OK;
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *val, *eq;

		lineno++;
		k += strspn(k, " \t");
		k[strcspn(k, "\r\n")] = '\0';
		if (*k == '#' || *k == '\0')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			fprintf(stderr, "%s:%d: expected key = value\n", path,
			    lineno);
			fclose(f);
			return CTL_USAGE;
		}
		val = eq + 1;
		val += strspn(val, " \t");
		while (eq > k && (eq[-1] == ' ' || eq[-1] == '\t'))
			eq--;
		*eq = '\0';
		if (strcmp(k, "host") == 0 && !set[0])
			c->host = keep(host, sizeof(host), val);
		else if (strcmp(k, "port") == 0 && !set[1])
			c->port = (unsigned)atoi(val);
		else if (strcmp(k, "user") == 0 && !set[2])
			c->user = keep(user, sizeof(user), val);
		else if (strcmp(k, "password") == 0 && !set[3])
			c->password = keep(password, sizeof(password), val);
		else if (strcmp(k, "vhost") == 0 && !set[4])
			c->vhost = keep(vhost, sizeof(vhost), val);
		else if (strcmp(k, "host") && strcmp(k, "port") &&
		    strcmp(k, "user") && strcmp(k, "password") &&
		    strcmp(k, "vhost")) {
			fprintf(stderr, "%s:%d: unknown key '%s' (host, port, "
			    "user, password, vhost)\n", path, lineno, k);
			fclose(f);
			return CTL_USAGE;
		}
	}
	fclose(f);
	return CTL_OK;
}

/* What the environment sets, unless the command line did. */
static void read_env(struct ctl *c, bool *set)
{
	static const char *const names[] = { "WARRENCTL_HOST",
	    "WARRENCTL_PORT", "WARRENCTL_USER", "WARRENCTL_PASSWORD",
	    "WARRENCTL_VHOST" };
	const char **fields[] = { &c->host, NULL, &c->user, &c->password,
	    &c->vhost };

	for (int i = 0; i < 5; i++) {
		const char *v = getenv(names[i]);

		if (v == NULL || set[i])
			continue;
		if (fields[i])
			*fields[i] = v;
		else
			c->port = (unsigned)atoi(v);
		set[i] = true;
	}
}

static bool listed(const char *list, const char *name)
{
	char key[64];

	snprintf(key, sizeof(key), "|%s|", name);
	return strstr(list, key) != NULL;
}

/* The verb at argv[*i] (its words consumed), or NULL. */
static const struct verb *find_verb(int argc, char **argv, int *i)
{
	const struct verb *best = NULL;
	int best_words = 0;

	for (size_t v = 0; v < N_VERBS; v++) {
		const char *w = verbs[v].words;
		int n = 0;

		while (*w && *i + n < argc) {
			size_t len = strcspn(w, " ");

			if (strlen(argv[*i + n]) != len ||
			    strncmp(argv[*i + n], w, len) != 0)
				break;
			n++;
			w += len;
			w += *w == ' ';
		}
		if (*w == '\0' && n > best_words) {
			best = &verbs[v];
			best_words = n;
		}
	}
	*i += best_words;
	return best;
}

int main(int argc, char **argv)
{
	struct ctl c = { "127.0.0.1", 15672, "guest", "guest", "/", false };
	bool set[5] = { false };
	const struct verb *v;
	struct args a = { 0 };
	int i = 1, rc;

	while (i < argc && argv[i][0] == '-') {
		const char *o = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			print_usage(stdout);
			return CTL_OK;
		}
		if (strcmp(o, "--version") == 0) {
			printf("warrenctl %s\n", PACKAGE_VERSION);
			return CTL_OK;
		}
		if (val == NULL)
			return usage_error(NULL, "%s wants a value", o);
		if (strcmp(o, "-H") == 0)
			c.host = val, set[0] = true;
		else if (strcmp(o, "-P") == 0)
			c.port = (unsigned)atoi(val), set[1] = true;
		else if (strcmp(o, "-u") == 0)
			c.user = val, set[2] = true;
		else if (strcmp(o, "-p") == 0)
			c.password = val, set[3] = true;
		else if (strcmp(o, "--vhost") == 0)
			c.vhost = val, set[4] = true;
		else if (strcmp(o, "--format") == 0) {
			if (strcmp(val, "json") && strcmp(val, "table"))
				return usage_error(NULL, "--format is table or "
				    "json, not '%s'", val);
			c.json = strcmp(val, "json") == 0;
		} else
			return usage_error(NULL, "unknown option '%s'", o);
		i += 2;
	}
	if (c.port == 0 || c.port > 65535)
		return usage_error(NULL, "-P wants a port from 1 to 65535%s",
		    "");
	read_env(&c, set);
	if ((rc = read_rc(&c, set)) != 0)
		return rc;
	if (i >= argc)
		return usage_error(NULL, "no verb given%s", "");
	if ((v = find_verb(argc, argv, &i)) == NULL)
		return usage_error(NULL, "unknown verb '%s'", argv[i]);
	for (; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--help") == 0) {
			verb_help(v);
			return CTL_OK;
		}
		/* A single-dash option only where the verb lists it (-H):
		 * "-" and negative numbers are arguments. */
		if ((strncmp(arg, "--", 2) != 0 && !listed(v->valued, arg)) ||
		    strcmp(arg, "--") == 0) {
			if (a.n_pos == (int)(sizeof(a.pos) / sizeof(a.pos[0])))
				return usage_error(v, "too many arguments%s", "");
			a.pos[a.n_pos++] = arg;
			continue;
		}
		/* --format and --vhost may also follow the verb. */
		if (strcmp(arg, "--format") == 0 || strcmp(arg, "--vhost") == 0) {
			if (i + 1 >= argc)
				return usage_error(v, "%s wants a value", arg);
			if (arg[2] == 'v')
				c.vhost = argv[++i];
			else if (strcmp(argv[++i], "json") == 0 ||
			    strcmp(argv[i], "table") == 0)
				c.json = strcmp(argv[i], "json") == 0;
			else
				return usage_error(v, "--format is table or json, "
				    "not '%s'", argv[i]);
			continue;
		}
		if (a.n_opt == MAX_OPTS)
			return usage_error(v, "too many options%s", "");
		if (listed(v->flags, arg)) {
			a.opt[a.n_opt] = arg;
			a.val[a.n_opt++] = NULL;
		} else if (listed(v->valued, arg)) {
			if (i + 1 >= argc)
				return usage_error(v, "%s wants a value", arg);
			a.opt[a.n_opt] = arg;
			a.val[a.n_opt++] = argv[++i];
		} else {
			return usage_error(v, "unknown option '%s'", arg);
		}
	}
	if (a.n_pos < v->min_pos)
		return usage_error(v, "missing arguments%s", "");
	if (a.n_pos > v->max_pos)
		return usage_error(v, "unexpected argument '%s'",
		    a.pos[v->max_pos]);
	return v->run(&c, v, &a);
}
