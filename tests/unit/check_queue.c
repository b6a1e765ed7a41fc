/*
 * Unit tests for queues (queue.c, queue_classic.c) and the channel's
 * unacked ledger (channel_ledger.c), driven only through their interfaces:
 * the queue_* functions, a consumer of our own behind consumer_ops, and
 * chan_ledger_append / chan_settle on a channel built by hand.  The broker
 * is an event base and the vhost "/" (no listener, no store), so dispatch
 * runs when the test pumps the loop.
 *
 *  - FIFO order; equal consumers take turns; a higher x-priority consumer
 *    is served first; no credit, no delivery, and credit given back
 *    resumes where it stopped;
 *  - no-ack deliveries are settled by the queue (nothing keeps the
 *    message); manual ones wait for settle;
 *  - requeue puts an entry back at its original place, redelivered;
 *    reject dead-letters with x-death to the queue's DLX;
 *  - priority levels, x-max-length drop-head, reject-publish, TTL 0;
 *  - purge and stats; exclusive consumers refused with 403;
 *  - deleting a queue cancels every consumer through its cancelled op;
 *  - the ledger: acks by tag and multiple, unknown tags 406, requeue of a
 *    range restores queue order, and trimming follows the unacked count.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "amqp.h"
#include "broker.h"
#include "channel.h"
#include "channel_ledger.h"
#include "config.h"
#include "connection.h"
#include "field_table.h"
#include "message.h"
#include "queue.h"
#include "strmap.h"
#include "vhost.h"

/* ---- a broker with just what queues need -------------------------------- */

static struct warren_config cfg;
static struct broker *b;
static struct vhost *vh;

static void setup(void)
{
	config_defaults(&cfg);
	b = calloc(1, sizeof(*b));
	ck_assert_ptr_nonnull(b);
	b->cfg = &cfg;
	b->base = event_base_new();
	b->vhosts = strmap_new();
	TAILQ_INIT(&b->conns);
	TAILQ_INIT(&b->store_waiters);
	vh = vhost_new(b, "/");
	strmap_put(b->vhosts, BYTES_LIT("/"), vh);
}

static void teardown(void)
{
	vhost_free(vh);
	strmap_free(b->vhosts);
	event_base_free(b->base);
	free(b);
	config_free(&cfg);
	/* Every message the test made is gone: nothing leaked a reference. */
	ck_assert_uint_eq(msg_live_bytes(), 0);
}

/* Run dispatch passes until the loop has nothing active left. */
static void pump(void)
{
	for (int i = 0; i < 64; i++)
		event_base_loop(b->base, EVLOOP_NONBLOCK);
}

static struct queue_args default_args(void)
{
	struct queue_args a;
	struct amqp_error err;

	ck_assert_int_eq(queue_args_parse(BYTES_LIT(""), "q", "/", &a, &err),
	    0);
	return a;
}

static struct queue *make_queue(const char *name, struct queue_args a)
{
	return vhost_add_queue(vh, bytes_str(name), &a);
}

/* A message whose body is text; priority < 0 and ttl NULL: absent. */
static struct message *make_msg(const char *text, int priority,
    const char *ttl)
{
	struct content_header h = { .class_id = 60 }, parsed;
	struct message *m;
	struct wbuf w;

	h.body_size = strlen(text);
	if (priority >= 0) {
		h.props.flags |= PROP_FLAG(PROP_priority);
		h.props.priority = (uint8_t)priority;
	}
	if (ttl) {
		h.props.flags |= PROP_FLAG(PROP_expiration);
		h.props.expiration = bytes_str(ttl);
	}
	wbuf_init(&w);
	content_header_encode(&w, &h);
	ck_assert_int_eq(content_header_parse((struct bytes){ w.p,
	    (uint32_t)w.len }, &parsed), 0);
	m = msg_new(BYTES_LIT("amq.direct"), BYTES_LIT("rk"),
	    (struct bytes){ w.p, (uint32_t)w.len }, &parsed);
	msg_append_body(m, (const uint8_t *)text, (uint32_t)h.body_size);
	wbuf_free(&w);
	return m;
}

/* Push a fresh message; the queue keeps its own reference. */
static bool push(struct queue *q, const char *text, int priority,
    const char *ttl)
{
	struct message *m = make_msg(text, priority, ttl);
	bool ok = queue_push(q, m, NULL);

	msg_unref(m);
	return ok;
}

static bool body_is(const struct message *m, const char *text)
{
	return m->body_len == strlen(text) &&
	    memcmp(msg_body(m), text, m->body_len) == 0;
}

/* Pop the next entry, check its body, settle it as asked. */
static void pop_expect(struct queue *q, const char *text, bool redelivered)
{
	struct queue_entry e;

	ck_assert_msg(queue_pop(q, &e), "expected '%s', queue empty", text);
	ck_assert_msg(body_is(e.msg, text), "expected '%s', got '%.*s'", text,
	    (int)e.msg->body_len, (const char *)msg_body(e.msg));
	ck_assert_int_eq(e.redelivered, redelivered);
	queue_settle(q, &e, SETTLE_ACK);
}

/* ---- a consumer of our own ------------------------------------------------ */

#define MAX_GOT 64

struct test_consumer {
	struct consumer c;		/* first: ops get &c */
	uint32_t credit;
	unsigned n_got;
	char got[MAX_GOT][16];
	struct queue_entry held[MAX_GOT];	/* manual ack: unsettled */
	unsigned n_held;
	bool cancelled;
};

static bool tc_has_credit(const struct consumer *c)
{
	return ((const struct test_consumer *)c)->credit > 0;
}

static void tc_deliver(struct consumer *c, const struct queue_entry *e)
{
	struct test_consumer *tc = (struct test_consumer *)c;

	ck_assert_uint_gt(tc->credit, 0);
	ck_assert_uint_lt(tc->n_got, MAX_GOT);
	tc->credit--;
	snprintf(tc->got[tc->n_got++], sizeof(tc->got[0]), "%.*s",
	    (int)e->msg->body_len, (const char *)msg_body(e->msg));
	if (!c->no_ack) {
		tc->held[tc->n_held] = *e;
		msg_ref(e->msg);
		tc->n_held++;
	}
}

static void tc_cancelled(struct consumer *c)
{
	((struct test_consumer *)c)->cancelled = true;
	queue_remove_consumer(c->q, c);
}

static const struct consumer_ops test_ops = {
	.has_credit = tc_has_credit,
	.deliver = tc_deliver,
	.cancelled = tc_cancelled,
};

static void attach(struct queue *q, struct test_consumer *tc, uint32_t credit,
    bool no_ack, int32_t priority)
{
	memset(tc, 0, sizeof(*tc));
	tc->c.ops = &test_ops;
	tc->c.no_ack = no_ack;
	tc->c.priority = priority;
	tc->credit = credit;
	queue_add_consumer(q, &tc->c);
}

/* Settle every held entry of tc as how (in delivery order). */
static void settle_held(struct queue *q, struct test_consumer *tc,
    enum settle_how how)
{
	for (unsigned i = 0; i < tc->n_held; i++)
		queue_settle(q, &tc->held[i], how);
	tc->n_held = 0;
}

static void assert_got(const struct test_consumer *tc, const char *const *want,
    unsigned n)
{
	ck_assert_uint_eq(tc->n_got, n);
	for (unsigned i = 0; i < n; i++)
		ck_assert_str_eq(tc->got[i], want[i]);
}

/* ---- dispatch ----------------------------------------------------------- */

START_TEST(fifo_round_robin)
{
	struct queue *q = make_queue("q", default_args());
	struct test_consumer a, c;
	static const char *const want_a[] = { "m0", "m2", "m4" };
	static const char *const want_c[] = { "m1", "m3", "m5" };
	char text[8];

	for (int i = 0; i < 6; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		push(q, text, -1, NULL);
	}
	ck_assert_uint_eq(q->count, 6);
	attach(q, &a, 100, true, 0);
	attach(q, &c, 100, true, 0);
	pump();
	assert_got(&a, want_a, 3);
	assert_got(&c, want_c, 3);
	ck_assert_uint_eq(q->count, 0);
	queue_remove_consumer(q, &a.c);
	queue_remove_consumer(q, &c.c);
}
END_TEST

START_TEST(consumer_priority_first)
{
	struct queue *q = make_queue("q", default_args());
	struct test_consumer lo, hi;
	static const char *const want_hi[] = { "a", "b" };
	static const char *const want_lo[] = { "c" };

	attach(q, &lo, 10, true, 0);
	attach(q, &hi, 2, true, 5);
	push(q, "a", -1, NULL);
	push(q, "b", -1, NULL);
	push(q, "c", -1, NULL);
	pump();
	assert_got(&hi, want_hi, 2);
	assert_got(&lo, want_lo, 1);
	queue_remove_consumer(q, &lo.c);
	queue_remove_consumer(q, &hi.c);
}
END_TEST

START_TEST(credit_stops_and_resumes)
{
	struct queue *q = make_queue("q", default_args());
	struct test_consumer tc;
	static const char *const want[] = { "1", "2", "3", "4" };

	for (int i = 1; i <= 4; i++)
		push(q, want[i - 1], -1, NULL);
	attach(q, &tc, 2, false, 0);
	pump();
	assert_got(&tc, want, 2);
	ck_assert_uint_eq(q->count, 2);
	/* Credit back (as an ack gives it): the rest follows, in order. */
	settle_held(q, &tc, SETTLE_ACK);
	tc.credit = 10;
	queue_schedule_dispatch(q);
	pump();
	assert_got(&tc, want, 4);
	settle_held(q, &tc, SETTLE_ACK);
	ck_assert_uint_eq(q->count, 0);
	queue_remove_consumer(q, &tc.c);
}
END_TEST

START_TEST(no_ack_settled_by_queue)
{
	struct queue *q = make_queue("q", default_args());
	struct message *m = make_msg("x", -1, NULL);
	struct test_consumer tc;

	attach(q, &tc, 1, true, 0);
	ck_assert(queue_push(q, m, NULL));
	pump();
	ck_assert_uint_eq(tc.n_got, 1);
	/* Only the test's own reference is left. */
	ck_assert_uint_eq(m->refs, 1);
	msg_unref(m);
	queue_remove_consumer(q, &tc.c);
}
END_TEST

/* ---- settling ------------------------------------------------------------ */

START_TEST(requeue_keeps_place)
{
	struct queue *q = make_queue("q", default_args());
	struct queue_entry e1, e2;

	push(q, "1", -1, NULL);
	push(q, "2", -1, NULL);
	push(q, "3", -1, NULL);
	ck_assert(queue_pop(q, &e1));
	ck_assert(queue_pop(q, &e2));
	/* Requeued out of order, they still come back in publish order. */
	queue_settle(q, &e2, SETTLE_REQUEUE);
	queue_settle(q, &e1, SETTLE_REQUEUE);
	ck_assert_uint_eq(q->count, 3);
	pop_expect(q, "1", true);
	pop_expect(q, "2", true);
	pop_expect(q, "3", false);
}
END_TEST

START_TEST(reject_dead_letters)
{
	struct queue_args a = default_args();
	struct queue *q, *dlq;
	struct queue_entry e;
	struct field_table *t;

	a.dlx = strdup("");
	a.dl_routing_key = strdup("dlq");
	q = make_queue("q", a);
	dlq = make_queue("dlq", default_args());
	push(q, "poison", -1, NULL);
	ck_assert(queue_pop(q, &e));
	queue_settle(q, &e, SETTLE_REJECT);
	ck_assert_uint_eq(q->count, 0);
	ck_assert_uint_eq(dlq->count, 1);
	ck_assert(queue_pop(dlq, &e));
	ck_assert(body_is(e.msg, "poison"));
	t = ftable_decode(e.msg->headers);
	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(ftable_get(t, "x-death"));
	ck_assert_ptr_nonnull(ftable_get(t, "x-first-death-reason"));
	ftable_free(t);
	queue_settle(dlq, &e, SETTLE_ACK);
}
END_TEST

START_TEST(priority_levels)
{
	struct queue_args a = default_args();
	struct queue *q;

	a.max_priority = 5;
	q = make_queue("q", a);
	push(q, "p1", 1, NULL);
	push(q, "p9", 9, NULL);		/* above max: counts as 5 */
	push(q, "p3", 3, NULL);
	push(q, "none", -1, NULL);
	pop_expect(q, "p9", false);
	pop_expect(q, "p3", false);
	pop_expect(q, "p1", false);
	pop_expect(q, "none", false);
}
END_TEST

START_TEST(max_length_policies)
{
	struct queue_args a = default_args();
	struct queue *q;

	a.max_length = 2;
	q = make_queue("drop", a);
	push(q, "1", -1, NULL);
	push(q, "2", -1, NULL);
	ck_assert(push(q, "3", -1, NULL));
	ck_assert_uint_eq(q->count, 2);
	pop_expect(q, "2", false);
	pop_expect(q, "3", false);

	a = default_args();
	a.max_length = 1;
	a.overflow = OVERFLOW_REJECT_PUBLISH;
	q = make_queue("reject", a);
	ck_assert(push(q, "1", -1, NULL));
	ck_assert(!push(q, "2", -1, NULL));
	ck_assert_uint_eq(q->count, 1);
	pop_expect(q, "1", false);
}
END_TEST

START_TEST(ttl_zero_without_consumer)
{
	struct queue *q = make_queue("q", default_args());
	struct test_consumer tc;

	push(q, "gone", -1, "0");
	ck_assert_uint_eq(q->count, 0);
	/* With a consumer ready it is delivered instead (RabbitMQ). */
	attach(q, &tc, 1, true, 0);
	push(q, "kept", -1, "0");
	ck_assert_uint_eq(tc.n_got, 1);
	ck_assert_str_eq(tc.got[0], "kept");
	queue_remove_consumer(q, &tc.c);
}
END_TEST

START_TEST(purge_and_stats)
{
	struct queue *q = make_queue("q", default_args());
	struct queue_stats st;
	struct test_consumer tc;

	push(q, "abc", -1, NULL);
	push(q, "de", -1, NULL);
	attach(q, &tc, 0, false, 0);
	queue_stats(q, &st);
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(st.bytes, 5);
	ck_assert_uint_eq(st.paged_out, 0);
	ck_assert_uint_eq(st.consumers, 1);
	ck_assert_uint_eq(queue_purge(q), 2);
	queue_stats(q, &st);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.bytes, 0);
	queue_remove_consumer(q, &tc.c);
}
END_TEST

START_TEST(exclusive_consumer_refused)
{
	struct queue *q = make_queue("q", default_args());
	struct test_consumer first, second;
	struct amqp_error err;

	memset(&second, 0, sizeof(second));
	second.c.ops = &test_ops;
	attach(q, &first, 1, true, 0);
	/* An exclusive consumer needs the queue to itself... */
	second.c.exclusive = true;
	ck_assert_int_eq(queue_check_consumer(q, &second.c, (struct bytes){ NULL, 0 }, &err),
	    AMQP_ACCESS_REFUSED);
	ck_assert_ptr_nonnull(strstr(err.text, "in exclusive use"));
	queue_remove_consumer(q, &first.c);
	ck_assert_int_eq(queue_check_consumer(q, &second.c, (struct bytes){ NULL, 0 }, &err), 0);
	/* ...and once it has it, nobody else may join. */
	attach(q, &first, 1, true, 0);
	first.c.exclusive = true;
	second.c.exclusive = false;
	ck_assert_int_eq(queue_check_consumer(q, &second.c, (struct bytes){ NULL, 0 }, &err),
	    AMQP_ACCESS_REFUSED);
	queue_remove_consumer(q, &first.c);
}
END_TEST

START_TEST(delete_cancels_consumers)
{
	struct queue *q = make_queue("q", default_args());
	struct test_consumer a, c;

	attach(q, &a, 1, false, 0);
	attach(q, &c, 1, false, 3);
	push(q, "held", -1, NULL);
	pump();
	ck_assert_uint_eq(c.n_got, 1);
	queue_ref(q);		/* as an unacked delivery holds it */
	vhost_remove_queue(vh, q);
	ck_assert(a.cancelled);
	ck_assert(c.cancelled);
	ck_assert_uint_eq(q->n_consumers, 0);
	ck_assert_ptr_null(vhost_find_queue(vh, BYTES_LIT("q")));
	/* Settling after the delete drops the message, never requeues it. */
	settle_held(q, &c, SETTLE_REQUEUE);
	ck_assert_uint_eq(q->count, 0);
	queue_unref(q);
}
END_TEST

/* ---- the ledger ------------------------------------------------------------ */

/* A channel of a connection that is only its broker (for counters). */
static struct channel *make_channel(void)
{
	struct channel *ch = calloc(1, sizeof(*ch));

	ck_assert_ptr_nonnull(ch);
	ch->conn = calloc(1, sizeof(*ch->conn));
	ck_assert_ptr_nonnull(ch->conn);
	ch->conn->broker = b;
	ch->next_tag = 1;
	TAILQ_INIT(&ch->consumers);
	return ch;
}

/* Deliver n messages from q into ch's ledger, as basic.get does. */
static void ledger_take(struct channel *ch, struct queue *q, int n)
{
	struct queue_entry e;

	for (int i = 0; i < n; i++) {
		ck_assert(queue_pop(q, &e));
		chan_ledger_append(ch, (struct delivery){ .e = e,
		    .q = queue_ref(q) });
		ch->unacked++;
	}
}

START_TEST(ledger_ack_and_requeue)
{
	struct queue *q = make_queue("q", default_args());
	struct channel *ch = make_channel();
	struct queue_stats st;
	struct amqp_error err;
	char text[8];

	for (int i = 1; i <= 5; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		push(q, text, -1, NULL);
	}
	ledger_take(ch, q, 5);			/* tags 1..5 */
	ck_assert_uint_eq(q->count, 0);
	queue_stats(q, &st);
	ck_assert_uint_eq(st.unacked, 5);
	ck_assert_int_eq(chan_settle(ch, 2, false, SETTLE_ACK, &err), 0);
	/* Twice is an unknown tag, as RabbitMQ says (406). */
	ck_assert_int_eq(chan_settle(ch, 2, false, SETTLE_ACK, &err),
	    AMQP_PRECONDITION_FAILED);
	ck_assert_int_eq(chan_settle(ch, 99, false, SETTLE_ACK, &err),
	    AMQP_PRECONDITION_FAILED);
	/* Up to 4: 1, 3 and 4 go back, in their queue order. */
	ck_assert_int_eq(chan_settle(ch, 4, true, SETTLE_REQUEUE, &err), 0);
	ck_assert_uint_eq(ch->unacked, 1);
	queue_stats(q, &st);
	ck_assert_uint_eq(st.unacked, 1);
	ck_assert_uint_eq(q->count, 3);
	pop_expect(q, "m1", true);
	pop_expect(q, "m3", true);
	pop_expect(q, "m4", true);
	/* multiple with tag 0: everything outstanding. */
	ck_assert_int_eq(chan_settle(ch, 0, true, SETTLE_ACK, &err), 0);
	ck_assert_uint_eq(ch->unacked, 0);
	ck_assert_uint_eq(ch->ledger_count, 0);
	ck_assert_uint_eq(q->count, 0);
	/* Acks are counted for the queue and the broker; requeues are not. */
	ck_assert_uint_eq(q->counters.acked, 2);
	ck_assert_uint_eq(b->counters.messages_acknowledged, 2);
	free(ch->ledger);
	free(ch->conn);
	free(ch);
}
END_TEST

START_TEST(ledger_follows_unacked)
{
	struct queue *q = make_queue("q", default_args());
	struct channel *ch = make_channel();
	struct amqp_error err;

	for (int i = 0; i < 1000; i++)
		push(q, "x", -1, NULL);
	ledger_take(ch, q, 1000);
	/* Ack all but the oldest: it must not keep 999 settled slots. */
	for (uint64_t tag = 2; tag <= 1000; tag++)
		ck_assert_int_eq(chan_settle(ch, tag, false, SETTLE_ACK, &err),
		    0);
	ck_assert_uint_eq(ch->unacked, 1);
	ck_assert_uint_le(ch->ledger_count, 64);
	ck_assert_uint_eq(chan_ledger_at(ch, 0)->tag, 1);
	ck_assert_int_eq(chan_settle(ch, 1, false, SETTLE_REJECT, &err), 0);
	ck_assert_uint_eq(ch->ledger_count, 0);
	ck_assert_uint_eq(q->count, 0);
	free(ch->ledger);
	free(ch->conn);
	free(ch);
}
END_TEST

static Suite *queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("dispatch");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, fifo_round_robin);
	tcase_add_test(tc, consumer_priority_first);
	tcase_add_test(tc, credit_stops_and_resumes);
	tcase_add_test(tc, no_ack_settled_by_queue);
	suite_add_tcase(s, tc);

	tc = tcase_create("settle");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, requeue_keeps_place);
	tcase_add_test(tc, reject_dead_letters);
	tcase_add_test(tc, priority_levels);
	tcase_add_test(tc, max_length_policies);
	tcase_add_test(tc, ttl_zero_without_consumer);
	tcase_add_test(tc, purge_and_stats);
	tcase_add_test(tc, exclusive_consumer_refused);
	tcase_add_test(tc, delete_cancels_consumers);
	suite_add_tcase(s, tc);

	tc = tcase_create("ledger");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ledger_ack_and_requeue);
	tcase_add_test(tc, ledger_follows_unacked);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(queue_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
