/*
 * Unit tests for a queue's paged-out entries (queue_tail.c): order and
 * every field survive the trip through the file, pushes and pops
 * interleave, an emptied tail leaves no file, and a file that cannot be
 * written keeps the entries in memory.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue_tail.h"

static char dir[256], path[300];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/warren-check-tail-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/1.tail", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

/* Entry number i, with every field derived from i. */
static struct tail_entry entry(uint64_t i)
{
	struct tail_entry e = {
		.msg = { .id = i * 7 + 1, .ticket = i * 3, .seg = (uint32_t)i % 9 + 1,
		    .off = (uint32_t)(i * 1000), .len = (uint32_t)i + 20 },
		.seq = 1000000 + i, .expires_at = i % 2 ? i * 11 : 0,
		.enq_seg = (uint32_t)i % 4, .body_len = (uint32_t)i * 5,
		.redelivered = i % 3 == 0, .returns = (uint16_t)(i * 13),
		.ret_seg = (uint32_t)i % 5, .enqueued_at = (uint32_t)(i * 2654435761u),
	};

	return e;
}

static void assert_entry(const struct tail_entry *got, uint64_t i)
{
	struct tail_entry want = entry(i);

	ck_assert_uint_eq(got->msg.id, want.msg.id);
	ck_assert_uint_eq(got->msg.ticket, want.msg.ticket);
	ck_assert_uint_eq(got->msg.seg, want.msg.seg);
	ck_assert_uint_eq(got->msg.off, want.msg.off);
	ck_assert_uint_eq(got->msg.len, want.msg.len);
	ck_assert_uint_eq(got->seq, want.seq);
	ck_assert_uint_eq(got->expires_at, want.expires_at);
	ck_assert_uint_eq(got->enq_seg, want.enq_seg);
	ck_assert_uint_eq(got->body_len, want.body_len);
	ck_assert_int_eq(got->redelivered, want.redelivered);
	ck_assert_uint_eq(got->returns, want.returns);
	ck_assert_uint_eq(got->ret_seg, want.ret_seg);
	ck_assert_uint_eq(got->enqueued_at, want.enqueued_at);
}

static bool file_exists(void)
{
	struct stat st;

	return stat(path, &st) == 0;
}

START_TEST(test_fifo_through_the_file)
{
	struct queue_tail *t = tail_new(path);
	struct tail_entry e;
	const uint64_t n = 5000;

	for (uint64_t i = 0; i < n; i++) {
		e = entry(i);
		tail_push(t, &e);
	}
	ck_assert_uint_eq(tail_count(t), n);
	ck_assert(file_exists());	/* most of them went to the file */
	for (uint64_t i = 0; i < n; i++) {
		ck_assert(tail_peek(t, &e));
		assert_entry(&e, i);
		ck_assert(tail_pop(t, &e));
		assert_entry(&e, i);
		ck_assert_uint_eq(tail_count(t), n - i - 1);
	}
	ck_assert(!tail_pop(t, &e));
	ck_assert(!tail_peek(t, &e));
	/* Empty: the file is gone until it is needed again. */
	ck_assert(!file_exists());
	tail_free(t);
}
END_TEST

START_TEST(test_interleaved_push_and_pop_keep_order)
{
	struct queue_tail *t = tail_new(path);
	struct tail_entry e;
	uint64_t pushed = 0, popped = 0;

	/* Uneven rounds so that reads meet partly written blocks. */
	for (int round = 0; round < 60; round++) {
		for (int k = 0; k < 97 + round * 13; k++) {
			e = entry(pushed++);
			tail_push(t, &e);
		}
		for (int k = 0; k < 71 + round * 11 &&
		    tail_pop(t, &e); k++)
			assert_entry(&e, popped++);
	}
	while (tail_pop(t, &e))
		assert_entry(&e, popped++);
	ck_assert_uint_eq(popped, pushed);
	ck_assert_uint_eq(tail_count(t), 0);
	/* Used again after emptying: still in order. */
	for (uint64_t i = 0; i < 600; i++) {
		e = entry(i);
		tail_push(t, &e);
	}
	for (uint64_t i = 0; i < 600; i++) {
		ck_assert(tail_pop(t, &e));
		assert_entry(&e, i);
	}
	tail_free(t);
}
END_TEST

START_TEST(test_unwritable_file_keeps_entries_in_memory)
{
	char bad[400];
	struct queue_tail *t;
	struct tail_entry e;

	snprintf(bad, sizeof(bad), "%s/no/such/dir/1.tail", dir);
	t = tail_new(bad);
	for (uint64_t i = 0; i < 2000; i++) {
		e = entry(i);
		tail_push(t, &e);
	}
	ck_assert_uint_eq(tail_count(t), 2000);
	for (uint64_t i = 0; i < 2000; i++) {
		ck_assert(tail_pop(t, &e));
		assert_entry(&e, i);
	}
	ck_assert(!tail_pop(t, &e));
	tail_free(t);
}
END_TEST

START_TEST(test_free_deletes_the_file)
{
	struct queue_tail *t = tail_new(path);
	struct tail_entry e = entry(1);

	for (int i = 0; i < 1000; i++)
		tail_push(t, &e);
	ck_assert(file_exists());
	tail_free(t);
	ck_assert(!file_exists());
}
END_TEST

/* tail_get reads any window, across the read buffer, the file and the
 * write buffer, taking nothing. */
START_TEST(test_get_windows)
{
	struct queue_tail *t = tail_new(path);
	struct tail_entry e, got[700];
	uint64_t n = 1500, first = 0;

	for (uint64_t i = 0; i < n; i++) {
		e = entry(i);
		tail_push(t, &e);
	}
	/* take some, so the front is in the read buffer */
	for (; first < 100; first++)
		ck_assert(tail_pop(t, &e));
	for (uint64_t from = 0; from < n - first; from += 97) {
		size_t k = tail_get(t, from, got, 700);

		ck_assert_uint_eq(k, from + 700 <= n - first ? 700 :
		    n - first - from);
		for (size_t j = 0; j < k; j++)
			assert_entry(&got[j], first + from + j);
	}
	ck_assert_uint_eq(tail_count(t), n - first);
	for (uint64_t i = first; i < n; i++) {
		ck_assert(tail_pop(t, &e));
		assert_entry(&e, i);
	}
	tail_free(t);
}
END_TEST

static Suite *tail_suite(void)
{
	Suite *s = suite_create("queue_tail");
	TCase *tc = tcase_create("tail");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_fifo_through_the_file);
	tcase_add_test(tc, test_interleaved_push_and_pop_keep_order);
	tcase_add_test(tc, test_unwritable_file_keeps_entries_in_memory);
	tcase_add_test(tc, test_free_deletes_the_file);
	tcase_add_test(tc, test_get_windows);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tail_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
