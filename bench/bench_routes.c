/*
 * bench_routes: see bench_routes.h.
 */
#include "bench_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC_WORDS 10u   /* each of the key's three words: k0 .. k9 */
#define TOPIC_KEYS (TOPIC_WORDS * TOPIC_WORDS * TOPIC_WORDS)

bool routes_kind_parse(const char *name, enum route_kind *kind)
{
    if (name == NULL)
        *kind = ROUTE_QUEUE;
    else if (strcmp(name, "direct") == 0)
        *kind = ROUTE_DIRECT;
    else if (strcmp(name, "fanout") == 0)
        *kind = ROUTE_FANOUT;
    else if (strcmp(name, "topic") == 0)
        *kind = ROUTE_TOPIC;
    else
        return false;
    return true;
}

const char *routes_kind_name(enum route_kind kind)
{
    static const char *const names[] = { "queue", "direct", "fanout", "topic" };
    return names[kind];
}

/* Is every word of the pattern p a '#' (which may all take zero words)? */
static bool all_hash(const char *p)
{
    for (;;) {
        if (p[0] != '#' || (p[1] != '.' && p[1] != '\0'))
            return false;
        if (p[1] == '\0')
            return true;
        p += 2;
    }
}

/* Does the key's word list from w on match the pattern's from p on? */
static bool match_words(const char *p, const char *w)
{
    for (;;) {
        size_t pl = strcspn(p, "."), wl = strcspn(w, ".");
        bool p_last = p[pl] == '\0', w_last = w[wl] == '\0';
        if (pl == 1 && p[0] == '#') {
            if (p_last)
                return true;                 /* # at the end takes the rest */
            const char *rest = p + 2;
            for (const char *t = w;;) {      /* # takes zero or more words */
                if (match_words(rest, t))
                    return true;
                size_t tl = strcspn(t, ".");
                if (t[tl] == '\0')
                    return false;
                t += tl + 1;
            }
        }
        bool same = (pl == 1 && p[0] == '*') || (pl == wl && memcmp(p, w, pl) == 0);
        if (!same)
            return false;
        if (p_last || w_last) {
            /* "a.#" also matches "a": the # takes zero words */
            return p_last ? w_last : all_hash(p + pl + 1);
        }
        p += pl + 1;
        w += wl + 1;
    }
}

bool topic_matches(const char *pattern, const char *key)
{
    if (*pattern == '\0')
        return *key == '\0';
    if (*key == '\0')
        return all_hash(pattern);
    return match_words(pattern, key);
}

/* Binding b's pattern: four shapes, with words spread by a multiplicative
 * hash so the bindings of one queue are not all alike.  Each matches 10
 * of the 1,000 keys, so 100 bindings give ~1 destination per message. */
static char *topic_pattern(unsigned b)
{
    uint32_t h = (uint32_t)(b + 1) * 2654435761u;
    unsigned x = h % 10u, y = (h / 10u) % 10u, z = (h / 100u) % 10u;
    char buf[32];
    switch ((h / 1000u) % 4u) {
    case 0: snprintf(buf, sizeof buf, "k%u.k%u.*", x, y); break;
    case 1: snprintf(buf, sizeof buf, "*.k%u.k%u", y, z); break;
    case 2: snprintf(buf, sizeof buf, "k%u.*.k%u", x, z); break;
    default: snprintf(buf, sizeof buf, "k%u.k%u.#", x, y); break;
    }
    return strdup(buf);
}

static void set_dest(struct routes *r, unsigned key, int queue)
{
    r->dest[(uint64_t)key * r->words + (unsigned)queue / 64u] |=
        (uint64_t)1 << ((unsigned)queue % 64u);
}

bool routes_init(struct routes *r, enum route_kind kind, int queues,
                 char *const *queue_name, unsigned bindings)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->queues = queues;
    r->words = ((unsigned)queues + 63u) / 64u;
    r->keys = kind == ROUTE_TOPIC ? TOPIC_KEYS : kind == ROUTE_FANOUT ? 1u : (unsigned)queues;
    r->key = calloc(r->keys, sizeof *r->key);
    r->dest = calloc((size_t)r->keys * r->words, sizeof *r->dest);
    if (r->key == NULL || r->dest == NULL)
        goto fail;
    for (unsigned k = 0; k < r->keys; k++) {
        char buf[32];
        if (kind == ROUTE_TOPIC)
            snprintf(buf, sizeof buf, "k%u.k%u.k%u", k / 100u, k / 10u % 10u, k % 10u);
        r->key[k] = strdup(kind == ROUTE_TOPIC ? buf
                           : kind == ROUTE_FANOUT ? "" : queue_name[k]);
        if (r->key[k] == NULL)
            goto fail;
    }
    switch (kind) {
    case ROUTE_QUEUE:
    case ROUTE_DIRECT:
        for (int q = 0; q < queues; q++)
            set_dest(r, (unsigned)q, q);
        break;
    case ROUTE_FANOUT:
        for (int q = 0; q < queues; q++)
            set_dest(r, 0, q);
        break;
    case ROUTE_TOPIC:
        if (bindings < (unsigned)queues)
            bindings = (unsigned)queues;
        r->bindings = bindings;
        r->pattern = calloc(bindings, sizeof *r->pattern);
        r->pattern_queue = calloc(bindings, sizeof *r->pattern_queue);
        if (r->pattern == NULL || r->pattern_queue == NULL)
            goto fail;
        for (unsigned b = 0; b < bindings; b++) {
            r->pattern[b] = topic_pattern(b);
            r->pattern_queue[b] = (int)(b % (unsigned)queues);
            if (r->pattern[b] == NULL)
                goto fail;
            for (unsigned k = 0; k < r->keys; k++)
                if (topic_matches(r->pattern[b], r->key[k]))
                    set_dest(r, k, r->pattern_queue[b]);
        }
        break;
    }
    return true;
fail:
    routes_free(r);
    return false;
}

void routes_free(struct routes *r)
{
    for (unsigned k = 0; r->key && k < r->keys; k++)
        free(r->key[k]);
    for (unsigned b = 0; r->pattern && b < r->bindings; b++)
        free(r->pattern[b]);
    free(r->key);
    free(r->dest);
    free(r->pattern);
    free(r->pattern_queue);
    memset(r, 0, sizeof *r);
}

uint64_t routes_expected(const struct routes *r, int producer, uint64_t sent, int queue)
{
    if (r->kind != ROUTE_TOPIC)
        return routes_reaches(r, routes_key_of(r, producer, 1), queue) ? sent : 0;
    /* keys cycle with period r->keys: seq s and s + keys share a key */
    uint64_t n = 0;
    for (uint64_t s = 1; s <= sent && s <= r->keys; s++)
        if (routes_reaches(r, routes_key_of(r, producer, (uint32_t)s), queue))
            n += (sent - s) / r->keys + 1;
    return n;
}
