/*
 * CRC-32C (see crc32c.h).  The tables are built once, under pthread_once,
 * because the store thread and the event loop may both be first to call.
 * crc32c_combine() is zlib's crc32_combine() with this polynomial.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "crc32c.h"

#define POLY 0x82F63B78u

/* slice[k][b]: the CRC of byte b followed by k zero bytes. */
static uint32_t slice[8][256];
/*
 * zeros[i][j]: x^(8 * j * 256^i) modulo the polynomial, the operator that
 * appends j * 256^i zero bytes, so crc32c_combine() takes one product per
 * byte of the length.  (zlib's x2n table wraps around after x^(2^31);
 * for this polynomial that would be wrong past 512 MiB.)
 */
static uint32_t zeros[sizeof(size_t)][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/*
 * a * b modulo the polynomial, bit-reflected (x^0 is the top bit).
 * Branch-free: resync calls it for every long candidate record.
 */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t p = 0;

	for (int i = 31; i >= 0; i--) {
		p ^= b & (0u - ((a >> i) & 1));
		b = (b >> 1) ^ (POLY & (0u - (b & 1)));
	}
	return p;
}

static void tables_init(void)
{
	uint32_t c, p;

	for (int b = 0; b < 256; b++) {
		c = (uint32_t)b;
		for (int i = 0; i < 8; i++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		slice[0][b] = c;
	}
	for (int b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			slice[k][b] = (slice[k - 1][b] >> 8) ^
			    slice[0][slice[k - 1][b] & 0xff];
	p = (uint32_t)1 << 23;		/* x^8: one zero byte */
	for (size_t i = 0; i < sizeof(size_t); i++) {
		zeros[i][0] = (uint32_t)1 << 31;	/* x^0 */
		for (int j = 1; j < 256; j++)
			zeros[i][j] = multmodp(zeros[i][j - 1], p);
		p = multmodp(zeros[i][255], p);
	}
}

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint32_t lo, hi;

	pthread_once(&tables_once, tables_init);
	crc = ~crc;
	for (; n >= 8; p += 8, n -= 8) {
		lo = crc ^ load_le32(p);
		hi = load_le32(p + 4);
		crc = slice[7][lo & 0xff] ^ slice[6][(lo >> 8) & 0xff] ^
		    slice[5][(lo >> 16) & 0xff] ^ slice[4][lo >> 24] ^
		    slice[3][hi & 0xff] ^ slice[2][(hi >> 8) & 0xff] ^
		    slice[1][(hi >> 16) & 0xff] ^ slice[0][hi >> 24];
	}
	while (n--)
		crc = (crc >> 8) ^ slice[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc, w;

	/* Aligned 8-byte loads from here on. */
	for (; n > 0 && ((uintptr_t)p & 7) != 0; n--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, sizeof(w));
		c = _mm_crc32_u64(c, w);
	}
	while (n--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, p, n);
#endif
	return crc32c_sw(crc, p, n);
}

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b)
{
	uint32_t op = (uint32_t)1 << 31;	/* x^0 */

	pthread_once(&tables_once, tables_init);
	/* op = x^(8 * len_b): appending len_b bytes multiplies crc_a by it. */
	for (size_t i = 0; len_b != 0; i++, len_b >>= 8)
		if ((len_b & 0xff) != 0)
			op = multmodp(zeros[i][len_b & 0xff], op);
	return multmodp(op, crc_a) ^ crc_b;
}
