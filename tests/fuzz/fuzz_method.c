/*
 * libFuzzer target: method_decode on arbitrary bytes.
 *
 * Property: whenever decode succeeds, encoding the result and decoding that
 * again succeeds with the same method id, and re-encoding gives identical
 * bytes.  (The first encoding need not equal the input: unused bits of a
 * bit octet are dropped.)  Also checks method_name/method_info agree on
 * every id the decoder accepts.
 *
 * Build: see tests/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "amqp.h"
#include "method.h"
#include "wire.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_method: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct amqp_method m1, m2;
	struct wbuf e1, e2;
	uint8_t *copy;
	int rc;

	if (size > UINT32_MAX)
		return 0;
	/* Exact-size heap copy so ASan catches any read past the payload. */
	copy = malloc(size ? size : 1);
	if (size)
		memcpy(copy, data, size);

	rc = method_decode((struct bytes){ copy, (uint32_t)size }, &m1);
	if (rc != 0) {
		if (rc != AMQP_FRAME_ERROR && rc != AMQP_COMMAND_INVALID)
			fail("unexpected error code");
		if (rc == AMQP_COMMAND_INVALID && method_info(m1.id) != NULL)
			fail("COMMAND_INVALID for a known method id");
		free(copy);
		return 0;
	}
	if (method_info(m1.id) == NULL)
		fail("decoded an id method_info does not know");

	wbuf_init(&e1);
	method_encode(&e1, &m1);
	/* Decode consumed every byte, and each field re-encodes to its own
	 * width (bits pack into as many octets), so lengths must match. */
	if (e1.len != size)
		fail("re-encoding length differs from the input's");

	if (e1.len > UINT32_MAX)
		fail("encoding too long");
	if (method_decode((struct bytes){ e1.p, (uint32_t)e1.len }, &m2) != 0)
		fail("re-encoded method does not decode");
	if (m2.id != m1.id)
		fail("method id changed across round trip");

	wbuf_init(&e2);
	method_encode(&e2, &m2);
	if (e2.len != e1.len || memcmp(e1.p, e2.p, e1.len) != 0)
		fail("second encoding differs from the first");

	wbuf_free(&e1);
	wbuf_free(&e2);
	free(copy);
	return 0;
}
