/*
 * A client connection: the handshake state machine, frame reading with a
 * per-turn budget, heartbeats, the channel table and orderly close.
 */
#ifndef WARREN_CONNECTION_H
#define WARREN_CONNECTION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "amqp_error.h"
#include "amqp.h"
#include "wire.h"

struct broker;
struct bufferevent;
struct event;
struct evbuffer;
struct channel;
struct vhost;
struct amqp_method;

#define CONN_STATES(X)							\
	X(CONN_PROTOCOL_HEADER, "waiting for the protocol header")	\
	X(CONN_START, "sent connection.start")				\
	X(CONN_TUNE, "sent connection.tune")				\
	X(CONN_OPEN, "waiting for connection.open")			\
	X(CONN_RUNNING, "open")						\
	X(CONN_CLOSING, "sent connection.close")			\
	X(CONN_FLUSHING, "closing after the last write")

enum conn_state {
#define X(s, text) s,
	CONN_STATES(X)
#undef X
};

/* Messages through a channel or a connection, for the statistics. */
struct msg_counters {
	uint64_t published, delivered, acked;	/* only grow */
};

/* A connection's numbers, as the management API reports them. */
struct conn_stats {
	struct msg_counters msgs;
	uint32_t channels;
	bool have_octets;		/* the kernel told (TCP_INFO) */
	uint64_t recv_oct, send_oct;	/* bytes received, and sent and acked */
};

struct conn {
	uint64_t id;
	struct broker *broker;
	struct bufferevent *bev;
	enum conn_state state;
	char peer[64];			/* "127.0.0.1:51234" */
	char peer_host[48];		/* "127.0.0.1", "::1" */
	bool peer_is_loopback;
	bool tls;			/* accepted on the TLS listener */
	bool counted_open;		/* in broker->n_open_conns */
	bool counted_handshaking;	/* in broker->n_handshaking */

	uint32_t frame_max;
	uint16_t channel_max;
	uint16_t heartbeat;		/* seconds; 0: off */
	char *user;
	struct vhost *vh;
	uint8_t *client_props;		/* start-ok's client-properties, raw */
	uint32_t client_props_len;
	uint64_t connected_at;		/* wall clock, ms */
	struct msg_counters msgs;	/* over all its channels */
	bool cancel_notify;		/* client capability consumer_cancel_notify */
	bool read_paused;		/* output too large: not reading */
	bool input_full;		/* input too large: not reading */
	/* conn_output.c: plain TCP output is written at the end of the turn */
	bool direct_write;
	bool output_pending;		/* in broker->output_pending */
	TAILQ_ENTRY(conn) output_link;
	bool published;			/* has sent basic.publish */
	bool blocked;			/* resource alarm: publishes wait */
	bool held_at_publish;		/* blocked, and a basic.publish is
					 * next: not reading */
	bool flow;			/* the store is behind: not reading */
	uint32_t commit_waits;		/* tx.commit-oks awaiting a sync */
	bool blocked_notify;		/* client capability connection.blocked */

	struct channel **channels;	/* indexed by number, grown on demand */
	uint32_t n_channels;		/* open ones */
	uint32_t channels_cap;

	struct event *timer;		/* handshake, heartbeat or close timeout */
	struct event *resume_ev;	/* more input left after the budget */
	struct event *gone_check;	/* while not reading: is the peer gone? */
	/* Message content received but not yet complete, on all channels. */
	uint64_t content_bytes;
	uint64_t content_since_ms;	/* last finished (or first started) */
	uint64_t last_recv_ms, last_send_ms;
	struct wbuf scratch;		/* method encoding */
	struct channel *confirm_dirty;	/* channels with acks to send */
	char close_reason[300];
	TAILQ_ENTRY(conn) link;
};

/* Take ownership of an accepted socket (ssl: TLS on it, NULL: plain). */
struct ssl_st;
void conn_accept(struct broker *b, int fd, const struct sockaddr *sa,
    int salen, struct ssl_st *ssl);
/*
 * Connections that have not finished their handshake are bounded (each
 * costs at most a 4 KB frame and its buffer until handshake_timeout):
 * past this many, new sockets are closed as soon as they are accepted.
 */
#define CONN_HANDSHAKING_MAX 1024
/* c passed connection.open: count it as an open connection. */
void conn_opened(struct conn *c);
/* Orderly close from the broker side (shutdown). */
void conn_close(struct conn *c, int code, const char *text);
/* Send connection.close for a hard error, then wait for close-ok. */
void conn_fail(struct conn *c, const struct amqp_error *err);
/* Drop the connection now (socket gone or peer misbehaving after close). */
void conn_free(struct conn *c, const char *reason);
/*
 * c's vhost is being deleted: connection.close 320 CONNECTION_FORCED with
 * text, and everything c holds in the vhost (channels, consumers,
 * exclusive queues) goes now; c->vh becomes NULL.
 */
void conn_drop_vhost(struct conn *c, const char *text);
/* c's numbers; bytes from the kernel's count, nothing on the hot path. */
void conn_stats(struct conn *c, struct conn_stats *out);

/*
 * The largest frame c accepts (0: no limit but the largest message), and
 * with it how much input is buffered before reading stops.
 */
void conn_set_frame_max(struct conn *c, uint32_t frame_max);
struct evbuffer *conn_output(struct conn *c);
void conn_send_method(struct conn *c, uint16_t channel,
    const struct amqp_method *m);
/* m (basic.deliver, get-ok or return) and msg's content frames. */
struct message;
void conn_send_delivery(struct conn *c, uint16_t channel,
    const struct amqp_method *m, struct message *msg);
/* Bytes waiting to be written: dispatch holds back above a limit. */
bool conn_output_congested(struct conn *c);

void conn_enter_state(struct conn *c, enum conn_state s);
/* Everything queued for the peer has been handed to the kernel. */
bool conn_output_drained(const struct conn *c);
/* Past twice the congestion limit: stop reading the client's requests. */
bool conn_output_over_limit(const struct conn *c);

/* conn_output.c: the broker's end-of-turn writer, and a connection's
 * place in it (from accept to free). */
bool conn_output_init(struct broker *b);
void conn_output_attach(struct conn *c);
void conn_output_detach(struct conn *c);
/* The output shrank (below half the congestion limit, or to nothing):
 * a closing connection is freed (false), reading and deliveries resume. */
bool conn_output_written(struct conn *c);
/* libevent's write event emptied the buffer: back to end-of-turn writes. */
void conn_output_write_done(struct conn *c);
uint64_t conn_now_ms(void);
/* Arm timer ev to fire in ms milliseconds. */
void evtimer_in_ms(struct event *ev, uint64_t ms);

/* Handshake methods on channel 0 (connection_handshake.c). */
bool conn_protocol_header_accepted(const uint8_t hdr[8]);
/* A tx.commit that held up the input is done: read on. */
void conn_resume_input(struct conn *c);
void conn_send_start(struct conn *c);
int conn_handle_method(struct conn *c, const struct amqp_method *m,
    struct amqp_error *err);
void conn_arm_heartbeat(struct conn *c);
/* The error for a method frame method_decode refused (m->id is set). */
int conn_decode_failed(const struct amqp_method *m, int rc,
    struct amqp_error *err);
/*
 * Memory alarm: block (stop reading from, and tell with connection.blocked
 * when the client understands it) or unblock a publishing connection.
 */
void conn_set_blocked(struct conn *c, bool blocked);
/*
 * Flow control: the message store is behind, so stop reading from a
 * publishing connection, silently (TCP backpressure, as RabbitMQ's credit
 * flow), until it catches up.
 */
void conn_set_flow(struct conn *c, bool flow);
/* Reply to connection.close from the peer and hang up after writing. */
void conn_peer_closed(struct conn *c);
/* Forget a channel after channel.close-ok (either direction). */
void conn_channel_closed(struct conn *c, uint16_t number);

#endif
