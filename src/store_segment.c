/*
 * Segment files of the message store (see store_segment.h): names, the
 * directory listing and the recovery scan.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store_record.h"
#include "store_segment.h"

#define DIGITS 20

void store_segment_path(char *out, size_t outlen, const char *dir,
    uint64_t number)
{
	int r = snprintf(out, outlen, "%s/%0*llu.seg", dir, DIGITS,
	    (unsigned long long)number);

	if (r < 0 || (size_t)r >= outlen)
		fatalx("store_segment_path: %s: path too long", dir);
}

bool store_segment_parse_name(const char *name, uint64_t *number)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < DIGITS; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		if (v > (UINT64_MAX - (uint64_t)(name[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	if (strcmp(name + DIGITS, ".seg") != 0)
		return false;
	*number = v;
	return true;
}

static void scan_buffer(const char *path, const uint8_t *buf, size_t size,
    store_record_fn *fn, void *arg, struct store_scan_stats *st)
{
	const uint8_t *body;
	size_t off = 0, rec_size, next;
	uint32_t len;
	enum store_scan r;

	while ((r = store_record_read(buf + off, size - off, &rec_size, &body,
	    &len)) != STORE_SCAN_END) {
		if (r == STORE_SCAN_OK) {
			fn(arg, off, body[0], body, len);
			st->records++;
			st->bytes += rec_size;
			off += rec_size;
			st->valid_end = off;
			continue;
		}
		next = store_record_resync(buf, size, off + 1);
		st->skipped_bytes += next - off;
		if (r == STORE_SCAN_TORN && next == size) {
			log_warning("%s: offset %zu: torn tail of %zu bytes",
			    path, off, size - off);
			st->torn_tail = true;
			return;
		}
		log_warning("%s: offset %zu: corrupt record, skipped %zu bytes",
		    path, off, next - off);
		st->corrupt_records++;
		off = next;
	}
}

bool store_segment_scan(const char *path, store_record_fn *fn, void *arg,
    struct store_scan_stats *st)
{
	struct stat sb;
	void *map;
	int fd;

	memset(st, 0, sizeof(*st));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_error("%s: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &sb) == -1) {
		log_error("%s: %s", path, strerror(errno));
		close(fd);
		return false;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > SIZE_MAX) {
		log_error("%s: not a regular file of a size we can map", path);
		close(fd);
		return false;
	}
	/* mmap() refuses length 0, and an empty segment has nothing to say. */
	if (sb.st_size == 0) {
		close(fd);
		return true;
	}
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		log_error("%s: mmap: %s", path, strerror(errno));
		close(fd);
		return false;
	}
	close(fd);
	(void)madvise(map, (size_t)sb.st_size, MADV_SEQUENTIAL);
	scan_buffer(path, map, (size_t)sb.st_size, fn, arg, st);
	munmap(map, (size_t)sb.st_size);
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

bool store_segment_list(const char *dir, uint64_t **numbers, size_t *n)
{
	DIR *d;
	struct dirent *de;
	uint64_t *v = NULL, num;
	size_t len = 0, cap = 0;

	*numbers = NULL;
	*n = 0;
	if ((d = opendir(dir)) == NULL) {
		log_error("%s: %s", dir, strerror(errno));
		return false;
	}
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if (!store_segment_parse_name(de->d_name, &num))
			continue;
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[len++] = num;
	}
	if (errno != 0) {
		log_error("%s: readdir: %s", dir, strerror(errno));
		closedir(d);
		free(v);
		return false;
	}
	closedir(d);
	if (len > 0)
		qsort(v, len, sizeof(*v), cmp_u64);
	*numbers = v;
	*n = len;
	return true;
}
