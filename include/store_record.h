/*
 * The message store's record framing.  A record on disk is
 *
 *	[u32 body_len, LE][u32 crc, LE][body_len bytes of body]
 *
 * where body[0] is the record type (nonzero) and crc is the CRC-32C of the
 * four length bytes followed by the body, so a damaged length is caught
 * like a damaged body.  1 <= body_len <= STORE_RECORD_MAX_BODY.
 */
#ifndef WARREN_STORE_RECORD_H
#define WARREN_STORE_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define STORE_RECORD_HEADER_SIZE 8
/* A 512 MiB message with room to spare for its metadata. */
#define STORE_RECORD_MAX_BODY (600u * 1024 * 1024)

/*
 * Fill the header of a record whose body is the concatenation of parts
 * (empty parts allowed), so the writer frames a body in pieces without
 * copying it.  A body that is empty, too long or of type 0 is a caller bug
 * (fatalx): it could never be read back.
 */
void store_record_header(uint8_t out[STORE_RECORD_HEADER_SIZE],
    const struct iovec *parts, int n_parts);

enum store_scan {
	STORE_SCAN_OK,		/* a valid record */
	STORE_SCAN_END,		/* no bytes left */
	STORE_SCAN_TORN,	/* plausible, but runs past the bytes there */
	STORE_SCAN_CORRUPT,	/* bad CRC, length or type */
};

/*
 * Examine the record at buf, with avail bytes readable there.  On OK set
 * *rec_size (header + body), *body (type byte first) and *body_len;
 * otherwise set nothing.  TORN is what the end of a write cut short looks
 * like; a length past STORE_RECORD_MAX_BODY, a visible type byte 0 or a CRC
 * mismatch is CORRUPT.
 */
enum store_scan store_record_read(const uint8_t *buf, size_t avail,
    size_t *rec_size, const uint8_t **body, uint32_t *body_len);

/*
 * After damage, the first offset >= from at which store_record_read()
 * returns OK, trying every byte; avail if there is none.  A message body
 * that itself holds a well-formed record can be taken for a record here,
 * and only here: in an undamaged file records are found by their lengths.
 * Candidates' CRCs are checked from CRCs of prefixes of the buffer, so a
 * long damaged run costs about linear time, not one CRC per candidate.
 */
size_t store_record_resync(const uint8_t *buf, size_t avail, size_t from);

#endif
