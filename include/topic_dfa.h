/*
 * The topic trie's compiled matcher: a deterministic automaton over words,
 * built lazily from the trie the way a regex engine builds a DFA from its
 * NFA.  A state is a set of trie nodes (every node a key prefix can be at
 * once, `*` and `#` included); a transition is one table probe, so
 * matching costs one probe per key word however many patterns overlap.
 *
 * The alphabet is the trie's own vocabulary: every literal word some
 * pattern uses has a number, every other word is "other".  So the
 * automaton's size depends on the patterns, never on how varied the keys
 * are.  States are made on first use and dropped whenever the trie changes;
 * their memory is capped (see topic_dfa_match), and when the cap cannot
 * hold the states keys need, matching goes back to walking the trie.
 */
#ifndef WARREN_TOPIC_DFA_H
#define WARREN_TOPIC_DFA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct topic_dfa;
struct tnode;

struct topic_dfa *topic_dfa_new(void);
void topic_dfa_free(struct topic_dfa *d);

/* The trie made / dropped a node for literal word w (hash h). */
void topic_dfa_word_ref(struct topic_dfa *d, struct bytes w, uint64_t h);
void topic_dfa_word_unref(struct topic_dfa *d, struct bytes w, uint64_t h);

/*
 * The trie changed and now has n_nodes nodes: forget every state.  The
 * memory cap follows the trie's size (the automaton may use as much as the
 * trie itself, at least 256 KiB) unless topic_dfa_tune() fixed it.
 */
void topic_dfa_reset(struct topic_dfa *d, size_t n_nodes);

/* A pattern's value came or went on a node that stays. */
void topic_dfa_values_changed(struct topic_dfa *d);

/*
 * Match the key's words (with their strmap hashes) from root, calling fn
 * for the values of each matching pattern once.  Returns false, having
 * called nothing, when the automaton is not to be used for this key (the
 * trie changed too recently, or the states did not fit the cap): the
 * caller then walks the trie.
 */
bool topic_dfa_match(struct topic_dfa *d, struct tnode *root,
    const struct bytes *words, const uint64_t *hashes, int n,
    void (*fn)(void *value, void *arg), void *arg);

/*
 * For tests and benchmarks: use the automaton only after `warmup` matches
 * with no change to the trie, within max_bytes (0: never use it).
 */
void topic_dfa_tune(struct topic_dfa *d, uint32_t warmup, size_t max_bytes);

/* Memory the automaton holds now, in bytes. */
size_t topic_dfa_bytes(const struct topic_dfa *d);

#endif
