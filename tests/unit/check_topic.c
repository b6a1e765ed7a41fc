/*
 * Unit tests for the topic exchange's matcher (topic_trie.c):
 *
 *  - a table of edge cases whose expected values were all checked against
 *    RabbitMQ 3.10.8 (one queue bound per pattern on a topic exchange, one
 *    message published per key; the whole pattern x key cross product, not
 *    only the rows kept here, agreed with the reference matcher below);
 *  - the same table with every pattern in one trie at once;
 *  - a seeded randomized comparison against a simple recursive reference
 *    matcher, with patterns added and removed as it goes;
 *  - pruning: removing every pattern leaves a trie that matches nothing and
 *    gives its memory back;
 *  - many `#` against a long key finish (no exponential blow-up).
 *
 * Semantics (RabbitMQ's): words are split on '.', empty words count
 * ("a..b" has three words, "." has two), the empty string has no words;
 * `*` is exactly one word, `#` zero or more; '*' or '#' inside a longer
 * word is literal.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_SANITIZER_BYTES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_SANITIZER_BYTES 1
#endif
#endif
#ifdef HAVE_SANITIZER_BYTES
/* From <sanitizer/allocator_interface.h>, which not every compiler ships. */
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <malloc.h>
#endif

#include "topic_trie.h"
#include "wire.h"

/* An assertion for hot loops: check's own ck_assert* write to a pipe each
 * time they pass, which dominates a loop of millions of checks. */
#define CHECK(c) do { \
	if (!(c)) \
		ck_abort_msg("%s:%d: assertion failed: %s", __FILE__, \
		    __LINE__, #c); \
} while (0)

/* ---- reference matcher ------------------------------------------------ */

#define REF_MAX_WORDS 300

/* Split like RabbitMQ: "" has no words, otherwise n dots give n+1 words. */
static int ref_split(const char *s, const char **w, int *len)
{
	int n = 0;
	const char *start = s;

	if (*s == '\0')
		return 0;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (n == REF_MAX_WORDS)
				ck_abort_msg("reference: too many words");
			w[n] = start;
			len[n] = (int)(p - start);
			n++;
			start = p + 1;
			if (*p == '\0')
				break;
		}
	}
	return n;
}

static bool word_is(const char *w, int len, char c)
{
	return len == 1 && w[0] == c;
}

static bool ref_rec(const char **pw, const int *pl, int np,
    const char **kw, const int *kl, int nk)
{
	if (np == 0)
		return nk == 0;
	if (word_is(pw[0], pl[0], '#'))
		return ref_rec(pw + 1, pl + 1, np - 1, kw, kl, nk) ||
		    (nk > 0 && ref_rec(pw, pl, np, kw + 1, kl + 1, nk - 1));
	if (nk == 0)
		return false;
	if (!word_is(pw[0], pl[0], '*') &&
	    (pl[0] != kl[0] || memcmp(pw[0], kw[0], (size_t)pl[0]) != 0))
		return false;
	return ref_rec(pw + 1, pl + 1, np - 1, kw + 1, kl + 1, nk - 1);
}

static bool ref_match(const char *pattern, const char *key)
{
	const char *pw[REF_MAX_WORDS], *kw[REF_MAX_WORDS];
	int pl[REF_MAX_WORDS], kl[REF_MAX_WORDS];
	int np = ref_split(pattern, pw, pl);
	int nk = ref_split(key, kw, kl);

	return ref_rec(pw, pl, np, kw, kl, nk);
}

/* ---- helpers ----------------------------------------------------------- */

static struct bytes B(const char *s)
{
	return (struct bytes){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

/* Values are indexes into a counter array: value i is &slots[i]. */
#define MAX_VALUES 4096
static int slots[MAX_VALUES];
static unsigned counts[MAX_VALUES];

static void *val(int i)
{
	return &slots[i];
}

static void count_cb(void *value, void *arg)
{
	int *base = arg;
	ptrdiff_t i = (int *)value - base;

	if (i < 0 || i >= MAX_VALUES)
		ck_abort_msg("unknown value reported");
	counts[i]++;
}

static void match_counts(struct topic_trie *t, const char *key)
{
	memset(counts, 0, sizeof(counts));
	topic_trie_match(t, B(key), count_cb, slots);
}

static void never_cb(void *value, void *arg)
{
	ck_abort_msg("a value was reported by a trie that should be empty");
}

/*
 * The trie matches two ways: by walking its nodes, and through the
 * automaton compiled from them (topic_dfa.c) once it has been left
 * unchanged for a while.  Most tests run once per way (libcheck loop tests,
 * the mode in _i):
 *   MODE_WALK     never compiled;
 *   MODE_DFA      compiled from the first match, with room to spare;
 *   MODE_CRAMPED  compiled from the first match in 8 KiB: it keeps running
 *                 out of room, starting over and handing keys to the walk;
 *   MODE_DEFAULT  as the broker runs it (warm-up, memory cap by trie size).
 */
enum { MODE_WALK, MODE_DFA, MODE_CRAMPED, MODE_DEFAULT, N_MODES };

#define CRAMPED_BYTES 8192

static struct topic_trie *trie_new(int mode)
{
	struct topic_trie *t = topic_trie_new();

	if (mode == MODE_WALK)
		topic_trie_tune(t, 0, 0);
	else if (mode == MODE_DFA)
		topic_trie_tune(t, 0, 64u << 20);
	else if (mode == MODE_CRAMPED)
		topic_trie_tune(t, 0, CRAMPED_BYTES);
	return t;
}

/* ---- the edge-case table ------------------------------------------------- */

struct edge {
	const char *pattern, *key;
	bool match;
};

/* Every row checked against RabbitMQ 3.10.8. */
static const struct edge edges[] = {
	{ "#", "", true },
	{ "#", "a", true },
	{ "#", "a.b", true },
	{ "#", ".", true },
	{ "#", "a..b", true },
	{ "#", "#", true },
	{ "#", "*", true },
	{ "*", "", false },
	{ "*", "a", true },
	{ "*", "a.b", false },
	{ "*", ".", false },
	{ "*", "*", true },
	{ "*", "#", true },
	{ "*", "a*b", true },
	{ "", "", true },
	{ "", "a", false },
	{ "", ".", false },
	{ "", "*", false },
	{ "a", "a", true },
	{ "a", "", false },
	{ "a", "a.", false },
	{ "a", "b", false },
	{ "a.b", "a.b", true },
	{ "a.b", "a", false },
	{ "a.b", "a.b.c", false },
	{ "a.b", "a..b", false },
	{ "a.#.#.b", "a.b", true },
	{ "a.#.#.b", "a..b", true },
	{ "a.#.#.b", "a.x.b", true },
	{ "a.#.#.b", "a.x.y.b", true },
	{ "a.#.#.b", "a.b.c.d.b", true },
	{ "a.#.#.b", "a", false },
	{ "a.#.#.b", "a.b.c", false },
	{ "a.#.#.b", "b", false },
	{ "a.#.#.b", "", false },
	{ "#.#", "", true },
	{ "#.#", "a", true },
	{ "#.#", "a.b.c", true },
	{ "#.#", ".", true },
	{ "#.#.#", "", true },
	{ "#.#.#", "a", true },
	{ "#.#.#", "a.b", true },
	{ "a.*.#", "a", false },
	{ "a.*.#", "a.b", true },
	{ "a.*.#", "a.", true },
	{ "a.*.#", "a..b", true },
	{ "a.*.#", "a.b.c", true },
	{ "a.*.#", "a.#", true },
	{ "a.*.#", "", false },
	{ "a.*.#", "b.a", false },
	{ "#.a.#", "a", true },
	{ "#.a.#", "", false },
	{ "#.a.#", "x.a.y", true },
	{ "#.a.#", "b.a", true },
	{ "#.a.#", ".a", true },
	{ "#.a.#", "a.", true },
	{ "#.a.#", "b", false },
	{ "#.a.#", ".", false },
	{ "#.a.#", "a.b.c", true },
	{ "#.a.#", "b.c", false },
	{ "#.a", "a", true },
	{ "#.a", "b.a", true },
	{ "#.a", ".a", true },
	{ "#.a", "a.b", false },
	{ "#.a", "", false },
	{ "a.#", "a", true },
	{ "a.#", "a.", true },
	{ "a.#", "a.b", true },
	{ "a.#", "", false },
	{ "a.#", "b.a", false },
	{ "a.#", ".a", false },
	{ "a..b", "a..b", true },
	{ "a..b", "a.b", false },
	{ "a..b", "a.x.b", false },
	{ "a..b", "a...b", false },
	{ "a.*.b", "a..b", true },
	{ "a.*.b", "a.x.b", true },
	{ "a.*.b", "a.b", false },
	{ "a.*.b", "a.x.y.b", false },
	{ "a.#.b", "a.b", true },
	{ "a.#.b", "a..b", true },
	{ "a.#.b", "a.x.y.b", true },
	{ "a.#.b", "a.b.c", false },
	{ ".a", ".a", true },
	{ ".a", "a", false },
	{ ".a", "..a", false },
	{ "a.", "a.", true },
	{ "a.", "a", false },
	{ "a.", "a..", false },
	{ ".", ".", true },
	{ ".", "", false },
	{ ".", "a", false },
	{ ".", "..", false },
	{ ".", "a.", false },
	{ "..", "..", true },
	{ "..", ".", false },
	{ "..", "...", false },
	{ "*.", "a.", true },
	{ "*.", ".", true },
	{ "*.", "a", false },
	{ "*.", "a.b", false },
	{ "*.", "..", false },
	{ ".*", ".a", true },
	{ ".*", ".", true },
	{ ".*", "a", false },
	{ ".*", "a.b", false },
	{ "#.", ".", true },
	{ "#.", "a.", true },
	{ "#.", "..", true },
	{ "#.", "a", false },
	{ "#.", "", false },
	{ "#.", "a.b", false },
	{ ".#", ".a", true },
	{ ".#", ".", true },
	{ ".#", "..", true },
	{ ".#", "a", false },
	{ ".#", "", false },
	{ "*.*", ".", true },
	{ "*.*", "a.b", true },
	{ "*.*", "a", false },
	{ "*.*", "a..b", false },
	{ "*.*", "", false },
	{ "#.*", "", false },
	{ "#.*", "a", true },
	{ "#.*", "a.b", true },
	{ "#.*", ".", true },
	{ "*.#", "", false },
	{ "*.#", "a", true },
	{ "*.#", ".", true },
	{ "*.#", "a.b", true },
	{ "*.*.*", "..", true },
	{ "*.*.*", "a.b", false },
	{ "*.*.*", "a.b.c", true },
	{ "*.*.*", "a..b", true },
	{ "*.*.*", "a.b.c.d", false },
	{ "a.*.*.#", "a.b", false },
	{ "a.*.*.#", "a.b.c", true },
	{ "a.*.*.#", "a..b", true },
	{ "a.*.*.#", "a.b.c.d", true },
	{ "a.*.*.#", "a", false },
	{ "#.b.#.c", "b.c", true },
	{ "#.b.#.c", "a.b.c", true },
	{ "#.b.#.c", "a.b.x.c", true },
	{ "#.b.#.c", "b.c.c", true },
	{ "#.b.#.c", "c", false },
	{ "#.b.#.c", "b.x.y.c.c", true },
	{ "#.b.#.c", "c.b", false },
	{ "a*b", "a*b", true },
	{ "a*b", "axb", false },
	{ "a*b", "a.b", false },
	{ "a*b", "ab", false },
	{ "a*b", "a", false },
	{ "a#", "a#", true },
	{ "a#", "a", false },
	{ "a#", "a.b", false },
	{ "a#", "ab", false },
	{ "#a", "#a", true },
	{ "#a", "a", false },
	{ "#a", "xa", false },
	{ "*a", "*a", true },
	{ "*a", "ba", false },
	{ "*a", "a", false },
	{ "a.b#", "a.b#", true },
	{ "a.b#", "a.b", false },
	{ "a.b#", "a.bx", false },
	{ "a.b#", "a.b.c", false },
	{ "a.#.*", "a", false },
	{ "a.#.*", "a.b", true },
	{ "a.#.*", "a.b.c", true },
	{ "*.*.#.*", "a.b", false },
	{ "*.*.#.*", "a.b.c", true },
	{ "*.*.#.*", "..", true },
	{ "*.*.#.*", "a.b.c.d", true },
	{ "##", "##", true },
	{ "##", "a", false },
	{ "##", "", false },
	{ "**", "**", true },
	{ "**", "a", false },
	{ "**", "ab", false },
};

#define N_EDGES (sizeof(edges) / sizeof(edges[0]))

START_TEST(test_reference_agrees_with_table)
{
	/* The reference matcher itself encodes RabbitMQ's semantics. */
	for (size_t i = 0; i < N_EDGES; i++)
		ck_assert_msg(ref_match(edges[i].pattern, edges[i].key) ==
		    edges[i].match, "reference: pattern '%s' key '%s' want %d",
		    edges[i].pattern, edges[i].key, edges[i].match);
}
END_TEST

START_TEST(test_edge_table_one_pattern)
{
	for (size_t i = 0; i < N_EDGES; i++) {
		struct topic_trie *t = trie_new(_i);

		topic_trie_add(t, B(edges[i].pattern), val(0));
		match_counts(t, edges[i].key);
		ck_assert_msg(counts[0] == (edges[i].match ? 1u : 0u),
		    "pattern '%s' key '%s': reported %u times, want %d",
		    edges[i].pattern, edges[i].key, counts[0], edges[i].match);
		ck_assert(topic_trie_remove(t, B(edges[i].pattern), val(0)));
		topic_trie_match(t, B(edges[i].key), never_cb, NULL);
		topic_trie_free(t);
	}
}
END_TEST

START_TEST(test_edge_table_all_patterns)
{
	/* Every distinct pattern of the table in one trie, value = row of
	 * its first occurrence; each key must report exactly its matches. */
	struct topic_trie *t = trie_new(_i);
	int owner[N_EDGES];

	for (size_t i = 0; i < N_EDGES; i++) {
		owner[i] = (int)i;
		for (size_t j = 0; j < i; j++)
			if (strcmp(edges[j].pattern, edges[i].pattern) == 0) {
				owner[i] = owner[j];
				break;
			}
		if (owner[i] == (int)i)
			topic_trie_add(t, B(edges[i].pattern), val((int)i));
	}
	for (size_t k = 0; k < N_EDGES; k++) {
		const char *key = edges[k].key;

		match_counts(t, key);
		for (size_t i = 0; i < N_EDGES; i++) {
			if (owner[i] != (int)i)
				continue;
			ck_assert_msg(counts[i] ==
			    (ref_match(edges[i].pattern, key) ? 1u : 0u),
			    "pattern '%s' key '%s': reported %u times",
			    edges[i].pattern, key, counts[i]);
		}
		/* Rows whose key was checked with this very pattern. */
		for (size_t i = 0; i < N_EDGES; i++)
			if (strcmp(edges[i].key, key) == 0)
				ck_assert_msg(counts[owner[i]] ==
				    (edges[i].match ? 1u : 0u),
				    "pattern '%s' key '%s' in a shared trie",
				    edges[i].pattern, key);
	}
	for (size_t i = 0; i < N_EDGES; i++)
		if (owner[i] == (int)i)
			ck_assert(topic_trie_remove(t, B(edges[i].pattern),
			    val((int)i)));
	for (size_t k = 0; k < N_EDGES; k++)
		topic_trie_match(t, B(edges[k].key), never_cb, NULL);
	topic_trie_free(t);
}
END_TEST

/* ---- values and patterns ----------------------------------------------- */

START_TEST(test_values_per_pattern)
{
	struct topic_trie *t = trie_new(_i);

	/* Several values on one pattern: each reported once. */
	topic_trie_add(t, B("a.*"), val(1));
	topic_trie_add(t, B("a.*"), val(2));
	topic_trie_add(t, B("a.*"), val(3));
	/* One value on several matching patterns: once per pattern. */
	topic_trie_add(t, B("#"), val(1));
	topic_trie_add(t, B("a.#"), val(1));
	/* A pattern that matches in many ways is reported once. */
	topic_trie_add(t, B("#.#.#"), val(4));
	topic_trie_add(t, B("#.*.#"), val(5));
	match_counts(t, "a.b");
	ck_assert_uint_eq(counts[1], 3);
	ck_assert_uint_eq(counts[2], 1);
	ck_assert_uint_eq(counts[3], 1);
	ck_assert_uint_eq(counts[4], 1);
	ck_assert_uint_eq(counts[5], 1);

	/* Removing a value that is not on a pattern fails, and changes
	 * nothing. */
	ck_assert(!topic_trie_remove(t, B("a.*"), val(9)));
	ck_assert(!topic_trie_remove(t, B("b.*"), val(1)));
	ck_assert(!topic_trie_remove(t, B("a"), val(1)));
	ck_assert(!topic_trie_remove(t, B("a.*.c"), val(1)));
	ck_assert(!topic_trie_remove(t, B(""), val(1)));
	match_counts(t, "a.b");
	ck_assert_uint_eq(counts[1], 3);

	ck_assert(topic_trie_remove(t, B("a.*"), val(2)));
	ck_assert(!topic_trie_remove(t, B("a.*"), val(2)));
	match_counts(t, "a.b");
	ck_assert_uint_eq(counts[1], 3);
	ck_assert_uint_eq(counts[2], 0);
	ck_assert_uint_eq(counts[3], 1);

	ck_assert(topic_trie_remove(t, B("#"), val(1)));
	match_counts(t, "a.b");
	ck_assert_uint_eq(counts[1], 2);
	match_counts(t, "x");
	ck_assert_uint_eq(counts[1], 0);
	ck_assert_uint_eq(counts[4], 1);
	ck_assert_uint_eq(counts[5], 1);
	topic_trie_free(t);
}
END_TEST

START_TEST(test_max_length_key)
{
	/* A 255-byte shortstr of dots: 256 empty words. */
	char key[256], pat[300];
	struct topic_trie *t = trie_new(_i);

	memset(key, '.', 255);
	key[255] = '\0';
	topic_trie_add(t, B("#"), val(0));
	topic_trie_add(t, B("#."), val(1));
	topic_trie_add(t, B(".#"), val(2));
	topic_trie_add(t, B("*.#.*"), val(3));
	topic_trie_add(t, B(""), val(4));
	topic_trie_add(t, B("*"), val(5));
	memset(pat, '.', 255);		/* the same 256 empty words */
	pat[255] = '\0';
	topic_trie_add(t, B(pat), val(6));
	pat[254] = '\0';		/* 255 empty words */
	topic_trie_add(t, B(pat), val(7));
	match_counts(t, key);
	ck_assert_uint_eq(counts[0], 1);
	ck_assert_uint_eq(counts[1], 1);
	ck_assert_uint_eq(counts[2], 1);
	ck_assert_uint_eq(counts[3], 1);
	ck_assert_uint_eq(counts[4], 0);
	ck_assert_uint_eq(counts[5], 0);
	ck_assert_uint_eq(counts[6], 1);
	ck_assert_uint_eq(counts[7], 0);
	topic_trie_free(t);
}
END_TEST

START_TEST(test_key_over_max_words)
{
	/*
	 * A routing key is a shortstr, so at most 256 words; longer input
	 * (not possible on the wire, but the matcher takes any bytes) is
	 * matched by nothing, and splitting it must not run past the
	 * matcher's word array.  Removing a pattern that long fails.
	 */
	enum { BIG = 20000 };
	char *key = malloc(BIG + 1);
	struct topic_trie *t = trie_new(_i);

	ck_assert_ptr_nonnull(key);
	topic_trie_add(t, B("#"), val(0));
	topic_trie_add(t, B("#.#"), val(1));
	memset(key, '.', 256);		/* 257 empty words */
	key[256] = '\0';
	match_counts(t, key);
	ck_assert_uint_eq(counts[0], 0);
	ck_assert_uint_eq(counts[1], 0);
	key[255] = '\0';		/* 256 words: matched */
	match_counts(t, key);
	ck_assert_uint_eq(counts[0], 1);
	ck_assert_uint_eq(counts[1], 1);
	memset(key, 'a', BIG);
	for (int i = 1; i < BIG; i += 2)
		key[i] = '.';
	key[BIG] = '\0';		/* 10000 words */
	match_counts(t, key);
	ck_assert_uint_eq(counts[0], 0);
	ck_assert(!topic_trie_remove(t, B(key), val(0)));
	ck_assert(topic_trie_remove(t, B("#"), val(0)));
	ck_assert(topic_trie_remove(t, B("#.#"), val(1)));
	topic_trie_free(t);
	free(key);
}
END_TEST

/* ---- randomized comparison --------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	/* xorshift64*: deterministic across libcs. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

static void random_string(char *out, size_t cap, const char *const *alpha,
    uint32_t n_alpha, uint32_t max_words)
{
	uint32_t n = rnd(max_words + 1);
	size_t len = 0;

	out[0] = '\0';
	for (uint32_t i = 0; i < n; i++) {
		const char *w = alpha[rnd(n_alpha)];
		int r = snprintf(out + len, cap - len, "%s%s", i ? "." : "", w);

		CHECK(r >= 0 && (size_t)r < cap - len);
		len += (size_t)r;
	}
}

/* Words random patterns and keys are made of: few, so they collide. */
static const char *const pat_words[] = {
	"a", "b", "c", "", "*", "#", "*", "#", "a*", "#b",
};
static const char *const key_words[] = {
	"a", "b", "c", "", "*", "#", "a*", "#b", "d",
};

/*
 * Match key and check every live pattern's report count against the
 * reference (live NULL: all are live); returns how many matched.
 */
static unsigned check_key(struct topic_trie *t, const char *key,
    char (*patterns)[64], const bool *live, int n, int iter)
{
	unsigned n_matches = 0;

	match_counts(t, key);
	for (int i = 0; i < n; i++) {
		unsigned want = (live == NULL || live[i]) &&
		    ref_match(patterns[i], key) ? 1 : 0;

		/* Plain if: check's assertions cost a pipe write each, even
		 * when they pass. */
		if (counts[i] != want)
			ck_abort_msg("iteration %d: pattern '%s' key '%s': "
			    "reported %u times, want %u", iter, patterns[i],
			    key, counts[i], want);
		n_matches += want;
	}
	return n_matches;
}

#define N_LIVE 300
#define N_ITER 20000

START_TEST(test_randomized_against_reference)
{
	static char patterns[N_LIVE][64];
	static bool live[N_LIVE];
	struct topic_trie *t = trie_new(_i);
	char key[64];
	unsigned n_matches = 0, n_checks = 0;

	rng_state = 0x5eed1234abcdULL;
	memset(live, 0, sizeof(live));
	for (int iter = 0; iter < N_ITER; iter++) {
		uint32_t op = rnd(10);
		uint32_t s = rnd(N_LIVE);

		if (op < 4) {
			/* add (or replace) the pattern in slot s */
			if (live[s])
				CHECK(topic_trie_remove(t, B(patterns[s]),
				    val((int)s)));
			random_string(patterns[s], sizeof(patterns[s]),
			    pat_words, 10, 6);
			topic_trie_add(t, B(patterns[s]), val((int)s));
			live[s] = true;
		} else if (op < 6) {
			/* remove slot s; removing it again fails */
			if (live[s]) {
				CHECK(topic_trie_remove(t, B(patterns[s]),
				    val((int)s)));
				live[s] = false;
			}
			CHECK(!topic_trie_remove(t, B(patterns[s]),
			    val((int)s)));
		} else {
			random_string(key, sizeof(key), key_words, 9, 7);
			n_matches += check_key(t, key, patterns, live, N_LIVE,
			    iter);
			n_checks++;
		}
	}
	/* The generator must exercise both outcomes. */
	ck_assert_uint_gt(n_checks, 1000);
	ck_assert_uint_gt(n_matches, 1000);

	/* Remove the rest: nothing may match any more. */
	for (int i = 0; i < N_LIVE; i++)
		if (live[i])
			CHECK(topic_trie_remove(t, B(patterns[i]),
			    val(i)));
	for (int iter = 0; iter < 2000; iter++) {
		random_string(key, sizeof(key), key_words, 9, 7);
		topic_trie_match(t, B(key), never_cb, NULL);
	}
	topic_trie_free(t);
}
END_TEST

/*
 * Phases: a set of patterns stays put while thousands of keys are matched
 * (so the automaton grows deep and its states are reused), then a few
 * patterns change, and again.  Every key is checked against the reference
 * for every pattern; in MODE_CRAMPED the automaton must also stay within
 * its cap after every key.
 */
#define PHASE_PATTERNS 150
#define PHASES 12
#define PHASE_KEYS 1500

START_TEST(test_randomized_phases)
{
	static char patterns[PHASE_PATTERNS][64];
	static char keys[64][64];
	struct topic_trie *t = trie_new(_i);
	unsigned n_matches = 0;

	rng_state = 0xabcdef12345ULL + (uint64_t)_i;
	for (int i = 0; i < PHASE_PATTERNS; i++) {
		random_string(patterns[i], sizeof(patterns[i]), pat_words, 10, 5);
		topic_trie_add(t, B(patterns[i]), val(i));
	}
	/* A fixed pool of keys, so states are met again and again. */
	for (int k = 0; k < 64; k++)
		random_string(keys[k], sizeof(keys[k]), key_words, 9, 6);
	for (int phase = 0; phase < PHASES; phase++) {
		for (int iter = 0; iter < PHASE_KEYS; iter++) {
			n_matches += check_key(t, keys[rnd(64)], patterns,
			    NULL, PHASE_PATTERNS, phase * PHASE_KEYS + iter);
			if (_i == MODE_CRAMPED)
				CHECK(topic_trie_dfa_bytes(t) <= CRAMPED_BYTES);
		}
		if (_i == MODE_DFA)
			ck_assert_uint_gt(topic_trie_dfa_bytes(t), 0);
		/* Change a few patterns: some only move a value between
		 * existing nodes, some make or drop nodes. */
		for (int c = 0; c < 5; c++) {
			int i = (int)rnd(PHASE_PATTERNS);

			CHECK(topic_trie_remove(t, B(patterns[i]), val(i)));
			random_string(patterns[i], sizeof(patterns[i]),
			    pat_words, 10, 5);
			topic_trie_add(t, B(patterns[i]), val(i));
		}
	}
	ck_assert_uint_gt(n_matches, 10000);
	topic_trie_free(t);
}
END_TEST

/*
 * As the broker runs it: the automaton is built only once the trie has
 * been left alone for a while, is dropped when nodes come or go, and
 * survives (still right) when only a pattern's values change.
 */
START_TEST(test_automaton_lifecycle)
{
	struct topic_trie *t = trie_new(MODE_DEFAULT);
	int i;

	topic_trie_add(t, B("a.b.c"), val(1));
	topic_trie_add(t, B("a.*.#"), val(2));
	for (i = 0; i < 1000 && topic_trie_dfa_bytes(t) == 0; i++)
		match_counts(t, "a.b");
	ck_assert_msg(i > 10, "compiled after %d matches: no warm-up", i);
	ck_assert_msg(i < 1000, "never compiled");
	ck_assert_uint_eq(counts[2], 1);
	ck_assert_uint_eq(counts[1], 0);

	/* "a.b" is an existing node: a value joins it, the automaton stays,
	 * and its (formerly empty) end state must now report. */
	topic_trie_add(t, B("a.b"), val(3));
	ck_assert_uint_gt(topic_trie_dfa_bytes(t), 0);
	match_counts(t, "a.b");
	ck_assert_uint_eq(counts[3], 1);
	ck_assert_uint_eq(counts[2], 1);
	ck_assert(topic_trie_remove(t, B("a.b"), val(3)));
	ck_assert_uint_gt(topic_trie_dfa_bytes(t), 0);
	match_counts(t, "a.b");
	ck_assert_uint_eq(counts[3], 0);
	ck_assert_uint_eq(counts[2], 1);

	/* A new node: every state is forgotten. */
	topic_trie_add(t, B("x.y"), val(4));
	ck_assert_uint_eq(topic_trie_dfa_bytes(t), 0);
	match_counts(t, "x.y");
	ck_assert_uint_eq(counts[4], 1);
	ck_assert(topic_trie_remove(t, B("x.y"), val(4)));
	ck_assert_uint_eq(topic_trie_dfa_bytes(t), 0);
	topic_trie_free(t);
}
END_TEST

/*
 * Keys made of words no pattern uses must not grow the automaton: they all
 * take a state's one "other" transition.
 */
START_TEST(test_automaton_ignores_unknown_words)
{
	struct topic_trie *t = trie_new(MODE_DFA);
	char key[64];
	size_t after_warm;

	topic_trie_add(t, B("*.x.#"), val(1));
	topic_trie_add(t, B("#.y"), val(2));
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "u%d.x.v%d.y", i, i);
		match_counts(t, key);
	}
	after_warm = topic_trie_dfa_bytes(t);
	ck_assert_uint_gt(after_warm, 0);
	for (int i = 100; i < 20000; i++) {
		snprintf(key, sizeof(key), "u%d.x.v%d.y", i, i);
		match_counts(t, key);
		CHECK(counts[1] == 1 && counts[2] == 1);
	}
	ck_assert_uint_eq(topic_trie_dfa_bytes(t), after_warm);
	topic_trie_free(t);
}
END_TEST

/* ---- pruning ------------------------------------------------------------- */

static size_t allocated_bytes(void)
{
#ifdef HAVE_SANITIZER_BYTES
	return __sanitizer_get_current_allocated_bytes();
#else
	return mallinfo2().uordblks;
#endif
}

static void fill_and_empty(struct topic_trie *t, int n, size_t *peak)
{
	static const char *const words[] = { "a", "b", "c", "", "*", "#" };
	char p[64];

	rng_state = 0xfeedULL;
	for (int i = 0; i < n; i++) {
		/* distinct long-ish patterns: many nodes */
		snprintf(p, sizeof(p), "w%d.%s.%s.x%d.%s", i % 97,
		    words[rnd(6)], words[rnd(6)], i, words[rnd(6)]);
		topic_trie_add(t, B(p), val(i % MAX_VALUES));
	}
	*peak = allocated_bytes();
	rng_state = 0xfeedULL;
	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "w%d.%s.%s.x%d.%s", i % 97,
		    words[rnd(6)], words[rnd(6)], i, words[rnd(6)]);
		CHECK(topic_trie_remove(t, B(p), val(i % MAX_VALUES)));
	}
}

START_TEST(test_remove_prunes)
{
	struct topic_trie *t = trie_new(_i);
	size_t base, peak, after1, after2;
	char key[64];

	/* Warm up the root's own structures. */
	topic_trie_add(t, B("w1.x"), val(0));
	topic_trie_remove(t, B("w1.x"), val(0));
	base = allocated_bytes();
	fill_and_empty(t, 5000, &peak);
	after1 = allocated_bytes();
	ck_assert_msg(peak > base + 500000,
	    "5000 patterns should take memory (base %zu peak %zu)", base, peak);
	/* What is left is at most the root's map, not the nodes. */
	ck_assert_msg(after1 < base + (peak - base) / 10,
	    "removing every pattern kept memory: base %zu peak %zu after %zu",
	    base, peak, after1);
	fill_and_empty(t, 5000, &peak);
	after2 = allocated_bytes();
	ck_assert_msg(after2 <= after1 + 4096,
	    "a second fill/empty cycle grew memory: %zu -> %zu", after1, after2);

	rng_state = 99;
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "w%u.%s.x%u", rnd(97),
		    rnd(2) ? "a" : "", rnd(5000));
		topic_trie_match(t, B(key), never_cb, NULL);
	}
	topic_trie_match(t, B(""), never_cb, NULL);
	topic_trie_match(t, B("w1.a.b.x1.c"), never_cb, NULL);
	topic_trie_free(t);
}
END_TEST

/* ---- many `#` -------------------------------------------------------------- */

START_TEST(test_many_hashes_long_key)
{
	struct topic_trie *t = trie_new(_i);
	char key[1024];
	size_t len = 0;

	/* 200 words (longer than a shortstr allows: stresses the matcher). */
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(key + len, sizeof(key) - len, "%s%c",
		    i ? "." : "", 'a' + i % 3);
	topic_trie_add(t, B("#.#.#.#.#.#.#.#.#.#.#.#"), val(0));
	topic_trie_add(t, B("#.a.#.b.#.c.#.a.#.b.#.c.#"), val(1));
	topic_trie_add(t, B("#.#.#.#.#.#.#.#.#.#.#.#.z"), val(2));
	topic_trie_add(t, B("#.*.#.*.#.*.#.*.#.*.#.*"), val(3));
	topic_trie_add(t, B("#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.d"), val(4));
	match_counts(t, key);
	ck_assert_uint_eq(counts[0], 1);
	ck_assert_uint_eq(counts[1], 1);
	ck_assert_uint_eq(counts[2], 0);
	ck_assert_uint_eq(counts[3], 1);
	ck_assert_uint_eq(counts[4], 0);
	topic_trie_free(t);
}
END_TEST

static Suite *topic_suite(void)
{
	Suite *s = suite_create("topic_trie");
	TCase *tc = tcase_create("edges");

	tcase_add_test(tc, test_reference_agrees_with_table);
	tcase_add_loop_test(tc, test_edge_table_one_pattern, 0, N_MODES);
	tcase_add_loop_test(tc, test_edge_table_all_patterns, 0, N_MODES);
	tcase_add_loop_test(tc, test_values_per_pattern, 0, N_MODES);
	tcase_add_loop_test(tc, test_max_length_key, 0, N_MODES);
	tcase_add_loop_test(tc, test_key_over_max_words, 0, N_MODES);
	suite_add_tcase(s, tc);

	tc = tcase_create("randomized");
	tcase_add_loop_test(tc, test_randomized_against_reference, 0, N_MODES);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("automaton");
	tcase_add_loop_test(tc, test_randomized_phases, 0, N_MODES);
	tcase_add_test(tc, test_automaton_lifecycle);
	tcase_add_test(tc, test_automaton_ignores_unknown_words);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("structure");
	tcase_add_loop_test(tc, test_remove_prunes, 0, N_MODES);
	tcase_add_loop_test(tc, test_many_hashes_long_key, 0, N_MODES);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(topic_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
