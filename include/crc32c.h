/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of
 * the message store's records.
 *
 * Start with crc 0 and feed the data in any number of calls:
 * crc32c(crc32c(0, a, n), b, m) == crc32c(0, a || b, n + m).
 * Every function is thread-safe.
 */
#ifndef WARREN_CRC32C_H
#define WARREN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The SSE4.2 crc32 instruction where the CPU has it, else crc32c_sw(). */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* The portable path (slice-by-8 tables); the same results as crc32c(). */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);
/*
 * The CRC of a || b from the CRCs of a and b and the length of b, in
 * O(log len_b) without the data: checks a record's CRC from CRCs of
 * prefixes of a buffer (store_record_resync).
 */
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b);

#endif
