/*
 * bench_wire: the few AMQP 0-9-1 frames warren-bench sends and receives
 * once a connection is set up, encoded and parsed by hand.
 *
 * rabbitmq-c costs three send() calls and several allocations per
 * published message and one send() per ack, which made warren-bench the
 * bottleneck of its own measurements.  Here messages are encoded from a
 * template into an output buffer that is written with one send() for
 * many messages, acks are collected the same way, and deliveries are
 * parsed in place from one large read buffer.  rabbitmq-c still does the
 * handshake, login and the set-up RPCs; after them its buffers are empty
 * and the socket belongs to this code until the connection is closed.
 */
#ifndef WARREN_BENCH_WIRE_H
#define WARREN_BENCH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WIRE_METHOD = 1,
    WIRE_HEADER = 2,
    WIRE_BODY = 3,
    WIRE_HEARTBEAT = 8,
};

/* class << 16 | method, as in the specification */
#define WIRE_ID(cls, m) (((uint32_t)(cls) << 16) | (uint32_t)(m))
#define WIRE_CONNECTION_CLOSE WIRE_ID(10, 50)
#define WIRE_CONNECTION_CLOSE_OK WIRE_ID(10, 51)
#define WIRE_CHANNEL_CLOSE WIRE_ID(20, 40)
#define WIRE_BASIC_CONSUME_OK WIRE_ID(60, 21)
#define WIRE_BASIC_CANCEL WIRE_ID(60, 30)
#define WIRE_BASIC_DELIVER WIRE_ID(60, 60)
#define WIRE_BASIC_ACK WIRE_ID(60, 80)
#define WIRE_BASIC_NACK WIRE_ID(60, 120)

struct wire {
    int fd;
    uint32_t frame_max;
    unsigned char *in;          /* received bytes in [in_start, in_end) */
    size_t in_cap, in_start, in_end;
    unsigned char *out;         /* bytes to send in [0, out_len) */
    size_t out_cap, out_len;
    char error[160];            /* why the last call failed */
};

struct wire_frame {
    uint8_t type;
    uint16_t channel;
    uint32_t size;
    const unsigned char *payload; /* valid until the next wire_fill */
};

/* One publish (method, content header and body frames) ready to copy;
 * the body starts at body_offset and is one contiguous run of bytes as
 * long as it fits in one body frame (see wire_publish_template). */
struct wire_publish {
    unsigned char *bytes;
    size_t len;
    size_t body_offset;
    size_t msgid_offset;        /* the 16 message-id bytes; 0: none */
};

/* What a publish template carries beyond the routing key and body. */
struct wire_publish_opts {
    const char *exchange;       /* "" or NULL: the default exchange */
    bool persistent;            /* delivery-mode 2 */
    uint32_t delay_ms;          /* an x-delay header (0: none) */
    bool message_id;            /* a 16-byte message-id to patch per message */
};

bool wire_init(struct wire *w, int fd, uint32_t frame_max);
void wire_free(struct wire *w);

/* Room for n more bytes at the end of the output buffer. */
unsigned char *wire_reserve(struct wire *w, size_t n);
/* Writes the whole output buffer (blocking until done). */
bool wire_flush(struct wire *w);
/* Waits up to timeout_ms (0: just look) for bytes and reads what is
 * there.  1: read some, 0: nothing in time, -1: error or EOF. */
int wire_fill(struct wire *w, int timeout_ms);
/* Takes the next complete frame.  1: *f is set, 0: need more bytes,
 * -1: malformed (frame end missing, or larger than frame_max). */
int wire_next(struct wire *w, struct wire_frame *f);

/* The method id of a method frame's payload (0 when too short). */
uint32_t wire_method_id(const struct wire_frame *f);

/* Encoders: append one frame to the output buffer. */
/* stream_offset: the x-stream-offset argument (digits: an offset), or NULL. */
bool wire_put_basic_consume(struct wire *w, uint16_t channel, const char *queue, bool no_ack,
                            const char *stream_offset);
bool wire_put_basic_ack(struct wire *w, uint16_t channel, uint64_t tag, bool multiple);
bool wire_put_connection_close(struct wire *w);

/* basic.publish to o's exchange with routing key rk, body of body_size
 * bytes of 'w' split over body frames as frame_max requires. */
bool wire_publish_template(struct wire_publish *t, uint16_t channel, const char *rk,
                           const struct wire_publish_opts *o, size_t body_size,
                           uint32_t frame_max);
void wire_publish_free(struct wire_publish *t);

/* Parsers for the methods warren-bench reads; false when truncated. */
bool wire_parse_deliver(const struct wire_frame *f, uint64_t *tag, bool *redelivered);
bool wire_parse_ack(const struct wire_frame *f, uint64_t *tag, bool *multiple);
bool wire_parse_header_body_size(const struct wire_frame *f, uint64_t *body_size);
/* "CODE TEXT" of a connection.close or channel.close, for messages. */
void wire_describe_close(const struct wire_frame *f, char *buf, size_t len);

/* Sends connection.close and reads (discarding everything else) until
 * connection.close-ok, for up to timeout_ms. */
bool wire_close(struct wire *w, int timeout_ms);

#endif
