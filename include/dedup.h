/*
 * Message deduplication, LavinMQ's arguments on queues and exchanges:
 * x-message-deduplication turns it on; a message whose key was seen among
 * the last x-cache-size keys (within x-cache-ttl ms, or the message's own
 * x-cache-ttl header, of being first seen) is a duplicate: dropped, and
 * still confirmed, so a producer that publishes again after a lost
 * confirm does not make a second copy.
 *
 * The key is the header named by x-deduplication-header when the argument
 * is given; otherwise the message-id property, or else (as LavinMQ's
 * default) the header "x-deduplication-header".  A message without a key
 * is never a duplicate.  Keys are strings or integers (as text); a key
 * over 43 bytes is kept as its SHA-256 digest.
 *
 * Memory: a ring of x-cache-size 64-byte slots (the key is in its slot)
 * and a hash index of 8-byte entries, four times that count rounded up to
 * a power of two: 96 to 128 bytes per key of the cache's size, taken from
 * the system as keys arrive; the oldest key leaves first.
 * A durable queue's or exchange's cache is kept on disk too: a file of
 * x-cache-size fixed slots (DEDUP_SLOT_SIZE bytes each) written with the
 * message store's batches, before the publish that brought a key is
 * confirmed, so the cache survives restarts and crashes of warrend.  The
 * file is synced at most every DEDUP_SYNC_INTERVAL_MS (a second sync per
 * batch would halve a persistent publisher's rate), so a power failure
 * can forget the keys of that last interval.
 */
#ifndef WARREN_DEDUP_H
#define WARREN_DEDUP_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

struct amqp_error;
struct field_table;
struct message;
struct store;

#define DEDUP_DEFAULT_CACHE_SIZE 128
#define DEDUP_MAX_CACHE_SIZE 10000000
#define DEDUP_KEY_MAX 64
#define DEDUP_SLOT_SIZE (8 + 8 + 2 + DEDUP_KEY_MAX)
#define DEDUP_SYNC_INTERVAL_MS 1000

struct dedup_args {
	bool on;			/* x-message-deduplication */
	int64_t cache_size;		/* x-cache-size */
	int64_t cache_ttl;		/* x-cache-ttl, ms; -1: none */
	char *header;			/* x-deduplication-header, or NULL */
};

/*
 * Read the dedup arguments of table t (NULL: none) for a `what` ("queue",
 * "exchange") named name in vhost: 0, or 406 PRECONDITION_FAILED naming the
 * argument.
 */
int dedup_args_parse(const struct field_table *t, const char *what,
    const char *name, const char *vhost, struct dedup_args *out,
    struct amqp_error *err);
void dedup_args_free(struct dedup_args *a);

struct dedup_cache;

/*
 * A cache with args (copied).  With a store and a path, it is kept in
 * that file: loaded from it when `restore` (a restart), else started
 * empty.  NULL path: in memory only.  A file that cannot be used is
 * logged and the cache kept in memory.
 */
struct dedup_cache *dedup_new(const struct dedup_args *args,
    struct store *store, const char *path, bool restore);
/* Free; with `remove`, delete its file (its owner was deleted). */
void dedup_free(struct dedup_cache *d, bool remove);

/*
 * Is msg a duplicate?  If not, its key (if any) is remembered; *ticket
 * (if not NULL) rises to the store batch that keeps it.
 */
bool dedup_seen(struct dedup_cache *d, const struct message *msg,
    uint64_t *ticket);

/*
 * A hint, called as a message's content header arrives on a channel
 * whose publishes meet a cache: start loading the index entry its key
 * needs in the cache that looked at the last message (in a large cache
 * that entry is a cache miss, which then overlaps the body's arrival and
 * routing).  Nothing when there is none.  Its reading of the key is kept
 * for that cache's dedup_seen of msg, between dedup_publish_begin(msg)
 * and dedup_publish_end.
 */
void dedup_prefetch(const struct message *msg);
/* A content header without dedup_prefetch: forget the last reading. */
void dedup_prefetch_none(void);
void dedup_publish_begin(const struct message *msg);
void dedup_publish_end(void);
/* How many messages caches have looked at: a channel compares it around
 * a publish to learn whether its publishes meet a cache. */
uint64_t dedup_lookups(void);

/* Keys held now, and duplicates dropped so far. */
uint64_t dedup_count(const struct dedup_cache *d);
uint64_t dedup_dropped(const struct dedup_cache *d);

/* The file for a durable owner: data_dir/dedup/<hex of its identity>. */
void dedup_path(const char *data_dir, const char *kind, const char *vhost,
    const char *name, char *out, size_t len);

#endif
