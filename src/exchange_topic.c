/*
 * Topic exchange: bindings indexed by a trie over pattern words.
 */
#include "exchange.h"
#include "message.h"
#include "topic_trie.h"

static void *topic_create(struct exchange *x)
{
	return topic_trie_new();
}

static void topic_destroy(void *state)
{
	topic_trie_free(state);
}

static void topic_bind(void *state, struct binding *b)
{
	topic_trie_add(state, (struct bytes){ (const uint8_t *)b->key,
	    b->key_len }, b);
}

static void topic_unbind(void *state, struct binding *b)
{
	topic_trie_remove(state, (struct bytes){ (const uint8_t *)b->key,
	    b->key_len }, b);
}

static void topic_matched(void *value, void *arg)
{
	route_binding(arg, value);
}

static void topic_route(void *state, struct route_result *r)
{
	topic_trie_match(state, r->key, topic_matched, r);
}

const struct exchange_type exchange_topic = {
	.name = "topic",
	.create = topic_create,
	.destroy = topic_destroy,
	.bind = topic_bind,
	.unbind = topic_unbind,
	.route = topic_route,
};
