/*
 * Topic trie.  Each node has children by word, plus optional `*` and `#`
 * children, and the values of the patterns that end there.  Word children
 * sit in a small open-addressing table of node pointers keyed by the
 * word's hash; a node keeps its own word and hash, so a lookup touches the
 * table and the child it is about to visit anyway, nothing else (this
 * keeps routing over 10,000 bindings close to routing over 10).
 *
 * Matching walks the key's words; a `#` child may swallow any number of
 * words, so a node can be reached at the same key position along several
 * paths ("a.#.#.b").  Each node keeps a bitmap of the key positions it was
 * expanded at during the current match (reset lazily by a generation
 * number), so no node is expanded twice at one position (no exponential
 * blow-up) and each pattern's values are reported at most once.
 *
 * That walk visits every partially matching pattern's branch, one table
 * probe each.  Keys that keep coming against an unchanging trie go through
 * the compiled matcher instead (topic_dfa.c: one probe per word); the walk
 * remains for a trie that just changed and for keys the compiled matcher
 * has no room for.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strmap.h"
#include "topic_dfa.h"
#include "topic_node.h"
#include "topic_trie.h"

struct topic_trie {
	struct tnode *root;
	uint64_t gen;
	size_t n_nodes;			/* below the root */
	struct topic_dfa *dfa;		/* compiled from the nodes, lazily */
};

static struct tnode *tnode_new(void)
{
	return xcalloc(1, sizeof(struct tnode));
}

static void tnode_free(struct tnode *n)
{

	if (n == NULL)
		return;
	for (uint32_t i = 0; i < n->cap_kids; i++)
		tnode_free(n->kids[i].node);
	free(n->kids);
	if (n->word_len > TOPIC_INLINE_WORD)
		free(n->word.ptr);
	tnode_free(n->star);
	tnode_free(n->hash);
	free(n->values);
	free(n);
}

struct topic_trie *topic_trie_new(void)
{
	struct topic_trie *t = xcalloc(1, sizeof(*t));

	t->root = tnode_new();
	t->dfa = topic_dfa_new();
	return t;
}

void topic_trie_free(struct topic_trie *t)
{
	if (t == NULL)
		return;
	tnode_free(t->root);
	topic_dfa_free(t->dfa);
	free(t);
}

/* Split s into words; returns the count, or -1 past TOPIC_MAX_WORDS. */
static int split_words(struct bytes s, struct bytes *words)
{
	int n = 0;
	uint32_t start = 0;

	if (s.len == 0)
		return 0;
	for (uint32_t i = 0; i <= s.len; i++) {
		if (i == s.len || s.ptr[i] == '.') {
			if (n == TOPIC_MAX_WORDS)
				return -1;
			words[n++] = (struct bytes){ s.ptr + start, i - start };
			start = i + 1;
		}
	}
	return n;
}

static bool is_wild(struct bytes w, char c)
{
	return w.len == 1 && w.ptr[0] == c;
}

static void kid_place(struct tnode *n, struct tnode *kid)
{
	uint32_t mask = n->cap_kids - 1, i;

	for (i = (uint32_t)kid->word_hash & mask; n->kids[i].node;
	    i = (i + 1) & mask)
		;
	n->kids[i] = (struct kid){ kid->word_hash, kid };
}

/* Rebuild the table at cap (a power of two), leaving `drop` out. */
static void kids_rebuild(struct tnode *n, uint32_t cap, struct tnode *drop)
{
	struct kid *old = n->kids;
	uint32_t oldcap = n->cap_kids;

	n->kids = cap ? xcalloc(cap, sizeof(*n->kids)) : NULL;
	n->cap_kids = cap;
	for (uint32_t i = 0; i < oldcap; i++)
		if (old[i].node && old[i].node != drop)
			kid_place(n, old[i].node);
	free(old);
}

/* The child of n for word w, or NULL. */
static struct tnode *child_get(const struct tnode *n, struct bytes w)
{
	if (is_wild(w, '*'))
		return n->star;
	if (is_wild(w, '#'))
		return n->hash;
	return tnode_kid(n, w, strmap_hash(w));
}

/* The child of n for word w, created when missing. */
static struct tnode *child_make(struct topic_trie *t, struct tnode *n,
    struct bytes w)
{
	struct tnode *c = child_get(n, w);

	if (c != NULL)
		return c;
	c = tnode_new();
	t->n_nodes++;
	if (is_wild(w, '*'))
		n->star = c;
	else if (is_wild(w, '#')) {
		n->hash = c;
		c->is_hash = true;
	} else {
		c->word_hash = strmap_hash(w);
		topic_dfa_word_ref(t->dfa, w, c->word_hash);
		c->word_len = w.len;
		if (w.len > TOPIC_INLINE_WORD)
			c->word.ptr = xmalloc(w.len);
		if (w.len)
			memcpy((uint8_t *)tnode_word(c), w.ptr, w.len);
		/* At most half full, so probes stay short. */
		if ((n->n_kids + 1) * 2 > n->cap_kids)
			kids_rebuild(n, n->cap_kids ? n->cap_kids * 2 : 4, NULL);
		kid_place(n, c);
		n->n_kids++;
	}
	return c;
}

/* Unlink (and free) the child of n for word w. */
static void child_drop(struct topic_trie *t, struct tnode *n,
    struct bytes w)
{
	struct tnode *c;

	t->n_nodes--;
	if (is_wild(w, '*')) {
		c = n->star;
		n->star = NULL;
	} else if (is_wild(w, '#')) {
		c = n->hash;
		n->hash = NULL;
	} else {
		uint32_t cap = n->cap_kids;

		c = tnode_kid(n, w, strmap_hash(w));
		topic_dfa_word_unref(t->dfa, w, c->word_hash);
		n->n_kids--;
		/* Removal rebuilds (bindings change rarely); shrink when sparse. */
		while (cap > 4 && n->n_kids * 8 < cap)
			cap /= 2;
		kids_rebuild(n, n->n_kids ? cap : 0, c);
	}
	tnode_free(c);
}

void topic_trie_add(struct topic_trie *t, struct bytes pattern, void *value)
{
	struct bytes words[TOPIC_MAX_WORDS];
	int n = split_words(pattern, words);
	struct tnode *node = t->root;
	size_t n_nodes = t->n_nodes;

	if (n < 0)
		fatalx("topic pattern longer than %d words", TOPIC_MAX_WORDS);
	for (int i = 0; i < n; i++)
		node = child_make(t, node, words[i]);
	if (node->n_values == node->cap_values) {
		node->cap_values = node->cap_values ? node->cap_values * 2 : 4;
		node->values = xrealloc(node->values,
		    node->cap_values * sizeof(void *));
	}
	node->values[node->n_values++] = value;
	/* States name nodes; a value joining a node changes no state. */
	if (t->n_nodes != n_nodes)
		topic_dfa_reset(t->dfa, t->n_nodes);
	else
		topic_dfa_values_changed(t->dfa);
}

static bool tnode_empty(const struct tnode *n)
{
	return n->n_values == 0 && n->star == NULL && n->hash == NULL &&
	    n->n_kids == 0;
}

/* Remove value below node along words; prunes nodes left empty. */
static bool remove_at(struct topic_trie *t, struct tnode *node,
    struct bytes *words, int n, void *value)
{
	struct tnode *child;
	bool removed;

	if (n == 0) {
		for (uint32_t i = 0; i < node->n_values; i++) {
			if (node->values[i] == value) {
				node->values[i] = node->values[--node->n_values];
				return true;
			}
		}
		return false;
	}
	child = child_get(node, words[0]);
	if (child == NULL)
		return false;
	removed = remove_at(t, child, words + 1, n - 1, value);
	if (removed && tnode_empty(child))
		child_drop(t, node, words[0]);
	return removed;
}

bool topic_trie_remove(struct topic_trie *t, struct bytes pattern,
    void *value)
{
	struct bytes words[TOPIC_MAX_WORDS];
	int n = split_words(pattern, words);
	size_t n_nodes = t->n_nodes;

	if (n < 0 || !remove_at(t, t->root, words, n, value))
		return false;
	if (t->n_nodes != n_nodes)
		topic_dfa_reset(t->dfa, t->n_nodes);
	else
		topic_dfa_values_changed(t->dfa);
	return true;
}

struct match_ctx {
	struct bytes *words;
	uint64_t *hashes;		/* strmap_hash of each word */
	int n;
	uint64_t gen;
	void (*fn)(void *, void *);
	void *arg;
};

/*
 * Only a `#` lets two paths reach one node at the same key position (every
 * other edge takes exactly one word), so the visited bitmap is kept only
 * below a `#`.
 */
static void match_at(struct match_ctx *m, struct tnode *node, int i,
    bool below_hash)
{
	if (below_hash) {
		if (node->visit_gen != m->gen) {
			node->visit_gen = m->gen;
			memset(node->visited, 0, sizeof(node->visited));
		}
		if (node->visited[i / 64] & (1ULL << (i % 64)))
			return;
		node->visited[i / 64] |= 1ULL << (i % 64);
	}
	if (i == m->n && node->reported != m->gen) {
		node->reported = m->gen;
		for (uint32_t v = 0; v < node->n_values; v++)
			m->fn(node->values[v], m->arg);
	}
	if (node->hash) {
		/* `#` swallows zero or more of the remaining words. */
		for (int j = i; j <= m->n; j++)
			match_at(m, node->hash, j, true);
	}
	if (i == m->n)
		return;
	if (node->star)
		match_at(m, node->star, i + 1, below_hash);
	if (node->n_kids) {
		struct tnode *child = tnode_kid(node, m->words[i], m->hashes[i]);

		if (child)
			match_at(m, child, i + 1, below_hash);
	}
}

void topic_trie_match(struct topic_trie *t, struct bytes key,
    void (*fn)(void *value, void *arg), void *arg)
{
	struct bytes words[TOPIC_MAX_WORDS];
	uint64_t hashes[TOPIC_MAX_WORDS];
	struct match_ctx m = { words, hashes, split_words(key, words), ++t->gen,
	    fn, arg };

	if (m.n < 0)
		return;
	/* Each word is hashed once, however many nodes look it up. */
	for (int i = 0; i < m.n; i++)
		hashes[i] = strmap_hash(words[i]);
	if (!topic_dfa_match(t->dfa, t->root, words, hashes, m.n, fn, arg))
		match_at(&m, t->root, 0, false);
}

void topic_trie_tune(struct topic_trie *t, uint32_t warmup,
    size_t dfa_max_bytes)
{
	topic_dfa_tune(t->dfa, warmup, dfa_max_bytes);
}

size_t topic_trie_dfa_bytes(const struct topic_trie *t)
{
	return topic_dfa_bytes(t->dfa);
}
