/*
 * Bounds-checked reading and writing of AMQP wire primitives.
 *
 * Every byte that arrives from a client is read through a struct rcursor:
 * each getter returns false (and reads nothing) when the input is short, and
 * lengths are compared with the bytes *remaining*, never as "offset + len".
 * Output goes to a growable struct wbuf; running out of memory is fatal.
 */
#ifndef WARREN_WIRE_H
#define WARREN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A borrowed byte range (shortstr, longstr, raw table); not NUL-terminated. */
struct bytes {
	const uint8_t *ptr;
	uint32_t len;
};

#define BYTES_LIT(s) ((struct bytes){ (const uint8_t *)(s), sizeof(s) - 1 })
/* printf arguments for "%.*s" */
#define BYTES_ARG(b) (int)(b).len, (const char *)(b).ptr
struct bytes bytes_str(const char *s);
bool bytes_eq(struct bytes a, struct bytes b);
bool bytes_eq_str(struct bytes a, const char *s);
/* A malloc'd NUL-terminated copy. */
char *bytes_strdup(struct bytes b);

/* Little-endian integers, for the store's files (AMQP itself is big-endian). */
static inline void le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static inline uint64_t le64_get(const uint8_t *p)
{
	return (uint64_t)le32_get(p) | (uint64_t)le32_get(p + 4) << 32;
}

struct rcursor {
	const uint8_t *p;
	size_t left;
};

static inline struct rcursor rcursor_make(const void *p, size_t len)
{
	return (struct rcursor){ (const uint8_t *)p, len };
}

bool wire_get_u8(struct rcursor *c, uint8_t *v);
bool wire_get_u16(struct rcursor *c, uint16_t *v);
bool wire_get_u32(struct rcursor *c, uint32_t *v);
bool wire_get_u64(struct rcursor *c, uint64_t *v);
/* n raw bytes, borrowed from the input. */
bool wire_get_raw(struct rcursor *c, size_t n, struct bytes *out);
bool wire_get_shortstr(struct rcursor *c, struct bytes *out);
bool wire_get_longstr(struct rcursor *c, struct bytes *out);

struct wbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

void wbuf_init(struct wbuf *b);
void wbuf_free(struct wbuf *b);
void wbuf_reset(struct wbuf *b);
/* Make room for n more bytes and return where they go. */
uint8_t *wbuf_reserve(struct wbuf *b, size_t n);
void wbuf_put_u8(struct wbuf *b, uint8_t v);
void wbuf_put_u16(struct wbuf *b, uint16_t v);
void wbuf_put_u32(struct wbuf *b, uint32_t v);
void wbuf_put_u64(struct wbuf *b, uint64_t v);
void wbuf_put_raw(struct wbuf *b, const void *p, size_t n);
/* Shortstr longer than 255 bytes is truncated: callers keep texts short. */
void wbuf_put_shortstr(struct wbuf *b, struct bytes s);
void wbuf_put_longstr(struct wbuf *b, struct bytes s);
/* Overwrite a u32 already written at offset (for length prefixes). */
void wbuf_patch_u32(struct wbuf *b, size_t offset, uint32_t v);

#endif
