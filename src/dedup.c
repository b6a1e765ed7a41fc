/*
 * Message deduplication caches (dedup.h): a ring of the last cache_size
 * keys in arrival order with a hash index over it, and for durable owners
 * the same ring as a file of fixed slots, slot i at i * DEDUP_SLOT_SIZE:
 * [seq 8][expires wall ms 8, 0: never][key length 2][key, zero-padded].
 * A key lands in slot seq % cache_size, so the file is the ring itself
 * and never grows; recovery reads every slot and orders them by seq.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "amqp.h"
#include "amqp_error.h"
#include "connection.h"
#include "dedup.h"
#include "field_table.h"
#include "log.h"
#include "message.h"
#include "properties.h"
#include "store.h"
#include "strmap.h"
#include "vhost.h"

/*
 * A slot is one cache line: its key is held in it, and a key longer than
 * fits (a UUID as text, 36, does) is held as a zero byte and its SHA-256.
 * The file's slots have room for DEDUP_KEY_MAX bytes, so a file written
 * when longer keys were kept whole still loads (they are digested then).
 */
#define KEY_INLINE 43

/* LavinMQ's default header name, used when there is no message-id. */
#define DEFAULT_HEADER "x-deduplication-header"

struct slot {
	uint64_t seq;			/* 0: empty */
	uint64_t expires_wall;		/* ms; 0: never */
	uint32_t pos;			/* where the index points at it */
	uint8_t len;
	uint8_t key[KEY_INLINE];
};

_Static_assert(sizeof(struct slot) == 64, "a slot is a cache line");

/*
 * The index: open addressing with linear probing, four times the cache
 * size rounded up to a power of two, and backward-shift deletion, so the
 * steady state (one key in, the oldest out) allocates nothing.  At most a
 * quarter full, its runs are short: each step of a probe or a shift is a
 * branch the CPU cannot predict (half full, a new key cost 73 ns; a
 * quarter, 44 ns).  An entry
 * is the key's hash's low 32 bits and its slot number + 1 (0: empty): a
 * probe compares hashes and a shift finds an entry's home without
 * touching the slots, and each slot knows its entry, so evicting one does
 * not search.
 */
struct dedup_cache {
	struct dedup_args args;
	struct slot *slots;		/* args.cache_size of them */
	uint64_t *index;
	uint64_t mask;			/* index size - 1 */
	uint64_t next_seq;
	uint64_t next_slot;		/* next_seq % cache_size, kept without
					 * a division per message */
	uint64_t count, dropped;
	struct store *store;
	int fd;				/* -1: memory only */
	char *path;
	/* Slots changed since the last write, from first_dirty on. */
	uint64_t first_dirty, n_dirty;
	struct store_flusher flusher;
	uint64_t synced_at;		/* monotonic ms of the last synced write */
};

/* The cache that looked at the last message (dedup_prefetch's guess), and
 * how many they looked at. */
static const struct dedup_cache *last_used;
static uint64_t lookups;

/*
 * dedup_prefetch's reading of its message's key, for dedup_seen while a
 * channel publishes that message (between dedup_publish_begin and _end),
 * so the key is not found and hashed twice.  A message that was read but
 * never published leaves msg set; the next content header's
 * dedup_prefetch or dedup_prefetch_none clears it before another message
 * can be published from the same address.
 */
static struct {
	const struct message *msg;	/* NULL: none */
	const struct dedup_cache *d;
	bool publishing;		/* msg is being published */
	bool has_key;
	uint8_t len;
	uint8_t key[KEY_INLINE];
	int64_t ttl;
	uint64_t h;
} ahead;

/*
 * The index and the slots of a large cache are read at random, one cache
 * miss each per message; on 4 KiB pages each is a TLB miss too (costly
 * under virtualisation), so tables of 2 MiB and more ask for huge pages.
 */
#define HUGE_PAGE ((size_t)2 << 20)

/* Smaller caches stay in the CPU's caches: no need to guess ahead. */
#define DEDUP_PREFETCH_MIN 16384

static size_t table_bytes(size_t n, size_t size)
{
	size_t bytes = n * size;

	return bytes < HUGE_PAGE ? bytes :
	    (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

/* n zeroed elements; pages are only backed once touched (a large cache
 * that holds few keys costs little). */
static void *table_new(size_t n, size_t size)
{
	size_t bytes = table_bytes(n, size);
	void *p;

	if (bytes < HUGE_PAGE)
		return xcalloc(n, size);
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatalx("out of memory mapping %zu bytes", bytes);
	(void)madvise(p, bytes, MADV_HUGEPAGE);	/* a hint: may be off */
	return p;
}

static void table_free(void *p, size_t n, size_t size)
{
	size_t bytes = table_bytes(n, size);

	if (bytes < HUGE_PAGE)
		free(p);
	else if (p)
		munmap(p, bytes);
}

/* ---- arguments ----------------------------------------------------------- */

int dedup_args_parse(const struct field_table *t, const char *what,
    const char *name, const char *vhost, struct dedup_args *out,
    struct amqp_error *err)
{
	const struct field_value *v;
	const char *bad = NULL, *why = "";

	memset(out, 0, sizeof(*out));
	out->cache_size = DEDUP_DEFAULT_CACHE_SIZE;
	out->cache_ttl = -1;
	if (t == NULL)
		return 0;
	if ((v = ftable_get(t, "x-message-deduplication")) != NULL) {
		if (v->type != 't') {
			bad = "x-message-deduplication";
			why = "expected a boolean";
		} else {
			out->on = v->v.b;
		}
	}
	if (!bad && (v = ftable_get(t, "x-cache-size")) != NULL &&
	    (!fvalue_int64(v, &out->cache_size) || out->cache_size < 1 ||
	    out->cache_size > DEDUP_MAX_CACHE_SIZE)) {
		bad = "x-cache-size";
		why = "expected an integer from 1 to 10000000";
	}
	if (!bad && (v = ftable_get(t, "x-cache-ttl")) != NULL &&
	    (!fvalue_int64(v, &out->cache_ttl) || out->cache_ttl < 0)) {
		bad = "x-cache-ttl";
		why = "expected a non-negative integer (ms)";
	}
	if (!bad && (v = ftable_get(t, "x-deduplication-header")) != NULL) {
		if (v->type != 'S' || v->v.str.len == 0 || v->v.str.len > 255) {
			bad = "x-deduplication-header";
			why = "expected a header name";
		} else {
			out->header = bytes_strdup(v->v.str);
		}
	}
	if (bad == NULL)
		return 0;
	dedup_args_free(out);
	return amqp_fail(err, AMQP_PRECONDITION_FAILED,
	    "invalid arg '%s' for %s '%s' in vhost '%s': %s", bad, what, name,
	    vhost, why);
}

void dedup_args_free(struct dedup_args *a)
{
	free(a->header);
	a->header = NULL;
}

/* ---- keys ----------------------------------------------------------------- */

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A header value as *key (an integer as text in buf, DEDUP_KEY_MAX + 1
 * bytes): 0, or -1 when it cannot be a key. */
static int value_key(const struct field_value *v, uint8_t *buf,
    struct bytes *key)
{
	int64_t n;

	if (v->type == 'S' || v->type == 'x') {
		*key = v->v.str;
		return 0;
	}
	if (!fvalue_int64(v, &n))
		return -1;
	key->len = (uint32_t)snprintf((char *)buf, DEDUP_KEY_MAX, "%lld",
	    (long long)n);
	key->ptr = buf;
	return 0;
}

/* key as a slot holds it (a copy, or a zero byte and its SHA-256), in
 * out (KEY_INLINE bytes); returns its length. */
static uint8_t key_compact(struct bytes key, uint8_t *out)
{
	unsigned int n = 0;

	if (key.len <= KEY_INLINE) {
		memcpy(out, key.ptr, key.len);
		return (uint8_t)key.len;
	}
	out[0] = 0;
	EVP_Digest(key.ptr, key.len, out + 1, &n, EVP_sha256(), NULL);
	return (uint8_t)(1 + n);
}

/*
 * msg's key into out (key_compact) and its per-message TTL (-1: none);
 * false when it has none.
 */
static bool message_key(const struct dedup_cache *d, const struct message *msg,
    uint8_t *out, uint8_t *out_len, int64_t *ttl)
{
	struct field_table *t = NULL;
	const struct field_value *v;
	uint8_t num[DEDUP_KEY_MAX + 1];
	struct bytes key = { NULL, 0 };
	bool found = false;

	*ttl = -1;
	if (msg->headers.len)
		t = ftable_decode(msg->headers);
	if (t && (v = ftable_get(t, "x-cache-ttl")) != NULL &&
	    fvalue_int64(v, ttl) && *ttl < 0)
		*ttl = -1;
	if (d->args.header) {
		found = t && (v = ftable_get(t, d->args.header)) != NULL &&
		    value_key(v, num, &key) == 0;
	} else if (msg_string_prop(msg, PROP_message_id, &key)) {
		found = true;
	} else {
		found = t && (v = ftable_get(t, DEFAULT_HEADER)) != NULL &&
		    value_key(v, num, &key) == 0;
	}
	if (found)
		*out_len = key_compact(key, out);
	ftable_free(t);
	return found;
}

/* ---- the ring -------------------------------------------------------------- */

#define ENTRY(h, slot) ((uint64_t)(uint32_t)(h) << 32 | (slot))
#define ENTRY_SLOT(e) ((uint32_t)(e))		/* slot number + 1 */
#define ENTRY_HASH(e) ((uint32_t)((e) >> 32))	/* the hash's low half */
#define ENTRY_HOME(d, e) (ENTRY_HASH(e) & (d)->mask)	/* mask < 2^32 */

/* The first empty index position from hash h's home: where a key known
 * to be absent goes (no key comparisons on the way). */
static uint64_t index_find_empty(const struct dedup_cache *d, uint64_t h)
{
	uint64_t i = h & d->mask;

	while (d->index[i] != 0)
		i = (i + 1) & d->mask;
	return i;
}

/* The index position holding key, or the empty one where it would go. */
static uint64_t index_find(const struct dedup_cache *d, const uint8_t *key,
    uint8_t len, uint64_t h)
{
	uint64_t i = h & d->mask, e;

	while ((e = d->index[i]) != 0) {
		const struct slot *s = &d->slots[ENTRY_SLOT(e) - 1];

		if (ENTRY_HASH(e) == (uint32_t)h && s->len == len &&
		    memcmp(s->key, key, len) == 0)
			return i;
		i = (i + 1) & d->mask;
	}
	return i;
}

static void index_set(struct dedup_cache *d, uint64_t i, uint64_t e)
{
	d->index[i] = e;
	d->slots[ENTRY_SLOT(e) - 1].pos = (uint32_t)i;	/* mask < 2^32 */
}

static void index_remove(struct dedup_cache *d, uint64_t i)
{
	uint64_t j = i;

	d->index[i] = 0;
	/* Shift back the entries that probed past the hole. */
	for (;;) {
		uint64_t home;

		j = (j + 1) & d->mask;
		if (d->index[j] == 0)
			return;
		home = ENTRY_HOME(d, d->index[j]);
		if (((j - home) & d->mask) >= ((j - i) & d->mask)) {
			index_set(d, i, d->index[j]);
			d->index[j] = 0;
			i = j;
		}
	}
}

static void slot_clear(struct dedup_cache *d, struct slot *s)
{
	if (s->seq == 0)
		return;
	index_remove(d, s->pos);
	s->seq = 0;
	d->count--;
}

/* Slots written with one pwrite: 41 KB of stack. */
#define WRITE_SLOTS 512

/* Slots first .. first + n - 1 (no wrap) to the file; false, errno set. */
static bool write_slots(struct dedup_cache *d, uint64_t first, uint64_t n)
{
	uint8_t buf[WRITE_SLOTS * DEDUP_SLOT_SIZE];

	while (n) {
		uint64_t k = n < WRITE_SLOTS ? n : WRITE_SLOTS;
		uint8_t *rec = buf;
		ssize_t w;

		memset(buf, 0, k * DEDUP_SLOT_SIZE);
		for (uint64_t i = first; i < first + k; i++) {
			const struct slot *s = &d->slots[i];

			le64_put(rec, s->seq);
			le64_put(rec + 8, s->expires_wall);
			rec[16] = (uint8_t)s->len;
			rec[17] = (uint8_t)(s->len >> 8);
			if (s->seq)
				memcpy(rec + 18, s->key, s->len);
			rec += DEDUP_SLOT_SIZE;
		}
		w = pwrite(d->fd, buf, k * DEDUP_SLOT_SIZE,
		    (off_t)(first * DEDUP_SLOT_SIZE));
		if (w < 0)
			return false;
		if (w != (ssize_t)(k * DEDUP_SLOT_SIZE)) {
			errno = ENOSPC;		/* short: the disk is full */
			return false;
		}
		first += k;
		n -= k;
	}
	return true;
}

/*
 * Write the dirty slots, in one or two runs, as the batch closes.  They
 * are written here, to the page cache, before the batch reaches the store
 * thread (so a key is in the file before its publish is confirmed, and a
 * crash of warrend keeps it), not by that thread: an extra write in each
 * of its rounds lengthened the rounds a persistent publisher waits on by
 * a sixth.  The store syncs the file with a round at most every
 * DEDUP_SYNC_INTERVAL_MS: a sync per round would halve that publisher's
 * rate.
 */
static void write_dirty(void *arg)
{
	struct dedup_cache *d = arg;
	uint64_t size = (uint64_t)d->args.cache_size;
	uint64_t now = conn_now_ms();

	while (d->n_dirty && d->fd >= 0) {
		uint64_t first = d->first_dirty % size;
		uint64_t n = d->n_dirty < size - first ? d->n_dirty : size - first;

		if (!write_slots(d, first, n))
			goto failed;
		d->first_dirty += n;
		d->n_dirty -= n;
	}
	d->n_dirty = 0;
	if (d->fd >= 0 && now - d->synced_at >= DEDUP_SYNC_INTERVAL_MS) {
		d->synced_at = now;
		if (!store_sync_file(d->store, d->fd))
			goto failed;
	}
	return;
failed:
	log_warning("dedup cache %s: %s; kept in memory only", d->path,
	    strerror(errno));
	close(d->fd);
	d->fd = -1;
	d->n_dirty = 0;
}

/* Slot i (seq's) is to be written with the store's current batch. */
static void slot_save(struct dedup_cache *d, uint64_t seq, uint64_t *ticket)
{
	uint64_t t;

	if (d->fd < 0)
		return;
	/* Keys arrive in seq order: the dirty slots are one run (the whole
	 * ring once it laps within a batch: written once, when it closes). */
	if (d->n_dirty == 0)
		d->first_dirty = seq;
	if (seq - d->first_dirty >= (uint64_t)d->args.cache_size)
		d->first_dirty = seq - (uint64_t)d->args.cache_size + 1;
	d->n_dirty = seq - d->first_dirty + 1;
	t = store_want_flush(d->store, &d->flusher);
	if (ticket && *ticket < t)
		*ticket = t;
}

/*
 * Put key, known to be absent, into slot i, seq's (evicting what was
 * there).  key is KEY_INLINE bytes, copied whole: a fixed-size copy is a
 * few moves where one of len bytes was gcc's rep movsq.
 */
static void slot_fill(struct dedup_cache *d, uint64_t i, uint64_t seq,
    const uint8_t *key, uint8_t len, uint64_t h, uint64_t expires_wall)
{
	struct slot *s = &d->slots[i];

	slot_clear(d, s);
	s->seq = seq;
	s->expires_wall = expires_wall;
	s->len = len;
	memcpy(s->key, key, KEY_INLINE);
	index_set(d, index_find_empty(d, h), ENTRY(h, i + 1));
	d->count++;
}

/* The ring's next slot and seq move on together. */
static void ring_advance(struct dedup_cache *d)
{
	d->next_seq++;
	if (++d->next_slot == (uint64_t)d->args.cache_size)
		d->next_slot = 0;
}

bool dedup_seen(struct dedup_cache *d, const struct message *msg,
    uint64_t *ticket)
{
	uint8_t key[KEY_INLINE] = { 0 };	/* slot_fill copies all of it */
	uint8_t len;
	int64_t ttl;
	uint32_t at;
	uint64_t h;
	const struct slot *oldest = &d->slots[d->next_slot];

	/* The eviction's index entry is a cache miss in a large cache:
	 * start loading it while the key is found and hashed. */
	if (oldest->seq)
		__builtin_prefetch(&d->index[oldest->pos], 1);
	last_used = d;
	lookups++;
	if (ahead.publishing && ahead.msg == msg && ahead.d == d) {
		if (!ahead.has_key)
			return false;
		len = ahead.len;
		memcpy(key, ahead.key, KEY_INLINE);
		ttl = ahead.ttl;
		h = ahead.h;
	} else {
		if (!message_key(d, msg, key, &len, &ttl))
			return false;
		h = strmap_hash((struct bytes){ key, len });
	}
	if ((at = ENTRY_SLOT(d->index[index_find(d, key, len, h)])) != 0) {
		struct slot *s = &d->slots[at - 1];

		if (s->expires_wall == 0 || wall_ms() < s->expires_wall) {
			d->dropped++;
			return true;
		}
		slot_clear(d, s);	/* expired: seen anew below */
	}
	if (ttl < 0)
		ttl = d->args.cache_ttl;
	slot_fill(d, d->next_slot, d->next_seq, key, len, h,
	    ttl >= 0 ? wall_ms() + (uint64_t)ttl : 0);
	slot_save(d, d->next_seq, ticket);
	ring_advance(d);
	return false;
}

void dedup_prefetch(const struct message *msg)
{
	const struct dedup_cache *d = last_used;
	const struct slot *oldest;

	ahead.msg = NULL;
	if (d == NULL || d->args.cache_size < DEDUP_PREFETCH_MIN)
		return;
	ahead.msg = msg;
	ahead.d = d;
	ahead.has_key = message_key(d, msg, ahead.key, &ahead.len, &ahead.ttl);
	if (!ahead.has_key)
		return;
	ahead.h = strmap_hash((struct bytes){ ahead.key, ahead.len });
	__builtin_prefetch(&d->index[ahead.h & d->mask]);
	/* And the entry of the key a new one would evict. */
	oldest = &d->slots[d->next_slot];
	if (oldest->seq)
		__builtin_prefetch(&d->index[oldest->pos], 1);
}

void dedup_prefetch_none(void)
{
	ahead.msg = NULL;
}

void dedup_publish_begin(const struct message *msg)
{
	ahead.publishing = ahead.msg == msg;
}

void dedup_publish_end(void)
{
	ahead.publishing = false;
	ahead.msg = NULL;
}

uint64_t dedup_lookups(void)
{
	return lookups;
}

uint64_t dedup_count(const struct dedup_cache *d)
{
	return d->count;
}

uint64_t dedup_dropped(const struct dedup_cache *d)
{
	return d->dropped;
}

/* ---- the file ---------------------------------------------------------------- */

static int by_seq(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The live slots of the file, in seq order, into d. */
static void restore(struct dedup_cache *d)
{
	size_t n = (size_t)d->args.cache_size, got = 0;
	struct slot *found = xcalloc(n, sizeof(*found));
	uint8_t rec[DEDUP_SLOT_SIZE];
	uint64_t now = wall_ms();

	for (size_t i = 0; i < n; i++) {
		ssize_t r = pread(d->fd, rec, sizeof(rec),
		    (off_t)(i * DEDUP_SLOT_SIZE));
		struct slot s = { 0 };
		uint16_t len;

		if (r != (ssize_t)sizeof(rec))
			break;
		s.seq = le64_get(rec);
		s.expires_wall = le64_get(rec + 8);
		len = (uint16_t)(rec[16] | rec[17] << 8);
		if (s.seq == 0 || len > DEDUP_KEY_MAX || s.seq % n != i)
			continue;
		if (s.seq >= d->next_seq)
			d->next_seq = s.seq + 1;
		if (s.expires_wall && s.expires_wall <= now)
			continue;
		s.len = key_compact((struct bytes){ rec + 18, len }, s.key);
		found[got++] = s;
	}
	qsort(found, got, sizeof(*found), by_seq);
	for (size_t i = 0; i < got; i++) {
		const struct slot *s = &found[i];
		uint64_t h = strmap_hash((struct bytes){ s->key, s->len });
		uint32_t at = ENTRY_SLOT(d->index[index_find(d, s->key, s->len,
		    h)]);

		/* A key the file holds twice (an expired copy not yet
		 * overwritten): the later one stands. */
		if (at != 0)
			slot_clear(d, &d->slots[at - 1]);
		slot_fill(d, s->seq % n, s->seq, s->key, s->len, h,
		    s->expires_wall);
	}
	free(found);
}

static void open_file(struct dedup_cache *d, bool restore_it)
{
	char dir[4096], *slash;

	snprintf(dir, sizeof(dir), "%s", d->path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			log_warning("dedup cache %s: %s; kept in memory only",
			    dir, strerror(errno));
			return;
		}
	}
	d->fd = open(d->path, O_RDWR | O_CREAT | O_CLOEXEC |
	    (restore_it ? 0 : O_TRUNC), 0600);
	if (d->fd < 0) {
		log_warning("dedup cache %s: %s; kept in memory only", d->path,
		    strerror(errno));
		return;
	}
	if (restore_it)
		restore(d);
}

struct dedup_cache *dedup_new(const struct dedup_args *args,
    struct store *store, const char *path, bool restore_it)
{
	struct dedup_cache *d = xcalloc(1, sizeof(*d));

	d->args = *args;
	d->args.header = args->header ? xstrdup(args->header) : NULL;
	d->slots = table_new((size_t)args->cache_size, sizeof(*d->slots));
	d->mask = 1;
	while (d->mask < 4 * (uint64_t)args->cache_size)
		d->mask <<= 1;
	d->index = table_new(d->mask, sizeof(*d->index));
	d->mask--;
	d->flusher.fn = write_dirty;
	d->flusher.arg = d;
	d->next_seq = 1;
	d->fd = -1;
	if (store && path) {
		d->store = store;
		d->path = xstrdup(path);
		open_file(d, restore_it);
	}
	d->next_slot = d->next_seq % (uint64_t)args->cache_size;
	return d;
}

void dedup_free(struct dedup_cache *d, bool remove)
{
	if (d == NULL)
		return;
	if (last_used == d)
		last_used = NULL;
	if (ahead.d == d)
		ahead.msg = NULL;
	table_free(d->slots, (size_t)d->args.cache_size, sizeof(*d->slots));
	table_free(d->index, d->mask + 1, sizeof(*d->index));
	/* Queued only while the store runs (closing it runs the flushers). */
	if (d->flusher.queued)
		store_cancel_flush(d->store, &d->flusher);
	if (d->fd >= 0)
		close(d->fd);
	if (remove && d->path && unlink(d->path) != 0 && errno != ENOENT)
		log_warning("dedup cache %s: %s", d->path, strerror(errno));
	free(d->path);
	dedup_args_free(&d->args);
	free(d);
}

void dedup_path(const char *data_dir, const char *kind, const char *vhost,
    const char *name, char *out, size_t len)
{
	unsigned char digest[32];
	char hex[65];

	/* Names are any bytes up to 255: a digest makes a safe file name. */
	vhost_object_digest(kind, vhost, name, digest);
	for (unsigned int i = 0; i < sizeof(digest); i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	snprintf(out, len, "%s/dedup/%s", data_dir, hex);
}
