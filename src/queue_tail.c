/*
 * A queue's paged-out entries (see queue_tail.h).  In order, the entries
 * are: those read from the file and not yet taken (rbuf), those in the
 * file not yet read, and those not yet written (wbuf).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "queue_tail.h"
#include "wire.h"

/* Entries per read, and per write once that many wait. */
#define BLOCK 256
/* An entry in the file, little-endian, zero-padded. */
#define ENTRY_SIZE 64

struct queue_tail {
	char *path;
	uint64_t count;			/* all entries */
	uint64_t file_entries;		/* written to the file */
	uint64_t read_at;		/* the next one to read from it */
	struct tail_entry rbuf[BLOCK];
	uint32_t rpos, rlen;
	struct tail_entry *wbuf;
	size_t whead, wlen, wcap;
	bool write_failing;		/* logged once per run of failures */
};

struct queue_tail *tail_new(const char *path)
{
	struct queue_tail *t = xcalloc(1, sizeof(*t));

	t->path = xstrdup(path);
	return t;
}

void tail_free(struct queue_tail *t)
{
	if (t == NULL)
		return;
	if (t->file_entries && unlink(t->path) != 0 && errno != ENOENT)
		log_warning("%s: cannot delete: %s", t->path, strerror(errno));
	free(t->wbuf);
	free(t->path);
	free(t);
}

uint64_t tail_count(const struct queue_tail *t)
{
	return t->count;
}

static void encode(uint8_t *p, const struct tail_entry *e)
{
	memset(p, 0, ENTRY_SIZE);
	le64_put(p, e->msg.id);
	le64_put(p + 8, e->msg.ticket);
	le32_put(p + 16, e->msg.seg);
	le32_put(p + 20, e->msg.off);
	le32_put(p + 24, e->msg.len);
	le64_put(p + 28, e->seq);
	le64_put(p + 36, e->expires_at);
	le32_put(p + 44, e->enq_seg);
	le32_put(p + 48, e->body_len);
	p[52] = e->redelivered;
	p[54] = (uint8_t)e->returns;
	p[55] = (uint8_t)(e->returns >> 8);
	le32_put(p + 56, e->enqueued_at);
	le32_put(p + 60, e->ret_seg);
}

static void decode(const uint8_t *p, struct tail_entry *e)
{
	e->msg.id = le64_get(p);
	e->msg.ticket = le64_get(p + 8);
	e->msg.seg = le32_get(p + 16);
	e->msg.off = le32_get(p + 20);
	e->msg.len = le32_get(p + 24);
	e->seq = le64_get(p + 28);
	e->expires_at = le64_get(p + 36);
	e->enq_seg = le32_get(p + 44);
	e->body_len = le32_get(p + 48);
	e->redelivered = p[52] != 0;
	e->returns = (uint16_t)(p[54] | p[55] << 8);
	e->enqueued_at = le32_get(p + 56);
	e->ret_seg = le32_get(p + 60);
}

/* Write the unwritten entries to the file; on failure they stay here. */
static void flush(struct queue_tail *t)
{
	uint8_t block[BLOCK * ENTRY_SIZE];
	int fd = open(t->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	while (fd >= 0 && t->whead < t->wlen) {
		size_t n = t->wlen - t->whead, bytes;

		if (n > BLOCK)
			n = BLOCK;
		for (size_t i = 0; i < n; i++)
			encode(block + i * ENTRY_SIZE, &t->wbuf[t->whead + i]);
		bytes = n * ENTRY_SIZE;
		if (pwrite(fd, block, bytes, (off_t)(t->file_entries *
		    ENTRY_SIZE)) != (ssize_t)bytes)
			break;
		t->file_entries += n;
		t->whead += n;
	}
	if (t->whead < t->wlen) {
		/* A short write left nothing we count on: the next try
		 * writes the same place again. */
		if (!t->write_failing)
			log_warning("%s: cannot write: %s; paged-out entries "
			    "stay in memory", t->path, strerror(errno));
		t->write_failing = true;
	} else {
		t->write_failing = false;
		t->whead = t->wlen = 0;
	}
	if (fd >= 0)
		close(fd);
}

void tail_push(struct queue_tail *t, const struct tail_entry *e)
{
	if (t->wlen == t->wcap) {
		/* Move what was taken from the front out of the way first. */
		if (t->whead) {
			memmove(t->wbuf, t->wbuf + t->whead,
			    (t->wlen - t->whead) * sizeof(*t->wbuf));
			t->wlen -= t->whead;
			t->whead = 0;
		}
		if (t->wlen == t->wcap) {
			t->wcap = t->wcap ? 2 * t->wcap : BLOCK;
			t->wbuf = xrealloc(t->wbuf, t->wcap * sizeof(*t->wbuf));
		}
	}
	t->wbuf[t->wlen++] = *e;
	t->count++;
	if (t->wlen - t->whead >= BLOCK)
		flush(t);
}

/* Read the next block of the file into rbuf; false if it cannot be read. */
static bool read_block(struct queue_tail *t)
{
	uint8_t block[BLOCK * ENTRY_SIZE];
	uint64_t n = t->file_entries - t->read_at;
	ssize_t got = -1;
	int fd;

	if (n > BLOCK)
		n = BLOCK;
	if ((fd = open(t->path, O_RDONLY | O_CLOEXEC)) >= 0) {
		got = pread(fd, block, n * ENTRY_SIZE,
		    (off_t)(t->read_at * ENTRY_SIZE));
		close(fd);
	}
	if (got != (ssize_t)(n * ENTRY_SIZE)) {
		log_error("%s: cannot read paged-out entries: %s", t->path,
		    got < 0 ? strerror(errno) : "short read");
		return false;
	}
	for (uint64_t i = 0; i < n; i++)
		decode(block + i * ENTRY_SIZE, &t->rbuf[i]);
	t->rpos = 0;
	t->rlen = (uint32_t)n;
	t->read_at += n;
	return true;
}

/* The oldest entry, in rbuf or wbuf; NULL when there is none. */
static struct tail_entry *front(struct queue_tail *t)
{
	while (t->rpos == t->rlen && t->read_at < t->file_entries) {
		if (read_block(t))
			continue;
		/* Unreadable (EIO): those entries are lost, say so above. */
		t->count -= t->file_entries - t->read_at;
		t->read_at = t->file_entries;
	}
	if (t->rpos < t->rlen)
		return &t->rbuf[t->rpos];
	if (t->whead < t->wlen)
		return &t->wbuf[t->whead];
	return NULL;
}

size_t tail_get(struct queue_tail *t, uint64_t from, struct tail_entry *out,
    size_t n)
{
	uint64_t in_rbuf = t->rlen - t->rpos;
	uint64_t in_file = t->file_entries - t->read_at;
	uint64_t in_wbuf = t->wlen - t->whead;
	size_t got = 0;

	for (; got < n && from < in_rbuf; got++, from++)
		out[got] = t->rbuf[t->rpos + from];
	if (got < n && from < in_rbuf + in_file) {
		uint64_t first = from - in_rbuf, k = in_file - first;
		uint8_t *block;
		ssize_t r = -1;
		int fd;

		if (k > n - got)
			k = n - got;
		block = xmalloc(k * ENTRY_SIZE);
		if ((fd = open(t->path, O_RDONLY | O_CLOEXEC)) >= 0) {
			r = pread(fd, block, k * ENTRY_SIZE, (off_t)((t->read_at +
			    first) * ENTRY_SIZE));
			close(fd);
		}
		if (r != (ssize_t)(k * ENTRY_SIZE)) {
			free(block);
			return got;
		}
		for (uint64_t i = 0; i < k; i++)
			decode(block + i * ENTRY_SIZE, &out[got++]);
		free(block);
		from += k;
	}
	for (; got < n && from < in_rbuf + in_file + in_wbuf; got++, from++)
		out[got] = t->wbuf[t->whead + (from - in_rbuf - in_file)];
	return got;
}

bool tail_peek(struct queue_tail *t, struct tail_entry *out)
{
	struct tail_entry *e = front(t);

	if (e == NULL)
		return false;
	*out = *e;
	return true;
}

bool tail_pop(struct queue_tail *t, struct tail_entry *out)
{
	if (!tail_peek(t, out))
		return false;
	if (t->rpos < t->rlen)
		t->rpos++;
	else
		t->whead++;
	if (--t->count == 0) {
		/* Empty: start the file over. */
		if (t->file_entries && unlink(t->path) != 0 && errno != ENOENT)
			log_warning("%s: cannot delete: %s", t->path,
			    strerror(errno));
		t->file_entries = t->read_at = 0;
		t->rpos = t->rlen = 0;
		t->whead = t->wlen = 0;
	}
	return true;
}
