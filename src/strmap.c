/*
 * Open addressing with linear probing and tombstones; grows at 70% load.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"
#include "strmap.h"

struct slot {
	uint8_t *key;		/* NULL: empty; TOMBSTONE: deleted */
	uint32_t keylen;
	uint64_t hash;
	void *value;
};

struct strmap {
	struct slot *slots;
	size_t cap;		/* power of two */
	size_t count;
	size_t used;		/* count + tombstones */
};

static uint8_t tombstone_byte;
#define TOMBSTONE (&tombstone_byte)

static uint64_t hash_seed;

/* The seed is drawn once, before the first hash anyone asks for. */
static void seed_once(void)
{
	if (hash_seed == 0 &&
	    RAND_bytes((unsigned char *)&hash_seed, sizeof(hash_seed)) != 1)
		hash_seed = 0x9e3779b97f4a7c15ULL;
}

/*
 * A word at a time (a byte-at-a-time FNV was a visible cost for 36-byte
 * message ids): each 8 bytes are multiplied in and rotated, the seed and
 * the length start it, and splitmix64's finalizer spreads the result.
 */
#define HASH_K1 0x9e3779b97f4a7c15ULL
#define HASH_K2 0xbf58476d1ce4e5b9ULL

static inline uint64_t hash_absorb(uint64_t h, uint64_t w)
{
	h ^= w * HASH_K2;
	h = (h << 31 | h >> 33) * HASH_K1;
	return h;
}

static uint64_t hash_bytes(struct bytes k)
{
	const uint8_t *p = k.ptr;
	uint32_t n = k.len;
	uint64_t h = hash_seed ^ (uint64_t)n * HASH_K1, w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = hash_absorb(h, w);
	}
	if (n) {
		w = 0;
		for (uint32_t i = 0; i < n; i++)
			w |= (uint64_t)p[i] << (8 * i);
		h = hash_absorb(h, w);
	}
	h ^= h >> 30;
	h *= HASH_K2;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

struct strmap *strmap_new(void)
{
	struct strmap *m = xcalloc(1, sizeof(*m));

	seed_once();
	m->cap = 16;
	m->slots = xcalloc(m->cap, sizeof(struct slot));
	return m;
}

void strmap_free(struct strmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != TOMBSTONE)
			free(m->slots[i].key);
	free(m->slots);
	free(m);
}

static struct slot *find(const struct strmap *m, struct bytes key,
    uint64_t h)
{
	size_t mask = m->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &m->slots[i];

		if (s->key == NULL)
			return NULL;
		if (s->key != TOMBSTONE && s->hash == h && s->keylen == key.len &&
		    (key.len == 0 || memcmp(s->key, key.ptr, key.len) == 0))
			return s;
	}
}

static void grow(struct strmap *m)
{
	struct slot *old = m->slots;
	size_t oldcap = m->cap;

	if (m->count * 2 >= m->cap)
		m->cap *= 2;
	m->slots = xcalloc(m->cap, sizeof(struct slot));
	m->used = m->count;
	for (size_t i = 0; i < oldcap; i++) {
		size_t mask = m->cap - 1, j;

		if (old[i].key == NULL || old[i].key == TOMBSTONE)
			continue;
		for (j = old[i].hash & mask; m->slots[j].key; j = (j + 1) & mask)
			;
		m->slots[j] = old[i];
	}
	free(old);
}

void *strmap_get(const struct strmap *m, struct bytes key)
{
	return strmap_get_hashed(m, key, hash_bytes(key));
}

uint64_t strmap_hash(struct bytes key)
{
	seed_once();
	return hash_bytes(key);
}

void *strmap_get_hashed(const struct strmap *m, struct bytes key, uint64_t h)
{
	struct slot *s = find(m, key, h);

	return s ? s->value : NULL;
}

void *strmap_put(struct strmap *m, struct bytes key, void *value)
{
	uint64_t h = hash_bytes(key);
	struct slot *s = find(m, key, h);
	size_t mask, i;

	if (s) {
		void *prev = s->value;

		s->value = value;
		return prev;
	}
	if ((m->used + 1) * 10 >= m->cap * 7)
		grow(m);
	mask = m->cap - 1;
	for (i = h & mask; m->slots[i].key && m->slots[i].key != TOMBSTONE;
	    i = (i + 1) & mask)
		;
	if (m->slots[i].key == NULL)
		m->used++;
	s = &m->slots[i];
	s->key = xmalloc(key.len ? key.len : 1);
	if (key.len)
		memcpy(s->key, key.ptr, key.len);
	s->keylen = key.len;
	s->hash = h;
	s->value = value;
	m->count++;
	return NULL;
}

void *strmap_del(struct strmap *m, struct bytes key)
{
	struct slot *s = find(m, key, hash_bytes(key));
	void *v;

	if (s == NULL)
		return NULL;
	v = s->value;
	free(s->key);
	s->key = TOMBSTONE;
	s->value = NULL;
	m->count--;
	return v;
}

size_t strmap_count(const struct strmap *m)
{
	return m->count;
}

int strmap_next(const struct strmap *m, size_t *it, struct bytes *key,
    void **value)
{
	for (; *it < m->cap; (*it)++) {
		struct slot *s = &m->slots[*it];

		if (s->key && s->key != TOMBSTONE) {
			key->ptr = s->key;
			key->len = s->keylen;
			*value = s->value;
			(*it)++;
			return 1;
		}
	}
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct strmap_entry *x = a, *y = b;
	uint32_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
	int c = n ? memcmp(x->key.ptr, y->key.ptr, n) : 0;

	return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

struct strmap_entry *strmap_sorted(const struct strmap *m, size_t *n)
{
	struct strmap_entry *v = xcalloc(strmap_count(m) + 1, sizeof(*v));
	size_t i = 0;

	for (size_t it = 0; strmap_next(m, &it, &v[i].key, &v[i].value); )
		i++;
	qsort(v, i, sizeof(*v), entry_cmp);
	*n = i;
	return v;
}
