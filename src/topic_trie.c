/*
 * Topic trie.  Each node has optional `*` and `#` children and the values
 * of the patterns that end there; its children by literal word live in one
 * hash table per trie, keyed by (parent node, word).  One shared table
 * instead of a map per node keeps the trie small (most nodes have a single
 * child) and lets a match hash each key word once, not once per node it is
 * looked up at.
 *
 * Matching walks the key's words; a `#` child may swallow any number of
 * words, so a node can be reached at the same key position along several
 * paths ("a.#.#.b").  Each node keeps a bitmap of the key positions it was
 * expanded at during the current match (reset lazily by a generation
 * number), so no node is expanded twice at one position (no exponential
 * blow-up) and each pattern's values are reported at most once.
 *
 * Removing a pattern's last value prunes the nodes left empty, and the
 * edge table shrinks as it empties.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"
#include "topic_trie.h"

/* Keys longer than this many words cannot be matched (RabbitMQ keys are
 * shortstrs: at most 255 bytes, so at most 256 words). */
#define MAX_WORDS 256

struct tnode {
	struct tnode *parent;
	uint8_t *word;			/* the literal word leading here */
	uint32_t word_len;
	uint32_t n_words;		/* literal-word children */
	uint64_t word_hash;
	struct tnode *star;		/* `*` */
	struct tnode *hash;		/* `#` */
	void **values;
	uint32_t n_values, cap_values;
	/* Key positions already expanded during match number visit_gen. */
	uint64_t visit_gen;
	uint64_t visited[(MAX_WORDS + 1 + 63) / 64];
};

/* An edge parent --word--> child; child NULL: empty; EDGE_GONE: deleted. */
struct edge {
	uint64_t hash;
	struct tnode *child;
};

static struct tnode edge_gone;
#define EDGE_GONE (&edge_gone)

struct topic_trie {
	struct tnode *root;
	uint64_t gen;
	uint64_t seed;
	struct edge *edges;
	size_t cap;			/* power of two */
	size_t count;			/* live edges */
	size_t used;			/* live + deleted */
};

#define MIN_EDGES 16

static uint64_t word_hash(const struct topic_trie *t, const uint8_t *p,
    uint32_t len)
{
	/* FNV-1a over a random seed, finished with a 64-bit mixer. */
	uint64_t h = 0xcbf29ce484222325ULL ^ t->seed;

	for (uint32_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t edge_hash(const struct tnode *parent, uint64_t wh)
{
	uint64_t h = wh ^ ((uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ULL);

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static bool edge_is(const struct tnode *c, const struct tnode *parent,
    const uint8_t *w, uint32_t len)
{
	return c->parent == parent && c->word_len == len &&
	    (len == 0 || memcmp(c->word, w, len) == 0);
}

static struct tnode *edge_get(const struct topic_trie *t,
    const struct tnode *parent, const uint8_t *w, uint32_t len, uint64_t wh)
{
	size_t mask = t->cap - 1;
	uint64_t h;

	if (parent->n_words == 0)
		return NULL;
	h = edge_hash(parent, wh);
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct edge *e = &t->edges[i];

		if (e->child == NULL)
			return NULL;
		if (e->hash == h && e->child != EDGE_GONE &&
		    edge_is(e->child, parent, w, len))
			return e->child;
	}
}

static void edges_resize(struct topic_trie *t, size_t cap)
{
	struct edge *old = t->edges;
	size_t oldcap = t->cap;

	t->edges = xcalloc(cap, sizeof(struct edge));
	t->cap = cap;
	t->used = t->count;
	for (size_t i = 0; i < oldcap; i++) {
		size_t j;

		if (old[i].child == NULL || old[i].child == EDGE_GONE)
			continue;
		for (j = old[i].hash & (cap - 1); t->edges[j].child;
		    j = (j + 1) & (cap - 1))
			;
		t->edges[j] = old[i];
	}
	free(old);
}

static void edge_put(struct topic_trie *t, struct tnode *child)
{
	uint64_t h = edge_hash(child->parent, child->word_hash);
	size_t i, mask;

	if ((t->used + 1) * 10 >= t->cap * 7)
		edges_resize(t, t->count * 2 + 2 >= t->cap ? t->cap * 2 : t->cap);
	mask = t->cap - 1;
	for (i = h & mask; t->edges[i].child && t->edges[i].child != EDGE_GONE;
	    i = (i + 1) & mask)
		;
	if (t->edges[i].child == NULL)
		t->used++;
	t->edges[i].hash = h;
	t->edges[i].child = child;
	t->count++;
	child->parent->n_words++;
}

static void edge_del(struct topic_trie *t, struct tnode *child)
{
	uint64_t h = edge_hash(child->parent, child->word_hash);
	size_t mask = t->cap - 1;

	for (size_t i = h & mask; t->edges[i].child; i = (i + 1) & mask) {
		if (t->edges[i].child == child) {
			t->edges[i].child = EDGE_GONE;
			t->count--;
			child->parent->n_words--;
			break;
		}
	}
	if (t->cap > MIN_EDGES && t->count * 8 < t->cap) {
		size_t cap = t->cap;

		while (cap > MIN_EDGES && t->count * 8 < cap)
			cap /= 2;
		edges_resize(t, cap);
	}
}

static struct tnode *tnode_new(struct tnode *parent)
{
	struct tnode *n = xcalloc(1, sizeof(struct tnode));

	n->parent = parent;
	return n;
}

static void tnode_free(struct tnode *n)
{
	free(n->values);
	free(n->word);
	free(n);
}

struct topic_trie *topic_trie_new(void)
{
	struct topic_trie *t = xcalloc(1, sizeof(*t));

	if (RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1)
		t->seed = 0x243f6a8885a308d3ULL;
	t->root = tnode_new(NULL);
	t->cap = MIN_EDGES;
	t->edges = xcalloc(t->cap, sizeof(struct edge));
	return t;
}

/* Free the `*`/`#` descendants of n; literal-word children are freed from
 * the edge table. */
static void free_wild(struct tnode *n)
{
	if (n->star) {
		free_wild(n->star);
		tnode_free(n->star);
	}
	if (n->hash) {
		free_wild(n->hash);
		tnode_free(n->hash);
	}
}

void topic_trie_free(struct topic_trie *t)
{
	if (t == NULL)
		return;
	/* Every node is the root, a `*`/`#` child, or an edge's child; free
	 * each once: wildcard children through their parent. */
	for (size_t i = 0; i < t->cap; i++) {
		struct tnode *c = t->edges[i].child;

		if (c && c != EDGE_GONE)
			free_wild(c);
	}
	free_wild(t->root);
	for (size_t i = 0; i < t->cap; i++) {
		struct tnode *c = t->edges[i].child;

		if (c && c != EDGE_GONE)
			tnode_free(c);
	}
	tnode_free(t->root);
	free(t->edges);
	free(t);
}

/* Split s into words; returns the count, or -1 past MAX_WORDS. */
static int split_words(struct bytes s, struct bytes *words)
{
	int n = 0;
	uint32_t start = 0;

	if (s.len == 0)
		return 0;
	for (uint32_t i = 0; i <= s.len; i++) {
		if (i == s.len || s.ptr[i] == '.') {
			if (n == MAX_WORDS)
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

/* The child of n for word w, or NULL. */
static struct tnode *child_get(const struct topic_trie *t,
    const struct tnode *n, struct bytes w)
{
	if (is_wild(w, '*'))
		return n->star;
	if (is_wild(w, '#'))
		return n->hash;
	return edge_get(t, n, w.ptr, w.len, word_hash(t, w.ptr, w.len));
}

/* The child of n for word w, created when missing. */
static struct tnode *child_make(struct topic_trie *t, struct tnode *n,
    struct bytes w)
{
	struct tnode *c = child_get(t, n, w);

	if (c != NULL)
		return c;
	c = tnode_new(n);
	if (is_wild(w, '*')) {
		n->star = c;
	} else if (is_wild(w, '#')) {
		n->hash = c;
	} else {
		c->word = xmalloc(w.len ? w.len : 1);
		if (w.len)
			memcpy(c->word, w.ptr, w.len);
		c->word_len = w.len;
		c->word_hash = word_hash(t, w.ptr, w.len);
		edge_put(t, c);
	}
	return c;
}

void topic_trie_add(struct topic_trie *t, struct bytes pattern, void *value)
{
	struct bytes words[MAX_WORDS];
	int n = split_words(pattern, words);
	struct tnode *node = t->root;

	if (n < 0)
		fatalx("topic pattern longer than %d words", MAX_WORDS);
	for (int i = 0; i < n; i++)
		node = child_make(t, node, words[i]);
	if (node->n_values == node->cap_values) {
		node->cap_values = node->cap_values ? node->cap_values * 2 : 4;
		node->values = xrealloc(node->values,
		    node->cap_values * sizeof(void *));
	}
	node->values[node->n_values++] = value;
}

static bool tnode_empty(const struct tnode *n)
{
	return n->n_values == 0 && n->star == NULL && n->hash == NULL &&
	    n->n_words == 0;
}

bool topic_trie_remove(struct topic_trie *t, struct bytes pattern,
    void *value)
{
	struct bytes words[MAX_WORDS];
	struct tnode *path[MAX_WORDS + 1];
	int n = split_words(pattern, words);
	struct tnode *node;
	uint32_t i;

	if (n < 0)
		return false;
	path[0] = t->root;
	for (int k = 0; k < n; k++)
		if ((path[k + 1] = child_get(t, path[k], words[k])) == NULL)
			return false;
	node = path[n];
	for (i = 0; i < node->n_values && node->values[i] != value; i++)
		;
	if (i == node->n_values)
		return false;
	node->values[i] = node->values[--node->n_values];
	/* Prune the nodes left empty, deepest first. */
	for (int k = n; k > 0 && tnode_empty(path[k]); k--) {
		struct tnode *c = path[k], *p = path[k - 1];

		if (c == p->star)
			p->star = NULL;
		else if (c == p->hash)
			p->hash = NULL;
		else
			edge_del(t, c);
		tnode_free(c);
	}
	return true;
}

struct match_ctx {
	const struct topic_trie *t;
	struct bytes *words;
	uint64_t *hashes;		/* word_hash of each key word ... */
	uint64_t hashed[(MAX_WORDS + 63) / 64];	/* ... once computed */
	int n;
	uint64_t gen;
	void (*fn)(void *, void *);
	void *arg;
};

static void match_at(struct match_ctx *m, struct tnode *node, int i)
{
	if (node->visit_gen != m->gen) {
		node->visit_gen = m->gen;
		memset(node->visited, 0, sizeof(node->visited));
	}
	if (node->visited[i / 64] & (1ULL << (i % 64)))
		return;
	node->visited[i / 64] |= 1ULL << (i % 64);
	if (i == m->n) {
		for (uint32_t v = 0; v < node->n_values; v++)
			m->fn(node->values[v], m->arg);
	}
	if (node->hash) {
		/* `#` swallows zero or more of the remaining words. */
		for (int j = i; j <= m->n; j++)
			match_at(m, node->hash, j);
	}
	if (i == m->n)
		return;
	if (node->star)
		match_at(m, node->star, i + 1);
	if (node->n_words) {
		struct tnode *child;

		if (!(m->hashed[i / 64] & (1ULL << (i % 64)))) {
			m->hashed[i / 64] |= 1ULL << (i % 64);
			m->hashes[i] = word_hash(m->t, m->words[i].ptr,
			    m->words[i].len);
		}
		child = edge_get(m->t, node, m->words[i].ptr, m->words[i].len,
		    m->hashes[i]);
		if (child)
			match_at(m, child, i + 1);
	}
}

void topic_trie_match(struct topic_trie *t, struct bytes key,
    void (*fn)(void *value, void *arg), void *arg)
{
	struct bytes words[MAX_WORDS];
	uint64_t hashes[MAX_WORDS];
	struct match_ctx m = { t, words, hashes, { 0 },
	    split_words(key, words), ++t->gen, fn, arg };

	if (m.n < 0)
		return;
	match_at(&m, t->root, 0);
}
