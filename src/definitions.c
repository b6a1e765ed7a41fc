/*
 * RabbitMQ's definitions JSON: export of what is durable, import through
 * the same declare checks as AMQP (declare.c), and the atomic save and
 * the load of the data directory's file.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "amqp.h"
#include "broker.h"
#include "connection.h"
#include "declare.h"
#include "atomic_file.h"
#include "definitions.h"
#include "definitions_access.h"
#include "exchange.h"
#include "field_table.h"
#include "log.h"
#include "queue.h"
#include "resource_limits.h"
#include "strmap.h"
#include "vhost.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

/* The RabbitMQ whose format this is; importers look at it. */
#define RABBIT_VERSION	"3.10.8"
#define RAW_ARGS_KEY	"x-warren-raw-arguments"
#define STORE_QID_KEY	"x-warren-store-qid"

/* Sections Warren exports empty and ignores on import. */
static const char *const unsupported[] = {
	"global_parameters", "policies",
};
/* The one runtime parameter Warren keeps: a vhost's limits. */
#define VHOST_LIMITS "vhost-limits"
#define N_UNSUPPORTED (sizeof(unsupported) / sizeof(unsupported[0]))

/* ---- base64 ------------------------------------------------------------- */

static char *base64_encode(const uint8_t *p, size_t n)
{
	char *out;

	if (n > INT_MAX / 2)
		fatalx("base64_encode: %zu bytes", n);
	out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

static bool base64_char(char c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '/';
}

/* Strict: padded, no whitespace.  False when s is not base64. */
static bool base64_decode(const char *s, size_t n, struct wbuf *out)
{
	size_t pad = 0;
	uint8_t *p;
	int got;

	if (n % 4 != 0 || n > INT_MAX)
		return false;
	while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (!base64_char(s[i]))
			return false;
	wbuf_reset(out);
	p = wbuf_reserve(out, n / 4 * 3 + 1);
	/* EVP_DecodeBlock counts the zero bytes the padding stands for. */
	if ((got = EVP_DecodeBlock(p, (const unsigned char *)s, (int)n)) < 0 ||
	    (size_t)got < pad)
		return false;
	out->len = (size_t)got - pad;
	return true;
}

/* ---- field tables as JSON ----------------------------------------------- */

/* RabbitMQ's rendering: the string when UTF-8, else its base64 in a note. */
static json_t *bytes_json(struct bytes s)
{
	static const char note[] = "Not UTF-8, base64 is: ";
	json_t *j = json_stringn((const char *)s.ptr, s.len);
	char *b64, *text;

	if (j != NULL)
		return j;
	b64 = base64_encode(s.ptr, s.len);
	text = xmalloc(sizeof(note) + strlen(b64));
	memcpy(text, note, sizeof(note) - 1);
	strcpy(text + sizeof(note) - 1, b64);
	j = json_string(text);
	free(text);
	free(b64);
	return j;
}

/* JSON has no NaN or infinity. */
static json_t *real_json(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

static json_t *table_json(const struct field_table *t);

static json_t *value_json(const struct field_value *v)
{
	json_t *a;
	double d;

	switch (v->type) {
	case 't':
		return json_boolean(v->v.b);
	case 'b': case 's': case 'I': case 'l':
		return json_integer(v->v.i);
	case 'B': case 'u': case 'i': case 'L': case 'T':
		if (v->v.u > INT64_MAX)
			return json_real((double)v->v.u);
		return json_integer((json_int_t)v->v.u);
	case 'f':
		return real_json(v->v.f);
	case 'd':
		return real_json(v->v.d);
	case 'D':
		d = v->v.dec.value;
		for (unsigned i = 0; i < v->v.dec.scale; i++)
			d /= 10;
		return real_json(d);
	case 'S': case 'x':
		return bytes_json(v->v.str);
	case 'F':
		return table_json(v->v.table);
	case 'A':
		a = json_array();
		for (uint32_t i = 0; i < v->v.array->n; i++)
			json_array_append_new(a, value_json(&v->v.array->items[i]));
		return a;
	}
	return json_null();
}

static json_t *table_json(const struct field_table *t)
{
	json_t *o = json_object();

	for (uint32_t i = 0; t != NULL && i < t->n; i++) {
		json_t *k = bytes_json(t->entries[i].key);
		const char *key = json_string_value(k);

		/* A repeated key: the first counts, as in ftable_get. */
		if (json_object_get(o, key) == NULL)
			json_object_set_new(o, key, value_json(&t->entries[i].value));
		json_decref(k);
	}
	return o;
}

static json_t *args_json(const uint8_t *raw, uint32_t len)
{
	struct field_table *t = ftable_decode((struct bytes){ raw, len });
	json_t *o = table_json(t);

	ftable_free(t);
	return o;
}

/* ---- JSON as field tables (RabbitMQ's import conversion) ----------------- */

static bool put_table(struct wbuf *b, json_t *obj, int depth, char *why,
    size_t whylen);

/* depth: that of the table or array holding the value, as ftable_validate. */
static bool put_value(struct wbuf *b, json_t *j, int depth, char *why,
    size_t whylen)
{
	size_t at, i;
	json_t *item;
	uint64_t u;
	double d;

	switch (json_typeof(j)) {
	case JSON_STRING:
		if (json_string_length(j) > UINT32_MAX) {
			snprintf(why, whylen, "string longer than 4 GiB");
			return false;
		}
		wbuf_put_u8(b, 'S');
		wbuf_put_longstr(b, (struct bytes){
		    (const uint8_t *)json_string_value(j),
		    (uint32_t)json_string_length(j) });
		return true;
	case JSON_INTEGER:
		wbuf_put_u8(b, 'l');
		wbuf_put_u64(b, (uint64_t)json_integer_value(j));
		return true;
	case JSON_REAL:
		d = json_real_value(j);
		memcpy(&u, &d, sizeof(u));
		wbuf_put_u8(b, 'd');
		wbuf_put_u64(b, u);
		return true;
	case JSON_TRUE:
	case JSON_FALSE:
		wbuf_put_u8(b, 't');
		wbuf_put_u8(b, json_is_true(j));
		return true;
	case JSON_OBJECT:
	case JSON_ARRAY:
		if (depth >= FTABLE_MAX_DEPTH) {
			snprintf(why, whylen, "nested more than %d deep",
			    FTABLE_MAX_DEPTH);
			return false;
		}
		wbuf_put_u8(b, json_is_object(j) ? 'F' : 'A');
		at = b->len;
		wbuf_put_u32(b, 0);
		if (json_is_object(j)) {
			if (!put_table(b, j, depth + 1, why, whylen))
				return false;
		} else {
			json_array_foreach(j, i, item)
				if (!put_value(b, item, depth + 1, why, whylen))
					return false;
		}
		if (b->len - at - 4 > UINT32_MAX) {
			snprintf(why, whylen, "table longer than 4 GiB");
			return false;
		}
		wbuf_patch_u32(b, at, (uint32_t)(b->len - at - 4));
		return true;
	case JSON_NULL:
		break;
	}
	snprintf(why, whylen, "null is not allowed");
	return false;
}

/* obj's members as table entries (without the length). */
static bool put_table(struct wbuf *b, json_t *obj, int depth, char *why,
    size_t whylen)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		size_t len = strlen(key);
		char inner[200];

		if (len > 255) {
			snprintf(why, whylen, "argument name '%.32s...' longer "
			    "than 255 bytes", key);
			return false;
		}
		wbuf_put_shortstr(b, (struct bytes){ (const uint8_t *)key,
		    (uint32_t)len });
		if (!put_value(b, v, depth, inner, sizeof(inner))) {
			snprintf(why, whylen, "argument '%s': %s", key, inner);
			return false;
		}
	}
	return true;
}

/* ---- export ------------------------------------------------------------- */

static bool queue_exported(const struct queue *q)
{
	return q->durable && !q->exclusive;
}

/* The default and amq.* exchanges are always there: never exported. */
static bool exchange_builtin(const struct exchange *x)
{
	return x->name[0] == '\0' || strncmp(x->name, "amq.", 4) == 0;
}

/* False when s is not UTF-8, which JSON cannot hold. */
static bool set_str(json_t *o, const char *key, const char *s)
{
	json_t *j = json_string(s);

	return j != NULL && json_object_set_new(o, key, j) == 0;
}

static void set_arguments(json_t *o, const uint8_t *raw, uint32_t len)
{
	char *b64;

	json_object_set_new(o, "arguments", args_json(raw, len));
	if (len == 0)
		return;
	b64 = base64_encode(raw, len);
	json_object_set_new(o, RAW_ARGS_KEY, json_string(b64));
	free(b64);
}

static void append(json_t *list, json_t *o, bool ok, const char *what,
    const char *name)
{
	if (ok) {
		json_array_append_new(list, o);
		return;
	}
	log_warning("definitions: %s '%s' not exported: a name in it is not "
	    "UTF-8", what, name);
	json_decref(o);
}

static void export_queues(struct vhost *vh, json_t *list)
{
	size_t n;
	struct strmap_entry *qs = strmap_sorted(vh->queues, &n);

	for (size_t i = 0; i < n; i++) {
		struct queue *q = qs[i].value;
		json_t *o;
		char id[24];
		bool ok;

		if (!queue_exported(q))
			continue;
		o = json_object();
		ok = set_str(o, "name", q->name) && set_str(o, "vhost", vh->name);
		json_object_set_new(o, "durable", json_true());
		json_object_set_new(o, "auto_delete", json_boolean(q->auto_delete));
		set_arguments(o, q->arguments, q->arguments_len);
		if (q->store_qid) {
			snprintf(id, sizeof(id), "%016llx",
			    (unsigned long long)q->store_qid);
			set_str(o, STORE_QID_KEY, id);
		}
		append(list, o, ok, "queue", q->name);
	}
	free(qs);
}

static void export_exchange(struct exchange *x, json_t *list)
{
	json_t *o = json_object();
	bool ok;

	ok = set_str(o, "name", x->name) && set_str(o, "vhost", x->vh->name);
	set_str(o, "type", exchange_type_name(x));
	json_object_set_new(o, "durable", json_true());
	json_object_set_new(o, "auto_delete", json_boolean(x->auto_delete));
	json_object_set_new(o, "internal", json_boolean(x->internal));
	set_arguments(o, x->arguments, x->arguments_len);
	append(list, o, ok, "exchange", x->name);
}

static void export_binding(struct binding *b, json_t *list)
{
	bool to_queue = b->kind == DEST_QUEUE;
	const char *dest = to_queue ? b->dest.queue->name :
	    b->dest.exchange->name;
	json_t *o, *key;
	bool ok;

	if (to_queue ? !queue_exported(b->dest.queue) :
	    !b->dest.exchange->durable)
		return;
	o = json_object();
	key = json_stringn(b->key, b->key_len);
	ok = key != NULL && set_str(o, "source", b->source->name) &&
	    set_str(o, "vhost", b->source->vh->name) &&
	    set_str(o, "destination", dest);
	set_str(o, "destination_type", to_queue ? "queue" : "exchange");
	if (key != NULL)
		json_object_set_new(o, "routing_key", key);
	set_arguments(o, b->args, b->args_len);
	append(list, o, ok, "binding to", dest);
}

static void export_exchanges(struct vhost *vh, json_t *exchanges,
    json_t *bindings)
{
	size_t n;
	struct strmap_entry *xs = strmap_sorted(vh->exchanges, &n);

	for (size_t i = 0; i < n; i++) {
		struct exchange *x = xs[i].value;
		struct binding *b;

		if (!x->durable || x->name[0] == '\0')
			continue;
		if (!exchange_builtin(x))
			export_exchange(x, exchanges);
		TAILQ_FOREACH(b, &x->bindings, src_link)
			export_binding(b, bindings);
	}
	free(xs);
}

json_t *definitions_export(struct broker *b)
{
	json_t *d = json_object(), *vhosts = json_array();
	json_t *queues = json_array(), *exchanges = json_array();
	json_t *bindings = json_array(), *parameters = json_array();
	size_t n;
	struct strmap_entry *vs = strmap_sorted(b->vhosts, &n);

	for (size_t i = 0; i < n; i++) {
		struct vhost *vh = vs[i].value;
		json_t *o = json_object();

		json_t *limits = limits_vhost_json(vh);

		append(vhosts, o, set_str(o, "name", vh->name), "vhost",
		    vh->name);
		if (json_object_size(limits) > 0)
			json_array_append_new(parameters, json_pack(
			    "{s:o, s:s, s:s, s:s}", "value", json_incref(limits),
			    "vhost", vh->name, "component", VHOST_LIMITS,
			    "name", "limits"));
		json_decref(limits);
		export_exchanges(vh, exchanges, bindings);
		export_queues(vh, queues);
	}
	free(vs);
	json_object_set_new(d, "rabbit_version", json_string(RABBIT_VERSION));
	json_object_set_new(d, "rabbitmq_version", json_string(RABBIT_VERSION));
	json_object_set_new(d, "product_name", json_string("Warren"));
	json_object_set_new(d, "product_version", json_string(PACKAGE_VERSION));
	for (size_t i = 0; i < N_UNSUPPORTED; i++)
		json_object_set_new(d, unsupported[i], json_array());
	json_object_set_new(d, "parameters", parameters);
	json_object_set_new(d, "users", access_export_users(b->users));
	json_object_set_new(d, "vhosts", vhosts);
	json_object_set_new(d, "permissions",
	    access_export_permissions(b->users));
	json_object_set_new(d, "topic_permissions",
	    access_export_topic_permissions(b->users));
	json_object_set_new(d, "queues", queues);
	json_object_set_new(d, "exchanges", exchanges);
	json_object_set_new(d, "bindings", bindings);
	return d;
}

json_t *definitions_args_to_json(const uint8_t *raw, uint32_t len)
{
	return args_json(raw, len);
}

bool definitions_json_to_args(json_t *obj, struct wbuf *out, char *why,
    size_t whylen)
{
	wbuf_reset(out);
	if (obj == NULL)
		return true;
	if (!json_is_object(obj)) {
		snprintf(why, whylen, "'arguments' must be an object");
		return false;
	}
	return put_table(out, obj, 1, why, whylen);
}

/* ---- import ------------------------------------------------------------- */

struct import {
	struct broker *b;
	struct strmap *missing;		/* vhosts already reported missing */
	struct strmap *qids;		/* store ids in use; NULL: not yet */
	struct wbuf args;		/* the entry's raw arguments */
	char label[300];		/* the entry: queues[3] "name" */
};

/* The entry's names after its place: ` "a"` or ` "a" -> "b"`. */
static void label_add(struct import *im, const char *a, const char *b)
{
	size_t len = strlen(im->label);

	snprintf(im->label + len, sizeof(im->label) - len, b ? " \"%s\" -> "
	    "\"%s\"" : " \"%s\"", a, b);
}

/* e's string member key; dflt when absent (NULL: required). */
static bool member_str(json_t *e, const char *key, const char *dflt,
    const char **out, char *why, size_t whylen)
{
	json_t *v = json_object_get(e, key);

	if (v == NULL && dflt != NULL) {
		*out = dflt;
		return true;
	}
	if (!json_is_string(v)) {
		snprintf(why, whylen, "'%s' must be a string", key);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

static bool member_bool(json_t *e, const char *key, bool dflt, bool *out,
    char *why, size_t whylen)
{
	json_t *v = json_object_get(e, key);

	if (v != NULL && !json_is_boolean(v)) {
		snprintf(why, whylen, "'%s' must be true or false", key);
		return false;
	}
	*out = v ? json_is_true(v) : dflt;
	return true;
}

/* The raw table decodes and says what "arguments" says (when present). */
static bool raw_matches(json_t *raw, json_t *args, struct wbuf *out)
{
	json_t *shown;
	bool same;

	if (!base64_decode(json_string_value(raw), json_string_length(raw),
	    out) || !ftable_validate((struct bytes){ out->p, out->len }))
		return false;
	if (args == NULL)
		return true;
	shown = args_json(out->p, out->len);
	same = json_equal(shown, args);
	json_decref(shown);
	return same;
}

/*
 * The entry's raw arguments into im->args: the exact bytes of the raw
 * table when they match "arguments" (a hand edit of "arguments" wins),
 * else "arguments" converted.
 */
static bool entry_arguments(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	json_t *args = json_object_get(e, "arguments");
	json_t *raw = json_object_get(e, RAW_ARGS_KEY);

	if (args != NULL && !json_is_object(args)) {
		snprintf(why, whylen, "'arguments' must be an object");
		return false;
	}
	if (json_is_string(raw) && raw_matches(raw, args, &im->args))
		return true;
	if (raw != NULL)
		log_warning("definitions: %s: %s does not match \"arguments\": "
		    "using \"arguments\"", im->label, RAW_ARGS_KEY);
	wbuf_reset(&im->args);
	if (args != NULL && !put_table(&im->args, args, 1, why, whylen))
		return false;
	return true;
}

static struct bytes entry_args(const struct import *im)
{
	return (struct bytes){ im->args.p, (uint32_t)im->args.len };
}

/* The vhost of an entry; NULL (reported once) when it does not exist. */
static struct vhost *import_vhost(struct import *im, const char *name)
{
	struct vhost *vh = broker_find_vhost(im->b, bytes_str(name));

	if (vh == NULL && strmap_get(im->missing, bytes_str(name)) == NULL) {
		strmap_put(im->missing, bytes_str(name), im);
		log_warning("definitions: vhost '%s' does not exist (nor is it "
		    "in \"vhosts\"): its definitions are skipped", name);
	}
	return vh;
}

static void qid_put(struct strmap *m, uint64_t qid)
{
	uint8_t key[8];

	le64_put(key, qid);
	strmap_put(m, (struct bytes){ key, 8 }, m);
}

static void put_queue_qid(struct queue *q, void *m)
{
	if (q->store_qid)
		qid_put(m, q->store_qid);
}

static struct strmap *qids_in_use(struct import *im)
{
	if (im->qids != NULL)
		return im->qids;
	im->qids = strmap_new();
	broker_each_queue(im->b, put_queue_qid, im->qids);
	return im->qids;
}

/*
 * The entry's message store id, when well-formed and not another queue's
 * (a copied entry keeps it): else 0, for a fresh one.
 */
static uint64_t entry_qid(struct import *im, json_t *e)
{
	const char *s = json_string_value(json_object_get(e, STORE_QID_KEY));
	uint64_t id = 0;
	uint8_t key[8];
	size_t i;

	if (json_object_get(e, STORE_QID_KEY) == NULL)
		return 0;
	for (i = 0; s != NULL && isxdigit((unsigned char)s[i]) && i < 16; i++)
		id = id << 4 | (uint64_t)(isdigit((unsigned char)s[i]) ?
		    s[i] - '0' : tolower((unsigned char)s[i]) - 'a' + 10);
	if (s == NULL || i == 0 || s[i] != '\0' || id == 0) {
		log_warning("definitions: %s: malformed %s ignored", im->label,
		    STORE_QID_KEY);
		return 0;
	}
	le64_put(key, id);
	if (strmap_get(qids_in_use(im), (struct bytes){ key, 8 }) != NULL) {
		log_warning("definitions: %s: %s %s is another queue's: a "
		    "fresh one", im->label, STORE_QID_KEY, s);
		return 0;
	}
	return id;
}

/*
 * After a declare failed: an existing object that differs is left as it
 * is (RabbitMQ's import does not redeclare); anything else is the entry's
 * error.
 */
static bool declare_failed(struct import *im, bool existed,
    const struct amqp_error *aerr, char *why, size_t whylen)
{
	if (existed && aerr->code == AMQP_PRECONDITION_FAILED) {
		log_warning("definitions: %s: exists and differs, left as it "
		    "is: %s", im->label, aerr->text);
		return true;
	}
	snprintf(why, whylen, "%s", aerr->text);
	return false;
}

static bool import_vhost_entry(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	const char *name;

	if (!member_str(e, "name", NULL, &name, why, whylen))
		return false;
	if (*name == '\0') {
		snprintf(why, whylen, "a vhost name must not be empty");
		return false;
	}
	broker_add_vhost(im->b, name);
	return true;
}

/* A runtime parameter: a vhost's limits; other components are skipped. */
static bool import_parameter(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	const char *component, *vhost;
	struct vhost *vh;

	if (!member_str(e, "component", NULL, &component, why, whylen) ||
	    !member_str(e, "vhost", NULL, &vhost, why, whylen))
		return false;
	if (strcmp(component, VHOST_LIMITS) != 0) {
		log_warning("definitions: %s: parameter of component '%s' "
		    "ignored: Warren does not support it", im->label, component);
		return true;
	}
	if ((vh = import_vhost(im, vhost)) == NULL)
		return true;
	return limits_vhost_from_json(vh, json_object_get(e, "value"), why,
	    whylen);
}

static bool import_user(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	return access_import_user(im->b->users, e, why, whylen);
}

/* Permissions on a vhost that does not exist are skipped (warned). */
static bool vhost_exists(struct import *im, json_t *e)
{
	json_t *v = json_object_get(e, "vhost");

	return !json_is_string(v) || import_vhost(im, json_string_value(v));
}

static bool import_permission(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	return !vhost_exists(im, e) ||
	    access_import_permission(im->b->users, e, why, whylen);
}

static bool import_topic_permission(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	return !vhost_exists(im, e) ||
	    access_import_topic_permission(im->b->users, e, why, whylen);
}

/* What queue and exchange entries share; arguments go to im->args. */
struct entry {
	const char *name, *vhost;
	bool durable, auto_delete;
};

static bool entry_read(struct import *im, json_t *e, struct entry *out,
    char *why, size_t whylen)
{
	if (!member_str(e, "name", NULL, &out->name, why, whylen))
		return false;
	label_add(im, out->name, NULL);
	return member_str(e, "vhost", NULL, &out->vhost, why, whylen) &&
	    member_bool(e, "durable", true, &out->durable, why, whylen) &&
	    member_bool(e, "auto_delete", false, &out->auto_delete, why,
	    whylen) && entry_arguments(im, e, why, whylen);
}

static bool import_exchange(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	struct exchange_decl d = { 0 };
	struct amqp_error aerr = { 0 };
	struct entry c;
	const char *type;
	struct exchange *x;
	struct vhost *vh;
	bool existed;

	if (!entry_read(im, e, &c, why, whylen) ||
	    !member_str(e, "type", NULL, &type, why, whylen) ||
	    !member_bool(e, "internal", false, &d.internal, why, whylen))
		return false;
	/* RabbitMQ's import skips these too: they always exist. */
	if (c.name[0] == '\0' || strncmp(c.name, "amq.", 4) == 0) {
		log_warning("definitions: %s: the default and amq.* exchanges "
		    "are not imported", im->label);
		return true;
	}
	if ((vh = import_vhost(im, c.vhost)) == NULL)
		return true;
	d.type = bytes_str(type);
	d.durable = c.durable;
	d.auto_delete = c.auto_delete;
	d.arguments = entry_args(im);
	existed = vhost_find_exchange(vh, bytes_str(c.name)) != NULL;
	d.restoring = true;
	if (declare_exchange(vh, bytes_str(c.name), &d, &x, &aerr) != 0)
		return declare_failed(im, existed, &aerr, why, whylen);
	return true;
}

static bool import_queue(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	struct queue_decl d = { 0 };
	struct amqp_error aerr = { 0 };
	struct entry c;
	struct queue *q;
	struct vhost *vh;
	bool existed;

	if (!entry_read(im, e, &c, why, whylen) ||
	    !member_bool(e, "exclusive", false, &d.exclusive, why, whylen))
		return false;
	/* An exclusive queue belongs to a connection, which is gone. */
	if (d.exclusive) {
		log_warning("definitions: %s: exclusive queues are not "
		    "imported", im->label);
		return true;
	}
	if ((vh = import_vhost(im, c.vhost)) == NULL)
		return true;
	d.durable = c.durable;
	d.auto_delete = c.auto_delete;
	d.arguments = entry_args(im);
	d.restoring = true;
	existed = vhost_find_queue(vh, bytes_str(c.name)) != NULL;
	if (!existed && d.durable)
		d.store_qid = entry_qid(im, e);
	d.restoring = true;
	if (declare_queue(vh, bytes_str(c.name), &d, &q, &aerr) != 0)
		return declare_failed(im, existed, &aerr, why, whylen);
	if (!existed && q->store_qid && im->qids != NULL)
		qid_put(im->qids, q->store_qid);
	return true;
}

static bool import_binding(struct import *im, json_t *e, char *why,
    size_t whylen)
{
	struct amqp_error aerr = { 0 };
	const char *source, *dest, *vhost, *dtype, *key;
	enum binding_dest kind;
	struct exchange *x;
	struct vhost *vh;
	void *to;

	if (!member_str(e, "source", NULL, &source, why, whylen) ||
	    !member_str(e, "destination", NULL, &dest, why, whylen))
		return false;
	label_add(im, source, dest);
	if (!member_str(e, "vhost", NULL, &vhost, why, whylen) ||
	    !member_str(e, "destination_type", NULL, &dtype, why, whylen) ||
	    !member_str(e, "routing_key", "", &key, why, whylen) ||
	    !entry_arguments(im, e, why, whylen))
		return false;
	if (strcmp(dtype, "queue") == 0)
		kind = DEST_QUEUE;
	else if (strcmp(dtype, "exchange") == 0)
		kind = DEST_EXCHANGE;
	else {
		snprintf(why, whylen, "'destination_type' must be \"queue\" "
		    "or \"exchange\"");
		return false;
	}
	/* The default exchange's bindings are implicit. */
	if (source[0] == '\0')
		return true;
	if ((vh = import_vhost(im, vhost)) == NULL)
		return true;
	if ((x = vhost_find_exchange(vh, bytes_str(source))) == NULL) {
		snprintf(why, whylen, "no exchange '%s' in vhost '%s'", source,
		    vhost);
		return false;
	}
	to = kind == DEST_QUEUE ? (void *)vhost_find_queue(vh, bytes_str(dest)) :
	    (void *)vhost_find_exchange(vh, bytes_str(dest));
	if (to == NULL) {
		snprintf(why, whylen, "no %s '%s' in vhost '%s'", dtype, dest,
		    vhost);
		return false;
	}
	if (declare_binding(x, kind, to, bytes_str(key), entry_args(im),
	    &aerr) != 0) {
		snprintf(why, whylen, "%s", aerr.text);
		return false;
	}
	return true;
}

/* In this order, as RabbitMQ: bindings need both ends. */
static const struct {
	const char *key;
	bool (*import)(struct import *, json_t *, char *, size_t);
} sections[] = {
	{ "users", import_user },
	{ "vhosts", import_vhost_entry },
	{ "parameters", import_parameter },
	{ "permissions", import_permission },
	{ "topic_permissions", import_topic_permission },
	{ "exchanges", import_exchange },
	{ "queues", import_queue },
	{ "bindings", import_binding },
};

bool definitions_import(struct broker *b, json_t *defs, char *err,
    size_t errlen)
{
	struct import im = { .b = b };
	char why[512];
	bool ok = false;

	if (!json_is_object(defs)) {
		snprintf(err, errlen, "definitions must be a JSON object");
		return false;
	}
	for (size_t i = 0; i < N_UNSUPPORTED; i++) {
		size_t n = json_array_size(json_object_get(defs, unsupported[i]));

		if (n)
			log_warning("definitions: %zu %s ignored: Warren does "
			    "not support them", n, unsupported[i]);
	}
	im.missing = strmap_new();
	wbuf_init(&im.args);
	for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
		json_t *list = json_object_get(defs, sections[s].key), *e;
		size_t i;

		if (list == NULL)
			continue;
		if (!json_is_array(list)) {
			snprintf(err, errlen, "'%s' must be an array",
			    sections[s].key);
			goto done;
		}
		json_array_foreach(list, i, e) {
			snprintf(im.label, sizeof(im.label), "%s[%zu]",
			    sections[s].key, i);
			if (!json_is_object(e))
				snprintf(why, sizeof(why), "must be an object");
			else if (sections[s].import(&im, e, why, sizeof(why)))
				continue;
			snprintf(err, errlen, "%s: %s", im.label, why);
			goto done;
		}
	}
	ok = true;
done:
	strmap_free(im.missing);
	if (im.qids)
		strmap_free(im.qids);
	wbuf_free(&im.args);
	return ok;
}

/* ---- the file ----------------------------------------------------------- */

bool definitions_save(struct broker *b, const char *path, char *err,
    size_t errlen)
{
	json_t *defs = definitions_export(b);
	/* Whole, in one write: jansson's own file output makes a write
	 * call per token (50 ms per save at 1,000 queues). */
	char *text = json_dumps(defs, JSON_INDENT(2) | JSON_SORT_KEYS);
	bool ok;

	json_decref(defs);
	if (text == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return false;
	}
	ok = atomic_file_write(path, text, strlen(text), "\n", err, errlen);
	free(text);
	return ok;
}

bool definitions_load_file(struct broker *b, const char *path, char *err,
    size_t errlen)
{
	FILE *fp = fopen(path, "r");
	json_error_t jerr;
	json_t *defs;
	char why[600];
	bool ok;

	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	defs = json_loadf(fp, 0, &jerr);
	fclose(fp);
	if (defs == NULL) {
		if (jerr.line > 0)
			snprintf(err, errlen, "%s:%d: %s", path, jerr.line,
			    jerr.text);
		else
			snprintf(err, errlen, "%s: %s", path, jerr.text);
		return false;
	}
	if (!(ok = definitions_import(b, defs, why, sizeof(why))))
		snprintf(err, errlen, "%s: %s", path, why);
	json_decref(defs);
	return ok;
}
