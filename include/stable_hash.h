/*
 * A hash of bytes that is the same in every run (unlike strmap's seeded
 * one): for what is kept on disk or must map a key to the same place
 * after a restart (stream chunks' Bloom filters, x-consistent-hash).
 * FNV-1a, then a 64-bit finalizer so that similar inputs scatter.
 */
#ifndef WARREN_STABLE_HASH_H
#define WARREN_STABLE_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t stable_hash(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

#endif
