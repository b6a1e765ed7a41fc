/*
 * Record framing for the message store (see store_record.h).
 */
#include <stdbool.h>
#include <stdlib.h>

#include "crc32c.h"
#include "log.h"
#include "store_record.h"

/*
 * Resync checks a candidate with a body up to DIRECT_MAX bytes by its own
 * CRC; a longer one from prefix CRCs kept every PREFIX_STRIDE bytes.
 */
#define DIRECT_MAX	4096
#define PREFIX_STRIDE	256

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void store_record_header(uint8_t out[STORE_RECORD_HEADER_SIZE],
    const struct iovec *parts, int n_parts)
{
	size_t len = 0;
	int type = -1;
	uint32_t crc;

	for (int i = 0; i < n_parts; i++) {
		if (type < 0 && parts[i].iov_len > 0)
			type = *(const uint8_t *)parts[i].iov_base;
		len += parts[i].iov_len;
	}
	if (len == 0 || len > STORE_RECORD_MAX_BODY || type == 0)
		fatalx("store_record_header: bad body (%zu bytes, type %d)",
		    len, type);
	put_le32(out, (uint32_t)len);
	crc = crc32c(0, out, 4);
	for (int i = 0; i < n_parts; i++)
		crc = crc32c(crc, parts[i].iov_base, parts[i].iov_len);
	put_le32(out + 4, crc);
}

/*
 * Everything but the CRC: is there a whole record at buf with a length and
 * type that could be real?  The length on success.
 */
static bool record_fits(const uint8_t *buf, size_t avail, uint32_t *len)
{
	if (avail <= STORE_RECORD_HEADER_SIZE)
		return false;
	*len = get_le32(buf);
	return *len >= 1 && *len <= STORE_RECORD_MAX_BODY &&
	    *len <= avail - STORE_RECORD_HEADER_SIZE &&
	    buf[STORE_RECORD_HEADER_SIZE] != 0;
}

enum store_scan store_record_read(const uint8_t *buf, size_t avail,
    size_t *rec_size, const uint8_t **body, uint32_t *body_len)
{
	uint32_t len, crc;

	if (avail == 0)
		return STORE_SCAN_END;
	if (avail < 4)
		return STORE_SCAN_TORN;
	len = get_le32(buf);
	if (len == 0 || len > STORE_RECORD_MAX_BODY)
		return STORE_SCAN_CORRUPT;
	if (avail > STORE_RECORD_HEADER_SIZE && buf[STORE_RECORD_HEADER_SIZE] == 0)
		return STORE_SCAN_CORRUPT;
	if (avail < STORE_RECORD_HEADER_SIZE ||
	    avail - STORE_RECORD_HEADER_SIZE < len)
		return STORE_SCAN_TORN;
	crc = crc32c(crc32c(0, buf, 4), buf + STORE_RECORD_HEADER_SIZE, len);
	if (crc != get_le32(buf + 4))
		return STORE_SCAN_CORRUPT;
	*rec_size = STORE_RECORD_HEADER_SIZE + (size_t)len;
	*body = buf + STORE_RECORD_HEADER_SIZE;
	*body_len = len;
	return STORE_SCAN_OK;
}

/* CRCs of the prefixes base[0 .. k * PREFIX_STRIDE), built as needed. */
struct prefix_crcs {
	const uint8_t *base;
	uint32_t *crc;
	size_t n, cap;
};

/* crc32c(0, base, pos); pos must lie within the buffer. */
static uint32_t prefix_crc(struct prefix_crcs *pc, size_t pos)
{
	size_t k = pos / PREFIX_STRIDE;

	if (pc->n == 0) {
		pc->cap = 64;
		pc->crc = xmalloc(pc->cap * sizeof(*pc->crc));
		pc->crc[pc->n++] = 0;
	}
	for (; pc->n <= k; pc->n++) {
		if (pc->n == pc->cap) {
			pc->cap *= 2;
			pc->crc = xrealloc(pc->crc, pc->cap * sizeof(*pc->crc));
		}
		pc->crc[pc->n] = crc32c(pc->crc[pc->n - 1],
		    pc->base + (pc->n - 1) * PREFIX_STRIDE, PREFIX_STRIDE);
	}
	return crc32c(pc->crc[k], pc->base + k * PREFIX_STRIDE,
	    pos - k * PREFIX_STRIDE);
}

/*
 * Does the CRC of the record at base + off match?  With A the CRC of the
 * prefix before the body and B the CRC of the prefix through it, the body's
 * CRC is B ^ shift(A, len), so the record's is combine(crc(len bytes) ^ A,
 * B, len).
 */
static bool prefix_crc_matches(struct prefix_crcs *pc, size_t off,
    uint32_t len)
{
	const uint8_t *rec = pc->base + off;
	size_t body = off + STORE_RECORD_HEADER_SIZE;
	uint32_t a = prefix_crc(pc, body), b = prefix_crc(pc, body + len);

	return crc32c_combine(crc32c(0, rec, 4) ^ a, b, len) ==
	    get_le32(rec + 4);
}

size_t store_record_resync(const uint8_t *buf, size_t avail, size_t from)
{
	struct prefix_crcs pc = { 0 };
	const uint8_t *body;
	size_t off, rec_size;
	uint32_t len;

	for (off = from; off < avail; off++) {
		if (!record_fits(buf + off, avail - off, &len))
			continue;
		pc.base = buf + from;
		if (len > DIRECT_MAX && !prefix_crc_matches(&pc, off - from, len))
			continue;
		if (store_record_read(buf + off, avail - off, &rec_size, &body,
		    &len) == STORE_SCAN_OK)
			break;
	}
	free(pc.crc);
	return off < avail ? off : avail;
}
