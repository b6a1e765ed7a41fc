/* bench_wire: hand-encoded AMQP frames for warren-bench (see bench_wire.h). */
#include "bench_wire.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_END 0xCE
#define FRAME_OVERHEAD 8u /* type, channel, size, frame end */
#define IN_MIN (256u * 1024u)

static void put16(unsigned char *b, uint16_t v) { b[0] = (unsigned char)(v >> 8); b[1] = (unsigned char)v; }
static void put32(unsigned char *b, uint32_t v)
{
    put16(b, (uint16_t)(v >> 16));
    put16(b + 2, (uint16_t)v);
}
static void put64(unsigned char *b, uint64_t v)
{
    put32(b, (uint32_t)(v >> 32));
    put32(b + 4, (uint32_t)v);
}
static uint16_t get16(const unsigned char *b) { return (uint16_t)(b[0] << 8 | b[1]); }
static uint32_t get32(const unsigned char *b) { return (uint32_t)get16(b) << 16 | get16(b + 2); }
static uint64_t get64(const unsigned char *b) { return (uint64_t)get32(b) << 32 | get32(b + 4); }

bool wire_init(struct wire *w, int fd, uint32_t frame_max)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->frame_max = frame_max;
    w->in_cap = 2u * (size_t)frame_max + FRAME_OVERHEAD;
    if (w->in_cap < IN_MIN)
        w->in_cap = IN_MIN;
    w->in = malloc(w->in_cap);
    w->out_cap = 64u * 1024u;
    w->out = malloc(w->out_cap);
    if (w->in == NULL || w->out == NULL) {
        wire_free(w);
        return false;
    }
    return true;
}

void wire_free(struct wire *w)
{
    free(w->in);
    free(w->out);
    w->in = w->out = NULL;
}

unsigned char *wire_reserve(struct wire *w, size_t n)
{
    if (w->out_len + n > w->out_cap) {
        size_t cap = w->out_cap;
        while (w->out_len + n > cap)
            cap *= 2;
        unsigned char *grown = realloc(w->out, cap);
        if (grown == NULL) {
            snprintf(w->error, sizeof w->error, "out of memory");
            return NULL;
        }
        w->out = grown;
        w->out_cap = cap;
    }
    unsigned char *p = w->out + w->out_len;
    w->out_len += n;
    return p;
}

/* The socket is non-blocking (rabbitmq-c made it so): wait for room. */
bool wire_flush(struct wire *w)
{
    size_t off = 0;
    while (off < w->out_len) {
        ssize_t n = send(w->fd, w->out + off, w->out_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = { .fd = w->fd, .events = POLLOUT };
            if (poll(&p, 1, 30000) > 0)
                continue;
            snprintf(w->error, sizeof w->error, "send: the broker stopped reading for 30 s");
            return false;
        }
        snprintf(w->error, sizeof w->error, "send: %s", n < 0 ? strerror(errno) : "closed");
        return false;
    }
    w->out_len = 0;
    return true;
}

int wire_fill(struct wire *w, int timeout_ms)
{
    if (w->in_start == w->in_end) {
        w->in_start = w->in_end = 0;
    } else if (w->in_cap - w->in_end < w->in_cap / 4) {
        memmove(w->in, w->in + w->in_start, w->in_end - w->in_start);
        w->in_end -= w->in_start;
        w->in_start = 0;
    }
    for (;;) {
        ssize_t n = recv(w->fd, w->in + w->in_end, w->in_cap - w->in_end, 0);
        if (n > 0) {
            w->in_end += (size_t)n;
            return 1;
        }
        if (n == 0) {
            snprintf(w->error, sizeof w->error, "the broker closed the socket");
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(w->error, sizeof w->error, "recv: %s", strerror(errno));
            return -1;
        }
        if (timeout_ms == 0)
            return 0;
        struct pollfd p = { .fd = w->fd, .events = POLLIN };
        int rc = poll(&p, 1, timeout_ms);
        if (rc == 0)
            return 0;
        if (rc < 0 && errno != EINTR) {
            snprintf(w->error, sizeof w->error, "poll: %s", strerror(errno));
            return -1;
        }
        timeout_ms = 0; /* readable (or interrupted): one more try */
    }
}

int wire_next(struct wire *w, struct wire_frame *f)
{
    size_t have = w->in_end - w->in_start;
    if (have < 7)
        return 0;
    const unsigned char *b = w->in + w->in_start;
    uint32_t size = get32(b + 3);
    if (size > w->frame_max) {
        snprintf(w->error, sizeof w->error, "frame of %u bytes exceeds frame_max %u", size,
                 w->frame_max);
        return -1;
    }
    if (have < (size_t)size + FRAME_OVERHEAD)
        return 0;
    if (b[7 + size] != FRAME_END) {
        snprintf(w->error, sizeof w->error, "frame without its frame-end octet");
        return -1;
    }
    f->type = b[0];
    f->channel = get16(b + 1);
    f->size = size;
    f->payload = b + 7;
    w->in_start += (size_t)size + FRAME_OVERHEAD;
    return 1;
}

uint32_t wire_method_id(const struct wire_frame *f)
{
    if (f->type != WIRE_METHOD || f->size < 4)
        return 0;
    return get32(f->payload);
}

/* Appends a frame header for a payload of size bytes; the caller fills
 * the payload, then the frame end goes after it. */
static unsigned char *frame_open(struct wire *w, uint8_t type, uint16_t channel, uint32_t size)
{
    unsigned char *p = wire_reserve(w, (size_t)size + FRAME_OVERHEAD);
    if (p == NULL)
        return NULL;
    p[0] = type;
    put16(p + 1, channel);
    put32(p + 3, size);
    p[7 + size] = FRAME_END;
    return p + 7;
}

static unsigned char *put_shortstr(unsigned char *p, const char *s)
{
    size_t n = strlen(s);
    *p++ = (unsigned char)n;
    memcpy(p, s, n);
    return p + n;
}

/* x-stream-offset: a long-long when all digits, else a longstr. */
static size_t offset_arg_size(const char *offset)
{
    if (offset == NULL)
        return 0;
    if (offset[0] && strspn(offset, "0123456789") == strlen(offset))
        return 1 + 15 + 1 + 8;
    return 1 + 15 + 1 + 4 + strlen(offset);
}

bool wire_put_basic_consume(struct wire *w, uint16_t channel, const char *queue, bool no_ack,
                            const char *stream_offset)
{
    if (strlen(queue) > 255 || (stream_offset && strlen(stream_offset) > 200))
        return false;
    size_t args = offset_arg_size(stream_offset);
    /* class, method, reserved-1, queue, consumer-tag "", bits, arguments */
    uint32_t size = 4 + 2 + 1 + (uint32_t)strlen(queue) + 1 + 1 + 4 + (uint32_t)args;
    unsigned char *p = frame_open(w, WIRE_METHOD, channel, size);
    if (p == NULL)
        return false;
    put32(p, WIRE_ID(60, 20));
    put16(p + 4, 0);
    p = put_shortstr(p + 6, queue);
    *p++ = 0;                              /* consumer tag: the broker names it */
    *p++ = no_ack ? 0x02 : 0x00;           /* no-local, no-ack, exclusive, no-wait */
    put32(p, (uint32_t)args);
    p += 4;
    if (stream_offset) {
        p = put_shortstr(p, "x-stream-offset");
        if (args == 1 + 15 + 1 + 8) {
            *p++ = 'l';
            put64(p, strtoull(stream_offset, NULL, 10));
        } else {
            *p++ = 'S';
            put32(p, (uint32_t)strlen(stream_offset));
            memcpy(p + 4, stream_offset, strlen(stream_offset));
        }
    }
    return true;
}

bool wire_put_basic_ack(struct wire *w, uint16_t channel, uint64_t tag, bool multiple)
{
    unsigned char *p = frame_open(w, WIRE_METHOD, channel, 4 + 8 + 1);
    if (p == NULL)
        return false;
    put32(p, WIRE_BASIC_ACK);
    put64(p + 4, tag);
    p[12] = multiple ? 1 : 0;
    return true;
}

bool wire_put_connection_close(struct wire *w)
{
    unsigned char *p = frame_open(w, WIRE_METHOD, 0, 4 + 2 + 1 + 2 + 2);
    if (p == NULL)
        return false;
    put32(p, WIRE_CONNECTION_CLOSE);
    put16(p + 4, 200);
    p[6] = 0;        /* reply text "" */
    put16(p + 7, 0); /* class id */
    put16(p + 9, 0); /* method id */
    return true;
}

bool wire_publish_template(struct wire_publish *t, uint16_t channel, const char *rk,
                           const struct wire_publish_opts *o, size_t body_size,
                           uint32_t frame_max)
{
    const char *x = o->exchange ? o->exchange : "";
    /* the headers table {"x-delay": signed 32-bit} */
    uint32_t table_size = o->delay_ms ? 1 + 7 + 1 + 4 : 0;

    memset(t, 0, sizeof *t);
    if (strlen(rk) > 255 || strlen(x) > 255 || frame_max <= FRAME_OVERHEAD ||
        o->delay_ms > INT32_MAX)
        return false;
    size_t chunk = frame_max - FRAME_OVERHEAD;
    size_t body_frames = (body_size + chunk - 1) / chunk;
    uint32_t method_size = 4 + 2 + 1 + (uint32_t)strlen(x) + 1 +
                           (uint32_t)strlen(rk) + 1;
    uint32_t header_size = 2 + 2 + 8 + 2 + (o->delay_ms ? 4 + table_size : 0) +
                           (o->persistent ? 1 : 0) + (o->message_id ? 17 : 0);
    /* encode into a scratch wire so the frame helpers can be reused */
    struct wire scratch = { .fd = -1 };
    scratch.out_cap = (size_t)method_size + header_size + body_size +
                      (2 + body_frames) * FRAME_OVERHEAD;
    scratch.out = malloc(scratch.out_cap);
    if (scratch.out == NULL)
        return false;

    unsigned char *p = frame_open(&scratch, WIRE_METHOD, channel, method_size);
    put32(p, WIRE_ID(60, 40));
    put16(p + 4, 0);
    p = put_shortstr(p + 6, x);
    p = put_shortstr(p, rk);
    *p = 0;   /* mandatory, immediate */

    p = frame_open(&scratch, WIRE_HEADER, channel, header_size);
    put16(p, 60);
    put16(p + 2, 0);
    put64(p + 4, body_size);
    /* property flags: headers, delivery-mode, message-id */
    put16(p + 12, (o->delay_ms ? 0x2000 : 0) | (o->persistent ? 0x1000 : 0) |
                  (o->message_id ? 0x0080 : 0));
    p += 14;
    if (o->delay_ms) {
        put32(p, table_size);
        p = put_shortstr(p + 4, "x-delay");
        *p++ = 'I';
        put32(p, o->delay_ms);
        p += 4;
    }
    if (o->persistent)
        *p++ = 2;
    if (o->message_id) {
        *p++ = 16;
        t->msgid_offset = (size_t)(p - scratch.out);
        memset(p, '0', 16);
    }

    for (size_t off = 0; off < body_size; off += chunk) {
        size_t n = body_size - off < chunk ? body_size - off : chunk;
        p = frame_open(&scratch, WIRE_BODY, channel, (uint32_t)n);
        if (off == 0)
            t->body_offset = (size_t)(p - scratch.out);
        memset(p, 'w', n);
    }
    t->bytes = scratch.out;
    t->len = scratch.out_len;
    return true;
}

void wire_publish_free(struct wire_publish *t)
{
    free(t->bytes);
    t->bytes = NULL;
}

bool wire_parse_deliver(const struct wire_frame *f, uint64_t *tag, bool *redelivered)
{
    /* class, method, consumer-tag, delivery-tag, redelivered, ... */
    if (f->size < 5)
        return false;
    size_t off = 5 + f->payload[4];
    if (f->size < off + 9)
        return false;
    *tag = get64(f->payload + off);
    *redelivered = (f->payload[off + 8] & 1) != 0;
    return true;
}

bool wire_parse_ack(const struct wire_frame *f, uint64_t *tag, bool *multiple)
{
    /* basic.ack and basic.nack: delivery-tag, then bits with multiple first */
    if (f->size < 13)
        return false;
    *tag = get64(f->payload + 4);
    *multiple = (f->payload[12] & 1) != 0;
    return true;
}

bool wire_parse_header_body_size(const struct wire_frame *f, uint64_t *body_size)
{
    if (f->type != WIRE_HEADER || f->size < 12)
        return false;
    *body_size = get64(f->payload + 4);
    return true;
}

void wire_describe_close(const struct wire_frame *f, char *buf, size_t len)
{
    if (f->size < 7 || f->size < 7u + f->payload[6]) {
        snprintf(buf, len, "(truncated close)");
        return;
    }
    snprintf(buf, len, "%u %.*s", get16(f->payload + 4), (int)f->payload[6],
             (const char *)f->payload + 7);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool wire_close(struct wire *w, int timeout_ms)
{
    if (!wire_put_connection_close(w) || !wire_flush(w))
        return false;
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        struct wire_frame f;
        int rc;
        while ((rc = wire_next(w, &f)) == 1) {
            uint32_t id = wire_method_id(&f);
            if (id == WIRE_CONNECTION_CLOSE_OK)
                return true;
            if (id == WIRE_CONNECTION_CLOSE) {
                wire_describe_close(&f, w->error, sizeof w->error);
                return false;
            }
        }
        if (rc < 0)
            return false;
        uint64_t now = mono_ms();
        if (now >= deadline) {
            snprintf(w->error, sizeof w->error, "no connection.close-ok in %d ms", timeout_ms);
            return false;
        }
        if (wire_fill(w, (int)(deadline - now)) < 0)
            return false;
    }
}
