/*
 * Unit tests for the message store's on-disk format:
 *
 *  - CRC-32C: known vectors, incremental == one shot, the SSE4.2 path ==
 *    the table path, crc32c_combine;
 *  - records: framing from iovec pieces, every single-bit flip caught,
 *    every truncation torn, resync finding exactly what a byte-by-byte
 *    store_record_read would (prefix-CRC path included);
 *  - segments: names, listing, and scans of files with damage in the
 *    middle and a torn tail, the log lines they produce, and garbage.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"
#include "store_record.h"
#include "store_segment.h"

/* An assertion for hot loops: check's own ck_assert* write to a pipe each
 * time they pass. */
#define CHECK(c) do { \
	if (!(c)) \
		ck_abort_msg("%s:%d: assertion failed: %s", __FILE__, \
		    __LINE__, #c); \
} while (0)

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rng();
}

/* A growable byte string, for building segments. */
struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Append a record of the given type whose body continues with data;
 * return its offset. */
static size_t add_record(struct buf *b, uint8_t type, const void *data,
    size_t len)
{
	uint8_t hdr[STORE_RECORD_HEADER_SIZE];
	struct iovec iov[2] = {
		{ .iov_base = &type, .iov_len = 1 },
		{ .iov_base = (void *)data, .iov_len = len },
	};
	size_t off = b->len;

	store_record_header(hdr, iov, 2);
	buf_add(b, hdr, sizeof(hdr));
	buf_add(b, &type, 1);
	buf_add(b, data, len);
	return off;
}

static void add_random_record(struct buf *b, uint8_t type, size_t len)
{
	uint8_t *data = xmalloc(len + 1);

	fill_random(data, len);
	add_record(b, type, data, len);
	free(data);
}

/* ---- CRC-32C ------------------------------------------------------------ */

typedef uint32_t crc_fn(uint32_t, const void *, size_t);
static crc_fn *const crc_impls[] = { crc32c, crc32c_sw };

START_TEST(test_crc_vectors)
{
	uint8_t zeros[32], ones[32];

	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xff, sizeof(ones));
	for (size_t i = 0; i < 2; i++) {
		ck_assert_uint_eq(crc_impls[i](0, "123456789", 9), 0xE3069283);
		ck_assert_uint_eq(crc_impls[i](0, zeros, 32), 0x8A9136AA);
		ck_assert_uint_eq(crc_impls[i](0, ones, 32), 0x62A8AB43);
		ck_assert_uint_eq(crc_impls[i](0, NULL, 0), 0);
	}
}
END_TEST

START_TEST(test_crc_incremental)
{
	static uint8_t data[4096];
	size_t n, a, b;
	uint32_t whole, c;

	rng_seed(1);
	fill_random(data, sizeof(data));
	for (int iter = 0; iter < 2000; iter++) {
		n = (size_t)(rng() % sizeof(data));
		a = n ? (size_t)(rng() % (n + 1)) : 0;
		b = a + (size_t)(rng() % (n - a + 1));
		for (size_t i = 0; i < 2; i++) {
			whole = crc_impls[i](0, data, n);
			c = crc_impls[i](0, data, a);
			c = crc_impls[i](c, data + a, b - a);
			c = crc_impls[i](c, data + b, n - b);
			CHECK(c == whole);
		}
	}
}
END_TEST

START_TEST(test_crc_hw_matches_sw)
{
	size_t big = 1 << 20, off, n;
	uint8_t *data = xmalloc(big);

	rng_seed(2);
	fill_random(data, big);
	/* Every alignment and short length, then long runs. */
	for (off = 0; off < 16; off++)
		for (n = 0; n < 300; n++)
			CHECK(crc32c(7, data + off, n) ==
			    crc32c_sw(7, data + off, n));
	for (int iter = 0; iter < 50; iter++) {
		off = (size_t)(rng() % 64);
		n = (size_t)(rng() % (big - off));
		CHECK(crc32c(0, data + off, n) == crc32c_sw(0, data + off, n));
	}
	free(data);
}
END_TEST

START_TEST(test_crc_combine)
{
	static uint8_t data[70000];
	size_t n, a;

	rng_seed(3);
	fill_random(data, sizeof(data));
	for (int iter = 0; iter < 500; iter++) {
		n = (size_t)(rng() % sizeof(data));
		a = (size_t)(rng() % (n + 1));
		CHECK(crc32c_combine(crc32c(0, data, a),
		    crc32c(0, data + a, n - a), n - a) == crc32c(0, data, n));
	}
}
END_TEST

/* Past 512 MiB, where x^(8 * len) needs x^(2^32) and beyond. */
START_TEST(test_crc_combine_long)
{
	size_t chunk = 1 << 20, len = ((size_t)1 << 29) + 3 * chunk;
	uint8_t *zeros = xcalloc(1, chunk);
	uint32_t a = crc32c(0, "123456789", 9), ab = a, b = 0;

	for (size_t done = 0; done < len; done += chunk) {
		ab = crc32c(ab, zeros, chunk);
		b = crc32c(b, zeros, chunk);
	}
	ck_assert_uint_eq(crc32c_combine(a, b, len), ab);
	free(zeros);
}
END_TEST

/* ---- records ------------------------------------------------------------ */

START_TEST(test_record_roundtrip_iovec)
{
	uint8_t type = 7, hdr[STORE_RECORD_HEADER_SIZE];
	const char *a = "hello, ", *b = "world";
	struct iovec iov[4] = {
		{ .iov_base = &type, .iov_len = 1 },
		{ .iov_base = (void *)a, .iov_len = strlen(a) },
		{ .iov_base = NULL, .iov_len = 0 },
		{ .iov_base = (void *)b, .iov_len = strlen(b) },
	};
	struct buf rec = { 0 };
	const uint8_t *body;
	size_t rec_size;
	uint32_t body_len;

	store_record_header(hdr, iov, 4);
	/* Little-endian length, then the CRC of length bytes + body. */
	ck_assert_uint_eq(hdr[0], 13);
	ck_assert_uint_eq(hdr[1] | hdr[2] | hdr[3], 0);
	buf_add(&rec, hdr, sizeof(hdr));
	buf_add(&rec, &type, 1);
	buf_add(&rec, "hello, world", 12);
	ck_assert_uint_eq(crc32c(crc32c(0, rec.p, 4), rec.p + 8, 13),
	    (uint32_t)hdr[4] | (uint32_t)hdr[5] << 8 |
	    (uint32_t)hdr[6] << 16 | (uint32_t)hdr[7] << 24);

	ck_assert_int_eq(store_record_read(rec.p, rec.len, &rec_size, &body,
	    &body_len), STORE_SCAN_OK);
	ck_assert_uint_eq(rec_size, rec.len);
	ck_assert_ptr_eq(body, rec.p + STORE_RECORD_HEADER_SIZE);
	ck_assert_uint_eq(body_len, 13);
	ck_assert_uint_eq(body[0], 7);
	ck_assert_int_eq(memcmp(body + 1, "hello, world", 12), 0);

	/* Trailing bytes belong to the next record. */
	buf_add(&rec, "\x01\x02", 2);
	ck_assert_int_eq(store_record_read(rec.p, rec.len, &rec_size, &body,
	    &body_len), STORE_SCAN_OK);
	ck_assert_uint_eq(rec_size, rec.len - 2);
	free(rec.p);
}
END_TEST

/* store_record_read, for the verdict only. */
static enum store_scan verdict(const uint8_t *p, size_t avail)
{
	const uint8_t *body;
	size_t rec_size;
	uint32_t body_len;

	return store_record_read(p, avail, &rec_size, &body, &body_len);
}

START_TEST(test_record_bit_flips)
{
	struct buf rec = { 0 };
	size_t first;
	enum store_scan r;

	add_record(&rec, 3, "some message body", 17);
	first = rec.len;
	/* A record after it lets a grown length take in real bytes. */
	add_record(&rec, 4, "the next one, longer than the first", 35);
	for (size_t bit = 0; bit < first * 8; bit++) {
		rec.p[bit / 8] ^= (uint8_t)(1 << (bit % 8));
		r = verdict(rec.p, first);
		CHECK(r == STORE_SCAN_CORRUPT || r == STORE_SCAN_TORN);
		CHECK(verdict(rec.p, rec.len) != STORE_SCAN_OK);
		rec.p[bit / 8] ^= (uint8_t)(1 << (bit % 8));
	}
	ck_assert_int_eq(verdict(rec.p, first), STORE_SCAN_OK);
	free(rec.p);
}
END_TEST

START_TEST(test_record_truncation)
{
	struct buf rec = { 0 };

	add_record(&rec, 9, "truncate me at every length", 27);
	ck_assert_int_eq(verdict(rec.p, 0), STORE_SCAN_END);
	for (size_t n = 1; n < rec.len; n++)
		ck_assert_int_eq(verdict(rec.p, n), STORE_SCAN_TORN);
	ck_assert_int_eq(verdict(rec.p, rec.len), STORE_SCAN_OK);
	free(rec.p);
}
END_TEST

/* A record with a correct CRC over whatever length and body given. */
static void forge(uint8_t *out, uint32_t len, const uint8_t *body,
    size_t have)
{
	uint32_t crc;

	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(len >> (8 * i));
	crc = crc32c(crc32c(0, out, 4), body, have);
	for (int i = 0; i < 4; i++)
		out[4 + i] = (uint8_t)(crc >> (8 * i));
	memcpy(out + 8, body, have);
}

START_TEST(test_record_corrupt_shapes)
{
	uint8_t r[64], body[16] = { 0 };

	ck_assert_uint_ge(STORE_RECORD_MAX_BODY, (512u << 20) + 4096);
	/* Zero length, CRC right. */
	forge(r, 0, body, 0);
	ck_assert_int_eq(verdict(r, 8), STORE_SCAN_CORRUPT);
	/* Type 0, CRC right. */
	forge(r, 4, body, 4);
	ck_assert_int_eq(verdict(r, 12), STORE_SCAN_CORRUPT);
	/* ...even when the rest is missing, if the type byte is there. */
	ck_assert_int_eq(verdict(r, 9), STORE_SCAN_CORRUPT);
	ck_assert_int_eq(verdict(r, 8), STORE_SCAN_TORN);
	/* Implausible lengths are corrupt however few bytes follow. */
	body[0] = 1;
	forge(r, STORE_RECORD_MAX_BODY + 1, body, 4);
	ck_assert_int_eq(verdict(r, 12), STORE_SCAN_CORRUPT);
	ck_assert_int_eq(verdict(r, 4), STORE_SCAN_CORRUPT);
	forge(r, UINT32_MAX, body, 4);
	ck_assert_int_eq(verdict(r, 12), STORE_SCAN_CORRUPT);
	/* The largest legal length is only torn. */
	forge(r, STORE_RECORD_MAX_BODY, body, 4);
	ck_assert_int_eq(verdict(r, 12), STORE_SCAN_TORN);
}
END_TEST

START_TEST(test_resync_three_records)
{
	struct buf s = { 0 };
	size_t r1, r2;

	add_record(&s, 1, "first record", 12);
	r1 = add_record(&s, 1, "second record, damaged", 22);
	r2 = add_record(&s, 2, "third record", 12);
	s.p[r1 + 8 + 10] ^= 0x5a;

	ck_assert_int_eq(verdict(s.p, r1), STORE_SCAN_OK);
	ck_assert_int_eq(verdict(s.p + r1, s.len - r1), STORE_SCAN_CORRUPT);
	ck_assert_int_eq(store_record_resync(s.p, s.len, 1), r2);
	ck_assert_uint_eq(store_record_resync(s.p, s.len, r1 + 1), r2);
	ck_assert_uint_eq(store_record_resync(s.p, s.len, r2), r2);
	ck_assert_uint_eq(store_record_resync(s.p, s.len, r2 + 1), s.len);
	ck_assert_uint_eq(store_record_resync(s.p, s.len, s.len), s.len);
	ck_assert_uint_eq(store_record_resync(s.p, s.len, s.len + 5), s.len);
	ck_assert_uint_eq(store_record_resync(s.p, 0, 0), 0);
	free(s.p);
}
END_TEST

/*
 * Garbage rich in small little-endian words (so in plausible lengths),
 * mixed with good records and damaged ones, small and far above the size
 * resync checks from prefix CRCs: from every starting offset, resync must
 * find the first offset at which store_record_read says OK.
 */
START_TEST(test_resync_matches_naive)
{
	static const size_t sizes[] = { 1, 30, 4095, 4096, 5000, 70000 };
	struct buf s = { 0 };
	uint8_t junk[512];
	size_t off, *next_ok, starts[40];

	rng_seed(4);
	for (int i = 0; i < 40; i++) {
		for (size_t j = 0; j < sizeof(junk); j++)
			junk[j] = rng() % 2 ? 0 : (uint8_t)rng() % 4;
		buf_add(&s, junk, 1 + (size_t)(rng() % sizeof(junk)));
		off = starts[i] = s.len;
		add_random_record(&s, (uint8_t)(1 + rng() % 255),
		    sizes[rng() % 6]);
		if (rng() % 3 == 0)
			s.p[off + (size_t)(rng() % (s.len - off))] ^= 0x10;
	}
	/* The reference, from the end back: next_ok[i] >= i. */
	next_ok = xmalloc((s.len + 1) * sizeof(*next_ok));
	next_ok[s.len] = s.len;
	for (off = s.len; off-- > 0;)
		next_ok[off] = verdict(s.p + off, s.len - off) ==
		    STORE_SCAN_OK ? off : next_ok[off + 1];
	/* Around each record's start, and anywhere. */
	for (int i = 0; i < 40; i++)
		for (off = starts[i] - 1; off <= starts[i] + 1; off++)
			CHECK(store_record_resync(s.p, s.len, off) ==
			    next_ok[off]);
	for (int i = 0; i < 300; i++) {
		off = (size_t)(rng() % (s.len + 1));
		CHECK(store_record_resync(s.p, s.len, off) == next_ok[off]);
	}
	free(next_ok);
	free(s.p);
}
END_TEST

/* ---- segment files ------------------------------------------------------ */

/* Each segment test's own directory (a checked fixture), and a segment
 * path in it. */
static char dir[256], seg[PATH_MAX];

static void dir_setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/check_store.XXXXXX",
	    t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	store_segment_path(seg, sizeof(seg), dir, 1);
}

static void dir_teardown(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		ck_assert_int_eq(unlink(path), 0);
	}
	closedir(d);
	ck_assert_int_eq(rmdir(dir), 0);
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	if (n > 0)
		ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

/* Send stderr, so the log, to dir/log until capture_end(). */
static int capture_begin(void)
{
	char path[PATH_MAX];
	int saved, fd;

	snprintf(path, sizeof(path), "%s/log", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	close(fd);
	return saved;
}

/* Restore stderr; what was logged, malloc'd. */
static char *capture_end(int saved)
{
	char path[PATH_MAX], *text;
	FILE *f;
	long n;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	snprintf(path, sizeof(path), "%s/log", dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = xcalloc(1, (size_t)n + 1);
	ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(path);
	return text;
}

/* What a scan saw: offsets and types of the records. */
struct seen {
	uint64_t off[64];
	uint8_t type[64];
	size_t n;
	const uint8_t *file;	/* to compare bodies with, if set */
};

static void record_seen(void *arg, uint64_t offset, uint8_t type,
    const uint8_t *body, uint32_t body_len)
{
	struct seen *s = arg;

	CHECK(s->n < 64);
	CHECK(body[0] == type);
	if (s->file != NULL)
		CHECK(memcmp(body, s->file + offset + STORE_RECORD_HEADER_SIZE,
		    body_len) == 0);
	s->off[s->n] = offset;
	s->type[s->n++] = type;
}

/*
 * Write s (unless NULL) to path and scan it into a fresh *seen, with the
 * log captured in *log.
 */
static bool scan_logged(const char *path, const struct buf *s,
    struct seen *seen, struct store_scan_stats *st, char **log)
{
	int saved;
	bool ok;

	if (s != NULL)
		write_file(path, s->p, s->len);
	memset(seen, 0, sizeof(*seen));
	seen->file = s != NULL ? s->p : NULL;
	saved = capture_begin();
	ok = store_segment_scan(path, record_seen, seen, st);
	*log = capture_end(saved);
	return ok;
}

START_TEST(test_segment_names)
{
	char path[PATH_MAX];
	uint64_t n;

	store_segment_path(path, sizeof(path), "/var/lib/warren", 42);
	ck_assert_str_eq(path, "/var/lib/warren/00000000000000000042.seg");
	ck_assert_uint_eq(strlen(strrchr(path, '/') + 1),
	    STORE_SEGMENT_NAME_LEN);
	ck_assert(store_segment_parse_name(strrchr(path, '/') + 1, &n));
	ck_assert_uint_eq(n, 42);
	store_segment_path(path, sizeof(path), "d", UINT64_MAX);
	ck_assert_str_eq(path, "d/18446744073709551615.seg");
	ck_assert(store_segment_parse_name(path + 2, &n));
	ck_assert_uint_eq(n, UINT64_MAX);
	ck_assert(store_segment_parse_name("00000000000000000000.seg", &n));
	ck_assert_uint_eq(n, 0);

	n = 7;
	ck_assert(!store_segment_parse_name("18446744073709551616.seg", &n));
	ck_assert(!store_segment_parse_name("99999999999999999999.seg", &n));
	ck_assert(!store_segment_parse_name("0000000000000000042.seg", &n));
	ck_assert(!store_segment_parse_name("000000000000000000042.seg", &n));
	ck_assert(!store_segment_parse_name("0000000000000000004x.seg", &n));
	ck_assert(!store_segment_parse_name("+0000000000000000042.seg", &n));
	ck_assert(!store_segment_parse_name("00000000000000000042.seg.tmp",
	    &n));
	ck_assert(!store_segment_parse_name("00000000000000000042.se", &n));
	ck_assert(!store_segment_parse_name("00000000000000000042", &n));
	ck_assert(!store_segment_parse_name("", &n));
	ck_assert(!store_segment_parse_name(".seg", &n));
	ck_assert_uint_eq(n, 7);
}
END_TEST

START_TEST(test_segment_list)
{
	static const uint64_t nums[] = { 300, 2, 10000000000000000000ull, 0,
	    17 };
	static const char *const foreign[] = { "foo", "42.seg",
	    "00000000000000000005.seg.tmp", "00000000000000000006.SEG",
	    "0000000000000000000a.seg" };
	char path[PATH_MAX], *log;
	uint64_t *got;
	size_t n;
	int saved;

	ck_assert(store_segment_list(dir, &got, &n));
	ck_assert_uint_eq(n, 0);
	free(got);
	for (size_t i = 0; i < 5; i++) {
		store_segment_path(path, sizeof(path), dir, nums[i]);
		write_file(path, "", 0);
		snprintf(path, sizeof(path), "%s/%s", dir, foreign[i]);
		write_file(path, "x", 1);
	}
	ck_assert(store_segment_list(dir, &got, &n));
	ck_assert_uint_eq(n, 5);
	ck_assert_uint_eq(got[0], 0);
	ck_assert_uint_eq(got[1], 2);
	ck_assert_uint_eq(got[2], 17);
	ck_assert_uint_eq(got[3], 300);
	ck_assert_uint_eq(got[4], 10000000000000000000ull);
	free(got);

	snprintf(path, sizeof(path), "%s/missing", dir);
	saved = capture_begin();
	ck_assert(!store_segment_list(path, &got, &n));
	log = capture_end(saved);
	ck_assert_ptr_null(got);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_nonnull(strstr(log, "missing: No such file or directory"));
	free(log);
}
END_TEST

/* n records of types 10, 11, ... and growing sizes, at off[0..n). */
static void add_records(struct buf *s, size_t *off, int n)
{
	rng_seed(5);
	for (int i = 0; i < n; i++) {
		off[i] = s->len;
		add_random_record(s, (uint8_t)(10 + i), 100 + 50 * (size_t)i);
	}
}

/* Five records; the third damaged in its body; a torn sixth at the end. */
START_TEST(test_segment_scan_damage)
{
	char want[PATH_MAX + 100], *log;
	struct buf s = { 0 };
	struct seen seen;
	struct store_scan_stats st;
	size_t off[6];

	add_records(&s, off, 6);
	s.p[off[2] + STORE_RECORD_HEADER_SIZE + 60] ^= 0x01;
	s.len -= 40;

	ck_assert(scan_logged(seg, &s, &seen, &st, &log));
	ck_assert_uint_eq(seen.n, 4);
	ck_assert_uint_eq(seen.off[0], off[0]);
	ck_assert_uint_eq(seen.off[1], off[1]);
	ck_assert_uint_eq(seen.off[2], off[3]);
	ck_assert_uint_eq(seen.off[3], off[4]);
	ck_assert_uint_eq(seen.type[2], 13);
	ck_assert_uint_eq(st.records, 4);
	ck_assert_uint_eq(st.bytes, s.len - (off[3] - off[2]) -
	    (s.len - off[5]));
	ck_assert_uint_eq(st.corrupt_records, 1);
	ck_assert_uint_eq(st.skipped_bytes, s.len - st.bytes);
	ck_assert(st.torn_tail);
	ck_assert_uint_eq(st.valid_end, off[5]);

	snprintf(want, sizeof(want),
	    "%s: offset %zu: corrupt record, skipped %zu bytes\n", seg,
	    off[2], off[3] - off[2]);
	ck_assert_ptr_nonnull(strstr(log, want));
	snprintf(want, sizeof(want), "%s: offset %zu: torn tail of %zu bytes\n",
	    seg, off[5], s.len - off[5]);
	ck_assert_ptr_nonnull(strstr(log, want));
	free(log);
	free(s.p);
}
END_TEST

/*
 * A damaged length that points past the end looks like a torn tail, but
 * the good records after it show it is not: they are kept, and valid_end
 * stays at the end so an appender does not cut them off.
 */
START_TEST(test_segment_scan_length_damage)
{
	char *log;
	struct buf s = { 0 };
	struct seen seen;
	struct store_scan_stats st;
	size_t off[4];

	add_records(&s, off, 4);
	s.p[off[1] + 2] ^= 0x01;		/* length + 65536 */
	ck_assert(scan_logged(seg, &s, &seen, &st, &log));
	ck_assert_uint_eq(seen.n, 3);
	ck_assert_uint_eq(seen.off[1], off[2]);
	ck_assert_uint_eq(st.corrupt_records, 1);
	ck_assert(!st.torn_tail);
	ck_assert_uint_eq(st.valid_end, s.len);
	ck_assert_ptr_nonnull(strstr(log, "corrupt record"));
	ck_assert_ptr_null(strstr(log, "torn tail"));
	free(log);

	/* The same damage in the last record is a torn tail. */
	s.p[off[1] + 2] ^= 0x01;
	s.p[off[3] + 2] ^= 0x01;
	ck_assert(scan_logged(seg, &s, &seen, &st, &log));
	ck_assert_uint_eq(seen.n, 3);
	ck_assert_uint_eq(st.corrupt_records, 0);
	ck_assert(st.torn_tail);
	ck_assert_uint_eq(st.valid_end, off[3]);
	free(log);
	free(s.p);
}
END_TEST

START_TEST(test_segment_scan_edges)
{
	char *log;
	struct buf s = { 0 };
	struct seen seen;
	struct store_scan_stats st;


	/* Empty: nothing, and no complaint. */
	ck_assert(scan_logged(seg, &s, &seen, &st, &log));
	ck_assert_uint_eq(seen.n, 0);
	ck_assert_uint_eq(st.records + st.bytes + st.corrupt_records +
	    st.skipped_bytes + st.valid_end, 0);
	ck_assert(!st.torn_tail);
	ck_assert_str_eq(log, "");
	free(log);

	/* Three bytes of a header. */
	add_record(&s, 1, "x", 1);
	buf_add(&s, "\x05\x00\x00", 3);
	ck_assert(scan_logged(seg, &s, &seen, &st, &log));
	ck_assert_uint_eq(seen.n, 1);
	ck_assert(st.torn_tail);
	ck_assert_uint_eq(st.valid_end, 10);
	ck_assert_uint_eq(st.skipped_bytes, 3);
	ck_assert_ptr_nonnull(strstr(log, ": offset 10: torn tail of 3 bytes"));
	free(log);

	/* Zeros after the records (a crash after the size grew). */
	s.len = 10;
	buf_add(&s, (uint8_t[100]){ 0 }, 100);
	ck_assert(scan_logged(seg, &s, &seen, &st, &log));
	ck_assert_uint_eq(seen.n, 1);
	ck_assert_uint_eq(st.corrupt_records, 1);
	ck_assert_uint_eq(st.skipped_bytes, 100);
	ck_assert_uint_eq(st.valid_end, 10);
	ck_assert_ptr_nonnull(strstr(log,
	    ": offset 10: corrupt record, skipped 100 bytes"));
	free(log);

	/* A directory, and a missing file: false, logged. */
	ck_assert(!scan_logged(dir, NULL, &seen, &st, &log));
	ck_assert_ptr_nonnull(strstr(log, dir));
	free(log);
	unlink(seg);
	ck_assert(!scan_logged(seg, NULL, &seen, &st, &log));
	ck_assert_ptr_nonnull(strstr(log, "No such file or directory"));
	free(log);
	free(s.p);
}
END_TEST

static void count_record(void *arg, uint64_t offset, uint8_t type,
    const uint8_t *body, uint32_t body_len)
{
	struct store_scan_stats *st = arg;

	CHECK(type != 0 && body[0] == type && body_len >= 1);
	CHECK(offset >= st->valid_end);
	st->records++;
	st->valid_end = offset + STORE_RECORD_HEADER_SIZE + body_len;
}

/* Garbage and damaged segments: never a crash, and the sums add up. */
START_TEST(test_segment_scan_garbage)
{
	struct store_scan_stats st, mine;
	struct buf s;
	uint8_t junk[300];

	log_set_level(LOG_LVL_ERROR);
	rng_seed(7);
	for (int iter = 0; iter < 200; iter++) {
		memset(&s, 0, sizeof(s));
		for (int i = (int)(rng() % 8); i > 0; i--) {
			if (rng() % 2)
				add_random_record(&s, (uint8_t)(1 + rng() % 9),
				    (size_t)(rng() % 300));
			fill_random(junk, sizeof(junk));
			buf_add(&s, junk, (size_t)(rng() % 40));
		}
		for (int i = (int)(rng() % 4); i > 0 && s.len > 0; i--)
			s.p[rng() % s.len] ^= (uint8_t)(1 << (rng() % 8));
		s.len -= s.len > 0 ? (size_t)(rng() % (s.len / 4 + 1)) : 0;
		write_file(seg, s.p, s.len);
		memset(&mine, 0, sizeof(mine));
		ck_assert(store_segment_scan(seg, count_record, &mine, &st));
		CHECK(st.records == mine.records);
		CHECK(st.valid_end == mine.valid_end);
		CHECK(st.bytes + st.skipped_bytes == s.len);
		CHECK(st.valid_end <= s.len);
		free(s.p);
	}
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = tcase_create("crc32c");
	tcase_add_test(tc, test_crc_vectors);
	tcase_add_test(tc, test_crc_incremental);
	tcase_add_test(tc, test_crc_hw_matches_sw);
	tcase_add_test(tc, test_crc_combine);
	tcase_add_test(tc, test_crc_combine_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("record");
	tcase_add_test(tc, test_record_roundtrip_iovec);
	tcase_add_test(tc, test_record_bit_flips);
	tcase_add_test(tc, test_record_truncation);
	tcase_add_test(tc, test_record_corrupt_shapes);
	tcase_add_test(tc, test_resync_three_records);
	tcase_add_test(tc, test_resync_matches_naive);
	suite_add_tcase(s, tc);

	tc = tcase_create("segment");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, test_segment_names);
	tcase_add_test(tc, test_segment_list);
	tcase_add_test(tc, test_segment_scan_damage);
	tcase_add_test(tc, test_segment_scan_length_damage);
	tcase_add_test(tc, test_segment_scan_edges);
	tcase_add_test(tc, test_segment_scan_garbage);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
