/*
 * The topic trie's nodes, shared by the trie (topic_trie.c), which builds
 * them and walks them as a nondeterministic matcher, and the compiled
 * matcher (topic_dfa.c), which turns sets of them into states.  Nothing
 * outside those two files should need this header.
 */
#ifndef WARREN_TOPIC_NODE_H
#define WARREN_TOPIC_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "wire.h"

/* Keys longer than this many words cannot be matched (RabbitMQ keys are
 * shortstrs: at most 255 bytes, so at most 256 words). */
#define TOPIC_MAX_WORDS 256

/* Words up to this long live inside the node: one cache line to check. */
#define TOPIC_INLINE_WORD 24

/* A slot of a node's child table: the hash sits beside the pointer, so a
 * probe that misses never touches the child. */
struct kid {
	uint64_t hash;
	struct tnode *node;		/* NULL: empty slot */
};

/* Hot fields first: a lookup reads the first cache line only. */
struct tnode {
	uint64_t word_hash;		/* this node's word, as its parent's key */
	uint32_t word_len;
	uint32_t n_kids;
	union {
		uint8_t inl[TOPIC_INLINE_WORD];
		uint8_t *ptr;		/* word_len > TOPIC_INLINE_WORD */
	} word;
	struct kid *kids;		/* word children, by word hash */
	uint32_t cap_kids;		/* 0 or a power of two */
	uint32_t n_values;
	struct tnode *star;		/* `*` */
	struct tnode *hash;		/* `#` */
	void **values;
	uint32_t cap_values;
	bool is_hash;			/* this node is some node's `#` child */
	uint64_t reported;		/* gen when values were last reported */
	/* Key positions already expanded during match number visit_gen. */
	uint64_t visit_gen;
	uint64_t visited[(TOPIC_MAX_WORDS + 1 + 63) / 64];
};

static inline const uint8_t *tnode_word(const struct tnode *n)
{
	return n->word_len > TOPIC_INLINE_WORD ? n->word.ptr : n->word.inl;
}

/* The word child of n for w (hash h), or NULL. */
static inline struct tnode *tnode_kid(const struct tnode *n, struct bytes w,
    uint64_t h)
{
	uint32_t mask = n->cap_kids - 1;

	if (n->cap_kids == 0)
		return NULL;
	for (uint32_t i = (uint32_t)h & mask; n->kids[i].node;
	    i = (i + 1) & mask) {
		struct tnode *k = n->kids[i].node;

		if (n->kids[i].hash == h && k->word_len == w.len &&
		    (w.len == 0 || memcmp(tnode_word(k), w.ptr, w.len) == 0))
			return k;
	}
	return NULL;
}

#endif
