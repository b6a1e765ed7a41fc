/*
 * libFuzzer target: content_header_parse on arbitrary bytes.
 *
 * Properties: a failed parse returns AMQP_FRAME_ERROR or AMQP_SYNTAX_ERROR;
 * on success every present string/table property lies within the input
 * (and the headers table validates), content_header_encode of the result
 * reproduces the input exactly, and that encoding parses and re-encodes
 * to itself.
 *
 * Built with -DFUZZ_CH_STRICT=0 the target only requires the encoding to
 * be a prefix of the input (tolerating bytes after the last property), to
 * look past that one known divergence.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "amqp.h"
#include "field_table.h"
#include "properties.h"
#include "wire.h"

/*
 * 1 (default): the encoding must equal the whole input.  0: only that it
 * is a prefix of the input (tolerate trailing bytes after the properties).
 */
#ifndef FUZZ_CH_STRICT
#define FUZZ_CH_STRICT 1
#endif

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_content_header: %s\n", what);
	abort();
}

static void check_inside(struct bytes s, const uint8_t *p, size_t n)
{
	if (s.len == 0)
		return;
	if (s.ptr < p || s.ptr > p + n || s.len > (size_t)(p + n - s.ptr))
		fail("property does not lie within the payload");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct content_header h, h2;
	struct wbuf b, b2;
	uint8_t *copy;
	int rc;

	if (size > UINT32_MAX)
		return 0;
	copy = malloc(size ? size : 1);
	if (size)
		memcpy(copy, data, size);

	rc = content_header_parse((struct bytes){ copy, (uint32_t)size }, &h);
	if (rc != 0) {
		if (rc != AMQP_FRAME_ERROR && rc != AMQP_SYNTAX_ERROR)
			fail("unexpected error code");
		free(copy);
		return 0;
	}
	if (h.props.flags & 0x3)
		fail("accepted flag bits 0/1");

#define X(name, type)							\
	if (props_has(&h.props, PROP_##name))				\
		check_inside_##type(h.props.name, copy, size);
#define check_inside_shortstr(v, p, n) check_inside((v), (p), (n))
#define check_inside_table(v, p, n)					\
	do {								\
		check_inside((v), (p), (n));				\
		if (!ftable_validate(v))				\
			fail("accepted an invalid headers table");	\
	} while (0)
#define check_inside_octet(v, p, n) ((void)0)
#define check_inside_timestamp(v, p, n) ((void)0)
	BASIC_PROPERTIES(X)
#undef X

	wbuf_init(&b);
	content_header_encode(&b, &h);
	if (b.len > size || memcmp(b.p, copy, b.len) != 0)
		fail("encoding is not a prefix of the input");
	if (FUZZ_CH_STRICT && b.len != size)
		fail("parser accepted trailing bytes the encoder drops");

	/* The encoding parses again to the same encoding. */
	if (content_header_parse((struct bytes){ b.p, (uint32_t)b.len }, &h2))
		fail("own encoding does not parse");
	wbuf_init(&b2);
	content_header_encode(&b2, &h2);
	if (b2.len != b.len || memcmp(b.p, b2.p, b.len) != 0)
		fail("second encoding differs");

	wbuf_free(&b);
	wbuf_free(&b2);
	free(copy);
	return 0;
}
