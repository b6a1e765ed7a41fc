/*
 * libFuzzer target: the topic trie against a tiny reference matcher.
 *
 * Input: lines separated by '\n' (each cut to 255 bytes, as patterns and
 * routing keys are shortstrs):
 *   "+" V pattern   add pattern with value V & 7
 *   "-" V pattern   remove value V & 7 from pattern
 *   anything else   a routing key to match
 * The reference keeps the (pattern, value) pairs in a list.  Every remove
 * must return what the reference's does; every match must report each
 * value as many times as the reference counts matching (pattern, value)
 * pairs.  At the end every pair left is removed again (each must succeed)
 * and all keys must then match nothing.
 *
 * The first byte's value mod 3 picks how the trie matches: by walking its
 * nodes only, through its compiled automaton from the first key, or
 * through an automaton squeezed into 4 KiB (running out of room, starting
 * over, handing keys back to the walk).
 *
 * Reference semantics (RabbitMQ's): split on '.', empty words count
 * ("a..b" has three words), "" has no words, a word "*" matches exactly
 * one word, "#" zero or more.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "topic_trie.h"
#include "wire.h"

#define NVALUES 8
#define MAX_LINE 255
#define MAX_WORDS 256		/* 255 bytes have at most 256 words */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_topic: %s\n", what);
	abort();
}

/* Values are addresses inside this array, so they are distinct pointers. */
static char value_slots[NVALUES];

static int split(struct bytes s, struct bytes *w)
{
	int n = 0;
	uint32_t start = 0;

	if (s.len == 0)
		return 0;
	for (uint32_t i = 0; i <= s.len; i++)
		if (i == s.len || s.ptr[i] == '.') {
			w[n++] = (struct bytes){ s.ptr + start, i - start };
			start = i + 1;
		}
	return n;
}

static bool word_is(struct bytes w, char c)
{
	return w.len == 1 && w.ptr[0] == c;
}

/* Does pattern match key?  Dynamic programming, so "#.#.#..." is cheap. */
static bool ref_match(struct bytes pattern, struct bytes key)
{
	static struct bytes pw[MAX_WORDS], kw[MAX_WORDS];
	/* m[i][j]: pattern words i.. match key words j.. */
	static bool m[MAX_WORDS + 1][MAX_WORDS + 1];
	int np = split(pattern, pw), nk = split(key, kw);

	for (int i = np; i >= 0; i--)
		for (int j = nk; j >= 0; j--) {
			bool r;

			if (i == np)
				r = j == nk;
			else if (word_is(pw[i], '#'))
				r = m[i + 1][j] || (j < nk && m[i][j + 1]);
			else if (j == nk)
				r = false;
			else if (word_is(pw[i], '*'))
				r = m[i + 1][j + 1];
			else
				r = bytes_eq(pw[i], kw[j]) && m[i + 1][j + 1];
			m[i][j] = r;
		}
	return m[0][0];
}

struct pair {
	struct bytes pattern;
	int value;
};

struct ref {
	struct pair *pairs;
	size_t n;
};

static bool ref_remove(struct ref *r, struct bytes pattern, int value)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->pairs[i].value == value &&
		    bytes_eq(r->pairs[i].pattern, pattern)) {
			r->pairs[i] = r->pairs[--r->n];
			return true;
		}
	return false;
}

static void count_value(void *value, void *arg)
{
	unsigned *counts = arg;
	char *v = value;

	if (v < value_slots || v >= value_slots + NVALUES)
		fail("match reported a value never added");
	counts[v - value_slots]++;
}

static void check_match(struct topic_trie *t, const struct ref *r,
    struct bytes key)
{
	unsigned got[NVALUES] = { 0 }, want[NVALUES] = { 0 };

	topic_trie_match(t, key, count_value, got);
	for (size_t i = 0; i < r->n; i++)
		if (ref_match(r->pairs[i].pattern, key))
			want[r->pairs[i].value]++;
	for (int v = 0; v < NVALUES; v++)
		if (got[v] != want[v]) {
			fprintf(stderr, "key '%.*s' value %d: trie %u, "
			    "reference %u\n", (int)key.len,
			    (const char *)key.ptr, v, got[v], want[v]);
			fail("match differs from the reference");
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t dfa_bytes[] = { 0, 64u << 20, 4096 };
	struct topic_trie *t = topic_trie_new();
	struct ref r = { NULL, 0 };
	struct bytes *keys = NULL;
	size_t nkeys = 0, start = 0;
	uint8_t *copy = malloc(size ? size : 1);

	if (size)
		memcpy(copy, data, size);
	topic_trie_tune(t, 0, dfa_bytes[size ? data[0] % 3 : 0]);
	r.pairs = malloc((size / 2 + 1) * sizeof(*r.pairs));
	keys = malloc((size + 1) * sizeof(*keys));

	for (size_t i = 0; i <= size; i++) {
		struct bytes line, pat;
		size_t len;
		int value;

		if (i < size && copy[i] != '\n')
			continue;
		len = i - start;
		if (len > MAX_LINE)
			len = MAX_LINE;
		line = (struct bytes){ copy + start, (uint32_t)len };
		start = i + 1;

		if (len >= 2 && (line.ptr[0] == '+' || line.ptr[0] == '-')) {
			value = line.ptr[1] & (NVALUES - 1);
			pat = (struct bytes){ line.ptr + 2, line.len - 2 };
			if (line.ptr[0] == '+') {
				topic_trie_add(t, pat, &value_slots[value]);
				r.pairs[r.n++] = (struct pair){ pat, value };
			} else if (topic_trie_remove(t, pat,
			    &value_slots[value]) != ref_remove(&r, pat, value)) {
				fail("remove differs from the reference");
			}
		} else {
			keys[nkeys++] = line;
			check_match(t, &r, line);
		}
	}

	/* Matching again, after all the changes, gives the same answers. */
	for (size_t k = 0; k < nkeys; k++)
		check_match(t, &r, keys[k]);
	/* Remove everything left, newest first. */
	while (r.n > 0) {
		struct pair p = r.pairs[r.n - 1];

		if (!topic_trie_remove(t, p.pattern, &value_slots[p.value]))
			fail("remove of a present pair failed");
		r.n--;
		/* A few keys after every removal (all would be quadratic). */
		for (size_t k = 0; k < nkeys && k < 4; k++)
			check_match(t, &r, keys[k]);
	}
	for (size_t k = 0; k < nkeys; k++)
		check_match(t, &r, keys[k]);

	topic_trie_free(t);
	free(keys);
	free(r.pairs);
	free(copy);
	return 0;
}
