/*
 * Server-side offset tracking for a stream queue: named consumers (their
 * consumer tag) have the broker remember the offset after the last
 * message they acked, so they resume there after a reconnect or a
 * restart (Kafka's committed offsets; LavinMQ's automatic offset
 * tracking over AMQP).
 *
 * The offsets of one stream are kept in two files in its directory,
 * offsets.0 and offsets.1, written alternately and whole, each one record
 * (the store's framing, with its CRC) holding a generation number and
 * every tag's offset.  A crash in the middle of a write damages only the
 * file being written; the other still holds the previous generation.
 * Writes go through the store thread with the store's batch, so a commit
 * is as durable as the publishes around it.
 */
#ifndef WARREN_STREAM_OFFSETS_H
#define WARREN_STREAM_OFFSETS_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

struct store;
struct stream_offsets;

/* Open (reading what is there) the offsets kept in dir; never fails: a
 * file that cannot be read is logged and counts as empty. */
struct stream_offsets *stream_offsets_open(struct store *store,
    const char *dir);
/* Write what changed (when store is not NULL) and free. */
void stream_offsets_close(struct stream_offsets *so, struct store *store);

/* The stored offset of tag; false when tag has none. */
bool stream_offsets_get(const struct stream_offsets *so, struct bytes tag,
    uint64_t *offset);
/* Tag has processed everything before next: remember it (only forward). */
void stream_offsets_commit(struct stream_offsets *so, struct bytes tag,
    uint64_t next);
/* Call fn for every tag and its offset. */
void stream_offsets_each(const struct stream_offsets *so,
    void (*fn)(void *arg, struct bytes tag, uint64_t offset), void *arg);

#endif
