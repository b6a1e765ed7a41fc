/*
 * Topic routing throughput: 10 bindings vs 10,000 bindings.
 *
 * Not a test: prints routes/second for each size and their ratio (the
 * goal: routing with 10,000 topic bindings stays within 2x of routing with
 * 10).  Three ways are measured:
 *
 *   walk      topic_trie_match() with the compiled matcher off: the trie
 *             walk alone (what a freshly changed trie does);
 *   trie      topic_trie_match() as the broker runs it (the walk until the
 *             trie has been quiet a while, then the compiled automaton);
 *   exchange  exchange_route() on a topic exchange made through the vhost
 *             and exchange APIs, bindings to queues (1 queue per 10
 *             bindings), the full per-publish routing path minus enqueueing.
 *
 * Keys are realistic 3-5 word keys (region.venue.symbol.event[.detail])
 * drawn from per-position vocabularies; patterns are such keys with words
 * replaced by `*` and tails or heads replaced by `#`.  Each run is
 * repeated and the best rate kept.
 *
 * Build (after `make libwarren.a`):
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wno-unused-parameter \
 *       -Iinclude bench/route_bench.c libwarren.a \
 *       $(pkg-config --libs libevent libevent_openssl openssl) -ljansson -lm \
 *       -o route_bench
 * Run: ./route_bench [seconds-per-run [selective|broad]]
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "broker.h"
#include "exchange.h"
#include "message.h"
#include "queue.h"
#include "topic_trie.h"
#include "connection.h"
#include "queue_args.h"
#include "vhost.h"

#define N_KEYS 65536
#define REPEATS 7

static const char *const regions[] = {
	"us", "eu", "uk", "jp", "hk", "au", "ca", "br",
};
static const char *const events[] = {
	"trade", "quote", "cancel", "amend", "halt", "open", "close", "auction",
	"imbalance", "news",
};
static const char *const details[] = {
	"lit", "dark", "odd", "block", "cross", "retail", "inst", "algo", "iceberg",
	"sweep", "late", "corr", "pre", "post", "reg", "ext", "bid", "ask", "mid",
	"last",
};
#define N_VENUES 30
#define N_SYMBOLS 2000

static uint64_t rng = 88172645463325252ULL;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A random key of 3 to 5 words into w[]; returns the word count. */
static int random_words(char w[5][16])
{
	int n = 3 + (int)rnd(3);

	snprintf(w[0], 16, "%s", regions[rnd(NELEM(regions))]);
	snprintf(w[1], 16, "v%02u", rnd(N_VENUES));
	snprintf(w[2], 16, "s%04u", rnd(N_SYMBOLS));
	if (n > 3)
		snprintf(w[3], 16, "%s", events[rnd(NELEM(events))]);
	if (n > 4)
		snprintf(w[4], 16, "%s", details[rnd(NELEM(details))]);
	return n;
}

static char *join(char w[5][16], int from, int to, const char *head,
    const char *tail)
{
	char buf[256];
	size_t len = 0;

	buf[0] = '\0';
	if (head)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s", head);
	for (int i = from; i < to; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
		    len ? "." : "", w[i]);
	if (tail)
		snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "." : "",
		    tail);
	return strdup(buf);
}

static char *random_key(void)
{
	char w[5][16];
	int n = random_words(w);

	return join(w, 0, n, NULL, NULL);
}

/*
 * A key-shaped pattern with `*` for some words and `#` for a head or tail.
 * broad=false: the symbol (word 2) stays concrete, as in per-instrument
 * subscriptions, so a key matches few of 10,000 bindings.  broad=true: the
 * symbol is sometimes `*` too (2%), so each key matches a few dozen of
 * 10,000 bindings and routing cost includes that fan-out.
 */
static char *random_pattern(bool broad)
{
	char w[5][16];
	int n = random_words(w), from = 0;
	const char *head = NULL, *tail = NULL;

	for (int i = 0; i < n; i++)
		if ((i != 2 || broad) && rnd(100) < (i == 2 ? 2 : 30))
			snprintf(w[i], 16, "*");
	if (rnd(100) < 20 && n > 3) {
		n = 3 + (int)rnd((uint32_t)(n - 3));
		tail = "#";
	}
	if (rnd(100) < 5) {
		from = 1 + (int)rnd(2);
		head = "#";
	}
	return join(w, from, n, head, tail);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count_cb(void *value, void *arg)
{
	(*(uint64_t *)arg)++;
}

struct result {
	double rate;		/* routes per second */
	double per_route;	/* matches (trie) / queues (exchange) per route */
};

/* One timed run: route keys through the trie for about `seconds`. */
static struct result run_trie(struct topic_trie *t, char **keys,
    double seconds)
{
	uint64_t routes = 0, matches = 0;
	double t0 = now(), el;

	do {
		for (int i = 0; i < 4096; i++, routes++) {
			const char *k = keys[routes % N_KEYS];

			topic_trie_match(t, (struct bytes){ (const uint8_t *)k,
			    (uint32_t)strlen(k) }, count_cb, &matches);
		}
		el = now() - t0;
	} while (el < seconds);
	return (struct result){ (double)routes / el,
	    (double)matches / (double)routes };
}

/* One timed run through exchange_route() (enqueueing left out). */
static struct result run_exchange(struct exchange *x, char **keys,
    double seconds)
{
	uint64_t routes = 0, queues = 0;
	struct message msg;
	double t0 = now(), el;

	memset(&msg, 0, sizeof(msg));
	msg.exchange = bytes_str(x->name);
	do {
		for (int i = 0; i < 4096; i++, routes++) {
			const char *k = keys[routes % N_KEYS];
			struct route_result r;

			msg.routing_key = (struct bytes){ (const uint8_t *)k,
			    (uint32_t)strlen(k) };
			exchange_route(x, &msg, &r);
			queues += r.n;
			route_result_free(&r);
		}
		el = now() - t0;
	} while (el < seconds);
	return (struct result){ (double)routes / el,
	    (double)queues / (double)routes };
}

static void keep_best(struct result *best, struct result r)
{
	if (r.rate > best->rate)
		*best = r;
}

/*
 * Both sizes are built first and then measured in alternation, REPEATS
 * rounds, keeping each one's best: on a shared machine a burst of load
 * then hits both sizes alike instead of skewing their ratio.
 */
static void run_mix(struct vhost *vh, char **keys, bool broad,
    double seconds)
{
	static const int sizes[] = { 10, 10000 };
	struct result walk[2] = { { 0, 0 }, { 0, 0 } };
	struct result trie[2] = { { 0, 0 }, { 0, 0 } };
	struct result exch[2] = { { 0, 0 }, { 0, 0 } };
	struct topic_trie *walks[2], *tries[2];
	struct exchange *xs[2];
	char **pats = malloc(10000 * sizeof(char *));

	if (pats == NULL)
		exit(1);
	for (int i = 0; i < 10000; i++)
		pats[i] = random_pattern(broad);
	printf("\n%s patterns, e.g. %s  %s  %s  %s\n",
	    broad ? "broad" : "selective", pats[0], pats[1], pats[2], pats[3]);
	for (int s = 0; s < 2; s++) {
		int n = sizes[s];
		char name[32];
		int n_queues = n / 10 ? n / 10 : 1;
		struct queue **qs = malloc((size_t)n_queues * sizeof(*qs));

		if (qs == NULL)
			exit(1);
		walks[s] = topic_trie_new();
		topic_trie_tune(walks[s], 0, 0);
		tries[s] = topic_trie_new();
		for (int i = 0; i < n; i++) {
			topic_trie_add(walks[s], bytes_str(pats[i]), pats[i]);
			topic_trie_add(tries[s], bytes_str(pats[i]), pats[i]);
		}

		snprintf(name, sizeof(name), "bench.%s.%d",
		    broad ? "broad" : "sel", n);
		xs[s] = vhost_add_exchange(vh, bytes_str(name), &exchange_topic);
		for (int i = 0; i < n_queues; i++) {
			char qn[48];

			struct queue_args args;
			struct amqp_error err;

			snprintf(qn, sizeof(qn), "%s.q%d", name, i);
			queue_args_parse((struct bytes){ NULL, 0 }, qn, "/", &args,
			    &err);
			qs[i] = vhost_add_queue(vh, bytes_str(qn), &args);
		}
		for (int i = 0; i < n; i++)
			exchange_bind(xs[s], DEST_QUEUE, qs[i % n_queues],
			    bytes_str(pats[i]), (struct bytes){ NULL, 0 });
		free(qs);
	}
	for (int rep = 0; rep < REPEATS; rep++) {
		for (int s = 0; s < 2; s++) {
			keep_best(&walk[s], run_trie(walks[s], keys, seconds));
			keep_best(&trie[s], run_trie(tries[s], keys, seconds));
			keep_best(&exch[s], run_exchange(xs[s], keys, seconds));
		}
	}
	for (int s = 0; s < 2; s++) {
		printf("%6d bindings (%5.2f matches/route): walk %10.0f  "
		    "trie %10.0f  exchange %10.0f routes/s; automaton %zu KiB\n",
		    sizes[s], trie[s].per_route, walk[s].rate, trie[s].rate,
		    exch[s].rate, topic_trie_dfa_bytes(tries[s]) / 1024);
		topic_trie_free(walks[s]);
		topic_trie_free(tries[s]);
	}
	printf("ratio 10 / 10000 bindings: walk %.2fx, trie %.2fx, "
	    "exchange %.2fx (goal: <= 2x)\n", walk[0].rate / walk[1].rate,
	    trie[0].rate / trie[1].rate, exch[0].rate / exch[1].rate);
	for (int i = 0; i < 10000; i++)
		free(pats[i]);
	free(pats);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0.25;
	const char *only = argc > 2 ? argv[2] : NULL;	/* one mix only */
	struct broker br;
	struct vhost *vh;
	char **keys = malloc(N_KEYS * sizeof(char *));

	if (keys == NULL)
		return 1;
	for (int i = 0; i < N_KEYS; i++)
		keys[i] = random_key();
	printf("keys, e.g. %s  %s  %s\n", keys[0], keys[1], keys[2]);

	/* a vhost needs a broker with an event base (queues make events) */
	memset(&br, 0, sizeof(br));
	br.base = event_base_new();
	vh = vhost_new(&br, "/");

	if (only == NULL || strcmp(only, "selective") == 0)
		run_mix(vh, keys, false, seconds);
	if (only == NULL || strcmp(only, "broad") == 0)
		run_mix(vh, keys, true, seconds);

	vhost_free(vh);
	event_base_free(br.base);
	for (int i = 0; i < N_KEYS; i++)
		free(keys[i]);
	free(keys);
	return 0;
}
