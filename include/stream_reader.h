/*
 * Reads of stream segments off the event loop: a thread of its own does
 * the pread()s, so a consumer replaying old data from a cold disk waits
 * for the disk, not the publishers and the other consumers (the loop
 * never blocks on a stream read).  One per broker, made on first use.
 *
 * Jobs are submitted and completed on the loop: the thread reads, then
 * wakes the loop through a pipe, where each job's done callback runs
 * (unless the job was cancelled).  The reader frees every job.
 */
#ifndef WARREN_STREAM_READER_H
#define WARREN_STREAM_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct stream_reader;

struct stream_read {
	int fd;				/* a duplicate, closed with the job */
	uint64_t off;
	size_t len;
	uint8_t *buf;			/* len bytes */
	ssize_t got;			/* what pread returned */
	int err;			/* its errno when it failed */
	bool cancelled;			/* loop side: done is not called */
	void (*done)(void *arg, struct stream_read *job);
	void *arg;
	struct stream_read *next;
};

struct stream_reader *stream_reader_new(struct event_base *base);
/* Stop the thread and free every job, calling no callback. */
void stream_reader_free(struct stream_reader *r);
/*
 * Read len bytes at off of fd (duplicated here) and call done(arg, job)
 * on the loop; NULL (nothing submitted) if fd cannot be duplicated.
 */
struct stream_read *stream_reader_submit(struct stream_reader *r, int fd,
    uint64_t off, size_t len, void (*done)(void *, struct stream_read *),
    void *arg);

#endif
