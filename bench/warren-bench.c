/*
 * warren-bench: an AMQP 0-9-1 load generator in the spirit of RabbitMQ's
 * PerfTest, for comparing Warren with RabbitMQ (see bench/README.md).
 *
 * Every producer and every consumer has its own connection and its own
 * thread.  Producers and consumers are spread round-robin over the queues
 * <prefix>-0 .. <prefix>-(n-1) (producer i publishes to queue i % n through
 * the default exchange, consumer j consumes from queue j % n).  The tool
 * deletes and re-declares those queues at start and deletes them at the
 * end (unless -K).
 *
 * Each message body starts with a 16-byte header: producer id (u32),
 * sequence number (u32, from 1) and a CLOCK_MONOTONIC timestamp in ns
 * (u64), then padding up to -s bytes.  Consumers mark (producer, seq) in a
 * shared bitmap: a seq seen twice on a delivery not flagged redelivered is
 * a duplicate; a published seq never seen by the end is lost.  When the
 * producers stop, consumers keep consuming until every published message
 * was received, the queues are empty, or the drain period (-d, 3 s) ends.
 *
 * Output: a human summary, then one JSON line on stdout.  Exit status 0 on
 * success, 2 on a connection/channel error, 3 when a thread is stuck,
 * 1 on bad usage.
 *
 * Build: gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -pthread \
 *          bench/warren-bench.c bench/bench_wire.c \
 *          $(pkg-config --cflags --libs librabbitmq) \
 *          -o bench/warren-bench
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#define WB_HAVE_HEADERS 1
#endif
#endif
#ifndef WB_HAVE_HEADERS
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#include "bench_routes.h"
#include "bench_wire.h"

#define HDR_SIZE 16u
#define QNAME_MAX 200
#define FRAME_MAX 131072

/* ---------------------------------------------------------------------- */
/* options */

static struct options {
    const char *host;
    int port;
    int producers, consumers, queues;
    size_t size;
    int prefetch;
    bool autoack;
    unsigned confirm;
    bool persistent;
    double seconds;
    double rate;
    double drain;
    const char *user, *pass, *vhost, *prefix;
    bool progress, keep;
    bool stream;              /* -S: stream queues */
    const char *offset;       /* -o: consumers' x-stream-offset */
    uint64_t max_msgs;        /* -M: per producer (0: no limit) */
    uint64_t expect;          /* -E: stop once this many were delivered */
    bool reuse;               /* -R: keep what the queues hold */
    const char *exchange;     /* -e: publish here, routing key = queue */
    uint32_t delay_ms;        /* -D: an x-delay header */
    bool message_ids;         /* -I: a unique message-id per message */
    const char *xtype;        /* -t: declare PREFIX-x of this type, bind the queues */
    unsigned bindings;        /* -B: topic bindings */
    int idle;                 /* -C: only open this many idle connections */
} O = {
    .host = "127.0.0.1", .port = 5672, .producers = 1, .consumers = 1,
    .queues = 1, .size = 16, .prefetch = 0, .autoack = false, .confirm = 0,
    .persistent = false, .seconds = 10, .rate = 0, .drain = 3,
    .user = "guest", .pass = "guest", .vhost = "/", .prefix = "bench",
    .progress = false, .keep = false, .bindings = 100,
};

static char **g_queue_name;  /* PREFIX-0 .. PREFIX-(queues-1) */
static char g_exchange[QNAME_MAX]; /* where producers publish ("" default) */
static struct routes R;      /* where each message must arrive */

/* ---------------------------------------------------------------------- */
/* shared state */

static atomic_int g_errors;       /* threads that hit an error */
static atomic_int g_abort;        /* stop everything now */
static atomic_int g_drain_done;   /* consumers may stop */
static atomic_int g_producers_done; /* producers whose publishing loop ended */
static uint64_t g_start_ns, g_stop_ns; /* written before the go barrier */
static pthread_barrier_t g_barrier;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u),
                           .tv_nsec = (long)(t % 1000000000u) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ---------------------------------------------------------------------- */
/* latency histogram: log-linear, 64 sub-buckets per power of two (<1.6%) */

#define H_SUB 7
#define H_HALF (1u << (H_SUB - 1))
#define H_BUCKETS ((64u - H_SUB + 1u) * H_HALF + (1u << H_SUB))

struct hist {
    uint64_t count;
    uint64_t b[H_BUCKETS];
};

static unsigned h_index(uint64_t v)
{
    if (v < (1u << H_SUB))
        return (unsigned)v;
    int msb = 63 - __builtin_clzll(v);
    unsigned shift = (unsigned)(msb - H_SUB + 1);
    return shift * H_HALF + (unsigned)(v >> shift);
}

static uint64_t h_value(unsigned i)
{
    if (i < (1u << H_SUB))
        return i;
    unsigned shift = i / H_HALF - 1;
    uint64_t m = i - shift * H_HALF;
    return (m << shift) + (((uint64_t)1 << shift) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->b[h_index(v)]++;
    h->count++;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
    for (unsigned i = 0; i < H_BUCKETS; i++)
        into->b[i] += h->b[i];
    into->count += h->count;
}

/* Percentile p (0..1) in microseconds; -1 when empty. */
static double hist_pct_us(const struct hist *h, double p)
{
    if (h->count == 0)
        return -1;
    double want = p * (double)h->count;
    uint64_t target = (uint64_t)want;
    if ((double)target < want)
        target++;
    if (target < 1)
        target = 1;
    uint64_t acc = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        acc += h->b[i];
        if (acc >= target)
            return (double)h_value(i) / 1000.0;
    }
    return (double)h_value(H_BUCKETS - 1) / 1000.0;
}

/* ---------------------------------------------------------------------- */
/* per-producer "seen" bitmap, shared by all consumers, lock-free */

#define CHUNK_BITS 20u                     /* 1 Mi sequence numbers */
#define CHUNK_WORDS ((1u << CHUNK_BITS) / 64u)
#define MAX_CHUNKS (1u << (32u - CHUNK_BITS))

struct seen {
    _Atomic(atomic_uint_fast64_t *) chunk[MAX_CHUNKS];
};

/* Marks seq; returns true when it was already marked. */
static bool seen_mark(struct seen *s, uint32_t seq)
{
    unsigned c = seq >> CHUNK_BITS;
    atomic_uint_fast64_t *words = atomic_load_explicit(&s->chunk[c], memory_order_acquire);
    if (words == NULL) {
        atomic_uint_fast64_t *fresh = calloc(CHUNK_WORDS, sizeof *fresh);
        if (fresh == NULL) {
            fprintf(stderr, "warren-bench: out of memory\n");
            abort();
        }
        atomic_uint_fast64_t *expected = NULL;
        if (atomic_compare_exchange_strong(&s->chunk[c], &expected, fresh)) {
            words = fresh;
        } else {
            free(fresh);
            words = expected;
        }
    }
    unsigned bit = seq & ((1u << CHUNK_BITS) - 1u);
    uint_fast64_t mask = (uint_fast64_t)1 << (bit & 63u);
    uint_fast64_t old = atomic_fetch_or_explicit(&words[bit >> 6], mask, memory_order_relaxed);
    return (old & mask) != 0;
}

/* Distinct sequence numbers in 1..last that were seen. */
static uint64_t seen_count(struct seen *s, uint64_t last)
{
    uint64_t n = 0;
    if (s == NULL)
        return 0;
    for (unsigned c = 0; c < MAX_CHUNKS; c++) {
        atomic_uint_fast64_t *words = atomic_load(&s->chunk[c]);
        if (words == NULL)
            continue;
        for (unsigned w = 0; w < CHUNK_WORDS; w++) {
            uint64_t v = (uint64_t)atomic_load_explicit(&words[w], memory_order_relaxed);
            if (v == 0)
                continue;
            uint64_t base = ((uint64_t)c << CHUNK_BITS) + (uint64_t)w * 64u;
            for (unsigned b = 0; b < 64; b++)
                if ((v >> b) & 1u) {
                    uint64_t seq = base + b;
                    if (seq >= 1 && seq <= last)
                        n++;
                }
        }
    }
    return n;
}

static void seen_free(struct seen *s)
{
    if (s == NULL)
        return;
    for (unsigned c = 0; c < MAX_CHUNKS; c++)
        free(atomic_load(&s->chunk[c]));
    free(s);
}

/* One per (queue, producer) pair that received anything, made on first
 * use: a fanout message is expected once on every queue. */
static _Atomic(struct seen *) *g_seen;

static _Atomic(struct seen *) *seen_slot(int queue, int producer)
{
    return &g_seen[(size_t)queue * (size_t)O.producers + (size_t)producer];
}

static struct seen *seen_of(int queue, int producer)
{
    _Atomic(struct seen *) *slot = seen_slot(queue, producer);
    struct seen *s = atomic_load_explicit(slot, memory_order_acquire);
    if (s != NULL)
        return s;
    struct seen *fresh = calloc(1, sizeof *fresh);
    if (fresh == NULL) {
        fprintf(stderr, "warren-bench: out of memory\n");
        abort();
    }
    if (atomic_compare_exchange_strong(slot, &s, fresh))
        return fresh;
    free(fresh);
    return s;
}

/* ---------------------------------------------------------------------- */
/* threads' state */

struct producer {
    int id;
    pthread_t th;
    atomic_uint_fast64_t sent;   /* publishes written (= last seq) */
    uint64_t confirmed, nacked;
    uint64_t end_ns;             /* when the publishing loop ended */
    struct hist *clat;           /* confirm latency */
};

struct consumer {
    int id;
    pthread_t th;
    int queue;                     /* index of the queue it consumes from */
    atomic_uint_fast64_t received; /* all deliveries */
    atomic_uint_fast64_t fresh;    /* first sightings of a (producer, seq) */
    uint64_t in_window;            /* deliveries before the producers' stop time */
    uint64_t dup, redelivered, foreign, misrouted;
    struct hist *lat;              /* end-to-end latency */
};

/* ---------------------------------------------------------------------- */
/* rabbitmq-c helpers */

static void fail(void)
{
    atomic_fetch_add(&g_errors, 1);
    atomic_store(&g_abort, 1);
}

static bool reply_ok(amqp_rpc_reply_t r, const char *who, const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return true;
    case AMQP_RESPONSE_NONE:
        fprintf(stderr, "warren-bench: %s: %s: no reply\n", who, what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        fprintf(stderr, "warren-bench: %s: %s: %s\n", who, what,
                amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            fprintf(stderr, "warren-bench: %s: %s: server closed the connection: %u %.*s\n",
                    who, what, m->reply_code, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            fprintf(stderr, "warren-bench: %s: %s: server closed the channel: %u %.*s\n",
                    who, what, m->reply_code, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
        } else {
            fprintf(stderr, "warren-bench: %s: %s: unexpected server method 0x%08x\n",
                    who, what, (unsigned)r.reply.id);
        }
        break;
    }
    return false;
}

static amqp_connection_state_t bench_connect(const char *who)
{
    amqp_connection_state_t c = amqp_new_connection();
    if (c == NULL) {
        fprintf(stderr, "warren-bench: %s: out of memory\n", who);
        return NULL;
    }
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (s == NULL) {
        fprintf(stderr, "warren-bench: %s: cannot create socket\n", who);
        amqp_destroy_connection(c);
        return NULL;
    }
    struct timeval tv = { 5, 0 };
    int rc = amqp_socket_open_noblock(s, O.host, O.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "warren-bench: %s: connect to %s:%d: %s\n", who, O.host, O.port,
                amqp_error_string2(rc));
        amqp_destroy_connection(c);
        return NULL;
    }
    struct timeval rpc = { 15, 0 };
    amqp_set_rpc_timeout(c, &rpc);
    /* heartbeat 0: producers never read the socket without confirms */
    if (!reply_ok(amqp_login(c, O.vhost, 0, FRAME_MAX, 0, AMQP_SASL_METHOD_PLAIN,
                             O.user, O.pass), who, "login")) {
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_channel_open(c, 1);
    if (!reply_ok(amqp_get_rpc_reply(c), who, "channel.open")) {
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

static void bench_close(amqp_connection_state_t c)
{
    if (c == NULL)
        return;
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* ---------------------------------------------------------------------- */
/* raw connection: rabbitmq-c has done the set-up, bench_wire does the rest */

/* Hands the socket of a set-up connection to bench_wire.  rabbitmq-c must
 * hold no unread bytes: they would be lost to the raw reader. */
static bool wire_take(struct wire *w, amqp_connection_state_t c, const char *who)
{
    if (amqp_data_in_buffer(c) || amqp_frames_enqueued(c)) {
        fprintf(stderr, "warren-bench: %s: unexpected frames after set-up\n", who);
        return false;
    }
    if (!wire_init(w, amqp_get_sockfd(c), (uint32_t)amqp_get_frame_max(c))) {
        fprintf(stderr, "warren-bench: %s: out of memory\n", who);
        return false;
    }
    return true;
}

/* Reports a connection.close or channel.close; true if f was one. */
static bool wire_report_close(const struct wire_frame *f, const char *who)
{
    uint32_t id = wire_method_id(f);
    if (id != WIRE_CONNECTION_CLOSE && id != WIRE_CHANNEL_CLOSE)
        return false;
    char text[300];
    wire_describe_close(f, text, sizeof text);
    fprintf(stderr, "warren-bench: %s: server closed the %s: %s\n", who,
            id == WIRE_CONNECTION_CLOSE ? "connection" : "channel", text);
    return true;
}

/* Ends a raw connection: close/close-ok when ok (so the broker has read
 * every frame before), then the socket and rabbitmq-c's state. */
static bool wire_finish(struct wire *w, amqp_connection_state_t c, bool ok, const char *who)
{
    if (ok && !wire_close(w, 15000)) {
        fprintf(stderr, "warren-bench: %s: connection.close: %s\n", who, w->error);
        ok = false;
    }
    wire_free(w);
    amqp_destroy_connection(c);
    return ok;
}

/* ---------------------------------------------------------------------- */
/* producer */

struct confirm_state {
    uint64_t *ring;    /* send time per tag slot (tag % window); 0 = settled */
    uint64_t lowest;   /* lowest tag that may still be pending */
    uint64_t last;     /* last tag published */
};

static void settle(struct producer *p, struct confirm_state *cs, uint64_t tag,
                   bool multiple, bool nack)
{
    uint64_t now = now_ns();
    if (tag > cs->last)
        tag = cs->last;
    uint64_t from = multiple ? cs->lowest : tag;
    if (from < cs->lowest)
        return;
    for (uint64_t t = from; t <= tag; t++) {
        uint64_t *slot = &cs->ring[t % O.confirm];
        if (*slot == 0)
            continue;
        if (nack) {
            p->nacked++;
        } else {
            p->confirmed++;
            hist_add(p->clat, now > *slot ? now - *slot : 0);
        }
        *slot = 0;
    }
    while (cs->lowest <= cs->last && cs->ring[cs->lowest % O.confirm] == 0)
        cs->lowest++;
}

/* Reads confirms: waits up to timeout_ms for bytes, then settles every
 * complete frame read.  Returns false on a connection/channel error. */
static bool pump_confirms(struct producer *p, struct wire *w, struct confirm_state *cs,
                          int timeout_ms, const char *who)
{
    if (wire_fill(w, timeout_ms) < 0) {
        fprintf(stderr, "warren-bench: %s: waiting for confirms: %s\n", who, w->error);
        return false;
    }
    struct wire_frame f;
    int rc;
    while ((rc = wire_next(w, &f)) == 1) {
        if (wire_report_close(&f, who))
            return false;
        uint32_t id = wire_method_id(&f);
        if (id == WIRE_BASIC_ACK || id == WIRE_BASIC_NACK) {
            uint64_t tag;
            bool multiple;
            if (wire_parse_ack(&f, &tag, &multiple))
                settle(p, cs, tag, multiple, id == WIRE_BASIC_NACK);
        }
        /* anything else (basic.return, heartbeats ...) is ignored */
    }
    if (rc < 0) {
        fprintf(stderr, "warren-bench: %s: %s\n", who, w->error);
        return false;
    }
    return true;
}

static void put_u32(unsigned char *b, uint32_t v) { memcpy(b, &v, 4); }
static void put_u64(unsigned char *b, uint64_t v) { memcpy(b, &v, 8); }

/* Publishes are encoded into the output buffer and written in batches of
 * up to this many bytes; with -r each one is written on its own, so the
 * latency mode measures single messages. */
#define PUBLISH_BATCH_BYTES (64u * 1024u)

/* Encodes the publishes of every routing key this producer uses, once:
 * the hot loop copies a template and patches the sequence number and the
 * time.  Returns the templates (indexed by key) or NULL. */
static struct wire_publish *producer_templates(const struct producer *p, uint32_t frame_max)
{
    struct wire_publish *t = calloc(R.keys, sizeof *t);
    if (t == NULL)
        return NULL;
    struct wire_publish_opts po = { g_exchange, O.persistent, O.delay_ms, O.message_ids };
    for (unsigned k = 0; k < R.keys; k++) {
        if (R.kind != ROUTE_TOPIC && k != routes_key_of(&R, p->id, 1))
            continue; /* the key never changes */
        if (!wire_publish_template(&t[k], 1, R.key[k], &po, O.size, frame_max)) {
            while (k-- > 0)
                wire_publish_free(&t[k]);
            free(t);
            return NULL;
        }
        put_u32(t[k].bytes + t[k].body_offset, (uint32_t)p->id);
    }
    return t;
}

static void producer_templates_free(struct wire_publish *t)
{
    for (unsigned k = 0; t != NULL && k < R.keys; k++)
        wire_publish_free(&t[k]);
    free(t);
}

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    char who[48];
    snprintf(who, sizeof who, "producer %d", p->id);

    amqp_connection_state_t c = bench_connect(who);
    bool ok = c != NULL;
    if (ok && O.confirm > 0) {
        amqp_confirm_select(c, 1);
        ok = reply_ok(amqp_get_rpc_reply(c), who, "confirm.select");
    }
    struct wire w = { .fd = -1 };
    struct wire_publish *tmpl = NULL;
    if (ok)
        ok = wire_take(&w, c, who);
    if (ok && (tmpl = producer_templates(p, (uint32_t)amqp_get_frame_max(c))) == NULL) {
        fprintf(stderr, "warren-bench: %s: cannot encode the message\n", who);
        ok = false;
    }
    if (!ok)
        fail();
    pthread_barrier_wait(&g_barrier); /* set up */
    pthread_barrier_wait(&g_barrier); /* go */
    if (!ok || atomic_load(&g_abort)) {
        p->end_ns = now_ns();
        wire_free(&w);
        producer_templates_free(tmpl);
        if (c != NULL)
            amqp_destroy_connection(c);
        return NULL;
    }

    struct confirm_state cs = { .ring = NULL, .lowest = 1, .last = 0 };
    if (O.confirm > 0) {
        cs.ring = calloc(O.confirm, sizeof *cs.ring);
        if (cs.ring == NULL) {
            fprintf(stderr, "warren-bench: %s: out of memory\n", who);
            abort();
        }
    }
    uint64_t seq = 0;

    for (;;) {
        uint64_t now = now_ns();
        if (now >= g_stop_ns || atomic_load_explicit(&g_abort, memory_order_relaxed))
            break;
        bool window_full = O.confirm > 0 && cs.last + 1 - cs.lowest >= O.confirm;
        uint64_t due = 0;
        if (O.rate > 0)
            due = g_start_ns + (uint64_t)((double)seq * 1e9 / O.rate);
        if (w.out_len > 0 && (window_full || O.rate > 0 || w.out_len >= PUBLISH_BATCH_BYTES)) {
            if (!wire_flush(&w)) {
                fprintf(stderr, "warren-bench: %s: basic.publish: %s\n", who, w.error);
                ok = false;
                break;
            }
            atomic_store_explicit(&p->sent, seq, memory_order_relaxed);
        }
        if (window_full) {
            /* wait for confirms (rechecking the clock every 100 ms) */
            if (!pump_confirms(p, &w, &cs, 100, who)) {
                ok = false;
                break;
            }
            continue;
        }
        if (due > now) {
            sleep_until(due < g_stop_ns ? due : g_stop_ns);
            continue;
        }
        if (O.max_msgs && seq >= O.max_msgs)
            break;
        if (seq >= UINT32_MAX) {
            fprintf(stderr, "warren-bench: %s: sequence number space exhausted\n", who);
            break;
        }
        const struct wire_publish *msg = &tmpl[routes_key_of(&R, p->id, (uint32_t)seq + 1)];
        unsigned char *out = wire_reserve(&w, msg->len);
        if (out == NULL) {
            fprintf(stderr, "warren-bench: %s: %s\n", who, w.error);
            ok = false;
            break;
        }
        seq++;
        uint64_t ts = now_ns();
        memcpy(out, msg->bytes, msg->len);
        put_u32(out + msg->body_offset + 4, (uint32_t)seq);
        if (msg->msgid_offset) {
            /* producer and sequence as 16 hex digits: unique per run */
            static const char hex[] = "0123456789abcdef";
            uint64_t id = (uint64_t)p->id << 32 | seq;
            for (int i = 15; i >= 0; i--, id >>= 4)
                out[msg->msgid_offset + (size_t)i] = (unsigned char)hex[id & 15];
        }
        put_u64(out + msg->body_offset + 8, ts);
        if (O.confirm > 0) {
            cs.ring[seq % O.confirm] = ts;
            cs.last = seq;
            /* take the confirms that have arrived, without waiting */
            if ((seq & 15u) == 0 && !pump_confirms(p, &w, &cs, 0, who)) {
                ok = false;
                break;
            }
        }
    }
    if (ok && !wire_flush(&w)) {
        fprintf(stderr, "warren-bench: %s: basic.publish: %s\n", who, w.error);
        ok = false;
    }
    if (ok)
        atomic_store_explicit(&p->sent, seq, memory_order_relaxed);
    p->end_ns = now_ns();
    atomic_fetch_add(&g_producers_done, 1);

    /* wait for the outstanding confirms (up to the drain period) */
    if (ok && O.confirm > 0) {
        uint64_t deadline = p->end_ns + (uint64_t)(O.drain * 1e9);
        while (cs.lowest <= cs.last && now_ns() < deadline && !atomic_load(&g_abort)) {
            if (!pump_confirms(p, &w, &cs, 100, who)) {
                ok = false;
                break;
            }
        }
    }

    /* close/close-ok: the broker has read every publish */
    if (!wire_finish(&w, c, ok, who))
        fail();
    producer_templates_free(tmpl);
    free(cs.ring);
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* consumer */

static void handle_delivery(struct consumer *k, const unsigned char *hdr, uint64_t body_size,
                            bool redelivered, uint64_t now)
{
    atomic_store_explicit(&k->received,
                          atomic_load_explicit(&k->received, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (now < g_stop_ns)
        k->in_window++;
    if (body_size < HDR_SIZE) {
        k->foreign++;
        return;
    }
    uint32_t pid, seq;
    uint64_t ts;
    memcpy(&pid, hdr, 4);
    memcpy(&seq, hdr + 4, 4);
    memcpy(&ts, hdr + 8, 8);
    if (pid >= (uint32_t)O.producers || seq == 0) {
        k->foreign++;
        return;
    }
    hist_add(k->lat, now > ts ? now - ts : 0);
    if (!routes_reaches(&R, routes_key_of(&R, (int)pid, seq), k->queue)) {
        k->misrouted++;
        return;
    }
    if (seen_mark(seen_of(k->queue, (int)pid), seq)) {
        if (redelivered)
            k->redelivered++;
        else
            k->dup++;
    } else {
        atomic_store_explicit(&k->fresh,
                              atomic_load_explicit(&k->fresh, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
}

/* Where a consumer is in the frames of one delivery. */
struct delivery_state {
    enum { EXPECT_METHOD, EXPECT_HEADER, IN_BODY } expect;
    uint64_t tag;
    bool redelivered;
    uint64_t body_size, body_left;
    unsigned char hdr[HDR_SIZE]; /* the body's first bytes */
    size_t hdr_len;
};

/* Handles one frame; false on an error (reported).  A finished delivery
 * is counted and its ack appended to the output buffer. */
static bool consumer_frame(struct consumer *k, struct wire *w, struct delivery_state *d,
                           const struct wire_frame *f, const char *who)
{
    if (f->type == WIRE_HEARTBEAT)
        return true;
    if (d->expect == EXPECT_METHOD) {
        if (wire_report_close(f, who))
            return false;
        uint32_t id = wire_method_id(f);
        if (id == WIRE_BASIC_DELIVER) {
            if (!wire_parse_deliver(f, &d->tag, &d->redelivered)) {
                fprintf(stderr, "warren-bench: %s: truncated basic.deliver\n", who);
                return false;
            }
            d->expect = EXPECT_HEADER;
        } else if (id == WIRE_BASIC_CANCEL) {
            fprintf(stderr, "warren-bench: %s: the broker cancelled the consumer\n", who);
            return false;
        }
        return true; /* consume-ok and anything else: nothing to do */
    }
    if (d->expect == EXPECT_HEADER) {
        if (!wire_parse_header_body_size(f, &d->body_size)) {
            fprintf(stderr, "warren-bench: %s: expected a content header\n", who);
            return false;
        }
        d->body_left = d->body_size;
        d->hdr_len = 0;
        d->expect = IN_BODY;
    } else {
        if (f->type != WIRE_BODY || f->size > d->body_left) {
            fprintf(stderr, "warren-bench: %s: expected a body frame\n", who);
            return false;
        }
        size_t take = HDR_SIZE - d->hdr_len;
        if (take > f->size)
            take = f->size;
        memcpy(d->hdr + d->hdr_len, f->payload, take);
        d->hdr_len += take;
        d->body_left -= f->size;
    }
    if (d->body_left > 0)
        return true;
    handle_delivery(k, d->hdr, d->body_size, d->redelivered, now_ns());
    d->expect = EXPECT_METHOD;
    if (!O.autoack && !wire_put_basic_ack(w, 1, d->tag, false)) {
        fprintf(stderr, "warren-bench: %s: basic.ack: %s\n", who, w->error);
        return false;
    }
    return true;
}

static void *consumer_main(void *arg)
{
    struct consumer *k = arg;
    char who[48];
    snprintf(who, sizeof who, "consumer %d", k->id);

    amqp_connection_state_t c = bench_connect(who);
    bool ok = c != NULL;
    if (ok && O.prefetch > 0 && !O.autoack) {
        amqp_basic_qos(c, 1, 0, (uint16_t)O.prefetch, 0);
        ok = reply_ok(amqp_get_rpc_reply(c), who, "basic.qos");
    }
    /* basic.consume goes out raw: deliveries may follow consume-ok in the
     * same read, and they must land in bench_wire's buffer */
    struct wire w = { .fd = -1 };
    if (ok)
        ok = wire_take(&w, c, who);
    if (ok && (!wire_put_basic_consume(&w, 1, g_queue_name[k->queue], O.autoack, O.offset) ||
               !wire_flush(&w))) {
        fprintf(stderr, "warren-bench: %s: basic.consume: %s\n", who, w.error);
        ok = false;
    }
    if (!ok)
        fail();
    pthread_barrier_wait(&g_barrier); /* set up */
    pthread_barrier_wait(&g_barrier); /* go */
    if (!ok || atomic_load(&g_abort)) {
        wire_free(&w);
        if (c != NULL)
            amqp_destroy_connection(c);
        return NULL;
    }

    struct delivery_state d = { .expect = EXPECT_METHOD };
    while (ok && !atomic_load_explicit(&g_drain_done, memory_order_relaxed) &&
           !atomic_load_explicit(&g_abort, memory_order_relaxed)) {
        int rc = wire_fill(&w, 50);
        if (rc < 0) {
            fprintf(stderr, "warren-bench: %s: %s\n", who, w.error);
            ok = false;
            break;
        }
        struct wire_frame f;
        while (ok && (rc = wire_next(&w, &f)) == 1)
            ok = consumer_frame(k, &w, &d, &f, who);
        if (ok && rc < 0) {
            fprintf(stderr, "warren-bench: %s: %s\n", who, w.error);
            ok = false;
        }
        /* the acks for everything this read brought, in one write */
        if (ok && w.out_len > 0 && !wire_flush(&w)) {
            fprintf(stderr, "warren-bench: %s: basic.ack: %s\n", who, w.error);
            ok = false;
        }
    }

    if (!wire_finish(&w, c, ok, who))
        fail();
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* main */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: warren-bench [options]\n"
        "  -h HOST     broker host (127.0.0.1)\n"
        "  -P PORT     broker port (5672)\n"
        "  -x N        producers (1)\n"
        "  -y N        consumers (1)\n"
        "  -n N        queues (1), named PREFIX-0 .. PREFIX-(N-1)\n"
        "  -s BYTES    message size, at least %u (16)\n"
        "  -q N        prefetch count per consumer, basic.qos (0 = none)\n"
        "  -a          autoack (consume with no-ack)\n"
        "  -c N        confirm window: confirm.select, at most N unconfirmed\n"
        "              publishes per producer (0 = no confirms)\n"
        "  -p          persistent messages (delivery_mode 2) and durable queues\n"
        "  -z SECONDS  run time (10)\n"
        "  -r RATE     per-producer rate limit, msg/s (0 = unlimited)\n"
        "  -d SECONDS  drain period after the producers stop (3)\n"
        "  -N PREFIX   queue name prefix (bench)\n"
        "  -u USER -w PASS -V VHOST   credentials (guest, guest, /)\n"
        "  -i          print rates every second on stderr\n"
        "  -K          keep the queues at the end\n"
        "  -S          stream queues (x-queue-type = stream, durable)\n"
        "  -o OFFSET   consumers' x-stream-offset: first, last, next or a number\n"
        "  -M N        messages per producer, then stop (0 = until -z ends)\n"
        "  -E N        replay: stop once N messages were delivered, and report\n"
        "              the time it took (with -x 0: read what the queues hold)\n"
        "  -R          reuse the queues: declare them, delete or purge nothing\n"
        "  -e EXCHANGE publish to EXCHANGE (routing key: the queue's name; bind\n"
        "              the queues yourself, with -R)\n"
        "  -D MS       an x-delay header of MS ms (x-delayed-message exchanges)\n"
        "  -I          a unique message-id on every message (deduplication)\n"
        "  -t TYPE     declare the exchange PREFIX-x of TYPE (direct, fanout or\n"
        "              topic), bind the queues and publish there; deliveries are\n"
        "              checked against the tool's own model of the routing\n"
        "  -B N        topic: N wildcard bindings spread over the queues (100)\n"
        "  -C N        only open N idle connections with a channel each, report\n"
        "              the time, hold them -z seconds, close them\n"
        "  --help      this text\n", HDR_SIZE);
}

static long parse_long(const char *s, char opt, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "warren-bench: -%c: expected an integer in %ld..%ld, got '%s'\n",
                opt, lo, hi, s);
        exit(1);
    }
    return v;
}

static double parse_double(const char *s, char opt, double lo)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *s == '\0' || *end != '\0' || !(v >= lo) || v > 1e9) {
        fprintf(stderr, "warren-bench: -%c: expected a number >= %g, got '%s'\n", opt, lo, s);
        exit(1);
    }
    return v;
}

/* Sum of the queues' ready-message counts, via passive declares. */
static bool queue_depth(amqp_connection_state_t c, uint64_t *total)
{
    *total = 0;
    if (O.stream)
        return true; /* consuming removes nothing: "ready" means nothing */
    for (int i = 0; i < O.queues; i++) {
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(g_queue_name[i]), 1, 0,
                                                         0, 0, amqp_empty_table);
        if (!reply_ok(amqp_get_rpc_reply(c), "control", "queue.declare (passive)"))
            return false;
        *total += ok->message_count;
    }
    amqp_maybe_release_buffers(c);
    return true;
}

/* Reopens channel 1 after the broker closed it (e.g. 404 from a broker
 * that refuses to delete what does not exist); false on other errors. */
static bool tolerate_channel_close(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_ok_t close_ok = { 0 };
        amqp_send_method(c, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
        amqp_channel_open(c, 1);
        return reply_ok(amqp_get_rpc_reply(c), "control", "channel.open");
    }
    return reply_ok(r, "control", what);
}

/* -t: the exchange PREFIX-x, declared anew (unless -R). */
static bool setup_exchange(amqp_connection_state_t c)
{
    if (!O.reuse) {
        amqp_exchange_delete(c, 1, amqp_cstring_bytes(g_exchange), 0);
        if (!tolerate_channel_close(c, "exchange.delete"))
            return false;
    }
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(g_exchange),
                          amqp_cstring_bytes(routes_kind_name(R.kind)), 0,
                          O.persistent, 0, 0, amqp_empty_table);
    return reply_ok(amqp_get_rpc_reply(c), "control", "exchange.declare");
}

static bool bind_key(amqp_connection_state_t c, int queue, const char *key)
{
    amqp_queue_bind(c, 1, amqp_cstring_bytes(g_queue_name[queue]),
                    amqp_cstring_bytes(g_exchange), amqp_cstring_bytes(key),
                    amqp_empty_table);
    return reply_ok(amqp_get_rpc_reply(c), "control", "queue.bind");
}

/* -t: queue i's bindings, as the routing model has them. */
static bool bind_queue(amqp_connection_state_t c, int i)
{
    switch (R.kind) {
    case ROUTE_QUEUE:
        return true;
    case ROUTE_DIRECT:
    case ROUTE_FANOUT:
        return bind_key(c, i, R.key[R.kind == ROUTE_DIRECT ? i : 0]);
    case ROUTE_TOPIC:
        for (unsigned b = 0; b < R.bindings; b++)
            if (R.pattern_queue[b] == i && !bind_key(c, i, R.pattern[b]))
                return false;
        return true;
    }
    return false;
}

static bool setup_queues(amqp_connection_state_t c)
{
    amqp_table_entry_t stream_arg = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = { .kind = AMQP_FIELD_KIND_UTF8,
                   .value.bytes = amqp_cstring_bytes("stream") },
    };
    amqp_table_t args = { O.stream ? 1 : 0, &stream_arg };
    if (O.xtype && !setup_exchange(c))
        return false;
    for (int i = 0; i < O.queues; i++) {
        amqp_bytes_t q = amqp_cstring_bytes(g_queue_name[i]);
        if (!O.reuse) {
            amqp_queue_delete(c, 1, q, 0, 0);
            if (!tolerate_channel_close(c, "queue.delete"))
                return false;
        }
        amqp_queue_declare(c, 1, q, 0, O.persistent || O.stream, 0, 0, args);
        if (!reply_ok(amqp_get_rpc_reply(c), "control", "queue.declare"))
            return false;
        if (O.xtype && !bind_queue(c, i))
            return false;
        if (O.stream || O.reuse)
            continue; /* streams are new and empty, and refuse purge */
        amqp_queue_purge(c, 1, q);
        if (!reply_ok(amqp_get_rpc_reply(c), "control", "queue.purge"))
            return false;
    }
    amqp_maybe_release_buffers(c);
    return true;
}

static void delete_queues(amqp_connection_state_t c)
{
    for (int i = 0; i < O.queues; i++) {
        amqp_queue_delete(c, 1, amqp_cstring_bytes(g_queue_name[i]), 0, 0);
        if (!reply_ok(amqp_get_rpc_reply(c), "control", "queue.delete"))
            return;
    }
    if (O.xtype) {
        amqp_exchange_delete(c, 1, amqp_cstring_bytes(g_exchange), 0);
        reply_ok(amqp_get_rpc_reply(c), "control", "exchange.delete");
    }
}

static bool join_by(pthread_t th, uint64_t deadline_ns, const char *what, int id)
{
    struct timespec mono, real;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &real);
    /* pthread_timedjoin_np takes a CLOCK_REALTIME deadline */
    uint64_t m = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
    uint64_t r = (uint64_t)real.tv_sec * 1000000000u + (uint64_t)real.tv_nsec;
    uint64_t abs_ns = r + (deadline_ns > m ? deadline_ns - m : 0);
    struct timespec ts = { .tv_sec = (time_t)(abs_ns / 1000000000u),
                           .tv_nsec = (long)(abs_ns % 1000000000u) };
    int rc = pthread_timedjoin_np(th, NULL, &ts);
    if (rc != 0) {
        fprintf(stderr, "warren-bench: %s %d is stuck (%s); giving up\n", what, id, strerror(rc));
        return false;
    }
    return true;
}

static const char *pl(long n) { return n == 1 ? "" : "s"; }

/* -C: the cost of connections that do nothing (broker memory, measured
 * from outside while they are held, and the time to open them).  One
 * line on stdout once they are open, then the JSON line at the end. */
static int idle_connections(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    amqp_connection_state_t *conns = calloc((size_t)O.idle, sizeof *conns);
    if (conns == NULL)
        return 2;
    uint64_t t0 = now_ns();
    int opened = 0;
    for (; opened < O.idle; opened++) {
        char who[48];
        snprintf(who, sizeof who, "connection %d", opened);
        if ((conns[opened] = bench_connect(who)) == NULL)
            break;
    }
    double open_s = (double)(now_ns() - t0) / 1e9;
    printf("opened %d connection%s with a channel each in %.3f s; holding them %.1f s\n",
           opened, pl(opened), open_s, O.seconds);
    fflush(stdout);
    if (opened == O.idle)
        sleep_until(now_ns() + (uint64_t)(O.seconds * 1e9));
    t0 = now_ns();
    for (int i = 0; i < opened; i++)
        bench_close(conns[i]);
    double close_s = (double)(now_ns() - t0) / 1e9;
    free(conns);
    printf("{\"connections\":%d,\"opened\":%d,\"open_seconds\":%.3f,"
           "\"open_per_second\":%.1f,\"close_seconds\":%.3f,\"errors\":%d}\n",
           O.idle, opened, open_s, open_s > 0 ? opened / open_s : 0.0, close_s,
           opened == O.idle ? 0 : 1);
    return opened == O.idle ? 0 : 2;
}

/* -E: enough delivered; -M: every producer published its share. */
static bool run_over(int np, int nc, struct consumer *C)
{
    if (O.expect) {
        uint64_t r = 0;
        for (int j = 0; j < nc; j++)
            r += atomic_load_explicit(&C[j].received, memory_order_relaxed);
        if (r >= O.expect)
            return true;
    }
    return O.max_msgs && np > 0 && atomic_load(&g_producers_done) == np && O.expect == 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    int opt;
    while ((opt = getopt(argc, argv, "h:P:x:y:n:s:q:ac:pz:r:d:N:u:w:V:iKSo:M:E:Re:D:It:B:C:")) != -1) {
        switch (opt) {
        case 'h': O.host = optarg; break;
        case 'P': O.port = (int)parse_long(optarg, 'P', 1, 65535); break;
        case 'x': O.producers = (int)parse_long(optarg, 'x', 0, 10000); break;
        case 'y': O.consumers = (int)parse_long(optarg, 'y', 0, 10000); break;
        case 'n': O.queues = (int)parse_long(optarg, 'n', 1, 100000); break;
        case 's': O.size = (size_t)parse_long(optarg, 's', 0, 64L << 20); break;
        case 'q': O.prefetch = (int)parse_long(optarg, 'q', 0, 65535); break;
        case 'a': O.autoack = true; break;
        case 'c': O.confirm = (unsigned)parse_long(optarg, 'c', 0, 1000000); break;
        case 'p': O.persistent = true; break;
        case 'z': O.seconds = parse_double(optarg, 'z', 0.001); break;
        case 'r': O.rate = parse_double(optarg, 'r', 0); break;
        case 'd': O.drain = parse_double(optarg, 'd', 0); break;
        case 'N': O.prefix = optarg; break;
        case 'u': O.user = optarg; break;
        case 'w': O.pass = optarg; break;
        case 'V': O.vhost = optarg; break;
        case 'i': O.progress = true; break;
        case 'K': O.keep = true; break;
        case 'S': O.stream = true; break;
        case 'o': O.offset = optarg; break;
        case 'M': O.max_msgs = (uint64_t)parse_long(optarg, 'M', 0, UINT32_MAX - 1L); break;
        case 'E': O.expect = (uint64_t)parse_long(optarg, 'E', 0, 1L << 40); break;
        case 'R': O.reuse = true; break;
        case 'e': O.exchange = optarg; break;
        case 'D': O.delay_ms = (uint32_t)parse_long(optarg, 'D', 1, INT32_MAX); break;
        case 'I': O.message_ids = true; break;
        case 't': O.xtype = optarg; break;
        case 'B': O.bindings = (unsigned)parse_long(optarg, 'B', 1, 100000); break;
        case 'C': O.idle = (int)parse_long(optarg, 'C', 1, 1000000); break;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 1;
    }
    if (strlen(O.prefix) > 100) {
        fprintf(stderr, "warren-bench: -N: prefix too long\n");
        return 1;
    }
    if (O.size < HDR_SIZE) {
        fprintf(stderr, "warren-bench: -s %zu is below the %u-byte header; using %u\n",
                O.size, HDR_SIZE, HDR_SIZE);
        O.size = HDR_SIZE;
    }
    enum route_kind kind;
    if (!routes_kind_parse(O.xtype, &kind)) {
        fprintf(stderr, "warren-bench: -t: expected direct, fanout or topic, got '%s'\n",
                O.xtype);
        return 1;
    }
    if (O.xtype && O.exchange) {
        fprintf(stderr, "warren-bench: -t and -e exclude each other\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (O.idle)
        return idle_connections();

    g_queue_name = calloc((size_t)O.queues, sizeof *g_queue_name);
    if (g_queue_name == NULL)
        return 2;
    for (int i = 0; i < O.queues; i++) {
        char name[QNAME_MAX];
        snprintf(name, sizeof name, "%s-%d", O.prefix, i);
        if ((g_queue_name[i] = strdup(name)) == NULL)
            return 2;
    }
    if (O.xtype)
        snprintf(g_exchange, sizeof g_exchange, "%s-x", O.prefix);
    else if (O.exchange)
        snprintf(g_exchange, sizeof g_exchange, "%s", O.exchange);
    if (!routes_init(&R, kind, O.queues, g_queue_name, O.bindings)) {
        fprintf(stderr, "warren-bench: out of memory\n");
        return 2;
    }

    amqp_connection_state_t ctl = bench_connect("control");
    if (ctl == NULL)
        return 2;
    if (!setup_queues(ctl)) {
        amqp_destroy_connection(ctl);
        return 2;
    }

    int np = O.producers, nc = O.consumers;
    g_seen = calloc((size_t)O.queues * (size_t)(np > 0 ? np : 1), sizeof *g_seen);
    struct producer *P = calloc((size_t)(np > 0 ? np : 1), sizeof *P);
    struct consumer *C = calloc((size_t)(nc > 0 ? nc : 1), sizeof *C);
    if (g_seen == NULL || P == NULL || C == NULL) {
        fprintf(stderr, "warren-bench: out of memory\n");
        return 2;
    }
    if (pthread_barrier_init(&g_barrier, NULL, (unsigned)(np + nc + 1)) != 0) {
        fprintf(stderr, "warren-bench: pthread_barrier_init failed\n");
        return 2;
    }
    for (int j = 0; j < nc; j++) {
        C[j].id = j;
        C[j].queue = j % O.queues;
        C[j].lat = calloc(1, sizeof *C[j].lat);
        if (C[j].lat == NULL || pthread_create(&C[j].th, NULL, consumer_main, &C[j]) != 0) {
            fprintf(stderr, "warren-bench: cannot start consumer %d\n", j);
            return 2;
        }
    }
    for (int i = 0; i < np; i++) {
        P[i].id = i;
        P[i].clat = calloc(1, sizeof *P[i].clat);
        if (P[i].clat == NULL || pthread_create(&P[i].th, NULL, producer_main, &P[i]) != 0) {
            fprintf(stderr, "warren-bench: cannot start producer %d\n", i);
            return 2;
        }
    }

    pthread_barrier_wait(&g_barrier); /* everybody connected (or failed) */
    g_start_ns = now_ns();
    g_stop_ns = g_start_ns + (uint64_t)(O.seconds * 1e9);
    pthread_barrier_wait(&g_barrier); /* go */

    /* the run: publishes and deliveries per second, for plots */
    size_t tl_cap = (size_t)O.seconds + 2, tl_len = 0;
    double (*timeline)[3] = calloc(tl_cap, sizeof *timeline);
    if (timeline == NULL)
        return 2;
    uint64_t prev_sent = 0, prev_recv = 0, prev_t = g_start_ns;
    for (int tick = 1; !atomic_load(&g_abort); tick++) {
        uint64_t next = g_start_ns + (uint64_t)tick * 1000000000u;
        if (next > g_stop_ns)
            next = g_stop_ns;
        while (now_ns() < next && !atomic_load(&g_abort) && !run_over(np, nc, C)) {
            uint64_t t = now_ns() + 20000000u;
            sleep_until(t < next ? t : next);
        }
        uint64_t sent = 0, recv = 0, t = now_ns();
        for (int i = 0; i < np; i++)
            sent += atomic_load_explicit(&P[i].sent, memory_order_relaxed);
        for (int j = 0; j < nc; j++)
            recv += atomic_load_explicit(&C[j].received, memory_order_relaxed);
        double dt = (double)(t - prev_t) / 1e9;
        if (dt > 0 && tl_len < tl_cap) {
            timeline[tl_len][0] = (double)(t - g_start_ns) / 1e9;
            timeline[tl_len][1] = (double)(sent - prev_sent) / dt;
            timeline[tl_len][2] = (double)(recv - prev_recv) / dt;
            if (O.progress)
                fprintf(stderr, "[%6.1fs] sent %.0f msg/s, received %.0f msg/s\n",
                        timeline[tl_len][0], timeline[tl_len][1], timeline[tl_len][2]);
            tl_len++;
        }
        prev_sent = sent;
        prev_recv = recv;
        prev_t = t;
        if (next >= g_stop_ns || run_over(np, nc, C))
            break;
    }
    uint64_t run_end = now_ns();

    /* producers stop by themselves at g_stop_ns (then wait for confirms) */
    uint64_t watchdog = g_stop_ns + (uint64_t)((O.drain + 30) * 1e9);
    for (int i = 0; i < np; i++)
        if (!join_by(P[i].th, watchdog, "producer", i))
            _exit(3);
    uint64_t producers_done = now_ns();

    /* drain: until every delivery the routing model expects arrived, the
     * queues are empty, or the drain period is over */
    uint64_t expected = 0;
    for (int i = 0; i < np; i++)
        for (int q = 0; q < O.queues; q++)
            expected += routes_expected(&R, i, atomic_load(&P[i].sent), q);
    uint64_t drain_deadline = producers_done + (uint64_t)(O.drain * 1e9);
    int empty_polls = 0;
    uint64_t next_poll = producers_done;
    while (!atomic_load(&g_abort) && nc > 0) {
        uint64_t fresh = 0;
        for (int j = 0; j < nc; j++)
            fresh += atomic_load(&C[j].fresh);
        uint64_t now = now_ns();
        if (fresh >= expected || now >= drain_deadline)
            break;
        if (now >= next_poll) {
            uint64_t depth;
            if (!queue_depth(ctl, &depth)) {
                fail();
                break;
            }
            empty_polls = depth == 0 ? empty_polls + 1 : 0;
            if (empty_polls >= 3)
                break;
            next_poll = now + 100000000u;
        }
        sleep_until(now + 20000000u);
    }
    uint64_t drain_end = now_ns();
    atomic_store(&g_drain_done, 1);
    for (int j = 0; j < nc; j++)
        if (!join_by(C[j].th, drain_end + 30000000000u, "consumer", j))
            _exit(3);

    /* messages still queued (backlog not drained in time, or unacked ones
     * requeued when the consumers closed) are not lost: count them */
    uint64_t left = 0;
    if (!atomic_load(&g_abort)) {
        uint64_t prev = UINT64_MAX;
        for (int i = 0; i < 20; i++) {
            if (!queue_depth(ctl, &left)) {
                fail();
                break;
            }
            if (left == prev)
                break;
            prev = left;
            sleep_until(now_ns() + 100000000u);
        }
    }
    if (!O.keep && !atomic_load(&g_abort))
        delete_queues(ctl);
    bench_close(ctl);

    /* results */
    uint64_t published = 0, confirmed = 0, nacked = 0, consumed = 0, in_window = 0;
    uint64_t dup = 0, redelivered = 0, foreign = 0, misrouted = 0, missing = 0;
    uint64_t last_end = g_start_ns;
    struct hist *lat = calloc(1, sizeof *lat), *clat = calloc(1, sizeof *clat);
    if (lat == NULL || clat == NULL)
        return 2;
    for (int i = 0; i < np; i++) {
        uint64_t s = atomic_load(&P[i].sent);
        published += s;
        confirmed += P[i].confirmed;
        nacked += P[i].nacked;
        if (P[i].end_ns > last_end)
            last_end = P[i].end_ns;
        hist_merge(clat, P[i].clat);
        for (int q = 0; q < O.queues && nc > 0; q++)
            missing += routes_expected(&R, i, s, q) -
                       seen_count(atomic_load(seen_slot(q, i)), s);
    }
    for (int j = 0; j < nc; j++) {
        consumed += atomic_load(&C[j].received);
        in_window += C[j].in_window;
        dup += C[j].dup;
        redelivered += C[j].redelivered;
        foreign += C[j].foreign;
        misrouted += C[j].misrouted;
        hist_merge(lat, C[j].lat);
    }
    uint64_t lost = missing > left ? missing - left : 0;
    uint64_t unconsumed = missing < left ? missing : left;
    /* -E and -M end the run early */
    double run_s = (double)((run_end < g_stop_ns ? run_end : g_stop_ns) - g_start_ns) / 1e9;
    double pub_s = (double)(last_end - g_start_ns) / 1e9;
    if (pub_s < run_s && O.max_msgs == 0)
        pub_s = run_s;
    double pub_rate = (double)published / pub_s;
    double con_rate = (double)in_window / run_s;
    double drain_s = (double)(drain_end - producers_done) / 1e9;
    double l50 = hist_pct_us(lat, 0.5), l99 = hist_pct_us(lat, 0.99);
    double c50 = hist_pct_us(clat, 0.5), c99 = hist_pct_us(clat, 0.99);
    int errors = atomic_load(&g_errors);

    char confirms[32];
    if (O.confirm > 0)
        snprintf(confirms, sizeof confirms, "confirm window %u", O.confirm);
    else
        snprintf(confirms, sizeof confirms, "no confirms");
    printf("warren-bench: %s:%d, %d producer%s, %d consumer%s, %d queue%s, %zu B, %s, "
           "prefetch %d, %s, %s, %.1f s\n",
           O.host, O.port, np, pl(np), nc, pl(nc), O.queues, pl(O.queues), O.size,
           O.autoack ? "autoack" : "manual ack", O.prefetch, confirms,
           O.persistent ? "persistent" : "transient", run_s);
    printf("published   %12" PRIu64 " msg  %12.0f msg/s\n", published, pub_rate);
    printf("consumed    %12" PRIu64 " msg  %12.0f msg/s during the run "
           "(%" PRIu64 " in the run, the rest in %.2f s of drain)\n",
           consumed, con_rate, in_window, drain_s);
    if (O.confirm > 0)
        printf("confirmed   %12" PRIu64 " msg  (nacked %" PRIu64 ", unconfirmed %" PRIu64
               ")  confirm latency median %.0f us, p99 %.0f us\n",
               confirmed, nacked, published - confirmed - nacked, c50, c99);
    if (lat->count > 0)
        printf("latency     end-to-end median %.0f us, p99 %.0f us\n", l50, l99);
    printf("lost        %12" PRIu64 "      duplicated %" PRIu64 " (plus %" PRIu64
           " redelivered), misrouted %" PRIu64 ", foreign %" PRIu64
           ", left in the queues %" PRIu64 "\n",
           lost, dup, redelivered, misrouted, foreign, left);
    if (errors)
        printf("ERRORS      %d thread%s failed (see stderr)\n", errors, pl(errors));
    printf("{\"published\":%" PRIu64 ",\"consumed\":%" PRIu64 ",\"consumed_in_run\":%" PRIu64
           ",\"pub_rate\":%.1f,\"con_rate\":%.1f,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f"
           ",\"confirmed\":%" PRIu64 ",\"nacked\":%" PRIu64
           ",\"confirm_p50_us\":%.1f,\"confirm_p99_us\":%.1f"
           ",\"lost\":%" PRIu64 ",\"dup\":%" PRIu64 ",\"redelivered\":%" PRIu64
           ",\"unconsumed\":%" PRIu64
           ",\"seconds\":%.3f,\"drain_seconds\":%.3f"
           ",\"producers\":%d,\"consumers\":%d,\"queues\":%d,\"size\":%zu,\"prefetch\":%d"
           ",\"autoack\":%s,\"confirm\":%u,\"persistent\":%s,\"rate\":%.1f,\"errors\":%d",
           published, consumed, in_window, pub_rate, con_rate, l50, l99, confirmed, nacked,
           c50, c99, lost, dup, redelivered, unconsumed, run_s, drain_s, np, nc, O.queues, O.size,
           O.prefetch, O.autoack ? "true" : "false", O.confirm,
           O.persistent ? "true" : "false", O.rate, errors);
    printf(",\"exchange_type\":\"%s\",\"expected\":%" PRIu64 ",\"misrouted\":%" PRIu64
           ",\"foreign\":%" PRIu64, routes_kind_name(R.kind), expected, misrouted, foreign);
    /* latency distributions (plots) and the rates per second of the run */
    static const double pcts[] = { 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995,
                                   0.9999, 1.0 };
    const struct { const char *name; const struct hist *h; } dists[] = {
        { "lat_pcts", lat }, { "confirm_pcts", clat } };
    for (size_t d = 0; d < sizeof dists / sizeof dists[0]; d++) {
        printf(",\"%s\":[", dists[d].name);
        for (size_t i = 0; dists[d].h->count && i < sizeof pcts / sizeof pcts[0]; i++)
            printf("%s[%g,%.1f]", i ? "," : "", pcts[i] * 100, hist_pct_us(dists[d].h, pcts[i]));
        printf("]");
    }
    printf(",\"lat_p999_us\":%.1f,\"confirm_p999_us\":%.1f,\"timeline\":[",
           hist_pct_us(lat, 0.999), hist_pct_us(clat, 0.999));
    for (size_t i = 0; i < tl_len; i++)
        printf("%s[%.3f,%.0f,%.0f]", i ? "," : "", timeline[i][0], timeline[i][1],
               timeline[i][2]);
    printf("]}\n");
    fflush(stdout);

    for (size_t i = 0; i < (size_t)O.queues * (size_t)(np > 0 ? np : 1); i++)
        seen_free(atomic_load(&g_seen[i]));
    for (int i = 0; i < np; i++)
        free(P[i].clat);
    for (int i = 0; i < O.queues; i++)
        free(g_queue_name[i]);
    free(g_queue_name);
    free(timeline);
    routes_free(&R);
    for (int j = 0; j < nc; j++)
        free(C[j].lat);
    free(g_seen);
    free(P);
    free(C);
    free(lat);
    free(clat);
    pthread_barrier_destroy(&g_barrier);
    return errors ? 2 : 0;
}
