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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "amqp.h"
#include "amqp_error.h"
#include "config.h"
#include "dedup.h"
#include "field_table.h"
#include "log.h"
#include "message.h"
#include "properties.h"
#include "store.h"
#include "strmap.h"

/* LavinMQ's default header name, used when there is no message-id. */
#define DEFAULT_HEADER "x-deduplication-header"

struct slot {
	uint64_t seq;			/* 0: empty */
	uint64_t expires_wall;		/* ms; 0: never */
	uint16_t len;
	uint8_t *key;
};

struct dedup_cache {
	struct dedup_args args;
	struct slot *slots;		/* args.cache_size of them */
	struct strmap *index;		/* key -> slot number + 1 */
	uint64_t next_seq;
	uint64_t count, dropped;
	struct store *store;
	int fd;				/* -1: memory only */
	char *path;
};

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

/* A header value as key bytes into buf (DEDUP_KEY_MAX + 1); its length,
 * or -1 when it cannot be a key. */
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

/*
 * msg's key into out (a copy, at most DEDUP_KEY_MAX bytes: longer ones
 * become a zero byte and their SHA-256) and its per-message TTL (-1:
 * none); false when it has none.
 */
static bool message_key(const struct dedup_cache *d, const struct message *msg,
    uint8_t *out, uint16_t *out_len, int64_t *ttl)
{
	struct basic_properties p;
	struct field_table *t = NULL;
	const struct field_value *v;
	uint8_t num[DEDUP_KEY_MAX + 1];
	struct bytes key = { NULL, 0 };
	bool found = false;

	*ttl = -1;
	msg_props(msg, &p);
	if (msg->headers.len)
		t = ftable_decode(msg->headers);
	if (t && (v = ftable_get(t, "x-cache-ttl")) != NULL &&
	    fvalue_int64(v, ttl) && *ttl < 0)
		*ttl = -1;
	if (d->args.header) {
		found = t && (v = ftable_get(t, d->args.header)) != NULL &&
		    value_key(v, num, &key) == 0;
	} else if (props_has(&p, PROP_message_id)) {
		key = p.message_id;
		found = true;
	} else {
		found = t && (v = ftable_get(t, DEFAULT_HEADER)) != NULL &&
		    value_key(v, num, &key) == 0;
	}
	if (found && key.len <= DEDUP_KEY_MAX) {
		memcpy(out, key.ptr, key.len);
		*out_len = (uint16_t)key.len;
	} else if (found) {
		unsigned int n = 0;

		out[0] = 0;
		EVP_Digest(key.ptr, key.len, out + 1, &n, EVP_sha256(), NULL);
		*out_len = (uint16_t)(1 + n);
	}
	ftable_free(t);
	return found;
}

/* ---- the ring -------------------------------------------------------------- */

static void slot_clear(struct dedup_cache *d, struct slot *s)
{
	if (s->seq == 0)
		return;
	strmap_del(d->index, (struct bytes){ s->key, s->len });
	free(s->key);
	s->key = NULL;
	s->seq = 0;
	d->count--;
}

/* Write slot i to the file in the store's current batch. */
static void slot_save(struct dedup_cache *d, uint64_t i, uint64_t *ticket)
{
	const struct slot *s = &d->slots[i];
	uint8_t *rec;

	if (d->fd < 0)
		return;
	rec = xcalloc(1, DEDUP_SLOT_SIZE);
	le64_put(rec, s->seq);
	le64_put(rec + 8, s->expires_wall);
	rec[16] = (uint8_t)s->len;
	rec[17] = (uint8_t)(s->len >> 8);
	memcpy(rec + 18, s->key, s->len);
	if (!store_write_file(d->store, d->fd, i * DEDUP_SLOT_SIZE, rec,
	    DEDUP_SLOT_SIZE, DEDUP_SLOT_SIZE)) {
		log_warning("dedup cache %s: %s; kept in memory only", d->path,
		    strerror(errno));
		free(rec);
		close(d->fd);
		d->fd = -1;
		return;
	}
	if (ticket && *ticket < store_current_ticket(d->store))
		*ticket = store_current_ticket(d->store);
}

/* Put key into the slot of seq (evicting what was there). */
static void slot_fill(struct dedup_cache *d, uint64_t seq, const uint8_t *key,
    uint16_t len, uint64_t expires_wall)
{
	uint64_t i = seq % (uint64_t)d->args.cache_size;
	struct slot *s = &d->slots[i];

	slot_clear(d, s);
	s->seq = seq;
	s->expires_wall = expires_wall;
	s->len = len;
	s->key = xmalloc(len ? len : 1);
	memcpy(s->key, key, len);
	strmap_put(d->index, (struct bytes){ s->key, len },
	    (void *)(uintptr_t)(i + 1));
	d->count++;
}

bool dedup_seen(struct dedup_cache *d, const struct message *msg,
    uint64_t *ticket)
{
	uint8_t key[DEDUP_KEY_MAX + 1];
	uint16_t len;
	int64_t ttl;
	uintptr_t at;
	uint64_t now, seq;

	if (!message_key(d, msg, key, &len, &ttl))
		return false;
	now = wall_ms();
	at = (uintptr_t)strmap_get(d->index, (struct bytes){ key, len });
	if (at) {
		struct slot *s = &d->slots[at - 1];

		if (s->expires_wall == 0 || now < s->expires_wall) {
			d->dropped++;
			return true;
		}
		slot_clear(d, s);	/* expired: seen anew below */
	}
	if (ttl < 0)
		ttl = d->args.cache_ttl;
	seq = d->next_seq++;
	slot_fill(d, seq, key, len, ttl >= 0 ? now + (uint64_t)ttl : 0);
	slot_save(d, seq % (uint64_t)d->args.cache_size, ticket);
	return false;
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
		struct slot s;

		if (r != (ssize_t)sizeof(rec))
			break;
		s.seq = le64_get(rec);
		s.expires_wall = le64_get(rec + 8);
		s.len = (uint16_t)(rec[16] | rec[17] << 8);
		if (s.seq == 0 || s.len > DEDUP_KEY_MAX ||
		    s.seq % n != i)
			continue;
		if (s.seq >= d->next_seq)
			d->next_seq = s.seq + 1;
		if (s.expires_wall && s.expires_wall <= now)
			continue;
		s.key = xmalloc(s.len ? s.len : 1);
		memcpy(s.key, rec + 18, s.len);
		found[got++] = s;
	}
	qsort(found, got, sizeof(*found), by_seq);
	for (size_t i = 0; i < got; i++) {
		slot_fill(d, found[i].seq, found[i].key, found[i].len,
		    found[i].expires_wall);
		free(found[i].key);
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
	d->slots = xcalloc((size_t)args->cache_size, sizeof(*d->slots));
	d->index = strmap_new();
	d->next_seq = 1;
	d->fd = -1;
	if (store && path) {
		d->store = store;
		d->path = xstrdup(path);
		open_file(d, restore_it);
	}
	return d;
}

void dedup_free(struct dedup_cache *d, bool remove)
{
	if (d == NULL)
		return;
	for (int64_t i = 0; i < d->args.cache_size; i++)
		free(d->slots[i].key);
	free(d->slots);
	strmap_free(d->index);
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
	unsigned int n = 0;
	char hex[65];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	/* Names are any bytes up to 255: a digest makes a safe file name. */
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, kind, strlen(kind) + 1);
	EVP_DigestUpdate(ctx, vhost, strlen(vhost) + 1);
	EVP_DigestUpdate(ctx, name, strlen(name));
	EVP_DigestFinal_ex(ctx, digest, &n);
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	snprintf(out, len, "%s/dedup/%s", data_dir, hex);
}
