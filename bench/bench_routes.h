/*
 * bench_routes: warren-bench's own model of where every message it
 * publishes must arrive, so that a broker that routes wrongly is caught
 * (a delivery on a queue the message should not reach is "misrouted"; a
 * queue that should have received it and did not is a loss).
 *
 * The model knows every routing key a producer uses and, for each key,
 * the set of queues it reaches:
 *
 *   ROUTE_QUEUE   the default exchange (or -e EXCHANGE with bindings the
 *                 user made): producer i publishes with the name of queue
 *                 i % n as its routing key; that queue alone.
 *   ROUTE_DIRECT  a direct exchange, queue i bound with its own name;
 *                 producers as above.
 *   ROUTE_FANOUT  a fanout exchange bound to every queue: all of them.
 *   ROUTE_TOPIC   a topic exchange with B wildcard bindings spread over the
 *                 queues ("k3.*.k7", "*.k1.k2", "k5.k0.#" ...); producers
 *                 cycle through 1,000 keys "kA.kB.kC"; which queues a key
 *                 reaches is computed here by matching the patterns, so
 *                 the broker's topic matcher is checked against ours.
 */
#ifndef WARREN_BENCH_ROUTES_H
#define WARREN_BENCH_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

enum route_kind { ROUTE_QUEUE, ROUTE_DIRECT, ROUTE_FANOUT, ROUTE_TOPIC };

struct routes {
    enum route_kind kind;
    int queues;
    unsigned keys;              /* routing keys in use */
    char **key;                 /* key[k] */
    unsigned words;             /* 64-bit words per key in dest */
    uint64_t *dest;             /* keys * words: the queues key k reaches */
    unsigned bindings;          /* topic: patterns, pattern[b] binds pattern_queue[b] */
    char **pattern;
    int *pattern_queue;
};

/* "fanout", "topic", "direct" (or NULL: ROUTE_QUEUE); false if unknown. */
bool routes_kind_parse(const char *name, enum route_kind *kind);
const char *routes_kind_name(enum route_kind kind);

/* Builds the model for queues named queue_name[0..queues-1]; topic
 * bindings is how many patterns to make (at least one per queue). */
bool routes_init(struct routes *r, enum route_kind kind, int queues,
                 char *const *queue_name, unsigned bindings);
void routes_free(struct routes *r);

/* The key producer publishes its seq-th message with. */
static inline unsigned routes_key_of(const struct routes *r, int producer, uint32_t seq)
{
    switch (r->kind) {
    case ROUTE_TOPIC:
        return (unsigned)(((uint64_t)seq + (uint64_t)producer * 37u) % r->keys);
    case ROUTE_FANOUT:
        return 0;
    default:
        return (unsigned)producer % r->keys;
    }
}

static inline bool routes_reaches(const struct routes *r, unsigned key, int queue)
{
    return (r->dest[(uint64_t)key * r->words + (unsigned)queue / 64u] >>
            ((unsigned)queue % 64u)) & 1u;
}

/* How many of producer's messages 1..sent should reach queue. */
uint64_t routes_expected(const struct routes *r, int producer, uint64_t sent, int queue);

/* AMQP topic matching: '*' one word, '#' zero or more words. */
bool topic_matches(const char *pattern, const char *key);

#endif
