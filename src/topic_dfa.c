/*
 * Topic DFA.  States live in one array and are named by index; each is a
 * sorted set of trie nodes, closed under `#` children (a `#` may match zero
 * words, so reaching a node means reaching its `#` child too).  One step on
 * word w from set S gives: each node's child for w, each node's `*` child,
 * and each `#` node itself (a `#` may swallow w), all closed again.  Sets
 * are interned, so equal sets are one state.
 *
 * Transitions on vocabulary words sit in one open-addressing table keyed by
 * (state, word number), each packed into 8 bytes with its target; the
 * transition on "other" words sits in the state.
 * A word no node has as a child can only go the "other" way, so the tables
 * are bounded by states x vocabulary whatever the keys are.
 *
 * Memory: every allocation is counted against the cap.  When a new state
 * or table does not fit, the current key is matched by the trie and the
 * next match starts over from an empty automaton.  If starting over does
 * not pay (few steps per state made), the automaton sits out a while
 * instead of thrashing.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strmap.h"
#include "topic_dfa.h"
#include "topic_node.h"

#define NONE UINT32_MAX

/* A transition packs state, word number and target into 62 bits. */
#define STATE_BITS 20
#define ID_BITS 22
#define MAX_STATES (1u << STATE_BITS)
#define MAX_ID (1u << ID_BITS)
#define EMPTY_TRANS UINT64_MAX	/* never packed: the top bits stay 0 */

/* Matches to see after a change before building states: a trie that changes
 * all the time would pay for states it never reuses. */
#define DEFAULT_WARMUP 128
#define MIN_BYTES (256u * 1024)
/* Starting over must buy at least this many steps per state or transition
 * made, or the automaton is resting for REST_FACTOR times that many. */
#define PAYOFF_STEPS 16
#define REST_FACTOR 64

struct dstate {
	struct tnode **nodes;		/* sorted; NULL when empty (dead) */
	uint32_t n_nodes;
	uint32_t other;			/* on non-vocabulary words, or NONE */
	uint64_t set_hash;
	/* Whether some node has values, as of values_gen == accept_gen:
	 * values come and go without changing which nodes exist. */
	uint64_t accept_gen;
	bool accepts;
};

struct topic_dfa {
	/* vocabulary: word -> number (as a pointer), refs by number */
	struct strmap *vocab;
	uint32_t *refs;
	uint32_t cap_refs;
	uint32_t *free_ids;
	uint32_t n_free_ids, cap_free_ids;
	uint32_t next_id;		/* numbers start at 1; 0 is "other" */

	struct dstate *states;
	uint32_t n_states, cap_states;
	uint32_t *intern;		/* state index by set hash, NONE empty */
	uint32_t cap_intern;		/* 0 or a power of two */
	uint64_t *trans;		/* state|word|target, or EMPTY_TRANS */
	uint32_t n_trans, cap_trans;	/* 0 or a power of two */
	uint32_t dead;			/* the empty set's state, or NONE */
	uint64_t values_gen;

	struct tnode **scratch;		/* the set being built */
	uint32_t n_scratch, cap_scratch;

	size_t bytes;			/* held by states and tables */
	size_t max_bytes;
	bool fixed_cap;			/* set by topic_dfa_tune */
	bool full;			/* something did not fit: start over */
	uint32_t warmup;
	uint32_t quiet;			/* matches since the trie changed */
	uint64_t resting;		/* matches left to leave to the trie */
	uint64_t steps;			/* taken since starting over */
	uint64_t made;			/* states and transitions made since */
};

struct topic_dfa *topic_dfa_new(void)
{
	struct topic_dfa *d = xcalloc(1, sizeof(*d));

	d->vocab = strmap_new();
	d->next_id = 1;
	d->warmup = DEFAULT_WARMUP;
	d->max_bytes = MIN_BYTES;
	d->dead = NONE;
	return d;
}

/* Drop every state and table; the vocabulary stays. */
static void forget_states(struct topic_dfa *d)
{
	for (uint32_t i = 0; i < d->n_states; i++)
		free(d->states[i].nodes);
	free(d->states);
	free(d->intern);
	free(d->trans);
	d->states = NULL;
	d->intern = NULL;
	d->trans = NULL;
	d->n_states = d->cap_states = d->cap_intern = 0;
	d->n_trans = d->cap_trans = 0;
	d->dead = NONE;
	d->bytes = 0;
	d->full = false;
	d->steps = d->made = 0;
}

void topic_dfa_free(struct topic_dfa *d)
{
	if (d == NULL)
		return;
	forget_states(d);
	strmap_free(d->vocab);
	free(d->refs);
	free(d->free_ids);
	free(d->scratch);
	free(d);
}

/* ---- vocabulary ---------------------------------------------------------- */

void topic_dfa_word_ref(struct topic_dfa *d, struct bytes w, uint64_t h)
{
	uint32_t id = (uint32_t)(uintptr_t)strmap_get_hashed(d->vocab, w, h);

	if (id == 0) {
		id = d->n_free_ids ? d->free_ids[--d->n_free_ids] :
		    d->next_id++;
		if (id >= d->cap_refs) {
			d->cap_refs = d->cap_refs ? d->cap_refs * 2 : 64;
			d->refs = xrealloc(d->refs,
			    d->cap_refs * sizeof(*d->refs));
		}
		d->refs[id] = 0;
		strmap_put(d->vocab, w, (void *)(uintptr_t)id);
	}
	d->refs[id]++;
}

void topic_dfa_word_unref(struct topic_dfa *d, struct bytes w, uint64_t h)
{
	uint32_t id = (uint32_t)(uintptr_t)strmap_get_hashed(d->vocab, w, h);

	if (id == 0)
		fatalx("topic dfa: unref of a word never referenced");
	if (--d->refs[id] > 0)
		return;
	strmap_del(d->vocab, w);
	if (strmap_count(d->vocab) == 0) {
		/* The trie is empty: give the vocabulary's memory back. */
		strmap_free(d->vocab);
		d->vocab = strmap_new();
		free(d->refs);
		free(d->free_ids);
		d->refs = d->free_ids = NULL;
		d->cap_refs = d->n_free_ids = d->cap_free_ids = 0;
		d->next_id = 1;
		return;
	}
	/* Numbers are reused: the trie changed, so no state refers to it. */
	if (d->n_free_ids == d->cap_free_ids) {
		d->cap_free_ids = d->cap_free_ids ? d->cap_free_ids * 2 : 16;
		d->free_ids = xrealloc(d->free_ids,
		    d->cap_free_ids * sizeof(*d->free_ids));
	}
	d->free_ids[d->n_free_ids++] = id;
}

/* ---- states -------------------------------------------------------------- */

void topic_dfa_reset(struct topic_dfa *d, size_t n_nodes)
{
	if (d->n_states)
		forget_states(d);
	d->full = false;
	d->quiet = 0;
	d->resting = 0;
	if (!d->fixed_cap) {
		d->max_bytes = n_nodes * sizeof(struct tnode);
		if (d->max_bytes < MIN_BYTES)
			d->max_bytes = MIN_BYTES;
	}
}

void topic_dfa_values_changed(struct topic_dfa *d)
{
	d->values_gen++;
}

void topic_dfa_tune(struct topic_dfa *d, uint32_t warmup, size_t max_bytes)
{
	topic_dfa_reset(d, 0);
	d->warmup = warmup;
	d->max_bytes = max_bytes;
	d->fixed_cap = true;
}

size_t topic_dfa_bytes(const struct topic_dfa *d)
{
	return d->bytes;
}

/* Account for growing from `from` to `to` bytes; false when over the cap. */
static bool room_for(struct topic_dfa *d, size_t from, size_t to)
{
	if (d->bytes - from + to > d->max_bytes) {
		d->full = true;
		return false;
	}
	d->bytes = d->bytes - from + to;
	return true;
}

static void scratch_push(struct topic_dfa *d, struct tnode *n)
{
	if (d->n_scratch == d->cap_scratch) {
		d->cap_scratch = d->cap_scratch ? d->cap_scratch * 2 : 32;
		d->scratch = xrealloc(d->scratch,
		    d->cap_scratch * sizeof(*d->scratch));
	}
	d->scratch[d->n_scratch++] = n;
}

/* A node and the `#` children below it: `#` matches zero words. */
static void scratch_add(struct topic_dfa *d, struct tnode *n)
{
	for (; n != NULL; n = n->hash)
		scratch_push(d, n);
}

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(struct tnode *const *)a;
	uintptr_t y = (uintptr_t)*(struct tnode *const *)b;

	return x < y ? -1 : x > y;
}

static uint64_t set_hash(struct tnode *const *nodes, uint32_t n)
{
	uint64_t h = n;

	for (uint32_t i = 0; i < n; i++) {
		h = (h ^ (uint64_t)(uintptr_t)nodes[i]) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return h;
}

static bool same_set(const struct dstate *s, struct tnode *const *nodes,
    uint32_t n, uint64_t h)
{
	return s->set_hash == h && s->n_nodes == n &&
	    (n == 0 || memcmp(s->nodes, nodes, n * sizeof(*nodes)) == 0);
}

static void intern_place(struct topic_dfa *d, uint32_t idx)
{
	uint32_t mask = d->cap_intern - 1, i;

	for (i = (uint32_t)d->states[idx].set_hash & mask;
	    d->intern[i] != NONE; i = (i + 1) & mask)
		;
	d->intern[i] = idx;
}

/* Make room for one more state in the array and the intern table. */
static bool grow_states(struct topic_dfa *d)
{
	if (d->n_states == MAX_STATES) {
		d->full = true;
		return false;
	}
	if (d->n_states == d->cap_states) {
		uint32_t cap = d->cap_states ? d->cap_states * 2 : 64;

		if (!room_for(d, d->cap_states * sizeof(struct dstate),
		    cap * sizeof(struct dstate)))
			return false;
		d->states = xrealloc(d->states, cap * sizeof(struct dstate));
		d->cap_states = cap;
	}
	if ((d->n_states + 1) * 2 > d->cap_intern) {
		uint32_t cap = d->cap_intern ? d->cap_intern * 2 : 128;

		if (!room_for(d, d->cap_intern * sizeof(uint32_t),
		    cap * sizeof(uint32_t)))
			return false;
		free(d->intern);
		d->intern = xmalloc(cap * sizeof(uint32_t));
		memset(d->intern, 0xff, cap * sizeof(uint32_t));
		d->cap_intern = cap;
		for (uint32_t i = 0; i < d->n_states; i++)
			intern_place(d, i);
	}
	return true;
}

/* The state for the set in scratch, made if new; NONE when it won't fit. */
static uint32_t intern_scratch(struct topic_dfa *d)
{
	struct tnode **set = d->scratch;
	uint32_t n = 0;
	uint64_t h;
	struct dstate *s;

	if (d->n_scratch > 1)
		qsort(set, d->n_scratch, sizeof(*set), ptr_cmp);
	for (uint32_t i = 0; i < d->n_scratch; i++)
		if (n == 0 || set[n - 1] != set[i])
			set[n++] = set[i];
	h = set_hash(set, n);
	if (d->cap_intern) {
		uint32_t mask = d->cap_intern - 1;

		for (uint32_t i = (uint32_t)h & mask; d->intern[i] != NONE;
		    i = (i + 1) & mask)
			if (same_set(&d->states[d->intern[i]], set, n, h))
				return d->intern[i];
	}
	if (!grow_states(d) || !room_for(d, 0, n * sizeof(*set)))
		return NONE;
	s = &d->states[d->n_states];
	s->nodes = n ? xmalloc(n * sizeof(*set)) : NULL;
	if (n)
		memcpy(s->nodes, set, n * sizeof(*set));
	s->n_nodes = n;
	s->other = NONE;
	s->set_hash = h;
	s->accept_gen = d->values_gen - 1;
	s->accepts = false;
	if (n == 0)
		d->dead = d->n_states;
	intern_place(d, d->n_states);
	d->made++;
	return d->n_states++;
}

/* ---- transitions --------------------------------------------------------- */

/* The (state, word) half of a packed transition. */
static uint64_t trans_key(uint32_t s, uint32_t id)
{
	return (uint64_t)s << ID_BITS | id;
}

static uint32_t trans_slot(uint64_t key, uint32_t cap)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

static uint32_t trans_get(const struct topic_dfa *d, uint32_t s, uint32_t id)
{
	uint64_t key = trans_key(s, id);

	/* Never stored (see trans_put); its key would alias another's. */
	if (d->cap_trans == 0 || id >= MAX_ID)
		return NONE;
	for (uint32_t i = trans_slot(key, d->cap_trans);
	    d->trans[i] != EMPTY_TRANS; i = (i + 1) & (d->cap_trans - 1))
		if (d->trans[i] >> STATE_BITS == key)
			return (uint32_t)(d->trans[i] & (MAX_STATES - 1));
	return NONE;
}

static void trans_place(uint64_t *tab, uint32_t cap, uint64_t t)
{
	uint32_t i;

	for (i = trans_slot(t >> STATE_BITS, cap); tab[i] != EMPTY_TRANS;
	    i = (i + 1) & (cap - 1))
		;
	tab[i] = t;
}

static void trans_put(struct topic_dfa *d, uint32_t s, uint32_t id,
    uint32_t to)
{
	/* Words numbered past what a transition can hold are stepped anew
	 * each time (a vocabulary of millions of words). */
	if (id >= MAX_ID)
		return;
	/* Up to 3/4 full: probes stay short and the table stays small. */
	if ((d->n_trans + 1) * 4 > d->cap_trans * 3) {
		uint32_t cap = d->cap_trans ? d->cap_trans * 2 : 256;
		uint64_t *tab;

		if (!room_for(d, d->cap_trans * sizeof(*tab),
		    cap * sizeof(*tab)))
			return;		/* not cached: made again next time */
		tab = xmalloc(cap * sizeof(*tab));
		memset(tab, 0xff, cap * sizeof(*tab));
		for (uint32_t i = 0; i < d->cap_trans; i++)
			if (d->trans[i] != EMPTY_TRANS)
				trans_place(tab, cap, d->trans[i]);
		free(d->trans);
		d->trans = tab;
		d->cap_trans = cap;
	}
	trans_place(d->trans, d->cap_trans,
	    trans_key(s, id) << STATE_BITS | to);
	d->n_trans++;
	d->made++;
}

/* Work out the step from state s on word w (number id, 0 for "other"). */
static uint32_t step(struct topic_dfa *d, uint32_t s, uint32_t id,
    struct bytes w, uint64_t h)
{
	struct tnode *const *nodes = d->states[s].nodes;
	uint32_t n = d->states[s].n_nodes, to;

	d->n_scratch = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct tnode *node = nodes[i];

		if (id != 0)
			scratch_add(d, tnode_kid(node, w, h));
		scratch_add(d, node->star);
		/* A `#` swallows the word; its own `#` chain is in the set. */
		if (node->is_hash)
			scratch_push(d, node);
	}
	to = intern_scratch(d);
	if (to == NONE)
		return NONE;
	if (id != 0)
		trans_put(d, s, id, to);
	else
		d->states[s].other = to;
	return to;
}

/* Decide whether this key goes through the automaton. */
static bool usable(struct topic_dfa *d, struct tnode *root)
{
	if (d->max_bytes == 0)
		return false;
	if (d->quiet < d->warmup) {
		d->quiet++;
		return false;
	}
	if (d->resting) {
		d->resting--;
		return false;
	}
	if (d->full) {
		/* Starting over pays only if states get reused enough. */
		uint64_t rest = d->steps < PAYOFF_STEPS * d->made ?
		    REST_FACTOR * d->made : 0;

		forget_states(d);
		if (rest) {
			d->resting = rest;
			return false;
		}
	}
	if (d->n_states == 0) {
		d->n_scratch = 0;
		scratch_add(d, root);
		if (intern_scratch(d) != 0)
			return false;
	}
	return true;
}

bool topic_dfa_match(struct topic_dfa *d, struct tnode *root,
    const struct bytes *words, const uint64_t *hashes, int n,
    void (*fn)(void *value, void *arg), void *arg)
{
	struct dstate *st;
	uint32_t s = 0;

	if (!usable(d, root))
		return false;
	for (int i = 0; i < n; i++) {
		uint32_t id, next;

		if (s == d->dead) {
			d->steps += (uint64_t)i;
			return true;	/* no pattern can match */
		}
		id = (uint32_t)(uintptr_t)strmap_get_hashed(d->vocab, words[i],
		    hashes[i]);
		next = id ? trans_get(d, s, id) : d->states[s].other;
		if (next == NONE) {
			next = step(d, s, id, words[i], hashes[i]);
			if (next == NONE)
				return false;
		}
		s = next;
	}
	d->steps += (uint64_t)n;
	st = &d->states[s];
	if (st->accept_gen != d->values_gen) {
		st->accept_gen = d->values_gen;
		st->accepts = false;
		for (uint32_t i = 0; i < st->n_nodes; i++)
			st->accepts |= st->nodes[i]->n_values > 0;
	}
	if (!st->accepts)
		return true;
	for (uint32_t i = 0; i < st->n_nodes; i++) {
		const struct tnode *node = st->nodes[i];

		for (uint32_t v = 0; v < node->n_values; v++)
			fn(node->values[v], arg);
	}
	return true;
}
