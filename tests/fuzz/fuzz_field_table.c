/*
 * libFuzzer target: field tables.
 *
 * The input is a table's raw content (no u32 length prefix), as the method
 * decoder hands it over.  Properties:
 *   - ftable_validate(raw) is true exactly when ftable_decode(raw) != NULL;
 *   - a decoded table re-encodes (ftable_encode) to u32 length + raw,
 *     byte for byte;
 *   - the tree is equal to itself (ftable_equal) and to a decode of its own
 *     encoding, and every value is fvalue_equivalent to itself unless it
 *     is (or holds) a NaN;
 *   - ftable_get finds the first entry of each key.
 * Everything allocated is freed (LeakSanitizer checks).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "field_table.h"
#include "wire.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_field_table: %s\n", what);
	abort();
}

static bool has_nan(const struct field_value *v);

static bool table_has_nan(const struct field_table *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (has_nan(&t->entries[i].value))
			return true;
	return false;
}

static bool has_nan(const struct field_value *v)
{
	switch (v->type) {
	case 'f':
		return isnan(v->v.f);
	case 'd':
		return isnan(v->v.d);
	case 'F':
		return table_has_nan(v->v.table);
	case 'A':
		for (uint32_t i = 0; i < v->v.array->n; i++)
			if (has_nan(&v->v.array->items[i]))
				return true;
		return false;
	default:
		return false;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct field_table *t, *t2;
	struct bytes raw;
	struct wbuf b;
	uint8_t *copy;
	bool valid;

	if (size > UINT32_MAX - 4)
		return 0;
	copy = malloc(size ? size : 1);
	if (size)
		memcpy(copy, data, size);
	raw = (struct bytes){ copy, (uint32_t)size };

	valid = ftable_validate(raw);
	t = ftable_decode(raw);
	if (valid != (t != NULL))
		fail(valid ? "validate accepts what decode refuses"
		    : "decode accepts what validate refuses");
	if (t == NULL) {
		free(copy);
		return 0;
	}

	wbuf_init(&b);
	ftable_encode(&b, t);
	if (b.len != (size_t)size + 4)
		fail("encoded length differs");
	if (b.p[0] != (uint8_t)(size >> 24) || b.p[1] != (uint8_t)(size >> 16) ||
	    b.p[2] != (uint8_t)(size >> 8) || b.p[3] != (uint8_t)size)
		fail("encoded length prefix wrong");
	if (size && memcmp(b.p + 4, copy, size) != 0)
		fail("encoding differs from the input");

	/* Decoding our own encoding gives an equal tree. */
	t2 = ftable_decode((struct bytes){ b.p + 4, (uint32_t)size });
	if (t2 == NULL)
		fail("own encoding does not decode");
	if (!ftable_equal(t, t) || !ftable_equal(t, t2))
		fail("ftable_equal: tree differs from itself");

	for (uint32_t i = 0; i < t->n; i++) {
		const struct field_value *v = &t->entries[i].value;
		const struct field_value *g;
		char key[256];

		if (!has_nan(v) && !fvalue_equivalent(v, v))
			fail("fvalue_equivalent: value differs from itself");
		if (!has_nan(v) &&
		    !fvalue_equivalent(v, &t2->entries[i].value))
			fail("fvalue_equivalent: value differs from its copy");
		/* ftable_get takes a C string: only NUL-free keys. */
		if (memchr(t->entries[i].key.ptr, 0, t->entries[i].key.len))
			continue;
		memcpy(key, t->entries[i].key.ptr, t->entries[i].key.len);
		key[t->entries[i].key.len] = '\0';
		g = ftable_get(t, key);
		if (g == NULL)
			fail("ftable_get misses a key");
		for (uint32_t j = 0; j < i; j++)
			if (bytes_eq(t->entries[j].key, t->entries[i].key)) {
				if (g != &t->entries[j].value)
					fail("ftable_get: not the first match");
				goto next;
			}
		if (g != v)
			fail("ftable_get: wrong entry");
next:		;
	}

	ftable_free(t2);
	ftable_free(t);
	wbuf_free(&b);
	free(copy);
	return 0;
}
