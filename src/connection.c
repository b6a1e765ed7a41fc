/*
 * Connections: socket I/O through a bufferevent, the frame loop with a
 * per-turn budget, channel routing, heartbeats and close.
 *
 * Output is appended to the bufferevent's output evbuffer and written at
 * the end of the loop turn (conn_output.c), so everything produced in one
 * turn goes out in one write.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h>		/* tcp_info with byte counts */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "broker.h"
#include "channel.h"
#include "config.h"
#include "connection.h"
#include "frame.h"
#include "log.h"
#include "login_throttle.h"
#include "method.h"
#include "resource_limits.h"
#include "strmap.h"
#include "tls.h"
#include "vhost.h"

/* Frames handled per read event before yielding to other connections. */
#define FRAME_BUDGET 512
/* How long we wait for connection.close-ok before dropping the socket. */
#define CLOSE_TIMEOUT_MS 3000
/* While not reading a socket, how often we ask the kernel if it closed. */
#define GONE_CHECK_MS 1000
/*
 * Input buffered beyond one whole frame: we stop reading a socket whose
 * input holds a largest frame and this much more, so a client never makes
 * us buffer more than that, whatever we are waiting for.  (Not libevent's
 * read watermark: that runs a callback and an event_add for every frame
 * drained from the input.)
 */
#define INPUT_SLACK (64u << 10)
/*
 * Most bytes one write call moves; libevent's default is 16 KB, which
 * costs a system call per 16 deliveries of 1 KB.  The read limits are
 * bounds only: libevent's evbuffer_read never reads more than 4096 bytes
 * at a time (EVBUFFER_MAX_READ), whatever is set here.  Until tune-ok
 * (frames of at most 4 KB) the read bound stays at libevent's default.
 */
#define MAX_SINGLE_IO (256u << 10)
#define HANDSHAKE_SINGLE_READ (16u << 10)
/* tcp_info.tcpi_state of an open connection (the kernel's TCP_ESTABLISHED,
 * which linux/tcp.h does not export). */
#define TCP_STATE_ESTABLISHED 1

static const char *const state_names[] = {
#define X(s, text) #s,
	CONN_STATES(X)
#undef X
};

static bool reading_held(const struct conn *c)
{
	return c->held_at_publish || c->flow || c->read_paused ||
	    c->input_full;
}

/* Read from the socket unless something holds the connection back. */
static void update_reading(struct conn *c)
{
	if (reading_held(c)) {
		bufferevent_disable(c->bev, EV_READ);
		/* We will not read its EOF: look for it another way. */
		evtimer_in_ms(c->gone_check, GONE_CHECK_MS);
		/* Held only because the input is full: handling what it holds
		 * is what lets reading resume (a publisher unblocked with a
		 * full input would otherwise wait forever). */
		if (!c->held_at_publish && !c->flow && !c->read_paused)
			event_active(c->resume_ev, EV_TIMEOUT, 0);
	} else {
		evtimer_del(c->gone_check);
		bufferevent_enable(c->bev, EV_READ);
		/* What arrived meanwhile waits in the input buffer. */
		event_active(c->resume_ev, EV_TIMEOUT, 0);
	}
}

/*
 * A resource alarm blocks a connection at its next basic.publish, as
 * RabbitMQ's "blocking" state: it is read until then, so a message it
 * has begun can finish (its memory is then a message like any other, not
 * a half-received one held hostage) and a client that only consumes and
 * acks is never stopped.
 */
void conn_set_blocked(struct conn *c, bool blocked)
{
	struct amqp_method m = { .id = blocked ? AMQP_connection_blocked :
	    AMQP_connection_unblocked };

	if (c->blocked == blocked || (blocked && c->state != CONN_RUNNING))
		return;
	c->blocked = blocked;
	if (c->blocked_notify) {
		if (blocked)
			m.a.connection_blocked.reason =
			    bytes_str(broker_alarm_reason(c->broker));
		conn_send_method(c, 0, &m);
	}
	if (!blocked && c->held_at_publish) {
		c->held_at_publish = false;
		update_reading(c);
	}
}

void conn_set_flow(struct conn *c, bool flow)
{
	if (c->flow == flow || (flow && c->state != CONN_RUNNING))
		return;
	c->flow = flow;
	update_reading(c);
}

void conn_resume_input(struct conn *c)
{
	if (--c->commit_waits == 0)
		event_active(c->resume_ev, EV_TIMEOUT, 0);
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_resume_cb(evutil_socket_t fd, short what, void *arg);
static void conn_gone_check_cb(evutil_socket_t fd, short what, void *arg);

uint64_t conn_now_ms(void)
{
	struct timespec ts;

	/* Millisecond-ish precision is all TTLs and timeouts need, and the
	 * coarse clock costs a fraction of the precise one on the hot path. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void evtimer_in_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

void conn_enter_state(struct conn *c, enum conn_state s)
{
	log_debug("conn %llu: %s -> %s", (unsigned long long)c->id,
	    state_names[c->state], state_names[s]);
	c->state = s;
}

static void format_peer(struct conn *c, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		c->peer_is_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		c->peer_is_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
		    in6->sin6_addr.s6_addr[12] == 127);
	}
	snprintf(c->peer, sizeof(c->peer), sa->sa_family == AF_INET6 ?
	    "[%s]:%u" : "%s:%u", host, port);
	snprintf(c->peer_host, sizeof(c->peer_host), "%s", host);
}

void conn_accept(struct broker *b, int fd, const struct sockaddr *sa,
    int salen, SSL *ssl)
{
	struct conn *c;
	int one = 1;

	c = xcalloc(1, sizeof(*c));
	format_peer(c, sa);
	/* Refusals here cost an accept and a close, nothing more. */
	if (b->n_handshaking >= CONN_HANDSHAKING_MAX) {
		log_warning("refused a connection from %s: %u connections are "
		    "already in their handshake", c->peer_host, b->n_handshaking);
		goto refuse;
	}
	if (!login_throttle_admits(b->login_throttle, c->peer_host)) {
		log_warning("refused a connection from %s: too many failed "
		    "logins", c->peer_host);
		goto refuse;
	}
	c->counted_handshaking = true;
	b->n_handshaking++;

	c->id = b->next_conn_id++;
	c->broker = b;
	c->connected_at = (uint64_t)time(NULL) * 1000;
	b->counters.connections_opened++;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ssl != NULL) {
		/* Frees ssl (and closes fd) with the bufferevent. */
		c->bev = bufferevent_openssl_socket_new(b->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		/* Most clients close without a TLS close_notify: an EOF. */
		if (c->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		c->tls = true;
	} else {
		c->bev = bufferevent_socket_new(b->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	}
	c->timer = evtimer_new(b->base, conn_timer_cb, c);
	c->resume_ev = event_new(b->base, -1, 0, conn_resume_cb, c);
	c->gone_check = evtimer_new(b->base, conn_gone_check_cb, c);
	if (c->bev == NULL || c->timer == NULL || c->resume_ev == NULL ||
	    c->gone_check == NULL)
		fatalx("out of memory setting up a connection");
	wbuf_init(&c->scratch);
	c->channel_max = b->cfg->channel_max;
	c->state = CONN_PROTOCOL_HEADER;
	c->last_recv_ms = c->last_send_ms = conn_now_ms();
	TAILQ_INSERT_TAIL(&b->conns, c, link);
	strmap_put(b->conns_by_id, (struct bytes){ (const uint8_t *)&c->id,
	    sizeof(c->id) }, c);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_set_max_single_write(c->bev, MAX_SINGLE_IO);
	/* Until tune-ok, frames are as small as the spec allows (RabbitMQ's
	 * limit too): a client that has not logged in cannot make us buffer
	 * frame_max bytes. */
	conn_set_frame_max(c, AMQP_FRAME_MIN_SIZE);
	conn_output_attach(c);
	evtimer_in_ms(c->timer, b->cfg->handshake_timeout);
	log_info("conn %llu: accepted from %s%s", (unsigned long long)c->id,
	    c->peer, c->tls ? " (TLS)" : "");
	return;
refuse:
	free(c);
	SSL_free(ssl);
	evutil_closesocket(fd);
}

/* Exclusive queues die with the connection that declared them. */
static void drop_exclusive_queues(struct conn *c)
{
	struct bytes k;
	void *v;

	if (c->vh == NULL)
		return;
	for (size_t it = 0; strmap_next(c->vh->queues, &it, &k, &v); ) {
		struct queue *q = v;

		if (q->exclusive && q->owner_conn == c->id)
			vhost_remove_queue(q->vh, q);
	}
}

void conn_drop_vhost(struct conn *c, const char *text)
{
	enum conn_state was;

	conn_close(c, AMQP_CONNECTION_FORCED, text);
	/* Its channels and exclusive queues go now, not at close-ok. */
	was = c->state;
	c->state = CONN_FLUSHING;
	for (uint32_t i = 0; i < c->channels_cap; i++) {
		if (c->channels[i]) {
			chan_free(c->channels[i]);
			c->channels[i] = NULL;
		}
	}
	c->n_channels = 0;
	drop_exclusive_queues(c);
	c->vh = NULL;
	c->state = was;
}

void conn_stats(struct conn *c, struct conn_stats *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(out, 0, sizeof(*out));
	out->msgs = c->msgs;
	out->channels = c->n_channels;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_INFO, &ti,
	    &len) == 0) {
		out->have_octets = true;
		out->recv_oct = ti.tcpi_bytes_received;
		out->send_oct = ti.tcpi_bytes_acked;
	}
}

void conn_opened(struct conn *c)
{
	c->counted_handshaking = false;
	c->broker->n_handshaking--;
	c->counted_open = true;
	c->broker->n_open_conns++;
}

void conn_free(struct conn *c, const char *reason)
{
	uint32_t i;

	if (c->counted_handshaking)
		c->broker->n_handshaking--;
	if (c->counted_open)
		c->broker->n_open_conns--;
	/* Requeues from its channels must not be delivered back to it. */
	c->state = CONN_FLUSHING;
	for (i = 0; i < c->channels_cap; i++)
		if (c->channels[i])
			chan_free(c->channels[i]);
	free(c->channels);
	drop_exclusive_queues(c);
	log_info("conn %llu: closed %s user=%s vhost=%s: %s",
	    (unsigned long long)c->id, c->peer, c->user ? c->user : "-",
	    c->vh ? c->vh->name : "-", reason);
	c->broker->counters.connections_closed++;
	TAILQ_REMOVE(&c->broker->conns, c, link);
	strmap_del(c->broker->conns_by_id, (struct bytes){
	    (const uint8_t *)&c->id, sizeof(c->id) });
	conn_output_detach(c);
	event_free(c->timer);
	event_free(c->resume_ev);
	event_free(c->gone_check);
	bufferevent_free(c->bev);
	wbuf_free(&c->scratch);
	free(c->client_props);
	free(c->user);
	free(c);
}


void conn_set_frame_max(struct conn *c, uint32_t frame_max)
{
	uint64_t ceiling = c->broker->cfg->max_message_size +
	    AMQP_FRAME_MIN_SIZE;

	/* frame_max 0 ("no limit") still never means unbounded memory for
	 * one frame: no frame needs to be larger than the largest message. */
	if (frame_max == 0 || frame_max > ceiling)
		frame_max = (uint32_t)ceiling;
	c->frame_max = frame_max;
	if (c->bev != NULL)
		bufferevent_set_max_single_read(c->bev,
		    frame_max > AMQP_FRAME_MIN_SIZE ? MAX_SINGLE_IO :
		    HANDSHAKE_SINGLE_READ);
}

/* Stops reading while the input holds more than a largest frame and
 * INPUT_SLACK; reading resumes once the frames are handled. */
static void check_input_limit(struct conn *c, size_t buffered)
{
	bool full = buffered > (size_t)c->frame_max + AMQP_FRAME_OVERHEAD +
	    INPUT_SLACK;

	if (full != c->input_full) {
		c->input_full = full;
		update_reading(c);
	}
}

void conn_send_method(struct conn *c, uint16_t channel,
    const struct amqp_method *m)
{
	frame_put_method(conn_output(c), channel, m, &c->scratch);
}

void conn_send_delivery(struct conn *c, uint16_t channel,
    const struct amqp_method *m, struct message *msg)
{
	frame_put_delivery(conn_output(c), channel, m, &c->scratch, msg,
	    c->frame_max);
}

/* Free the connection once the output has been written. */
static void conn_flush_and_free(struct conn *c, const char *reason)
{
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	conn_enter_state(c, CONN_FLUSHING);
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_free(c, c->close_reason);
		return;
	}
	evtimer_in_ms(c->timer, CLOSE_TIMEOUT_MS);
}


static void send_close(struct conn *c, int code, const char *text,
    uint32_t method_id)
{
	struct amqp_method m = { .id = AMQP_connection_close };
	char full[300];

	snprintf(full, sizeof(full), "%s - %s", amqp_reply_name(code), text);
	m.a.connection_close.reply_code = (uint16_t)code;
	m.a.connection_close.reply_text = bytes_str(full);
	m.a.connection_close.class_id = AMQP_METHOD_CLASS(method_id);
	m.a.connection_close.method_id = AMQP_METHOD_INDEX(method_id);
	conn_send_method(c, 0, &m);
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", full);
}

void conn_fail(struct conn *c, const struct amqp_error *err)
{
	if (c->state == CONN_CLOSING || c->state == CONN_FLUSHING)
		return;
	log_warning("conn %llu: %s: connection error %d %s - %s",
	    (unsigned long long)c->id, c->peer, err->code,
	    amqp_reply_name(err->code), err->text);
	/* Before connection.open-ok the peer may not expect a close. */
	if (c->state == CONN_PROTOCOL_HEADER) {
		conn_flush_and_free(c, err->text);
		return;
	}
	send_close(c, err->code, err->text, err->method_id);
	conn_enter_state(c, CONN_CLOSING);
	evtimer_in_ms(c->timer, CLOSE_TIMEOUT_MS);
}

void conn_close(struct conn *c, int code, const char *text)
{
	struct amqp_error err = { .code = code };

	snprintf(err.text, sizeof(err.text), "%s", text);
	conn_fail(c, &err);
}

static struct channel **channel_slot(struct conn *c, uint16_t n)
{
	if (n >= c->channels_cap) {
		uint32_t cap = c->channels_cap ? c->channels_cap : 8;

		while (cap <= n)
			cap *= 2;
		c->channels = xrealloc(c->channels, cap * sizeof(*c->channels));
		memset(c->channels + c->channels_cap, 0,
		    (cap - c->channels_cap) * sizeof(*c->channels));
		c->channels_cap = cap;
	}
	return &c->channels[n];
}

/* channel.open and channel.close-ok/close on a channel we know. */
static int route_channel_frame(struct conn *c, const struct frame *f,
    struct amqp_error *err)
{
	struct channel **slot = channel_slot(c, f->channel);
	struct amqp_method m;
	int rc;

	if (*slot)
		return chan_handle_frame(*slot, f, err);
	/* Only channel.open may address a channel that is not open. */
	if (f->type != AMQP_FRAME_METHOD)
		return amqp_fail(err, AMQP_CHANNEL_ERROR,
		    "expected 'channel.open' on channel %u", f->channel);
	if ((rc = method_decode(f->payload, &m)) != 0)
		return conn_decode_failed(&m, rc, err);
	err->method_id = m.id;
	if (m.id != AMQP_channel_open)
		return amqp_fail(err, AMQP_CHANNEL_ERROR,
		    "expected 'channel.open' on channel %u, got '%s'",
		    f->channel, method_name(m.id));
	/* Like RabbitMQ, channel_max bounds how many are open, not numbers. */
	if (c->channel_max && c->n_channels >= c->channel_max)
		return amqp_fail(err, AMQP_NOT_ALLOWED,
		    "number of channels opened (%u) has reached the negotiated "
		    "channel_max (%u)", c->n_channels, c->channel_max);
	if ((rc = limits_check_channel(c, err)) != 0)
		return rc;
	*slot = chan_new(c, f->channel);
	c->n_channels++;
	m.id = AMQP_channel_open_ok;
	memset(&m.a, 0, sizeof(m.a));
	conn_send_method(c, f->channel, &m);
	return 0;
}

void conn_channel_closed(struct conn *c, uint16_t number)
{
	struct channel **slot = channel_slot(c, number);

	if (*slot) {
		chan_free(*slot);
		*slot = NULL;
		c->n_channels--;
	}
}

int conn_decode_failed(const struct amqp_method *m, int rc,
    struct amqp_error *err)
{
	err->method_id = m->id;
	if (rc == AMQP_COMMAND_INVALID)
		return amqp_fail(err, rc, "unknown method (class %u, method %u)",
		    AMQP_METHOD_CLASS(m->id), AMQP_METHOD_INDEX(m->id));
	return amqp_fail(err, rc, "cannot decode '%s' arguments",
	    method_name(m->id));
}

static int handle_frame(struct conn *c, const struct frame *f,
    struct amqp_error *err)
{
	struct amqp_method m;
	int rc;

	if (f->type == AMQP_FRAME_HEARTBEAT) {
		if (f->channel != 0)
			return amqp_fail(err, AMQP_UNEXPECTED_FRAME,
			    "heartbeat frame on channel %u", f->channel);
		if (f->payload.len != 0)
			return amqp_fail(err, AMQP_FRAME_ERROR,
			    "heartbeat frame with a %u-byte payload", f->payload.len);
		return 0;
	}
	if (f->type != AMQP_FRAME_METHOD && f->type != AMQP_FRAME_HEADER &&
	    f->type != AMQP_FRAME_BODY)
		return amqp_fail(err, AMQP_FRAME_ERROR, "unknown frame type %u",
		    f->type);
	if (c->state == CONN_CLOSING) {
		/* Only close and close-ok matter now. */
		if (f->channel != 0 || f->type != AMQP_FRAME_METHOD ||
		    method_decode(f->payload, &m) != 0)
			return 0;
		if (m.id == AMQP_connection_close_ok) {
			conn_free(c, c->close_reason);
			return -1;
		}
		if (m.id == AMQP_connection_close) {
			m.id = AMQP_connection_close_ok;
			conn_send_method(c, 0, &m);
		}
		return 0;
	}
	if (f->channel == 0) {
		if (f->type != AMQP_FRAME_METHOD)
			return amqp_fail(err, AMQP_UNEXPECTED_FRAME,
			    "content frame on channel 0");
		err->connection_level = true;
		if ((rc = method_decode(f->payload, &m)) != 0)
			return conn_decode_failed(&m, rc, err);
		err->method_id = m.id;
		return conn_handle_method(c, &m, err);
	}
	if (c->state != CONN_RUNNING)
		return amqp_fail(err, AMQP_CHANNEL_ERROR,
		    "frame on channel %u before connection.open", f->channel);
	return route_channel_frame(c, f, err);
}

static bool frame_is_publish(const struct frame *f)
{
	const uint8_t *p = f->payload.ptr;

	return f->type == AMQP_FRAME_METHOD && f->payload.len >= 4 &&
	    ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	    p[3]) == AMQP_basic_publish;
}

/*
 * Frames are parsed in place from the input's first chain and drained
 * together at the end: per frame, evbuffer calls (and the callbacks each
 * drain runs) cost more than the frame.  Only a frame that straddles two
 * chains is made contiguous (frame_peek pulls up that frame alone).
 */
struct input_window {
	const uint8_t *base;
	size_t len, used;
};

static void window_open(struct evbuffer *in, struct input_window *w)
{
	struct evbuffer_iovec v;

	w->used = 0;
	if (evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		w->base = v.iov_base;
		w->len = v.iov_len;
	} else {
		w->base = NULL;
		w->len = 0;
	}
}

static enum frame_status next_frame(struct evbuffer *in,
    struct input_window *w, uint32_t frame_max, struct frame *f)
{
	enum frame_status st = FRAME_NEED_MORE;

	if (w->used < w->len)
		st = frame_parse(w->base + w->used, w->len - w->used,
		    frame_max, f);
	if (st != FRAME_NEED_MORE)
		return st;
	/* It continues in the next chain, or has not all arrived. */
	evbuffer_drain(in, w->used);
	st = frame_peek(in, frame_max, f);
	window_open(in, w);
	return st;
}

/* Returns false when the connection was freed. */
static bool conn_process_frames(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct amqp_error err;
	struct frame f;
	int budget = FRAME_BUDGET;
	struct input_window w;

	if (c->state == CONN_PROTOCOL_HEADER) {
		uint8_t hdr[8];

		if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
			return true;
		if (!conn_protocol_header_accepted(hdr)) {
			/*
			 * Tell the peer which protocol we speak, then hang up
			 * (RabbitMQ does the same for 0-8, 1.0 and the rest).
			 */
			evbuffer_add(conn_output(c), AMQP_PROTOCOL_HEADER, 8);
			conn_flush_and_free(c, "bad protocol header");
			return true;
		}
		evbuffer_drain(in, 8);
		conn_send_start(c);
	}
	window_open(in, &w);
	while (budget-- > 0 && c->state != CONN_FLUSHING) {
		enum frame_status st;
		int rc;

		/*
		 * A peer that sends requests but does not read the replies
		 * must not grow our output without bound: stop reading
		 * until the output drains (conn_write_cb resumes).
		 */
		if (conn_output_over_limit(c)) {
			c->read_paused = true;
			update_reading(c);
			break;
		}
		if (c->flow || c->held_at_publish)
			break;	/* alarms and flow stop publishers */
		if (c->commit_waits)
			break;	/* a tx.commit-ok waits for the disk */
		st = next_frame(in, &w, c->frame_max, &f);

		if (st == FRAME_NEED_MORE)
			break;
		if (st == FRAME_READY && c->blocked && frame_is_publish(&f)) {
			c->held_at_publish = true;
			update_reading(c);
			break;
		}
		memset(&err, 0, sizeof(err));
		if (st == FRAME_TOO_LARGE || st == FRAME_BAD_END) {
			amqp_fail(&err, AMQP_FRAME_ERROR, st == FRAME_TOO_LARGE ?
			    "frame size exceeds frame_max %u" :
			    "frame-end octet is not 0xCE", c->frame_max);
			conn_fail(c, &err);
			/* The stream is out of sync: read nothing more. */
			evbuffer_drain(in, evbuffer_get_length(in));
			window_open(in, &w);
			bufferevent_disable(c->bev, EV_READ);
			break;
		}
		c->last_recv_ms = c->broker->clock_ms; /* read by our caller */
		rc = handle_frame(c, &f, &err);
		if (rc < 0)
			return false;	/* the connection is gone */
		w.used += frame_wire_size(&f);
		if (rc > 0) {
			if (err.connection_level || amqp_reply_is_hard(rc) ||
			    f.channel >= c->channels_cap || !c->channels[f.channel])
				conn_fail(c, &err);
			else
				chan_fail(c->channels[f.channel], &err);
		}
	}
	evbuffer_drain(in, w.used);
	/* Budget spent with frames left: finish on a later turn. */
	if (budget < 0 && evbuffer_get_length(in) && c->state != CONN_FLUSHING)
		event_active(c->resume_ev, EV_TIMEOUT, 0);
	return true;
}

static void conn_process_input(struct conn *c)
{
	struct broker *b = c->broker;
	struct channel *ch;
	bool alive;

	b->clock_ms = conn_now_ms();	/* once per read, not per message */
	alive = conn_process_frames(c);

	/* A durable declare's ok must not leave before the change is saved. */
	broker_save_definitions(b);
	if (!alive)
		return;
	if (c->state != CONN_FLUSHING)
		check_input_limit(c,
		    evbuffer_get_length(bufferevent_get_input(c->bev)));
	/* One batched basic.ack per channel for this turn's publishes (none
	 * after a close: chan_confirm_flush checks the channel is open). */
	while ((ch = c->confirm_dirty) != NULL) {
		c->confirm_dirty = ch->confirm_next_dirty;
		if (c->state == CONN_RUNNING)
			chan_confirm_flush(ch);
		else
			ch->confirm_dirty = false;
	}
}

void conn_peer_closed(struct conn *c)
{
	struct amqp_method m = { .id = AMQP_connection_close_ok };

	conn_send_method(c, 0, &m);
	conn_flush_and_free(c, "client closed the connection");
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	conn_process_input(arg);
}

static void conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_process_input(arg);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (conn_output_written(c))
		conn_output_write_done(c);
}

bool conn_output_written(struct conn *c)
{
	if (c->state == CONN_FLUSHING) {
		if (conn_output_drained(c)) {
			conn_free(c, c->close_reason);
			return false;
		}
		return true;
	}
	if (c->read_paused) {
		c->read_paused = false;
		update_reading(c);
	}
	/* Output drained below the low-water mark: deliveries may resume. */
	for (uint32_t i = 0; i < c->channels_cap; i++) {
		struct channel *ch = c->channels[i];
		struct consumer *cons;

		if (ch == NULL)
			continue;
		TAILQ_FOREACH(cons, &ch->consumers, chlink)
			if (cons->q)
				queue_schedule_dispatch(cons->q);
	}
	return true;
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_EOF) {
		struct evbuffer *in = bufferevent_get_input(bev);
		size_t left;

		/*
		 * Frames that arrived before the EOF (say, publishes left over
		 * from the per-turn budget) are handled, as RabbitMQ does.
		 */
		while (c->state == CONN_RUNNING &&
		    (left = evbuffer_get_length(in)) > 0) {
			if (!conn_process_frames(c))
				return;		/* freed */
			if (evbuffer_get_length(in) == left)
				break;		/* a partial frame: no progress */
		}
		conn_free(c, c->state == CONN_CLOSING || c->state == CONN_FLUSHING ?
		    c->close_reason : "client closed the socket");
	}
	else if (what & BEV_EVENT_ERROR) {
		unsigned long tls_err = c->tls ?
		    bufferevent_get_openssl_error(bev) : 0;
		char why[300], text[256];

		if (tls_err != 0) {
			tls_handshake_error_text(bufferevent_openssl_get_ssl(
			    bev), tls_err, text, sizeof(text));
			snprintf(why, sizeof(why), "TLS error: %s", text);
		} else {
			snprintf(why, sizeof(why), "socket error: %s",
			    evutil_socket_error_to_string(
			    EVUTIL_SOCKET_ERROR()));
		}
		conn_free(c, why);
	}
}

/*
 * A connection we do not read cannot see its peer's EOF: ask the kernel
 * instead, so a publisher that hangs up while blocked is let go at once
 * rather than held (with all it has) until the alarm clears.
 */
static void conn_gone_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (!reading_held(c))
		return;
	if (getsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_INFO, &ti,
	    &len) == 0 && ti.tcpi_state != TCP_STATE_ESTABLISHED) {
		conn_free(c, "client closed the socket while not being read");
		return;
	}
	evtimer_in_ms(c->gone_check, GONE_CHECK_MS);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now = conn_now_ms(), hb_ms = (uint64_t)c->heartbeat * 1000;

	switch (c->state) {
	case CONN_PROTOCOL_HEADER:
	case CONN_START:
	case CONN_TUNE:
	case CONN_OPEN:
		log_warning("conn %llu: %s: handshake timeout", (unsigned long long)c->id, c->peer);
		conn_free(c, "handshake timeout");
		return;
	case CONN_CLOSING:
		conn_free(c, "no connection.close-ok in time");
		return;
	case CONN_FLUSHING:
		conn_free(c, c->close_reason);
		return;
	case CONN_RUNNING:
		break;
	}
	if (hb_ms == 0)
		return;
	/* We are not reading from it: its heartbeats wait in the socket. */
	if (reading_held(c))
		c->last_recv_ms = now;
	/* Two missed intervals from the peer: it is gone. */
	if (now - c->last_recv_ms >= 2 * hb_ms) {
		char why[80];

		snprintf(why, sizeof(why), "missed heartbeats from client, timeout: %us",
		    c->heartbeat);
		log_warning("conn %llu: %s: %s", (unsigned long long)c->id, c->peer, why);
		conn_free(c, why);
		return;
	}
	if (now - c->last_send_ms >= hb_ms / 2)
		frame_put_heartbeat(conn_output(c));
	evtimer_in_ms(c->timer, hb_ms / 2 ? hb_ms / 2 : 1);
}

void conn_arm_heartbeat(struct conn *c)
{
	evtimer_del(c->timer);
	if (c->heartbeat)
		evtimer_in_ms(c->timer, (uint64_t)c->heartbeat * 500);
}
