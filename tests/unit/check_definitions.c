/*
 * Unit tests for the definitions file (definitions.c) and the declares it
 * goes through (declare.c), on a broker built by hand (an event base and
 * the vhost "/", no listener, no store):
 *
 *  - export holds exactly the durable objects: no transient or exclusive
 *    queue, no default or amq.* exchange, no binding with a transient end;
 *  - export -> JSON text -> import into a fresh broker gives the same
 *    objects with byte-identical arguments (an 'I' stays 'I'), the same
 *    store ids, and the same export;
 *  - RabbitMQ's own JSON (no raw key) converts as RabbitMQ's import does;
 *    a raw key that no longer matches "arguments" loses to it;
 *  - exchange-to-exchange bindings; what is skipped (exclusive queues,
 *    missing vhosts, amq.* exchanges, existing objects that differ);
 *  - invalid entries fail naming the entry, with nothing of it made;
 *  - save/load through a temp dir: no .tmp left, the file replaced by a
 *    rename, "PATH:LINE:" for malformed JSON.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "amqp.h"
#include "broker.h"
#include "connection.h"
#include "declare.h"
#include "definitions.h"
#include "exchange.h"
#include "field_table.h"
#include "queue.h"
#include "strmap.h"
#include "users.h"
#include "vhost.h"

/* ---- a broker with just what the vhosts need ---------------------------- */

static struct broker *broker_make(void)
{
	struct broker *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	b->base = event_base_new();
	b->vhosts = strmap_new();
	TAILQ_INIT(&b->conns);
	TAILQ_INIT(&b->store_waiters);
	strmap_put(b->vhosts, BYTES_LIT("/"), vhost_new(b, "/"));
	b->users = userdb_new();
	return b;
}

static void broker_drop(struct broker *b)
{
	struct bytes k;
	void *v;

	for (size_t it = 0; strmap_next(b->vhosts, &it, &k, &v); )
		vhost_free(v);
	strmap_free(b->vhosts);
	userdb_free(b->users);
	event_base_free(b->base);
	free(b);
}

static struct vhost *root(struct broker *b)
{
	return broker_find_vhost(b, BYTES_LIT("/"));
}

/* ---- argument tables ------------------------------------------------------ */

static void put_key(struct wbuf *w, const char *key, char type)
{
	wbuf_put_shortstr(w, bytes_str(key));
	wbuf_put_u8(w, (uint8_t)type);
}

static void arg_str(struct wbuf *w, const char *key, const char *v)
{
	put_key(w, key, 'S');
	wbuf_put_longstr(w, bytes_str(v));
}

static void arg_i32(struct wbuf *w, const char *key, int32_t v)
{
	put_key(w, key, 'I');
	wbuf_put_u32(w, (uint32_t)v);
}

static void arg_i64(struct wbuf *w, const char *key, int64_t v)
{
	put_key(w, key, 'l');
	wbuf_put_u64(w, (uint64_t)v);
}

static struct bytes raw(const struct wbuf *w)
{
	return (struct bytes){ w->p, (uint32_t)w->len };
}

/* ---- declaring through declare.h ---------------------------------------- */

static struct queue *mkqueue(struct broker *b, const char *name,
    bool durable, bool exclusive, struct bytes args)
{
	struct queue_decl d = { .durable = durable, .exclusive = exclusive,
	    .owner_conn = exclusive ? 7 : 0, .arguments = args };
	struct amqp_error err = { 0 };
	struct queue *q = NULL;

	ck_assert_msg(declare_queue(root(b), bytes_str(name), &d, &q, &err) == 0,
	    "%s", err.text);
	return q;
}

static struct exchange *mkexchange(struct broker *b, const char *name,
    const char *type, bool durable, struct bytes args)
{
	struct exchange_decl d = { bytes_str(type), durable, false, false,
	    args, false };
	struct amqp_error err = { 0 };
	struct exchange *x = NULL;

	ck_assert_msg(declare_exchange(root(b), bytes_str(name), &d, &x,
	    &err) == 0, "%s", err.text);
	return x;
}

static void mkbind(struct exchange *x, enum binding_dest kind, void *dest,
    const char *key, struct bytes args)
{
	struct amqp_error err = { 0 };

	ck_assert_msg(declare_binding(x, kind, dest, bytes_str(key), args,
	    &err) == 0, "%s", err.text);
}

static struct queue *findq(struct broker *b, const char *name)
{
	return vhost_find_queue(root(b), bytes_str(name));
}

static struct exchange *findx(struct broker *b, const char *name)
{
	return vhost_find_exchange(root(b), bytes_str(name));
}

static bool bound(struct exchange *x, enum binding_dest kind, void *dest,
    const char *key, struct bytes args)
{
	return exchange_find_binding(x, kind, dest, bytes_str(key), args) != NULL;
}

/* ---- JSON helpers --------------------------------------------------------- */

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);

	ck_assert_msg(j != NULL, "test JSON: line %d: %s", jerr.line, jerr.text);
	return j;
}

static bool import_text(struct broker *b, const char *text, char *err,
    size_t errlen)
{
	json_t *j = parse(text);
	bool ok = definitions_import(b, j, err, errlen);

	json_decref(j);
	return ok;
}

/* The "name" (or "source->destination") of each object in list, joined. */
static void names(json_t *list, char *out, size_t outlen)
{
	size_t i, len = 0;
	json_t *o;

	out[0] = '\0';
	json_array_foreach(list, i, o) {
		const char *n = json_string_value(json_object_get(o, "name"));

		if (n != NULL)
			len += snprintf(out + len, outlen - len, "%s%s",
			    i ? "," : "", n);
		else
			len += snprintf(out + len, outlen - len, "%s%s->%s:%s",
			    i ? "," : "",
			    json_string_value(json_object_get(o, "source")),
			    json_string_value(json_object_get(o, "destination")),
			    json_string_value(json_object_get(o,
			    "routing_key")));
	}
}

/* ---- export ------------------------------------------------------------- */

START_TEST(test_export_only_durable)
{
	struct broker *b = broker_make();
	struct exchange *dx, *dx2, *tx, *amq;
	struct queue *dq, *tq, *eq;
	struct bytes none = { NULL, 0 };
	char got[512];
	json_t *d;

	dx = mkexchange(b, "dx", "direct", true, none);
	dx2 = mkexchange(b, "dx2", "fanout", true, none);
	tx = mkexchange(b, "tx", "topic", false, none);
	dq = mkqueue(b, "dq", true, false, none);
	tq = mkqueue(b, "tq", false, false, none);
	eq = mkqueue(b, "eq", true, true, none);
	amq = findx(b, "amq.direct");
	mkbind(dx, DEST_QUEUE, dq, "k1", none);
	mkbind(dx, DEST_QUEUE, tq, "k2", none);
	mkbind(dx, DEST_QUEUE, eq, "k3", none);
	mkbind(tx, DEST_QUEUE, dq, "k4", none);
	mkbind(amq, DEST_QUEUE, dq, "k5", none);
	mkbind(dx, DEST_EXCHANGE, dx2, "k6", none);
	mkbind(dx, DEST_EXCHANGE, tx, "k7", none);
	mkbind(tx, DEST_EXCHANGE, dx, "k8", none);

	d = definitions_export(b);
	names(json_object_get(d, "queues"), got, sizeof(got));
	ck_assert_str_eq(got, "dq");
	names(json_object_get(d, "exchanges"), got, sizeof(got));
	ck_assert_str_eq(got, "dx,dx2");
	names(json_object_get(d, "bindings"), got, sizeof(got));
	ck_assert_str_eq(got, "amq.direct->dq:k5,dx->dq:k1,dx->dx2:k6");
	names(json_object_get(d, "vhosts"), got, sizeof(got));
	ck_assert_str_eq(got, "/");
	ck_assert_str_eq(json_string_value(json_object_get(d, "rabbit_version")),
	    "3.10.8");
	ck_assert_str_eq(json_string_value(json_object_get(d, "product_name")),
	    "Warren");
	ck_assert_ptr_nonnull(json_string_value(json_object_get(d,
	    "product_version")));
	ck_assert_int_eq(json_array_size(json_object_get(d, "users")), 0);
	ck_assert(json_is_array(json_object_get(d, "policies")));
	/* The binding objects have RabbitMQ's fields. */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(d, "bindings"), 2), "destination_type")),
	    "exchange");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(d, "exchanges"), 1), "type")), "fanout");
	json_decref(d);
	broker_drop(b);
}
END_TEST

/* ---- round trip --------------------------------------------------------- */

/* Arguments with every kind of value, 'I' where JSON would say 'l'. */
static void exotic_args(struct wbuf *w)
{
	size_t at;

	arg_i32(w, "x-max-length", 10);
	arg_i64(w, "x-message-ttl", 5000);
	arg_str(w, "x-dead-letter-exchange", "dlx");
	put_key(w, "bin", 'x');
	wbuf_put_longstr(w, (struct bytes){ (const uint8_t *)"\xff\0A", 3 });
	put_key(w, "dec", 'D');
	wbuf_put_u8(w, 2);
	wbuf_put_u32(w, 12345);
	put_key(w, "flt", 'f');
	wbuf_put_u32(w, 0x3fc00000);		/* 1.5 */
	put_key(w, "when", 'T');
	wbuf_put_u64(w, 1700000000);
	put_key(w, "nothing", 'V');
	put_key(w, "nested", 'F');
	at = w->len;
	wbuf_put_u32(w, 0);
	put_key(w, "yes", 't');
	wbuf_put_u8(w, 1);
	wbuf_patch_u32(w, at, (uint32_t)(w->len - at - 4));
	put_key(w, "list", 'A');
	at = w->len;
	wbuf_put_u32(w, 0);
	wbuf_put_u8(w, 'S');
	wbuf_put_longstr(w, BYTES_LIT("a"));
	wbuf_put_u8(w, 's');
	wbuf_put_u16(w, 2);
	wbuf_patch_u32(w, at, (uint32_t)(w->len - at - 4));
}

static void check_arguments_equal(const uint8_t *a, uint32_t alen,
    const uint8_t *b, uint32_t blen)
{
	ck_assert_uint_eq(alen, blen);
	ck_assert(alen == 0 || memcmp(a, b, alen) == 0);
}

START_TEST(test_export_import_round_trip)
{
	struct broker *a = broker_make(), *b = broker_make();
	struct wbuf qargs, xargs, bargs;
	struct exchange *hx, *fx, *x2;
	struct queue *q, *q2;
	struct field_table *t;
	json_t *da, *db, *args;
	char err[512], *text;
	struct bytes none = { NULL, 0 };

	wbuf_init(&qargs);
	wbuf_init(&xargs);
	wbuf_init(&bargs);
	exotic_args(&qargs);
	arg_str(&xargs, "alternate-exchange", "ae");
	arg_str(&bargs, "x-match", "any");
	arg_i32(&bargs, "h", 1);
	q = mkqueue(a, "q", true, false, raw(&qargs));
	hx = mkexchange(a, "hx", "headers", true, raw(&xargs));
	fx = mkexchange(a, "fx", "fanout", true, none);
	mkbind(hx, DEST_QUEUE, q, "", raw(&bargs));
	mkbind(fx, DEST_EXCHANGE, hx, "e2e", none);

	da = definitions_export(a);
	/* RabbitMQ's rendering of the arguments. */
	args = json_object_get(json_array_get(json_object_get(da, "queues"), 0),
	    "arguments");
	ck_assert_int_eq(json_integer_value(json_object_get(args,
	    "x-max-length")), 10);
	ck_assert_str_eq(json_string_value(json_object_get(args, "bin")),
	    "Not UTF-8, base64 is: /wBB");
	ck_assert(json_real_value(json_object_get(args, "dec")) > 123.449 &&
	    json_real_value(json_object_get(args, "dec")) < 123.451);
	ck_assert(json_real_value(json_object_get(args, "flt")) == 1.5);
	ck_assert_int_eq(json_integer_value(json_object_get(args, "when")),
	    1700000000);
	ck_assert(json_is_null(json_object_get(args, "nothing")));
	ck_assert(json_is_true(json_object_get(json_object_get(args, "nested"),
	    "yes")));
	ck_assert_int_eq(json_array_size(json_object_get(args, "list")), 2);

	/* Through text, as the file goes. */
	text = json_dumps(da, JSON_INDENT(2) | JSON_SORT_KEYS);
	ck_assert_msg(import_text(b, text, err, sizeof(err)), "%s", err);
	free(text);

	q2 = findq(b, "q");
	ck_assert_ptr_nonnull(q2);
	ck_assert(q2->durable && !q2->exclusive && !q2->auto_delete);
	check_arguments_equal(q->arguments, q->arguments_len, q2->arguments,
	    q2->arguments_len);
	ck_assert_uint_eq(q2->store_qid, q->store_qid);
	ck_assert_int_eq(q2->args.max_length, 10);
	ck_assert_int_eq(q2->args.message_ttl, 5000);
	ck_assert_str_eq(q2->args.dlx, "dlx");
	t = ftable_decode((struct bytes){ q2->arguments, q2->arguments_len });
	ck_assert_int_eq(ftable_get(t, "x-max-length")->type, 'I');
	ftable_free(t);

	x2 = findx(b, "hx");
	ck_assert_ptr_nonnull(x2);
	ck_assert_ptr_eq(x2->type, &exchange_headers);
	ck_assert(x2->durable);
	ck_assert_str_eq(x2->alternate, "ae");
	check_arguments_equal(hx->arguments, hx->arguments_len, x2->arguments,
	    x2->arguments_len);
	ck_assert(bound(x2, DEST_QUEUE, q2, "", raw(&bargs)));
	ck_assert(bound(findx(b, "fx"), DEST_EXCHANGE, x2, "e2e", none));

	db = definitions_export(b);
	ck_assert(json_equal(da, db));
	json_decref(db);

	/* Again into the same broker: all there and equivalent, so nothing. */
	ck_assert_msg(definitions_import(b, da, err, sizeof(err)), "%s", err);
	ck_assert_ptr_eq(findq(b, "q"), q2);
	ck_assert_uint_eq(findx(b, "hx")->n_bindings, 1);

	json_decref(da);
	wbuf_free(&qargs);
	wbuf_free(&xargs);
	wbuf_free(&bargs);
	broker_drop(a);
	broker_drop(b);
}
END_TEST

/* ---- RabbitMQ's JSON ----------------------------------------------------- */

static const char rabbit_json[] =
    "{\"rabbit_version\":\"3.10.8\",\"users\":[{\"name\":\"guest\"}],"
    "\"vhosts\":[{\"name\":\"/\"}],\"policies\":[],"
    "\"queues\":[{\"name\":\"q1\",\"vhost\":\"/\",\"durable\":true,"
    "\"auto_delete\":false,\"arguments\":{\"x-max-length\":10,"
    "\"x-dead-letter-exchange\":\"dlx\",\"x-queue-type\":\"classic\","
    "\"x-ratio\":0.5,\"x-flag\":true,\"x-list\":[1,\"a\"],"
    "\"x-obj\":{\"k\":\"v\"}}}],"
    "\"exchanges\":[{\"name\":\"e1\",\"vhost\":\"/\",\"type\":\"topic\","
    "\"durable\":true,\"auto_delete\":false,\"internal\":false,"
    "\"arguments\":{}},"
    "{\"name\":\"e2\",\"vhost\":\"/\",\"type\":\"fanout\",\"durable\":true,"
    "\"auto_delete\":false,\"internal\":true,\"arguments\":{}}],"
    "\"bindings\":[{\"source\":\"e1\",\"vhost\":\"/\",\"destination\":\"q1\","
    "\"destination_type\":\"queue\",\"routing_key\":\"a.#\","
    "\"arguments\":{}},"
    "{\"source\":\"e1\",\"vhost\":\"/\",\"destination\":\"e2\","
    "\"destination_type\":\"exchange\",\"routing_key\":\"b.*\","
    "\"arguments\":{}},"
    "{\"source\":\"amq.fanout\",\"vhost\":\"/\",\"destination\":\"q1\","
    "\"destination_type\":\"queue\",\"routing_key\":\"\","
    "\"arguments\":{}}]}";

START_TEST(test_import_rabbitmq_json)
{
	struct broker *b = broker_make();
	struct bytes none = { NULL, 0 };
	const struct field_value *v;
	struct field_table *t;
	struct exchange *e1, *e2;
	struct queue *q;
	char err[512];

	ck_assert_msg(import_text(b, rabbit_json, err, sizeof(err)), "%s", err);
	q = findq(b, "q1");
	ck_assert_ptr_nonnull(q);
	ck_assert(q->durable);
	ck_assert_uint_ne(q->store_qid, 0);
	ck_assert_int_eq(q->args.max_length, 10);
	ck_assert_str_eq(q->args.dlx, "dlx");
	t = ftable_decode((struct bytes){ q->arguments, q->arguments_len });
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(ftable_get(t, "x-max-length")->type, 'l');
	ck_assert_int_eq(ftable_get(t, "x-dead-letter-exchange")->type, 'S');
	ck_assert_int_eq(ftable_get(t, "x-ratio")->type, 'd');
	ck_assert_int_eq(ftable_get(t, "x-flag")->type, 't');
	v = ftable_get(t, "x-list");
	ck_assert_int_eq(v->type, 'A');
	ck_assert_int_eq(v->v.array->n, 2);
	ck_assert_int_eq(v->v.array->items[0].type, 'l');
	ck_assert_int_eq(v->v.array->items[1].type, 'S');
	v = ftable_get(t, "x-obj");
	ck_assert_int_eq(v->type, 'F');
	ck_assert(bytes_eq_str(ftable_get(v->v.table, "k")->v.str, "v"));
	ftable_free(t);

	e1 = findx(b, "e1");
	e2 = findx(b, "e2");
	ck_assert_ptr_eq(e1->type, &exchange_topic);
	ck_assert(e2->internal);
	ck_assert(bound(e1, DEST_QUEUE, q, "a.#", none));
	ck_assert(bound(e1, DEST_EXCHANGE, e2, "b.*", none));
	ck_assert(bound(findx(b, "amq.fanout"), DEST_QUEUE, q, "", none));
	broker_drop(b);
}
END_TEST

/* The raw table holds 'I' 10, "arguments" was edited to 20: the edit wins. */
START_TEST(test_raw_key_loses_to_edited_arguments)
{
	struct broker *a = broker_make(), *b = broker_make();
	struct field_table *t;
	struct wbuf args;
	json_t *d, *qo;
	char err[512];

	wbuf_init(&args);
	arg_i32(&args, "x-max-length", 10);
	mkqueue(a, "q", true, false, raw(&args));
	d = definitions_export(a);
	qo = json_array_get(json_object_get(d, "queues"), 0);
	ck_assert_ptr_nonnull(json_object_get(qo, "x-warren-raw-arguments"));
	json_object_set_new(json_object_get(qo, "arguments"), "x-max-length",
	    json_integer(20));
	ck_assert_msg(definitions_import(b, d, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(findq(b, "q")->args.max_length, 20);
	t = ftable_decode((struct bytes){ findq(b, "q")->arguments,
	    findq(b, "q")->arguments_len });
	ck_assert_int_eq(ftable_get(t, "x-max-length")->type, 'l');
	ftable_free(t);

	/* A raw key that is not base64 is no table either. */
	broker_drop(b);
	b = broker_make();
	json_object_set_new(qo, "x-warren-raw-arguments", json_string("!!"));
	ck_assert_msg(definitions_import(b, d, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(findq(b, "q")->args.max_length, 20);

	json_decref(d);
	wbuf_free(&args);
	broker_drop(a);
	broker_drop(b);
}
END_TEST

/* ---- what import leaves alone --------------------------------------------- */

START_TEST(test_import_skips)
{
	struct broker *b = broker_make();
	struct wbuf args;
	struct queue *q;
	char err[512];

	wbuf_init(&args);
	arg_i64(&args, "x-max-length", 5);
	q = mkqueue(b, "busy", true, false, raw(&args));
	ck_assert_msg(import_text(b,
	    "{\"vhosts\":[{\"name\":\"/\"},{\"name\":\"elsewhere\"}],"
	    "\"queues\":["
	    "{\"name\":\"ex\",\"vhost\":\"/\",\"exclusive\":true},"
	    "{\"name\":\"far\",\"vhost\":\"nowhere\"},"
	    "{\"name\":\"busy\",\"vhost\":\"/\",\"durable\":true,"
	    "\"arguments\":{\"x-max-length\":10}}],"
	    "\"exchanges\":["
	    "{\"name\":\"amq.direct\",\"vhost\":\"/\",\"type\":\"fanout\"},"
	    "{\"name\":\"\",\"vhost\":\"/\",\"type\":\"direct\"},"
	    "{\"name\":\"farx\",\"vhost\":\"nowhere\",\"type\":\"direct\"}],"
	    "\"bindings\":["
	    "{\"source\":\"\",\"vhost\":\"/\",\"destination\":\"busy\","
	    "\"destination_type\":\"queue\",\"routing_key\":\"busy\"},"
	    "{\"source\":\"farx\",\"vhost\":\"nowhere\",\"destination\":"
	    "\"far\",\"destination_type\":\"queue\"}]}", err, sizeof(err)),
	    "%s", err);
	ck_assert_ptr_null(findq(b, "ex"));
	/* A vhost in "vhosts" is made; entries of any other are skipped. */
	ck_assert_ptr_nonnull(broker_find_vhost(b, BYTES_LIT("elsewhere")));
	ck_assert_ptr_null(broker_find_vhost(b, BYTES_LIT("nowhere")));
	/* Existing and different: left as it was. */
	ck_assert_ptr_eq(findq(b, "busy"), q);
	ck_assert_int_eq(q->args.max_length, 5);
	ck_assert_ptr_eq(findx(b, "amq.direct")->type, &exchange_direct);
	wbuf_free(&args);
	broker_drop(b);
}
END_TEST

/* A copied queue entry keeps the store id: the copy gets a fresh one. */
START_TEST(test_import_store_qid)
{
	struct broker *b = broker_make();
	char err[512];

	ck_assert_msg(import_text(b, "{\"queues\":["
	    "{\"name\":\"a\",\"vhost\":\"/\",\"x-warren-store-qid\":"
	    "\"00000000000000ab\"},"
	    "{\"name\":\"b\",\"vhost\":\"/\",\"x-warren-store-qid\":"
	    "\"00000000000000AB\"},"
	    "{\"name\":\"c\",\"vhost\":\"/\",\"x-warren-store-qid\":\"zz\"}]}",
	    err, sizeof(err)), "%s", err);
	ck_assert_uint_eq(findq(b, "a")->store_qid, 0xab);
	ck_assert_uint_ne(findq(b, "b")->store_qid, 0xab);
	ck_assert_uint_ne(findq(b, "b")->store_qid, 0);
	ck_assert_uint_ne(findq(b, "c")->store_qid, 0);
	broker_drop(b);
}
END_TEST

/* ---- invalid entries ------------------------------------------------------ */

static const struct {
	const char *json;
	const char *err;		/* the start of the message */
	const char *absent_queue;	/* must not have been made */
	const char *absent_exchange;
} bad[] = {
	{ "{\"exchanges\":[{\"name\":\"x\",\"vhost\":\"/\",\"type\":"
	  "\"x-nope\"}]}",
	  "exchanges[0] \"x\": unknown exchange type 'x-nope'", NULL, "x" },
	{ "{\"queues\":[{\"name\":\"a\",\"vhost\":\"/\"},{\"name\":\"b\","
	  "\"vhost\":\"/\",\"arguments\":{\"x-max-length\":-1}}]}",
	  "queues[1] \"b\": invalid arg 'x-max-length' for queue 'b' in vhost "
	  "'/': -1 is negative", "b", NULL },
	{ "{\"queues\":[{\"name\":\"c\",\"vhost\":\"/\",\"arguments\":"
	  "{\"x-foo\":null}}]}",
	  "queues[0] \"c\": argument 'x-foo': null is not allowed", "c", NULL },
	{ "{\"queues\":[{\"vhost\":\"/\"}]}",
	  "queues[0]: 'name' must be a string", NULL, NULL },
	{ "{\"queues\":[{\"name\":\"d\",\"vhost\":\"/\",\"durable\":\"yes\"}]}",
	  "queues[0] \"d\": 'durable' must be true or false", "d", NULL },
	{ "{\"queues\":[{\"name\":\"e\"}]}",
	  "queues[0] \"e\": 'vhost' must be a string", "e", NULL },
	{ "{\"queues\":[7]}", "queues[0]: must be an object", NULL, NULL },
	{ "{\"queues\":{}}", "'queues' must be an array", NULL, NULL },
	{ "[]", "definitions must be a JSON object", NULL, NULL },
	{ "{\"exchanges\":[{\"name\":\"f\",\"vhost\":\"/\",\"type\":\"direct\","
	  "\"arguments\":{\"alternate-exchange\":1}}]}",
	  "exchanges[0] \"f\": invalid type 'long' for arg "
	  "'alternate-exchange' in exchange 'f' in vhost '/'", NULL, "f" },
	{ "{\"bindings\":[{\"source\":\"amq.direct\",\"vhost\":\"/\","
	  "\"destination\":\"nope\",\"destination_type\":\"queue\"}]}",
	  "bindings[0] \"amq.direct\" -> \"nope\": no queue 'nope' in vhost "
	  "'/'", NULL, NULL },
	{ "{\"bindings\":[{\"source\":\"nox\",\"vhost\":\"/\","
	  "\"destination\":\"amq.fanout\",\"destination_type\":\"exchange\"}]}",
	  "bindings[0] \"nox\" -> \"amq.fanout\": no exchange 'nox' in vhost "
	  "'/'", NULL, NULL },
	{ "{\"bindings\":[{\"source\":\"amq.direct\",\"vhost\":\"/\","
	  "\"destination\":\"amq.fanout\",\"destination_type\":\"topic\"}]}",
	  "bindings[0] \"amq.direct\" -> \"amq.fanout\": 'destination_type' "
	  "must be \"queue\" or \"exchange\"", NULL, NULL },
	{ "{\"bindings\":[{\"source\":\"amq.headers\",\"vhost\":\"/\","
	  "\"destination\":\"amq.fanout\",\"destination_type\":\"exchange\","
	  "\"arguments\":{\"x-match\":\"some\"}}]}",
	  "bindings[0] \"amq.headers\" -> \"amq.fanout\": Invalid x-match "
	  "field value <<\"some\">>", NULL, NULL },
};

START_TEST(test_import_invalid)
{
	struct broker *b = broker_make();
	char err[512];

	ck_assert(!import_text(b, bad[_i].json, err, sizeof(err)));
	ck_assert_msg(strncmp(err, bad[_i].err, strlen(bad[_i].err)) == 0,
	    "got: %s\nwant: %s", err, bad[_i].err);
	if (bad[_i].absent_queue)
		ck_assert_ptr_null(findq(b, bad[_i].absent_queue));
	if (bad[_i].absent_exchange)
		ck_assert_ptr_null(findx(b, bad[_i].absent_exchange));
	/* Nothing half-made: the amq.* exchanges have no bindings. */
	ck_assert_uint_eq(findx(b, "amq.headers")->n_bindings, 0);
	ck_assert_uint_eq(findx(b, "amq.direct")->n_bindings, 0);
	broker_drop(b);
}
END_TEST

/* ---- the file ----------------------------------------------------------- */

static char tmpdir[64];

static void dir_make(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_definitions.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void dir_remove(void)
{
	struct dirent *de;
	char path[512];
	DIR *d = opendir(tmpdir);

	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

/* The directory holds exactly the one file. */
static void only_file(const char *name)
{
	struct dirent *de;
	DIR *d = opendir(tmpdir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		ck_assert_str_eq(de->d_name, name);
		n++;
	}
	closedir(d);
	ck_assert_int_eq(n, 1);
}

START_TEST(test_save_load_round_trip)
{
	struct broker *a = broker_make(), *b = broker_make();
	struct wbuf args;
	struct stat st1, st2;
	char path[128], err[512], old[64];
	int fd;

	dir_make();
	snprintf(path, sizeof(path), "%s/definitions.json", tmpdir);
	wbuf_init(&args);
	arg_i32(&args, "x-max-length", 3);
	mkqueue(a, "q", true, false, raw(&args));
	ck_assert_msg(definitions_save(a, path, err, sizeof(err)), "%s", err);
	only_file("definitions.json");
	ck_assert_int_eq(stat(path, &st1), 0);

	/* A reader of the old file keeps it whole while a save replaces it. */
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	mkexchange(a, "x", "direct", true, (struct bytes){ NULL, 0 });
	ck_assert_msg(definitions_save(a, path, err, sizeof(err)), "%s", err);
	only_file("definitions.json");
	ck_assert_int_eq(stat(path, &st2), 0);
	ck_assert_uint_ne(st1.st_ino, st2.st_ino);
	ck_assert_int_eq(read(fd, old, sizeof(old) - 1), (ssize_t)sizeof(old) - 1);
	ck_assert_int_eq(old[0], '{');
	close(fd);

	ck_assert_msg(definitions_load_file(b, path, err, sizeof(err)), "%s",
	    err);
	ck_assert_int_eq(findq(b, "q")->args.max_length, 3);
	ck_assert_uint_eq(findq(b, "q")->store_qid, findq(a, "q")->store_qid);
	ck_assert_ptr_nonnull(findx(b, "x"));

	/* A save that cannot happen leaves nothing behind. */
	snprintf(path, sizeof(path), "%s/no/such/dir/definitions.json", tmpdir);
	ck_assert(!definitions_save(a, path, err, sizeof(err)));
	ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "%s", err);
	only_file("definitions.json");

	dir_remove();
	wbuf_free(&args);
	broker_drop(a);
	broker_drop(b);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
}

START_TEST(test_load_errors)
{
	struct broker *b = broker_make();
	char path[128], want[512], err[512];

	dir_make();
	snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
	write_file(path, "{\n  \"queues\": [\n    {\"name\": \"q\",,}\n  ]\n}\n");
	ck_assert(!definitions_load_file(b, path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:3: ", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

	/* Valid JSON, invalid entry: "PATH: entry: why". */
	write_file(path, "{\"queues\": [{\"name\": \"q\"}]}");
	ck_assert(!definitions_load_file(b, path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: queues[0] \"q\": 'vhost' must be a "
	    "string", path);
	ck_assert_str_eq(err, want);

	snprintf(path, sizeof(path), "%s/missing.json", tmpdir);
	ck_assert(!definitions_load_file(b, path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	ck_assert_str_eq(err, want);

	dir_remove();
	broker_drop(b);
}
END_TEST

static Suite *definitions_suite(void)
{
	Suite *s = suite_create("definitions");
	TCase *tc = tcase_create("export");

	tcase_add_test(tc, test_export_only_durable);
	tcase_add_test(tc, test_export_import_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("import");
	tcase_add_test(tc, test_import_rabbitmq_json);
	tcase_add_test(tc, test_raw_key_loses_to_edited_arguments);
	tcase_add_test(tc, test_import_skips);
	tcase_add_test(tc, test_import_store_qid);
	tcase_add_loop_test(tc, test_import_invalid, 0,
	    sizeof(bad) / sizeof(bad[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_test(tc, test_save_load_round_trip);
	tcase_add_test(tc, test_load_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(definitions_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
