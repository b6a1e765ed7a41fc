/*
 * The log of one stream queue: an append-only sequence of messages, each
 * with an offset (0, 1, 2, ...), kept in segment files of its own under
 * <data_dir>/streams/<queue id>/ and never changed by consuming.
 *
 * Messages appended in one loop turn form a chunk: one record (the
 * store's framing, with its CRC-32C) holding their offsets' range, the
 * wall-clock time, a Bloom filter of their x-stream-filter-value headers
 * and the messages as received.  The store thread writes and syncs the
 * chunks with the rest of the store's batch, so one ticket covers a
 * publish whether it went to classic queues, streams or both.  Segment
 * files are named by their first offset and rolled at the segment size;
 * retention (bytes, age) deletes whole segments, oldest first, never the
 * one being written.
 *
 * Recent chunks stay in memory (those not yet on disk, and a few more),
 * so readers at the tail never touch the disk; older chunks are read back
 * into a reader's cursor one chunk at a time.
 */
#ifndef WARREN_STREAM_LOG_H
#define WARREN_STREAM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct message;
struct store;
struct stream_log;
struct stream_reader;

struct stream_log_options {
	uint64_t max_segment_size;	/* bytes per segment file */
	int64_t max_bytes;		/* retention; -1: none */
	int64_t max_age_ms;		/* retention; -1: none */
};

/* Chunks read back from disk, decoded: offsets first .. first+count-1. */
struct stream_chunks {
	uint64_t first;
	uint32_t count;
	struct message **msgs;		/* count messages (references; NULL:
					 * damaged on disk) */
	uint8_t **filters;		/* their filter values (u8 length +
					 * bytes), or NULL */
};

/*
 * What a reader keeps of the log on disk: the chunks it is reading, and
 * the ones after them, read ahead by the stream reader thread while it
 * reads these, so a replay does not stop at every read.  When a read
 * lands, wake(wake_arg) is called.
 */
struct stream_cursor {
	struct stream_chunks now;
	struct stream_chunks ahead;	/* valid when ahead_ready */
	bool ahead_ready;
	struct stream_read *pending;	/* filling ahead */
	uint64_t range_first;		/* what pending reads */
	uint32_t range_count;
	void (*wake)(void *arg);
	void *wake_arg;
};

/* A consumer's x-stream-filter and x-stream-match-unfiltered. */
struct stream_filter {
	struct bytes *values;
	uint32_t n;
	bool match_unfiltered;
};
/* Whether a message with filter value `value` (len 0: none) matches. */
bool stream_filter_matches(const struct stream_filter *f, struct bytes value);

/*
 * Open (creating) the log in dir, reading what is there: chunks are
 * checked and a torn or damaged tail is cut off, logged.  NULL with a
 * message in err when dir cannot be used.
 */
struct stream_log *stream_log_open(struct store *store,
    struct stream_reader *reader, const char *dir,
    const struct stream_log_options *opt, char *err, size_t errlen);
/*
 * Hand what is pending to store and free (the files stay).  store is NULL
 * when the broker is shutting down: it has already taken the pending
 * chunk (the store runs its flushers before it closes).
 */
void stream_log_close(struct stream_log *l, struct store *store);
/* The stream is deleted: free, and remove its files and directory. */
void stream_log_remove(struct stream_log *l, struct store *store);

/* The offset the next message appended will get. */
uint64_t stream_log_next(const struct stream_log *l);
/* The oldest offset still kept (== next when empty). */
uint64_t stream_log_first(const struct stream_log *l);
/*
 * Append msg (already carrying its x-stream-offset header: see
 * stream_log_next), taking a reference; filter is its
 * x-stream-filter-value (len 0: none).  Returns the store ticket that
 * makes it durable.
 */
uint64_t stream_log_append(struct stream_log *l, struct message *msg,
    const uint8_t *filter, size_t filter_len);

/* The first offset of the newest chunk (RabbitMQ's "last"). */
uint64_t stream_log_last_chunk(const struct stream_log *l);
/* The first offset of the first chunk written at or after wall_ms. */
uint64_t stream_log_at_time(const struct stream_log *l, int64_t wall_ms);
/* The same for the last ms milliseconds (an interval such as 30m). */
uint64_t stream_log_since(const struct stream_log *l, int64_t ms);

enum stream_read_result {
	STREAM_READ_OK,			/* *msg (a new reference) and *filter */
	STREAM_READ_WAIT,		/* on disk: being read, cur->wake later */
	STREAM_READ_SKIP,		/* damaged on disk (logged): go past it */
	STREAM_READ_END,		/* not appended yet, or dropped */
};
/*
 * The message at offset and its filter value (valid until the next
 * read).  Recent chunks are in memory; older ones are read into cur by
 * the stream reader thread, up to 256 KB of consecutive chunks at a
 * time, and the caller is told to wait.
 */
enum stream_read_result stream_log_read(struct stream_log *l,
    struct stream_cursor *cur, uint64_t offset, struct message **msg,
    struct bytes *filter);
/*
 * The first offset >= offset in a chunk whose Bloom filter says it may
 * hold a message f matches (stream_log_next when none): whole chunks
 * that cannot are skipped without being read.
 */
uint64_t stream_log_skip(const struct stream_log *l, uint64_t offset,
    const struct stream_filter *f);
void stream_cursor_clear(struct stream_cursor *cur);

/* Drop whole segments past the retention limits. */
void stream_log_retain(struct stream_log *l);

struct stream_log_stats {
	uint64_t messages;		/* kept: next - first */
	uint64_t bytes;			/* in its segment files */
	uint64_t segments;
	uint64_t memory;		/* bytes of the chunks kept in memory */
};
void stream_log_stats(const struct stream_log *l, struct stream_log_stats *out);

#endif
