/*
 * A hash map from byte-string keys to pointers.  Keys are copied; values are
 * the caller's.  The hash is seeded at random so a client choosing queue
 * names cannot force collisions.
 */
#ifndef WARREN_STRMAP_H
#define WARREN_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct strmap;

struct strmap *strmap_new(void);
/* Frees the map and its keys, not the values. */
void strmap_free(struct strmap *m);
void *strmap_get(const struct strmap *m, struct bytes key);
/* The hash strmap uses (the same for every map), for repeated lookups. */
uint64_t strmap_hash(struct bytes key);
void *strmap_get_hashed(const struct strmap *m, struct bytes key, uint64_t h);
/* Insert or replace; returns the previous value or NULL. */
void *strmap_put(struct strmap *m, struct bytes key, void *value);
/* Remove; returns the removed value or NULL. */
void *strmap_del(struct strmap *m, struct bytes key);
size_t strmap_count(const struct strmap *m);

/* Iterate: for (size_t it = 0; strmap_next(m, &it, &k, &v); ) */
int strmap_next(const struct strmap *m, size_t *it, struct bytes *key,
    void **value);

/* An entry, as strmap_sorted lists them. */
struct strmap_entry {
	struct bytes key;
	void *value;
};

/*
 * Every entry, ordered by key (bytewise, shorter first on a tie), so the
 * same contents always list the same way; the array is the caller's.
 */
struct strmap_entry *strmap_sorted(const struct strmap *m, size_t *n);

#endif
