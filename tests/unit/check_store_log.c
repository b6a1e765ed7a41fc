/*
 * Unit tests for the message store's log (store.c) through its interface:
 * what is enqueued and not acked comes back at recovery, in order, with
 * the delivered mark; acked entries stay gone; a message held by two
 * queues survives until both are done with it; settled segments are
 * deleted; sync tickets are reported in order; records written twice (a
 * retried round) count once; return counts come back, a delivery the
 * crash ended counted, and their records outlive the segments around them.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "message.h"
#include "properties.h"
#include "store.h"

static char dir[256];
static struct event_base *base;
static uint64_t synced;

static bool behind, was_behind;

static void on_synced(void *arg, const struct store_state *st)
{
	(void)arg;
	ck_assert(!st->failing);
	ck_assert_uint_ge(st->synced, synced);
	synced = st->synced;
	behind = st->behind;
	was_behind |= st->behind;
}

struct got {
	uint64_t qid;
	char body[64];
	bool delivered;
	int64_t expires_in;
	uint32_t returns;
};
static struct got got[4096];
static size_t n_got;
static uint64_t drop_qid;

static struct store *recovering;	/* the store on_entry reads from */

static bool on_entry(void *arg, uint64_t qid,
    const struct store_recovered *rec, const struct store_recovered_entry *re)
{
	const struct store_loc *loc = &rec->loc;
	struct message *m;

	(void)arg;
	ck_assert_uint_gt(re->enq_seg, 0);
	if (qid == drop_qid)
		return false;
	ck_assert_uint_lt(n_got, sizeof(got) / sizeof(got[0]));
	ck_assert(store_readable(recovering, loc));
	m = store_read(recovering, loc);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->stored.id, loc->id);
	ck_assert_uint_eq(m->body_len, rec->body_len);
	ck_assert_uint_eq(m->priority, rec->priority);
	got[n_got].qid = qid;
	snprintf(got[n_got].body, sizeof(got[n_got].body), "%.*s",
	    (int)m->body_len, (const char *)m->body);
	got[n_got].delivered = re->delivered;
	got[n_got].expires_in = re->expires_in;
	got[n_got].returns = re->returns;
	n_got++;
	msg_unref(m);
	return true;
}

/* A persistent message with this body (a minimal content header). */
static struct message *message(const char *body)
{
	uint8_t hdr[15] = { 0x00, 0x3c, 0x00, 0x00 };
	size_t n = strlen(body);
	struct content_header h;
	struct message *m;

	for (int i = 0; i < 8; i++)
		hdr[4 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	hdr[12] = 0x10;		/* delivery-mode present */
	hdr[13] = 0x00;
	hdr[14] = 2;
	ck_assert_int_eq(content_header_parse((struct bytes){ hdr, 15 }, &h), 0);
	m = msg_new(BYTES_LIT("ex"), BYTES_LIT("rk"), (struct bytes){ hdr, 15 },
	    &h);
	msg_append_body(m, (const uint8_t *)body, (uint32_t)n);
	ck_assert(m->persistent);
	return m;
}

static struct store *open_store_with(const struct store_options *opt);

static struct store *open_store(uint64_t segment_size)
{
	struct store_options opt = { segment_size, 0, 0 };

	return open_store_with(&opt);
}

static struct store *open_store_with(const struct store_options *opt)
{
	struct store_recovery st;
	char err[256];
	struct store *s = store_open(base, dir, opt, on_synced, NULL, err,
	    sizeof(err));

	ck_assert_msg(s != NULL, "%s", err);
	n_got = 0;
	recovering = s;
	ck_assert(store_recover(s, on_entry, NULL, &st));
	return s;
}

/* Run the loop until the store reports ticket (or give up after 30 s). */
static void wait_synced(uint64_t ticket)
{
	for (int i = 0; i < 30000 && synced < ticket; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	ck_assert_uint_ge(synced, ticket);
}

static size_t files_in_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".seg") != NULL;
	closedir(d);
	return n;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/warren-check-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	base = event_base_new();
	synced = 0;
	drop_qid = 0;
}

static void teardown(void)
{
	char cmd[300];

	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_unacked_entries_come_back_in_order)
{
	struct store *s = open_store(1 << 20);
	struct message *m[5];
	uint32_t seg[5];
	uint64_t ticket = 0;

	ck_assert_uint_eq(n_got, 0);
	for (int i = 0; i < 5; i++) {
		char body[16];

		snprintf(body, sizeof(body), "m%d", i);
		m[i] = message(body);
		seg[i] = store_enqueue(s, 7, m[i], 0, &ticket);
	}
	store_delivered(s, 7, m[1]->stored.id);
	store_ack(s, 7, &m[0]->stored, seg[0]);
	store_ack(s, 7, &m[3]->stored, seg[3]);
	ck_assert_uint_gt(ticket, 0);
	wait_synced(ticket);
	store_close(s);
	for (int i = 0; i < 5; i++)
		msg_unref(m[i]);

	s = open_store(1 << 20);
	ck_assert_uint_eq(n_got, 3);
	ck_assert_str_eq(got[0].body, "m1");
	ck_assert(got[0].delivered);
	ck_assert_str_eq(got[1].body, "m2");
	ck_assert(!got[1].delivered);
	ck_assert_str_eq(got[2].body, "m4");
	store_close(s);
}
END_TEST

/* n messages for queue 6, synced, acked: segments that roll and go. */
static void traffic(struct store *s, int n)
{
	uint64_t ticket = 0;

	for (int i = 0; i < n; i++) {
		struct message *m = message("traffic that fills small "
		    "segments of four kilobytes, all of it acknowledged");
		uint32_t seg = store_enqueue(s, 6, m, 0, &ticket);

		store_ack(s, 6, &m->stored, seg);
		msg_unref(m);
	}
	wait_synced(ticket);
}

START_TEST(test_return_counts_survive_and_keep_their_segment)
{
	struct store *s = open_store(4096);
	struct message *poison = message("poison"), *quiet = message("quiet");
	uint32_t ret = 0, ret2;

	store_enqueue(s, 5, poison, 0, NULL);
	store_enqueue(s, 5, quiet, 0, NULL);
	traffic(s, 50);
	/* poison: delivered and returned twice, then out again (crash) */
	for (uint32_t n = 1; n <= 2; n++) {
		store_delivered(s, 5, poison->stored.id);
		ret = store_returned(s, 5, poison->stored.id, n, ret);
	}
	store_delivered(s, 5, poison->stored.id);
	/* quiet: returned once, not out when the broker stops */
	store_delivered(s, 5, quiet->stored.id);
	ret2 = store_returned(s, 5, quiet->stored.id, 1, 0);
	ck_assert_uint_gt(ret, poison->stored.seg);
	ck_assert_uint_eq(ret, ret2);
	/* The RETs' segment is settled but for them, and kept for them. */
	traffic(s, 300);
	ck_assert_uint_le(store_segment_count(s), 4);
	store_close(s);

	s = open_store(4096);
	ck_assert_uint_eq(n_got, 2);
	ck_assert_str_eq(got[0].body, "poison");
	ck_assert_uint_eq(got[0].returns, 3);
	ck_assert(got[0].delivered);
	ck_assert_str_eq(got[1].body, "quiet");
	ck_assert_uint_eq(got[1].returns, 1);
	store_close(s);
	msg_unref(poison);
	msg_unref(quiet);
}
END_TEST

START_TEST(test_message_in_two_queues_lives_until_both_ack)
{
	struct store *s = open_store(1 << 20);
	struct message *m = message("shared");
	uint32_t a = store_enqueue(s, 1, m, 0, NULL);
	uint32_t b = store_enqueue(s, 2, m, 0, NULL);

	store_ack(s, 1, &m->stored, a);
	store_close(s);
	s = open_store(1 << 20);
	ck_assert_uint_eq(n_got, 1);
	ck_assert_uint_eq(got[0].qid, 2);
	ck_assert_str_eq(got[0].body, "shared");
	store_close(s);
	(void)b;
	msg_unref(m);
}
END_TEST

START_TEST(test_entries_of_unknown_queues_are_dropped_and_collected)
{
	struct store *s = open_store(4096);
	struct message *m;

	for (int i = 0; i < 50; i++) {
		m = message("for a queue that will be deleted, padded to fill "
		    "several small segments of the log quickly");
		store_enqueue(s, 99, m, 0, NULL);
		msg_unref(m);
	}
	store_close(s);
	ck_assert_uint_gt(files_in_dir(), 1);
	drop_qid = 99;
	s = open_store(4096);
	ck_assert_uint_eq(n_got, 0);
	store_close(s);
	/* Nothing was live: every old segment is gone. */
	ck_assert_uint_eq(files_in_dir(), 0);
}
END_TEST

START_TEST(test_settled_segments_are_deleted_while_running)
{
	struct store *s = open_store(4096);
	struct message *m[200];
	uint32_t seg[200];
	uint64_t ticket = 0;

	for (int i = 0; i < 200; i++) {
		m[i] = message("a body of some size so that 200 of them span many "
		    "segments of four kilobytes each");
		seg[i] = store_enqueue(s, 5, m[i], 0, &ticket);
	}
	wait_synced(ticket);
	ck_assert_uint_gt(store_segment_count(s), 5);
	/* The newest one stays live: its segment (and the one being
	 * written) remain, every older one goes. */
	for (int i = 0; i < 199; i++)
		store_ack(s, 5, &m[i]->stored, seg[i]);
	ticket = 0;
	store_enqueue(s, 6, m[199], 0, &ticket);
	wait_synced(ticket);
	ck_assert_uint_le(store_segment_count(s), 3);
	store_close(s);
	ck_assert_uint_le(files_in_dir(), 3);
	s = open_store(4096);
	ck_assert_uint_eq(n_got, 2);
	store_close(s);
	for (int i = 0; i < 200; i++)
		msg_unref(m[i]);
}
END_TEST

/* Append every segment file to itself: each record is there twice. */
static void write_every_record_twice(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		char path[600];
		static char buf[1 << 16];
		FILE *f;
		size_t len;

		if (strstr(e->d_name, ".seg") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		ck_assert_ptr_nonnull(f = fopen(path, "r+b"));
		len = fread(buf, 1, sizeof(buf), f);
		ck_assert_uint_lt(len, sizeof(buf));
		ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
		ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
		ck_assert_int_eq(fclose(f), 0);
		n++;
	}
	closedir(d);
	ck_assert_uint_gt(n, 0);
}

/*
 * After a failed sync the store writes the whole round again, so records
 * may be on disk twice: recovery must still give each entry once, with
 * its delivered mark, and keep acked ones gone.
 */
START_TEST(test_records_written_twice_recover_once)
{
	struct store *s = open_store(1 << 20);
	struct message *m[3];
	uint32_t seg[3];

	for (int i = 0; i < 3; i++) {
		char body[16];

		snprintf(body, sizeof(body), "m%d", i);
		m[i] = message(body);
		seg[i] = store_enqueue(s, 7, m[i], 0, NULL);
	}
	store_delivered(s, 7, m[1]->stored.id);
	store_ack(s, 7, &m[0]->stored, seg[0]);
	store_close(s);
	for (int i = 0; i < 3; i++)
		msg_unref(m[i]);
	write_every_record_twice();

	s = open_store(1 << 20);
	ck_assert_uint_eq(n_got, 2);
	ck_assert_str_eq(got[0].body, "m1");
	ck_assert(got[0].delivered);
	ck_assert_str_eq(got[1].body, "m2");
	ck_assert(!got[1].delivered);
	store_close(s);
}
END_TEST

/* A message read back from the log is the message appended, byte for byte. */
START_TEST(test_read_back_is_byte_exact)
{
	struct store *s = open_store(1 << 20);
	struct message *m = message("read me back"), *r;
	uint64_t ticket = 0;

	store_enqueue(s, 3, m, 0, &ticket);
	/* Not on disk before its batch is synced. */
	ck_assert(!store_readable(s, &m->stored));
	wait_synced(ticket);
	ck_assert(store_readable(s, &m->stored));
	r = store_read(s, &m->stored);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->header_len, m->header_len);
	ck_assert_mem_eq(r->header, m->header, m->header_len);
	ck_assert_uint_eq(r->body_len, m->body_len);
	ck_assert_mem_eq(r->body, m->body, m->body_len);
	ck_assert(bytes_eq(r->exchange, BYTES_LIT("ex")));
	ck_assert(bytes_eq(r->routing_key, BYTES_LIT("rk")));
	ck_assert(r->persistent);
	ck_assert_uint_eq(r->stored.id, m->stored.id);
	ck_assert_uint_eq(r->stored.seg, m->stored.seg);
	msg_unref(r);
	store_close(s);
	msg_unref(m);
}
END_TEST

/*
 * A message held for a transient queue is readable while held, is not
 * recovered, and its segment goes once it is released.
 */
START_TEST(test_held_messages_are_readable_then_collected)
{
	struct store *s = open_store(4096);
	struct message *m[40];
	struct store_loc loc[40];
	uint64_t ticket = 0;

	for (int i = 0; i < 40; i++) {
		char body[128];

		snprintf(body, sizeof(body), "held %d, padded so that forty of "
		    "them fill more than one small segment", i);
		m[i] = message(body);
		store_hold(s, m[i], &loc[i]);
		ck_assert_uint_eq(loc[i].id, 0);
		ck_assert_uint_gt(loc[i].seg, 0);
	}
	/* One more, durable, so there is a ticket to wait for. */
	store_enqueue(s, 9, m[0], 0, &ticket);
	wait_synced(ticket);
	ck_assert_uint_gt(store_segment_count(s), 1);
	for (int i = 0; i < 40; i++) {
		struct message *r = store_read(s, &loc[i]);

		ck_assert_ptr_nonnull(r);
		ck_assert_mem_eq(r->body, m[i]->body, m[i]->body_len);
		msg_unref(r);
	}
	for (int i = 0; i < 40; i++)
		store_release(s, &loc[i]);
	ticket = 0;
	store_enqueue(s, 9, m[39], 0, &ticket);
	wait_synced(ticket);
	/* Only what the two ENQs keep (and the newest segment) is left. */
	ck_assert_uint_le(store_segment_count(s), 3);
	store_close(s);
	s = open_store(4096);
	ck_assert_uint_eq(n_got, 2);
	store_close(s);
	for (int i = 0; i < 40; i++)
		msg_unref(m[i]);
}
END_TEST

/*
 * Writes that pile up past max_pending make the store report itself
 * behind (the broker then stops reading publishers) until they are down
 * to a quarter; a slow disk is played by a 50 ms wait before each round.
 */
START_TEST(test_behind_while_writes_pile_up)
{
	struct store_options opt = { 1 << 20, 50000, 4096 };
	struct store *s;
	struct message *m[200];
	uint64_t ticket = 0;

	behind = was_behind = false;
	s = open_store_with(&opt);
	for (int i = 0; i < 200; i++) {
		m[i] = message("a hundred bytes or so of message body, so that "
		    "two hundred of them are well past four kilobytes");
		store_enqueue(s, 4, m[i], 0, &ticket);
		/* A turn of the loop: the batch goes to the thread. */
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	for (int i = 0; i < 30000 && !was_behind; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	ck_assert(was_behind);
	wait_synced(ticket);
	for (int i = 0; i < 30000 && behind; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	ck_assert(!behind);
	store_close(s);
	for (int i = 0; i < 200; i++)
		msg_unref(m[i]);
}
END_TEST

/* An entry's expiry is kept as wall-clock time: after a restart the
 * remaining time is what was left, and no entry without one gets one. */
START_TEST(test_expiry_survives_recovery)
{
	struct store *s = open_store(1 << 20);
	struct message *a = message("expires"), *b = message("never");

	store_enqueue(s, 2, a, 60000, NULL);
	store_enqueue(s, 2, b, 0, NULL);
	store_close(s);
	s = open_store(1 << 20);
	ck_assert_uint_eq(n_got, 2);
	ck_assert_str_eq(got[0].body, "expires");
	ck_assert_int_gt(got[0].expires_in, 50000);
	ck_assert_int_le(got[0].expires_in, 60000);
	ck_assert_str_eq(got[1].body, "never");
	ck_assert_int_eq(got[1].expires_in, -1);
	store_close(s);
	msg_unref(a);
	msg_unref(b);
}
END_TEST

static Suite *store_log_suite(void)
{
	Suite *s = suite_create("store_log");
	TCase *tc = tcase_create("log");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_unacked_entries_come_back_in_order);
	tcase_add_test(tc, test_message_in_two_queues_lives_until_both_ack);
	tcase_add_test(tc, test_return_counts_survive_and_keep_their_segment);
	tcase_add_test(tc, test_entries_of_unknown_queues_are_dropped_and_collected);
	tcase_add_test(tc, test_settled_segments_are_deleted_while_running);
	tcase_add_test(tc, test_records_written_twice_recover_once);
	tcase_add_test(tc, test_read_back_is_byte_exact);
	tcase_add_test(tc, test_held_messages_are_readable_then_collected);
	tcase_add_test(tc, test_behind_while_writes_pile_up);
	tcase_add_test(tc, test_expiry_survives_recovery);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
