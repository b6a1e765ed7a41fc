/*
 * The topic exchange's matcher: a trie over the dot-separated words of
 * binding patterns, where `*` matches exactly one word and `#` zero or more.
 * Matching costs grow with the routing key's length and the patterns that
 * share its prefixes, not with the number of bindings.
 *
 * Words follow RabbitMQ: split on '.', empty words count ("a..b" has three
 * words), and the empty string has no words at all.
 */
#ifndef WARREN_TOPIC_TRIE_H
#define WARREN_TOPIC_TRIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct topic_trie;

struct topic_trie *topic_trie_new(void);
/* Free the trie; the values are the caller's. */
void topic_trie_free(struct topic_trie *t);
/* Attach value to pattern (a pattern may carry many values). */
void topic_trie_add(struct topic_trie *t, struct bytes pattern, void *value);
/* Detach one value from pattern; false when it was not there. */
bool topic_trie_remove(struct topic_trie *t, struct bytes pattern,
    void *value);
/*
 * Call fn for each value whose pattern matches key.  A value is reported
 * once per matching pattern it is attached to, never twice for one pattern
 * however many ways the pattern matches.
 */
void topic_trie_match(struct topic_trie *t, struct bytes key,
    void (*fn)(void *value, void *arg), void *arg);

/*
 * For tests and benchmarks: use the compiled matcher (topic_dfa.h) only
 * after `warmup` matches with no change to the trie, within dfa_max_bytes
 * (0: always walk the trie).
 */
void topic_trie_tune(struct topic_trie *t, uint32_t warmup,
    size_t dfa_max_bytes);
/* Memory the compiled matcher holds now, in bytes. */
size_t topic_trie_dfa_bytes(const struct topic_trie *t);

#endif
