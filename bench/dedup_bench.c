/*
 * What deduplication costs per message: dedup_seen() on messages that each
 * carry a new message-id (16 hex digits, as warren-bench -I sends), so
 * every call finds the key absent, inserts it and evicts the oldest -- the
 * steady state of a deduplicating queue that sees no duplicates.
 *
 * Not a test: prints nanoseconds per message for each cache size, best of
 * three runs, two ways: dedup_seen alone, and as a channel publishes
 * (dedup_prefetch as the content header arrives, then dedup_seen between
 * dedup_publish_begin and _end; warrend does the body and routing in
 * between, which this loop does not, so the prefetch has less to hide
 * behind here).  The messages cycle through more distinct keys than the
 * cache holds, so none is ever a duplicate; with a large cache the index
 * and slots do not fit in the CPU's caches and the figures include the
 * misses.
 *
 * Run: bench/dedup_bench [messages-per-run [cache-size ...]]
 *      (default: 20,000,000 messages; caches of 128, 16,384 and 100,000)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqp.h"
#include "dedup.h"
#include "message.h"
#include "properties.h"
#include "wire.h"

static struct message *message_with_id(const char *id)
{
	struct content_header h = { .class_id = 60 }, parsed;
	struct message *m;
	struct wbuf b;

	h.props.flags |= PROP_FLAG(PROP_message_id);
	h.props.message_id = bytes_str(id);
	wbuf_init(&b);
	content_header_encode(&b, &h);
	if (content_header_parse((struct bytes){ b.p, (uint32_t)b.len },
	    &parsed) != 0) {
		fprintf(stderr, "dedup_bench: cannot parse its own header\n");
		exit(1);
	}
	m = msg_new(BYTES_LIT("x"), BYTES_LIT("k"),
	    (struct bytes){ b.p, (uint32_t)b.len }, &parsed);
	wbuf_free(&b);
	return m;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Best ns per message of three runs of n messages through a cache of
 * cache_size keys, as a channel publishes them or by dedup_seen alone;
 * exits if any was taken for a duplicate. */
static double measure(long cache_size, long n, bool as_channel)
{
	struct dedup_args a = { .on = true, .cache_size = cache_size,
	    .cache_ttl = -1 };
	struct dedup_cache *d = dedup_new(&a, NULL, NULL, false);
	/* a power of two over twice the cache: the cycle needs no division */
	long keys = 1024;
	struct message **m;
	double best = 0;
	long next = 0;
	char id[17];

	while (keys < 2 * cache_size)
		keys *= 2;
	m = malloc((size_t)keys * sizeof(*m));
	if (m == NULL) {
		fprintf(stderr, "dedup_bench: out of memory\n");
		exit(1);
	}
	for (long i = 0; i < keys; i++) {
		snprintf(id, sizeof(id), "%016llx",
		    (unsigned long long)i * 0x9e3779b97f4a7c15ULL);
		m[i] = message_with_id(id);
	}
	for (int run = 0; run < 3; run++) {
		double t0 = now_ns(), ns;

		for (long i = 0; i < n; i++, next = (next + 1) & (keys - 1)) {
			bool dup;

			if (as_channel) {
				dedup_prefetch(m[next]);
				dedup_publish_begin(m[next]);
			}
			dup = dedup_seen(d, m[next], NULL);
			if (as_channel)
				dedup_publish_end();
			if (dup) {
				fprintf(stderr, "dedup_bench: a new key was "
				    "taken for a duplicate\n");
				exit(1);
			}
		}
		ns = (now_ns() - t0) / (double)n;
		if (run == 0 || ns < best)
			best = ns;
	}
	for (long i = 0; i < keys; i++)
		msg_unref(m[i]);
	free(m);
	dedup_free(d, false);
	return best;
}

static void report(long cache_size, long n)
{
	printf("cache %8ld keys: %6.1f ns per new key by dedup_seen, %6.1f "
	    "as a channel publishes\n", cache_size,
	    measure(cache_size, n, false), measure(cache_size, n, true));
}

int main(int argc, char **argv)
{
	static const long sizes[] = { 128, 16384, 100000 };
	long n = argc > 1 ? atol(argv[1]) : 20000000;

	if (n <= 0) {
		fprintf(stderr, "usage: dedup_bench [messages-per-run "
		    "[cache-size ...]]\n");
		return 2;
	}
	if (argc > 2) {
		for (int i = 2; i < argc; i++) {
			long size = atol(argv[i]);

			if (size < 1 || size > DEDUP_MAX_CACHE_SIZE) {
				fprintf(stderr, "dedup_bench: cache size %s: "
				    "1 to %d\n", argv[i], DEDUP_MAX_CACHE_SIZE);
				return 2;
			}
			report(size, n);
		}
		return 0;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		report(sizes[i], n);
	return 0;
}
