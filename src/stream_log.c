/*
 * A stream queue's log: chunks of messages in segment files of its own,
 * written through the store thread (see stream_log.h).
 *
 * A chunk record's body (after the store's length and CRC):
 *	u8  'C'
 *	u64 first offset, u32 count, i64 wall-clock ms, 16 bytes of Bloom
 *	    filter over the messages' x-stream-filter-value (zero: none)
 *	then per message: u32 entry length, u8 exchange length, exchange,
 *	    u8 routing key length, routing key, u8 filter value length,
 *	    filter value, u32 content header length, content header (as
 *	    received, x-stream-offset included), body
 * All integers little-endian, like the store's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "message.h"
#include "properties.h"
#include "store.h"
#include "store_record.h"
#include "stable_hash.h"
#include "store_segment.h"
#include "stream_log.h"
#include "stream_reader.h"
#include "wire.h"

#define CHUNK_TYPE 'C'
#define BLOOM_BYTES 16
#define CHUNK_HEADER (1 + 8 + 4 + 8 + BLOOM_BYTES)
/* Bytes of consecutive chunks a reader reads at a time. */
#define READ_AHEAD (256u << 10)
/* Chunks already on disk that stay in memory for readers at the tail. */
#define HOT_BYTES (4u << 20)
/* A chunk being filled is handed over early past this size. */
#define CHUNK_MAX (1u << 20)

struct segment {
	uint64_t number;		/* its first offset: the file's name */
	int fd;
	uint64_t size;			/* written or handed to the store */
	int64_t last_ts;		/* its newest chunk's time */
};

/*
 * A run of chunks that follow each other in a segment file, up to
 * RUN_MAX bytes and within one second: one index entry for many small
 * chunks keeps the index around a byte per message under load.
 */
struct chunk_ix {
	uint64_t first;
	uint32_t count;
	uint32_t len;			/* the records, headers included */
	uint64_t pos;			/* where the first starts in its segment */
	uint64_t seg;			/* its segment's number */
	int64_t ts, ts_last;		/* the first and the last chunk's time */
	uint8_t bloom[BLOOM_BYTES];	/* the chunks' filters, or'ed */
};
#define RUN_MAX (64u << 10)

/* A chunk in memory: the one being filled, and recent ones. */
struct hot_chunk {
	uint64_t first;
	uint32_t count, cap;
	struct message **msgs;
	uint8_t **filters;		/* per message: u8 length + bytes, or NULL */
	uint64_t bytes;
	uint64_t ticket;		/* the store batch it is written in */
	int64_t ts;
	bool flushed;			/* handed to the store */
	uint8_t bloom[BLOOM_BYTES];
};

struct stream_log {
	struct store *store;
	char *dir;
	int dir_fd;
	struct stream_log_options opt;
	struct segment *segs;
	size_t n_segs, cap_segs;
	uint64_t bytes;			/* in all of them */
	struct chunk_ix *ix;		/* chunks on disk, oldest first */
	size_t ix_n, ix_cap;
	struct hot_chunk *hot;		/* newest last */
	size_t hot_n, hot_cap;
	uint64_t hot_bytes;
	uint64_t first, next;
	struct store_flusher flusher;
	struct stream_reader *reader;	/* reads of old chunks, off the loop */
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t msg_bytes(const struct message *m)
{
	return m->body_size + m->header_len + m->routing_key.len +
	    m->exchange.len + 16;
}

/* ---- filter values: a 128-bit Bloom filter per chunk ---------------------- */

/* Bit 127 says the chunk holds messages without a filter value. */
#define BLOOM_UNFILTERED 127

static void bloom_bits(const uint8_t *v, size_t n, unsigned bits[2])
{
	uint64_t h = stable_hash(v, n);

	bits[0] = (unsigned)(h % BLOOM_UNFILTERED);
	bits[1] = (unsigned)((h >> 32) % BLOOM_UNFILTERED);
}

static void bloom_add(uint8_t *bloom, const uint8_t *v, size_t n)
{
	unsigned bits[2] = { BLOOM_UNFILTERED, BLOOM_UNFILTERED };

	if (n)
		bloom_bits(v, n, bits);
	for (int i = 0; i < 2; i++)
		bloom[bits[i] / 8] |= (uint8_t)(1u << (bits[i] % 8));
}

static bool bloom_has(const uint8_t *bloom, unsigned bit)
{
	return (bloom[bit / 8] >> (bit % 8)) & 1u;
}

/* May a chunk with this filter hold a message f matches? */
static bool bloom_may_match(const uint8_t *bloom, const struct stream_filter *f)
{
	if (f->match_unfiltered && bloom_has(bloom, BLOOM_UNFILTERED))
		return true;
	for (uint32_t i = 0; i < f->n; i++) {
		unsigned bits[2];

		bloom_bits(f->values[i].ptr, f->values[i].len, bits);
		if (bloom_has(bloom, bits[0]) && bloom_has(bloom, bits[1]))
			return true;
	}
	return false;
}

bool stream_filter_matches(const struct stream_filter *f, struct bytes value)
{
	if (value.len == 0)
		return f->match_unfiltered;
	for (uint32_t i = 0; i < f->n; i++)
		if (bytes_eq(f->values[i], value))
			return true;
	return false;
}

/* ---- segments ----------------------------------------------------------- */

static struct segment *seg_find(const struct stream_log *l, uint64_t number)
{
	size_t lo = 0, hi = l->n_segs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->segs[mid].number < number)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->n_segs && l->segs[lo].number == number ?
	    &l->segs[lo] : NULL;
}

static struct segment *seg_push(struct stream_log *l, uint64_t number, int fd,
    uint64_t size)
{
	struct segment *s;

	if (l->n_segs == l->cap_segs) {
		l->cap_segs = l->cap_segs ? 2 * l->cap_segs : 8;
		l->segs = xrealloc(l->segs, l->cap_segs * sizeof(*l->segs));
	}
	s = &l->segs[l->n_segs++];
	s->number = number;
	s->fd = fd;
	s->size = size;
	s->last_ts = wall_ms();
	l->bytes += size;
	return s;
}

/* A new, empty segment for offsets from `number` on; NULL if it fails. */
static struct segment *seg_create(struct stream_log *l, uint64_t number)
{
	char path[4096];
	int fd;

	store_segment_path(path, sizeof(path), l->dir, number);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error("%s: cannot create: %s", path, strerror(errno));
		return NULL;
	}
	/* The file must still be there after a crash. */
	if (fsync(l->dir_fd) != 0)
		log_warning("%s: fsync: %s", l->dir, strerror(errno));
	return seg_push(l, number, fd, 0);
}

/* ---- the index ---------------------------------------------------------- */

/* A chunk record at pos of segment seg: extend the last run or start one. */
static void ix_add(struct stream_log *l, uint64_t first, uint32_t count,
    uint32_t len, uint64_t pos, uint64_t seg, int64_t ts,
    const uint8_t *bloom)
{
	struct chunk_ix *ix = l->ix_n ? &l->ix[l->ix_n - 1] : NULL;

	/* Within one wall-clock second: timestamps (whole seconds in AMQP)
	 * still find where they start. */
	if (ix && ix->seg == seg && ix->pos + ix->len == pos &&
	    ix->first + ix->count == first && ix->len + len <= RUN_MAX &&
	    ix->ts / 1000 == ts / 1000) {
		ix->count += count;
		ix->len += len;
		ix->ts_last = ts;
		for (int i = 0; i < BLOOM_BYTES; i++)
			ix->bloom[i] |= bloom[i];
		return;
	}
	if (l->ix_n == l->ix_cap) {
		l->ix_cap = l->ix_cap ? 2 * l->ix_cap : 64;
		l->ix = xrealloc(l->ix, l->ix_cap * sizeof(*l->ix));
	}
	ix = &l->ix[l->ix_n++];
	ix->first = first;
	ix->count = count;
	ix->len = len;
	ix->pos = pos;
	ix->seg = seg;
	ix->ts = ix->ts_last = ts;
	memcpy(ix->bloom, bloom, BLOOM_BYTES);
}

/* ---- writing ------------------------------------------------------------ */

static void put_u8s(uint8_t **p, const void *src, size_t n)
{
	memcpy(*p, src, n);
	*p += n;
}

/* The chunk record of h: store header, chunk header, entries. */
static uint8_t *chunk_encode(const struct hot_chunk *h, size_t *len)
{
	size_t body = CHUNK_HEADER;
	uint8_t *buf, *p;
	struct iovec iov;

	for (uint32_t i = 0; i < h->count; i++) {
		const struct message *m = h->msgs[i];

		body += 4 + 1 + m->exchange.len + 1 + m->routing_key.len + 1 +
		    (h->filters[i] ? h->filters[i][0] : 0) + 4 + m->header_len +
		    m->body_size;
	}
	buf = xmalloc(STORE_RECORD_HEADER_SIZE + body);
	p = buf + STORE_RECORD_HEADER_SIZE;
	*p++ = CHUNK_TYPE;
	le64_put(p, h->first);
	le32_put(p + 8, h->count);
	le64_put(p + 12, (uint64_t)h->ts);
	memcpy(p + 20, h->bloom, BLOOM_BYTES);
	p += 20 + BLOOM_BYTES;
	for (uint32_t i = 0; i < h->count; i++) {
		const struct message *m = h->msgs[i];
		uint8_t flen = h->filters[i] ? h->filters[i][0] : 0;
		size_t entry = 1 + m->exchange.len + 1 + m->routing_key.len +
		    1 + flen + 4 + m->header_len + m->body_size;

		le32_put(p, (uint32_t)entry);
		p += 4;
		*p++ = (uint8_t)m->exchange.len;
		put_u8s(&p, m->exchange.ptr, m->exchange.len);
		*p++ = (uint8_t)m->routing_key.len;
		put_u8s(&p, m->routing_key.ptr, m->routing_key.len);
		*p++ = flen;
		if (flen)
			put_u8s(&p, h->filters[i] + 1, flen);
		le32_put(p, m->header_len);
		p += 4;
		put_u8s(&p, m->header, m->header_len);
		put_u8s(&p, msg_body(m), m->body_size);
	}
	iov.iov_base = buf + STORE_RECORD_HEADER_SIZE;
	iov.iov_len = body;
	store_record_header(buf, &iov, 1);
	*len = STORE_RECORD_HEADER_SIZE + body;
	return buf;
}

static struct hot_chunk *open_chunk(struct stream_log *l)
{
	struct hot_chunk *h = l->hot_n ? &l->hot[l->hot_n - 1] : NULL;

	return h && !h->flushed ? h : NULL;
}

/* Drop in-memory chunks that are on disk, beyond the hot budget. */
static void trim_hot(struct stream_log *l)
{
	uint64_t synced = l->store ? store_synced(l->store) : 0;
	size_t drop = 0;

	while (drop + 1 < l->hot_n && l->hot[drop].flushed &&
	    l->hot[drop].ticket <= synced &&
	    l->hot_bytes > HOT_BYTES) {
		struct hot_chunk *h = &l->hot[drop];

		for (uint32_t i = 0; i < h->count; i++) {
			msg_unref(h->msgs[i]);
			free(h->filters[i]);
		}
		free(h->msgs);
		free(h->filters);
		l->hot_bytes -= h->bytes;
		drop++;
	}
	if (drop) {
		memmove(l->hot, l->hot + drop, (l->hot_n - drop) * sizeof(*l->hot));
		l->hot_n -= drop;
	}
}

/* Hand the chunk being filled to the store, in the active segment. */
static void flush_chunk(struct stream_log *l)
{
	struct hot_chunk *h = open_chunk(l);
	struct segment *seg;
	uint8_t *rec;
	size_t len;

	if (h == NULL || l->store == NULL)
		return;
	rec = chunk_encode(h, &len);
	seg = l->n_segs ? &l->segs[l->n_segs - 1] : NULL;
	if (seg == NULL || (seg->size > 0 &&
	    seg->size + len > l->opt.max_segment_size)) {
		struct segment *fresh = seg_create(l, h->first);

		if (fresh)
			seg = fresh;
		if (seg == NULL) {
			/* No file to write to: the chunk stays in memory. */
			free(rec);
			return;
		}
		stream_log_retain(l);
		seg = &l->segs[l->n_segs - 1];
	}
	if (!store_write_file(l->store, seg->fd, seg->size, rec, len, len)) {
		/* Out of descriptors: write and sync it here, late but safe. */
		log_warning("stream %s: cannot hand a chunk to the store (%s); "
		    "writing it on the loop", l->dir, strerror(errno));
		if (pwrite(seg->fd, rec, len, (off_t)seg->size) != (ssize_t)len ||
		    fdatasync(seg->fd) != 0)
			log_error("stream %s: write failed: %s", l->dir,
			    strerror(errno));
		free(rec);
	}
	ix_add(l, h->first, h->count, (uint32_t)len, seg->size, seg->number,
	    h->ts, h->bloom);
	seg->size += len;
	l->bytes += len;
	seg->last_ts = h->ts;
	h->flushed = true;
	trim_hot(l);
}

static void flusher_cb(void *arg)
{
	flush_chunk(arg);
}

uint64_t stream_log_append(struct stream_log *l, struct message *msg,
    const uint8_t *filter, size_t filter_len)
{
	struct hot_chunk *h = open_chunk(l);
	uint64_t ticket = store_want_flush(l->store, &l->flusher);
	uint64_t bytes = msg_bytes(msg);

	if (h == NULL) {
		if (l->hot_n == l->hot_cap) {
			l->hot_cap = l->hot_cap ? 2 * l->hot_cap : 8;
			l->hot = xrealloc(l->hot, l->hot_cap * sizeof(*l->hot));
		}
		h = &l->hot[l->hot_n++];
		memset(h, 0, sizeof(*h));
		h->first = l->next;
		h->ts = wall_ms();
	}
	h->ticket = ticket;
	if (h->count == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 16;
		h->msgs = xrealloc(h->msgs, h->cap * sizeof(*h->msgs));
		h->filters = xrealloc(h->filters, h->cap * sizeof(*h->filters));
	}
	h->msgs[h->count] = msg_ref(msg);
	h->filters[h->count] = NULL;
	bloom_add(h->bloom, filter, filter_len);
	if (filter_len) {
		if (filter_len > 255)
			filter_len = 255;
		h->filters[h->count] = xmalloc(1 + filter_len);
		h->filters[h->count][0] = (uint8_t)filter_len;
		memcpy(h->filters[h->count] + 1, filter, filter_len);
	}
	h->count++;
	h->bytes += bytes;
	l->hot_bytes += bytes;
	l->next++;
	if (h->bytes >= CHUNK_MAX)
		flush_chunk(l);
	return ticket;
}

/* ---- reading ------------------------------------------------------------ */

static void chunks_drop(struct stream_chunks *c)
{
	for (uint32_t i = 0; i < c->count; i++) {
		if (c->msgs[i])
			msg_unref(c->msgs[i]);
		free(c->filters[i]);
	}
	free(c->msgs);
	free(c->filters);
	memset(c, 0, sizeof(*c));
}

/* Room for count messages from first on. */
static void chunks_init(struct stream_chunks *c, uint64_t first,
    uint32_t count)
{
	chunks_drop(c);
	c->first = first;
	c->count = count;
	c->msgs = xcalloc(count, sizeof(*c->msgs));
	c->filters = xcalloc(count, sizeof(*c->filters));
}

static bool chunks_hold(const struct stream_chunks *c, uint64_t offset)
{
	return c->msgs && offset >= c->first && offset < c->first + c->count;
}

void stream_cursor_clear(struct stream_cursor *cur)
{
	if (cur->pending)
		cur->pending->cancelled = true;
	cur->pending = NULL;
	chunks_drop(&cur->now);
	chunks_drop(&cur->ahead);
	cur->ahead_ready = false;
}

static bool take(const uint8_t **p, const uint8_t *end, size_t n,
    struct bytes *out)
{
	if ((size_t)(end - *p) < n)
		return false;
	out->ptr = *p;
	out->len = (uint32_t)n;
	*p += n;
	return true;
}

/* One entry of a chunk record into a new message and its filter value
 * (u8 length + bytes, or NULL); NULL if malformed. */
static struct message *entry_decode(const uint8_t *p, const uint8_t *end,
    uint8_t **filter)
{
	struct bytes ex, rk, flt, hdr, body;
	struct content_header h;
	struct message *m;
	uint32_t hdr_len;

	if (!take(&p, end, 1, &ex) || !take(&p, end, ex.ptr[0], &ex) ||
	    !take(&p, end, 1, &rk) || !take(&p, end, rk.ptr[0], &rk) ||
	    !take(&p, end, 1, &flt) || !take(&p, end, flt.ptr[0], &flt) ||
	    (size_t)(end - p) < 4)
		return NULL;
	hdr_len = le32_get(p);
	p += 4;
	if (!take(&p, end, hdr_len, &hdr))
		return NULL;
	body = (struct bytes){ p, (uint32_t)(end - p) };
	if (content_header_parse(hdr, &h) != 0 || h.body_size != body.len)
		return NULL;
	m = msg_new(ex, rk, hdr, &h);
	msg_append_body(m, body.ptr, body.len);
	if (flt.len) {
		*filter = xmalloc(1 + flt.len);
		(*filter)[0] = (uint8_t)flt.len;
		memcpy(*filter + 1, flt.ptr, flt.len);
	}
	return m;
}

/* Decode one chunk record's messages into cur, from slot `at` on. */
static void decode_chunk(const uint8_t *body, uint32_t body_len,
    uint32_t count, struct stream_chunks *cur, uint32_t at)
{
	const uint8_t *p = body + CHUNK_HEADER, *end = body + body_len;

	for (uint32_t i = 0; i < count && end - p >= 4; i++) {
		uint32_t n = le32_get(p);

		p += 4;
		if ((size_t)(end - p) < n)
			break;
		cur->msgs[at + i] = entry_decode(p, p + n, &cur->filters[at + i]);
		p += n;
	}
}

/*
 * Decode the chunk records in buf (got bytes read) into c, which covers
 * their offsets; returns the bytes used: where the first damaged or
 * unexpected record starts.
 */
static size_t decode_records(const uint8_t *buf, size_t got,
    struct stream_chunks *c)
{
	size_t off = 0;

	while (off < got) {
		const uint8_t *body;
		size_t rec_size;
		uint32_t body_len, count;
		uint64_t first;

		if (store_record_read(buf + off, got - off, &rec_size, &body,
		    &body_len) != STORE_SCAN_OK || body_len < CHUNK_HEADER ||
		    body[0] != CHUNK_TYPE)
			break;
		first = le64_get(body + 1);
		count = le32_get(body + 9);
		if (first < c->first || first + count > c->first + c->count)
			break;
		decode_chunk(body, body_len, count, c,
		    (uint32_t)(first - c->first));
		off += rec_size;
	}
	return off;
}

/*
 * The chunks from ix[i] on that follow each other in one file, up to
 * READ_AHEAD bytes: returns the last one's index, with their bytes and
 * their messages.
 */
static size_t chunk_run(const struct stream_log *l, size_t i, size_t *total,
    uint64_t *count)
{
	const struct chunk_ix *ix = &l->ix[i];
	size_t j = i;

	*total = ix->len;
	*count = ix->count;
	while (j + 1 < l->ix_n && l->ix[j + 1].seg == ix->seg &&
	    l->ix[j + 1].pos == l->ix[j].pos + l->ix[j].len &&
	    l->ix[j + 1].first == l->ix[j].first + l->ix[j].count &&
	    *total + l->ix[j + 1].len <= READ_AHEAD) {
		j++;
		*total += l->ix[j].len;
		*count += l->ix[j].count;
	}
	return j;
}

/*
 * Fill cur from disk with the chunk ix[i] and the chunks right after it
 * in the same file, up to READ_AHEAD bytes in one pread: a replay reads
 * the log in large sequential reads whatever the chunks' size.  False
 * (logged) if the first chunk cannot be read.  On the loop: only when
 * the reader thread cannot take the read (see request_chunks).
 */
static bool read_chunks(struct stream_log *l, size_t i,
    struct stream_cursor *cur)
{
	const struct chunk_ix *ix = &l->ix[i];
	struct segment *seg = seg_find(l, ix->seg);
	size_t total, used;
	uint64_t count;
	uint8_t *buf;
	ssize_t got = -1;

	chunk_run(l, i, &total, &count);
	buf = xmalloc(total);
	if (seg)
		got = pread(seg->fd, buf, total, (off_t)ix->pos);
	chunks_init(&cur->now, ix->first, (uint32_t)count);
	used = decode_records(buf, got > 0 ? (size_t)got : 0, &cur->now);
	free(buf);
	if (used < total)
		log_error("stream %s: %zu bytes at %llu of segment %llu could "
		    "not be read or are damaged; their messages are skipped",
		    l->dir, total - used, (unsigned long long)(ix->pos + used),
		    (unsigned long long)ix->seg);
	if (used == 0) {
		chunks_drop(&cur->now);
		return false;
	}
	return true;
}

/* The index of the on-disk run holding offset; ix_n when none. */
static size_t ix_index(const struct stream_log *l, uint64_t offset)
{
	size_t lo = 0, hi = l->ix_n;

	/* the last chunk whose first offset is <= offset */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->ix[mid].first <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return l->ix_n;
	lo--;
	return offset < l->ix[lo].first + l->ix[lo].count ? lo : l->ix_n;
}

/* The on-disk chunk holding offset, or NULL. */
static const struct chunk_ix *ix_find(const struct stream_log *l,
    uint64_t offset)
{
	size_t i = ix_index(l, offset);

	return i < l->ix_n ? &l->ix[i] : NULL;
}

static struct bytes filter_bytes(const uint8_t *f)
{
	return f ? (struct bytes){ f + 1, f[0] } : (struct bytes){ NULL, 0 };
}

/* On the loop: the chunks a reader asked for are in job->buf. */
static void chunks_loaded(void *arg, struct stream_read *job)
{
	struct stream_cursor *cursor = arg;
	size_t off;

	cursor->pending = NULL;
	cursor->ahead_ready = true;
	chunks_init(&cursor->ahead, cursor->range_first, cursor->range_count);
	off = decode_records(job->buf, job->got > 0 ? (size_t)job->got : 0,
	    &cursor->ahead);
	if (off < job->len)
		log_error("stream: %zu bytes at %llu of a segment could not be "
		    "read or are damaged (%s); their messages are skipped",
		    job->len - off, (unsigned long long)(job->off + off),
		    job->got < 0 || job->err ? strerror(job->err) : "bad data");
	if (cursor->wake)
		cursor->wake(cursor->wake_arg);
}

/* Ask the reader for the chunks from ix[i] on (READ_AHEAD bytes). */
static bool request_chunks(struct stream_log *l, size_t i,
    struct stream_cursor *cur)
{
	const struct chunk_ix *ix = &l->ix[i];
	struct segment *seg = seg_find(l, ix->seg);
	size_t total;
	uint64_t count;

	chunk_run(l, i, &total, &count);
	if (seg == NULL || l->reader == NULL)
		return false;
	cur->range_first = ix->first;
	cur->range_count = (uint32_t)count;
	cur->pending = stream_reader_submit(l->reader, seg->fd, ix->pos, total,
	    chunks_loaded, cur);
	return cur->pending != NULL;
}

/* While the reader reads what it has, read the chunks after it. */
static void read_ahead(struct stream_log *l, struct stream_cursor *cur)
{
	uint64_t next = cur->now.first + cur->now.count;
	size_t at;

	if (cur->pending || cur->ahead_ready || next >= l->next ||
	    (l->hot_n && next >= l->hot[0].first) ||
	    (at = ix_index(l, next)) == l->ix_n)
		return;
	request_chunks(l, at, cur);
}

enum stream_read_result stream_log_read(struct stream_log *l,
    struct stream_cursor *cur, uint64_t offset, struct message **msg,
    struct bytes *filter)
{
	uint64_t i;
	size_t at;

	*msg = NULL;
	if (offset >= l->next || offset < l->first)
		return STREAM_READ_END;
	if (l->hot_n && offset >= l->hot[0].first) {
		for (size_t h = l->hot_n; h-- > 0; )
			if (offset >= l->hot[h].first) {
				i = offset - l->hot[h].first;
				*filter = filter_bytes(l->hot[h].filters[i]);
				*msg = msg_ref(l->hot[h].msgs[i]);
				return STREAM_READ_OK;
			}
	}
	if (!chunks_hold(&cur->now, offset)) {
		if (cur->ahead_ready) {
			/* the read-ahead: take it if it is where we are */
			chunks_drop(&cur->now);
			if (chunks_hold(&cur->ahead, offset)) {
				cur->now = cur->ahead;
				memset(&cur->ahead, 0, sizeof(cur->ahead));
			} else {
				chunks_drop(&cur->ahead);
			}
			cur->ahead_ready = false;
		}
	}
	if (!chunks_hold(&cur->now, offset)) {
		if (cur->pending)
			return STREAM_READ_WAIT;
		if ((at = ix_index(l, offset)) == l->ix_n)
			return STREAM_READ_SKIP;	/* a gap in the log */
		if (request_chunks(l, at, cur))
			return STREAM_READ_WAIT;
		/* No reader thread or no descriptor: read here. */
		if (!read_chunks(l, at, cur))
			return STREAM_READ_SKIP;
	}
	read_ahead(l, cur);
	i = offset - cur->now.first;
	*filter = filter_bytes(cur->now.filters[i]);
	if (cur->now.msgs[i] == NULL)
		return STREAM_READ_SKIP;
	*msg = msg_ref(cur->now.msgs[i]);
	return STREAM_READ_OK;
}

uint64_t stream_log_skip(const struct stream_log *l, uint64_t offset,
    const struct stream_filter *f)
{
	const struct chunk_ix *ix;

	while (offset < l->next) {
		if (l->hot_n && offset >= l->hot[0].first) {
			for (size_t h = 0; h < l->hot_n; h++) {
				const struct hot_chunk *c = &l->hot[h];

				if (offset >= c->first + c->count)
					continue;
				if (bloom_may_match(c->bloom, f))
					return offset;
				offset = c->first + c->count;
			}
			return offset;
		}
		if ((ix = ix_find(l, offset)) == NULL ||
		    bloom_may_match(ix->bloom, f))
			return offset;
		offset = ix->first + ix->count;
	}
	return offset;
}

uint64_t stream_log_next(const struct stream_log *l)
{
	return l->next;
}

uint64_t stream_log_first(const struct stream_log *l)
{
	return l->first;
}

uint64_t stream_log_last_chunk(const struct stream_log *l)
{
	if (l->hot_n)
		return l->hot[l->hot_n - 1].first;
	if (l->ix_n)
		return l->ix[l->ix_n - 1].first;
	return l->next;
}

uint64_t stream_log_at_time(const struct stream_log *l, int64_t when)
{
	size_t lo = 0, hi = l->ix_n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->ix[mid].ts_last < when)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < l->ix_n)
		return l->ix[lo].first < l->first ? l->first : l->ix[lo].first;
	for (size_t i = 0; i < l->hot_n; i++)
		if (l->hot[i].ts >= when && !l->hot[i].flushed)
			return l->hot[i].first;
	return l->next;
}

uint64_t stream_log_since(const struct stream_log *l, int64_t ms)
{
	return stream_log_at_time(l, wall_ms() - ms);
}

/* ---- retention ---------------------------------------------------------- */

static void seg_drop_oldest(struct stream_log *l)
{
	struct segment *s = &l->segs[0];
	char path[4096];
	size_t n = 0;

	store_segment_path(path, sizeof(path), l->dir, s->number);
	if (unlink(path) != 0)
		log_warning("%s: cannot delete: %s", path, strerror(errno));
	close(s->fd);
	l->bytes -= s->size;
	while (n < l->ix_n && l->ix[n].seg == s->number)
		n++;
	memmove(l->ix, l->ix + n, (l->ix_n - n) * sizeof(*l->ix));
	l->ix_n -= n;
	memmove(l->segs, l->segs + 1, (l->n_segs - 1) * sizeof(*l->segs));
	l->n_segs--;
	l->first = l->ix_n ? l->ix[0].first : l->segs[0].number;
}

void stream_log_retain(struct stream_log *l)
{
	int64_t now = wall_ms();

	while (l->n_segs > 1) {
		bool too_big, too_old;

		too_big = l->opt.max_bytes >= 0 &&
		    l->bytes > (uint64_t)l->opt.max_bytes;
		too_old = l->opt.max_age_ms >= 0 &&
		    l->segs[0].last_ts < now - l->opt.max_age_ms;
		if (!too_big && !too_old)
			break;
		seg_drop_oldest(l);
	}
}

/* ---- open, close -------------------------------------------------------- */

struct scan_ctx {
	struct stream_log *l;
	uint64_t seg;
	uint64_t skipped;		/* duplicate or malformed chunks */
};

static void on_chunk(void *arg, uint64_t offset, uint8_t type,
    const uint8_t *body, uint32_t body_len)
{
	struct scan_ctx *sc = arg;
	struct stream_log *l = sc->l;
	uint64_t first;
	uint32_t count;

	if (type != CHUNK_TYPE || body_len < CHUNK_HEADER) {
		sc->skipped++;
		return;
	}
	first = le64_get(body + 1);
	count = le32_get(body + 9);
	/* A chunk written again after a failed sync is there twice. */
	if (count == 0 || (l->ix_n && first < l->next)) {
		sc->skipped++;
		return;
	}
	ix_add(l, first, count, body_len + STORE_RECORD_HEADER_SIZE, offset,
	    sc->seg, (int64_t)le64_get(body + 13), body + 21);
	l->next = first + count;
}

static bool load_segments(struct stream_log *l)
{
	uint64_t *numbers = NULL;
	size_t n = 0;
	struct scan_ctx sc = { .l = l };

	if (!store_segment_list(l->dir, &numbers, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		struct store_scan_stats st;
		char path[4096];
		int fd;

		store_segment_path(path, sizeof(path), l->dir, numbers[i]);
		sc.seg = numbers[i];
		if (!store_segment_scan(path, on_chunk, &sc, &st))
			continue;
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			log_error("%s: cannot open: %s", path, strerror(errno));
			continue;
		}
		/* Appends continue after the last good chunk. */
		if (i + 1 == n && (st.torn_tail || st.skipped_bytes) &&
		    ftruncate(fd, (off_t)st.valid_end) != 0)
			log_warning("%s: cannot cut off the damaged tail: %s",
			    path, strerror(errno));
		seg_push(l, numbers[i], fd, i + 1 == n ? st.valid_end :
		    st.bytes + st.skipped_bytes);
		if (l->ix_n && l->ix[l->ix_n - 1].seg == numbers[i])
			l->segs[l->n_segs - 1].last_ts = l->ix[l->ix_n - 1].ts_last;
		if (l->next < numbers[i])
			l->next = numbers[i];
	}
	free(numbers);
	l->first = l->ix_n ? l->ix[0].first : l->next;
	if (sc.skipped)
		log_warning("stream %s: %llu damaged or repeated chunks skipped",
		    l->dir, (unsigned long long)sc.skipped);
	return true;
}

struct stream_log *stream_log_open(struct store *store,
    struct stream_reader *reader, const char *dir,
    const struct stream_log_options *opt, char *err, size_t errlen)
{
	struct stream_log *l;

	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create: %s", dir,
		    strerror(errno));
		return NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->store = store;
	l->reader = reader;
	l->dir = xstrdup(dir);
	l->opt = *opt;
	l->flusher.fn = flusher_cb;
	l->flusher.arg = l;
	l->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dir_fd < 0 || !load_segments(l)) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		stream_log_close(l, NULL);
		return NULL;
	}
	return l;
}

static void free_memory(struct stream_log *l)
{
	for (size_t i = 0; i < l->hot_n; i++) {
		for (uint32_t j = 0; j < l->hot[i].count; j++) {
			msg_unref(l->hot[i].msgs[j]);
			free(l->hot[i].filters[j]);
		}
		free(l->hot[i].msgs);
		free(l->hot[i].filters);
	}
	for (size_t i = 0; i < l->n_segs; i++)
		close(l->segs[i].fd);
	if (l->dir_fd >= 0)
		close(l->dir_fd);
	free(l->hot);
	free(l->ix);
	free(l->segs);
	free(l->dir);
	free(l);
}

void stream_log_close(struct stream_log *l, struct store *store)
{
	l->store = store;
	if (store) {
		flush_chunk(l);
		store_cancel_flush(store, &l->flusher);
	}
	free_memory(l);
}

void stream_log_remove(struct stream_log *l, struct store *store)
{
	char path[4096];

	if (store)
		store_cancel_flush(store, &l->flusher);
	for (size_t i = 0; i < l->n_segs; i++) {
		store_segment_path(path, sizeof(path), l->dir, l->segs[i].number);
		if (unlink(path) != 0)
			log_warning("%s: cannot delete: %s", path,
			    strerror(errno));
	}
	if (rmdir(l->dir) != 0)
		log_warning("%s: cannot remove: %s", l->dir, strerror(errno));
	free_memory(l);
}

void stream_log_stats(const struct stream_log *l, struct stream_log_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->messages = l->next - l->first;
	out->segments = l->n_segs;
	out->bytes = l->bytes;
	out->memory = l->hot_bytes;
}
