/*
 * Unit tests for deduplication caches (dedup.c): against a model (the
 * last N keys, oldest out first) over many random keys, so the index's
 * backward-shift deletion is exercised with collisions and wrap-around;
 * message-id, header and integer keys; long keys by digest; per-message
 * TTL; argument checks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"
#include "amqp_error.h"
#include "dedup.h"
#include "field_table.h"
#include "message.h"
#include "properties.h"
#include "wire.h"

/* A message with a message-id property and optional headers table. */
static struct message *message(const char *id, const struct wbuf *headers)
{
	struct content_header h = { .class_id = 60 }, parsed;
	struct message *m;
	struct wbuf b;

	if (id) {
		h.props.flags |= PROP_FLAG(PROP_message_id);
		h.props.message_id = bytes_str(id);
	}
	if (headers) {
		h.props.flags |= PROP_FLAG(PROP_headers);
		h.props.headers = (struct bytes){ headers->p,
		    (uint32_t)headers->len };
	}
	wbuf_init(&b);
	content_header_encode(&b, &h);
	ck_assert_int_eq(content_header_parse((struct bytes){ b.p,
	    (uint32_t)b.len }, &parsed), 0);
	m = msg_new(BYTES_LIT("x"), BYTES_LIT("k"), (struct bytes){ b.p,
	    (uint32_t)b.len }, &parsed);
	wbuf_free(&b);
	return m;
}

static bool seen(struct dedup_cache *d, const char *id)
{
	struct message *m = message(id, NULL);
	bool dup = dedup_seen(d, m, NULL);

	msg_unref(m);
	return dup;
}

static struct dedup_args args(int64_t size)
{
	struct dedup_args a = { .on = true, .cache_size = size,
	    .cache_ttl = -1 };

	return a;
}

START_TEST(test_matches_a_model_of_the_last_n_keys)
{
	enum { SIZE = 97, KEYS = 300, OPS = 200000 };
	struct dedup_args a = args(SIZE);
	struct dedup_cache *d = dedup_new(&a, NULL, NULL, false);
	int model[SIZE], head = 0, n = 0;
	unsigned seed = 7;

	for (int op = 0; op < OPS; op++) {
		int k = (int)(rand_r(&seed) % KEYS);
		bool in_model = false;
		char id[16];

		for (int i = 0; i < n; i++)
			in_model |= model[(head + i) % SIZE] == k;
		snprintf(id, sizeof(id), "k%d", k);
		ck_assert_msg(seen(d, id) == in_model, "op %d key %d", op, k);
		if (!in_model) {
			if (n == SIZE) {
				head = (head + 1) % SIZE;
				n--;
			}
			model[(head + n++) % SIZE] = k;
		}
		ck_assert_uint_eq(dedup_count(d), (uint64_t)n);
	}
	dedup_free(d, false);
}
END_TEST

/*
 * A channel's publish reuses dedup_prefetch's reading of the key only for
 * the message it was made for: another message published next (the first
 * never was: its channel closed), or a header read without a prefetch in
 * between, has its own key found.
 */
START_TEST(test_prefetched_key_is_only_for_its_message)
{
	struct dedup_args a = args(20000);	/* large enough to prefetch */
	struct dedup_cache *d = dedup_new(&a, NULL, NULL, false);
	struct message *first = message("first", NULL);
	struct message *second = message("second", NULL);

	ck_assert(!seen(d, "warm-up"));		/* d is the cache last used */
	dedup_prefetch(first);
	dedup_publish_begin(second);
	ck_assert(!dedup_seen(d, second, NULL));
	dedup_publish_end();
	ck_assert(seen(d, "second"));
	ck_assert(!seen(d, "first"));

	dedup_prefetch(second);
	dedup_prefetch_none();			/* another channel's header */
	dedup_publish_begin(second);
	ck_assert(dedup_seen(d, second, NULL));	/* "second" is known */
	dedup_publish_end();
	ck_assert_uint_eq(dedup_dropped(d), 2);

	dedup_prefetch(first);			/* its own reading: a duplicate */
	dedup_publish_begin(first);
	ck_assert(dedup_seen(d, first, NULL));
	dedup_publish_end();
	msg_unref(first);
	msg_unref(second);
	dedup_free(d, false);
}
END_TEST

START_TEST(test_header_and_integer_keys)
{
	struct dedup_args a = args(10);
	struct dedup_cache *d;
	struct wbuf t;
	struct message *m;

	a.header = (char *)"order";
	d = dedup_new(&a, NULL, NULL, false);
	/* {"order": 42} as a signed 32-bit integer, then as a string */
	wbuf_init(&t);
	wbuf_put_shortstr(&t, BYTES_LIT("order"));
	wbuf_put_u8(&t, 'I');
	wbuf_put_u32(&t, 42);
	m = message("ignored-id", &t);
	ck_assert(!dedup_seen(d, m, NULL));
	msg_unref(m);
	wbuf_free(&t);
	wbuf_init(&t);
	wbuf_put_shortstr(&t, BYTES_LIT("order"));
	wbuf_put_u8(&t, 'S');
	wbuf_put_longstr(&t, BYTES_LIT("42"));
	m = message("other-id", &t);
	ck_assert(dedup_seen(d, m, NULL));
	msg_unref(m);
	wbuf_free(&t);
	/* no header: no key, never a duplicate */
	ck_assert(!seen(d, "ignored-id"));
	ck_assert(!seen(d, "ignored-id"));
	dedup_free(d, false);
}
END_TEST

START_TEST(test_long_keys_by_digest)
{
	struct dedup_args a = args(4);
	struct dedup_cache *d = dedup_new(&a, NULL, NULL, false);
	char one[200], two[200];

	memset(one, 'a', sizeof(one) - 1);
	one[sizeof(one) - 1] = '\0';
	memcpy(two, one, sizeof(two));
	two[150] = 'b';		/* differs past the first 64 bytes */
	ck_assert(!seen(d, one));
	ck_assert(seen(d, one));
	ck_assert(!seen(d, two));
	/* A key of 44 to 64 bytes is digested too (a slot holds 43). */
	one[50] = two[50] = '\0';
	two[45] = 'c';
	ck_assert(!seen(d, one));
	ck_assert(seen(d, one));
	ck_assert(!seen(d, two));
	ck_assert(seen(d, two));
	dedup_free(d, false);
}
END_TEST

START_TEST(test_arguments)
{
	struct field_table *t;
	struct dedup_args a;
	struct amqp_error err;
	struct wbuf b;

	wbuf_init(&b);
	wbuf_put_shortstr(&b, BYTES_LIT("x-message-deduplication"));
	wbuf_put_u8(&b, 't');
	wbuf_put_u8(&b, 1);
	wbuf_put_shortstr(&b, BYTES_LIT("x-cache-size"));
	wbuf_put_u8(&b, 'I');
	wbuf_put_u32(&b, 0);
	t = ftable_decode((struct bytes){ b.p, (uint32_t)b.len });
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(dedup_args_parse(t, "queue", "q", "/", &a, &err),
	    AMQP_PRECONDITION_FAILED);
	ck_assert_ptr_nonnull(strstr(err.text, "x-cache-size"));
	ftable_free(t);
	wbuf_free(&b);
	ck_assert_int_eq(dedup_args_parse(NULL, "queue", "q", "/", &a, &err), 0);
	ck_assert(!a.on);
	ck_assert_int_eq(a.cache_size, DEDUP_DEFAULT_CACHE_SIZE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dedup");
	TCase *tc = tcase_create("cache");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_matches_a_model_of_the_last_n_keys);
	tcase_add_test(tc, test_header_and_integer_keys);
	tcase_add_test(tc, test_prefetched_key_is_only_for_its_message);
	tcase_add_test(tc, test_long_keys_by_digest);
	tcase_add_test(tc, test_arguments);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
