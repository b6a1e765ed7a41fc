/*
 * The message store's segment files: naming, listing, and the recovery
 * scan that reads every record of a segment and steps over damage.
 *
 * A segment is a file "%020llu.seg" (its number) in the store directory,
 * holding records back to back (store_record.h).
 */
#ifndef WARREN_STORE_SEGMENT_H
#define WARREN_STORE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of a segment file name, without the NUL. */
#define STORE_SEGMENT_NAME_LEN 24

/* "dir/00000000000000000042.seg"; a path longer than outlen is fatal. */
void store_segment_path(char *out, size_t outlen, const char *dir,
    uint64_t number);
/* True only for exactly 20 digits (a uint64_t) followed by ".seg". */
bool store_segment_parse_name(const char *name, uint64_t *number);

/*
 * What a scan found.  bytes + skipped_bytes is the file's size: skipped
 * bytes are the damaged regions, counted one per region in corrupt_records,
 * and the torn tail.  valid_end is the offset just past the last good
 * record: where an appender truncates the file before appending.
 */
struct store_scan_stats {
	uint64_t records, bytes, corrupt_records, skipped_bytes;
	bool torn_tail;
	uint64_t valid_end;
};

/* One good record; body includes the type byte (body[0] == type). */
typedef void store_record_fn(void *arg, uint64_t offset, uint8_t type,
    const uint8_t *body, uint32_t body_len);

/*
 * Call fn for every good record of the segment at path, in file order.
 * Each damaged region is logged as a warning with its offset and size and
 * skipped up to the next good record.  A record running past the end of
 * the file is a torn tail (the last write cut short) unless a good record
 * follows it, in which case its length was damaged and it is skipped like
 * other damage.  False, logged, only when the file cannot be read; no
 * content can make the scan fail.  The file must not shrink meanwhile
 * (it is mapped).
 */
bool store_segment_scan(const char *path, store_record_fn *fn, void *arg,
    struct store_scan_stats *st);

/*
 * The numbers of the segments in dir, ascending, in a malloc'd array the
 * caller frees (NULL when there are none); other names are ignored.  False,
 * logged, when dir cannot be read.
 */
bool store_segment_list(const char *dir, uint64_t **numbers, size_t *n);

#endif
