/*
 * Stored consumer offsets of a stream queue (see stream_offsets.h).
 *
 * A file's record body: u8 'O', u64 generation, u32 count, then per tag:
 * u8 length, tag, u64 offset (little-endian).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_record.h"
#include "stream_offsets.h"
#include "strmap.h"

#define OFFSETS_TYPE 'O'

struct stream_offsets {
	struct strmap *tags;		/* tag -> uint64_t * */
	int fd[2];			/* offsets.0, offsets.1 */
	uint64_t generation;		/* of the newest file written */
	bool dirty;
	struct store_flusher flusher;
	struct store *store;
};

/* The generation and entries of one file, into so (when newer). */
static void load_file(struct stream_offsets *so, int fd, const char *path)
{
	struct stat st;
	uint8_t *buf;
	const uint8_t *body, *p, *end;
	size_t rec_size;
	uint32_t body_len, n;
	uint64_t gen;

	if (fstat(fd, &st) != 0 || st.st_size == 0)
		return;
	buf = xmalloc((size_t)st.st_size);
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size ||
	    store_record_read(buf, (size_t)st.st_size, &rec_size, &body,
	    &body_len) != STORE_SCAN_OK || body_len < 13 ||
	    body[0] != OFFSETS_TYPE) {
		log_warning("%s: damaged; using the other copy", path);
		free(buf);
		return;
	}
	gen = le64_get(body + 1);
	n = le32_get(body + 9);
	if (gen <= so->generation) {
		free(buf);
		return;
	}
	so->generation = gen;
	for (size_t it = 0; ; ) {
		struct bytes k;
		void *v;

		if (!strmap_next(so->tags, &it, &k, &v))
			break;
		free(v);
	}
	strmap_free(so->tags);
	so->tags = strmap_new();
	p = body + 13;
	end = body + body_len;
	for (uint32_t i = 0; i < n && p < end && (size_t)(end - p) >= 1u +
	    p[0] + 8; i++) {
		uint64_t *off = xmalloc(sizeof(*off));

		*off = le64_get(p + 1 + p[0]);
		free(strmap_put(so->tags, (struct bytes){ p + 1, p[0] }, off));
		p += 1 + p[0] + 8;
	}
	free(buf);
}

/* Everything, as one record, into the older file. */
static void write_out(void *arg)
{
	struct stream_offsets *so = arg;
	size_t body = 13, len;
	uint8_t *buf, *p;
	struct iovec iov;
	struct bytes k;
	void *v;
	int fd;

	if (!so->dirty || so->store == NULL)
		return;
	for (size_t it = 0; strmap_next(so->tags, &it, &k, &v); )
		body += 1 + k.len + 8;
	len = STORE_RECORD_HEADER_SIZE + body;
	buf = xmalloc(len);
	p = buf + STORE_RECORD_HEADER_SIZE;
	p[0] = OFFSETS_TYPE;
	le64_put(p + 1, so->generation + 1);
	le32_put(p + 9, (uint32_t)strmap_count(so->tags));
	p += 13;
	for (size_t it = 0; strmap_next(so->tags, &it, &k, &v); ) {
		*p = (uint8_t)k.len;
		memcpy(p + 1, k.ptr, k.len);
		le64_put(p + 1 + k.len, *(uint64_t *)v);
		p += 1 + k.len + 8;
	}
	iov.iov_base = buf + STORE_RECORD_HEADER_SIZE;
	iov.iov_len = body;
	store_record_header(buf, &iov, 1);
	fd = so->fd[(so->generation + 1) % 2];
	if (fd < 0 || !store_write_file(so->store, fd, 0, buf, len, len)) {
		log_error("stream offsets: cannot write: %s", strerror(errno));
		free(buf);
		return;
	}
	so->generation++;
	so->dirty = false;
}

struct stream_offsets *stream_offsets_open(struct store *store,
    const char *dir)
{
	struct stream_offsets *so = xcalloc(1, sizeof(*so));
	char path[4096];

	so->tags = strmap_new();
	so->store = store;
	so->flusher.fn = write_out;
	so->flusher.arg = so;
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/offsets.%d", dir, i);
		so->fd[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
		if (so->fd[i] < 0)
			log_error("%s: %s", path, strerror(errno));
		else
			load_file(so, so->fd[i], path);
	}
	return so;
}

void stream_offsets_close(struct stream_offsets *so, struct store *store)
{
	struct bytes k;
	void *v;

	so->store = store;
	if (store) {
		write_out(so);
		store_cancel_flush(store, &so->flusher);
	}
	for (size_t it = 0; strmap_next(so->tags, &it, &k, &v); )
		free(v);
	strmap_free(so->tags);
	for (int i = 0; i < 2; i++)
		if (so->fd[i] >= 0)
			close(so->fd[i]);
	free(so);
}

bool stream_offsets_get(const struct stream_offsets *so, struct bytes tag,
    uint64_t *offset)
{
	const uint64_t *v = strmap_get(so->tags, tag);

	if (v)
		*offset = *v;
	return v != NULL;
}

void stream_offsets_commit(struct stream_offsets *so, struct bytes tag,
    uint64_t next)
{
	uint64_t *v = strmap_get(so->tags, tag);

	if (tag.len == 0 || tag.len > 255 || (v && *v >= next))
		return;
	if (v == NULL) {
		v = xmalloc(sizeof(*v));
		strmap_put(so->tags, tag, v);
	}
	*v = next;
	so->dirty = true;
	if (so->store)
		store_want_flush(so->store, &so->flusher);
}

void stream_offsets_each(const struct stream_offsets *so,
    void (*fn)(void *arg, struct bytes tag, uint64_t offset), void *arg)
{
	struct bytes k;
	void *v;

	for (size_t it = 0; strmap_next(so->tags, &it, &k, &v); )
		fn(arg, k, *(uint64_t *)v);
}
