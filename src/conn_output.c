/*
 * A connection's output: what one loop turn produces for a client goes
 * out in one write at the end of that turn.
 *
 * libevent's bufferevents write when the socket reports writable: the
 * first byte appended adds EPOLLOUT (an epoll_ctl), the next loop turn's
 * epoll_wait returns it, the write empties the buffer and EPOLLOUT is
 * removed again (another epoll_ctl).  With many consumers each receiving a
 * little per turn, that is two epoll_ctl calls and one loop turn of delay
 * per write.  Instead, a plain TCP connection's output is written directly
 * by a callback that runs once the turn's other callbacks are done
 * (flush_all); only when the kernel does not take everything is the
 * bufferevent's own write event enabled, until the buffer is empty again.
 * TLS connections keep libevent's path: their bytes must go through
 * OpenSSL.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker.h"
#include "connection.h"

/* Above this much unwritten output, queues stop delivering to us. */
#define OUTPUT_HIGH_WATER (4u << 20)

static void flush_all(evutil_socket_t fd, short what, void *arg);

bool conn_output_init(struct broker *b)
{
	TAILQ_INIT(&b->output_pending);
	b->flush_ev = event_new(b->base, -1, 0, flush_all, b);
	return b->flush_ev != NULL;
}

void conn_output_attach(struct conn *c)
{
	c->direct_write = !c->tls;
	bufferevent_setwatermark(c->bev, EV_WRITE, OUTPUT_HIGH_WATER / 2, 0);
	/* (a new bufferevent has EV_WRITE enabled) */
	if (c->direct_write)
		bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, c->direct_write ? EV_READ : EV_READ | EV_WRITE);
}

void conn_output_detach(struct conn *c)
{
	if (c->output_pending) {
		TAILQ_REMOVE(&c->broker->output_pending, c, output_link);
		c->output_pending = false;
	}
}

struct evbuffer *conn_output(struct conn *c)
{
	struct broker *b = c->broker;

	/* The loop's clock (read once per callback): a stale value can only
	 * make the heartbeat timer send one heartbeat more. */
	c->last_send_ms = b->clock_ms;
	if (c->direct_write && !c->output_pending) {
		c->output_pending = true;
		TAILQ_INSERT_TAIL(&b->output_pending, c, output_link);
		event_active(b->flush_ev, EV_TIMEOUT, 0);
	}
	return bufferevent_get_output(c->bev);
}

bool conn_output_congested(struct conn *c)
{
	return c->state != CONN_RUNNING ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) >
	    OUTPUT_HIGH_WATER;
}

bool conn_output_over_limit(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) >
	    2 * OUTPUT_HIGH_WATER;
}

bool conn_output_drained(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
}

/*
 * Writes what c has (c may be freed: a flushing connection whose last
 * bytes left).  What the kernel does not take, and any error, is
 * left to the bufferevent's write event: libevent then writes the rest,
 * or reports the error to conn_event_cb, as for TLS connections.
 */
static void flush_one(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t before = evbuffer_get_length(out);
	bool was_congested = before > OUTPUT_HIGH_WATER;

	if (before == 0)
		return;
	if (!(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
		/* A bufferevent freezes the start of its output so that only
		 * it drains it; it unfreezes it the same way to write. */
		evbuffer_unfreeze(out, 1);
		evbuffer_write(out, bufferevent_getfd(c->bev));
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) > 0) {
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	/* Everything left: what a bufferevent's write callback would do. */
	if (was_congested || c->read_paused || c->state == CONN_FLUSHING)
		conn_output_written(c);
}

static void flush_all(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct conn *c;

	while ((c = TAILQ_FIRST(&b->output_pending)) != NULL) {
		TAILQ_REMOVE(&b->output_pending, c, output_link);
		c->output_pending = false;
		flush_one(c);
	}
}

void conn_output_write_done(struct conn *c)
{
	/* Back to writing at the end of each turn once libevent's write
	 * event has emptied the buffer. */
	if (c->direct_write && conn_output_drained(c))
		bufferevent_disable(c->bev, EV_WRITE);
}
