/*
 * libFuzzer target: a whole client connection, through the real broker.
 *
 * Each input brings up a broker of its own (broker_init on config_defaults
 * with the management and Prometheus ports off, the AMQP listener on a
 * spare 127.0.0.1 port that no client uses, a fresh data directory), so
 * nothing one input leaves behind (queues, durable definitions, stored
 * messages) can change how a later one runs; that costs about 2 ms.  The transport is in memory: a socketpair(AF_UNIX,
 * SOCK_STREAM) whose broker end goes to conn_accept with a made-up
 * 127.0.0.1 peer address (guest may log in from loopback only), so the
 * bytes go through the connection's bufferevent, frame reader, handshake,
 * channels and everything under them exactly as from a TCP client.
 *
 * Input: one byte choosing how the stream is cut, then the bytes the
 * client sends.  Byte 0 means the whole stream is written at once; N (1 to
 * 255) writes it N bytes at a time, the event loop running between writes
 * (and waiting for the message store's sync when a channel waits for one),
 * so frames (and the protocol header) arrive in pieces across reads.
 *
 * The harness writes the stream without blocking, reading and discarding
 * whatever the broker answers so it never stalls on a full socket, and
 * runs the loop (EVLOOP_NONBLOCK) until both sides are quiet: everything
 * written, nothing moving, no event active (while a channel waits for the
 * message store's sync, the loop waits for it).  Then it closes the client
 * end and runs the loop until the broker frees the connection; one the
 * broker would only drop on a timer (a close-ok that never comes, a
 * connection it stopped reading) has that timer fired early, and is freed
 * as at shutdown if even that leaves it.
 *
 * Properties (a violation aborts):
 *   - no crash, sanitizer report or leak (ASan's leak check, per input
 *     under libFuzzer and at exit in the replay);
 *   - the broker goes quiet: no input makes its loop spin for ever;
 *   - once the connection is gone the broker's books are balanced: no
 *     connection listed, none counted open or in its handshake, no
 *     unfinished content counted;
 *   - the broker still serves a well-behaved client after the hostile
 *     one: on a second socketpair a handshake, channel.open, a server-named
 *     queue.declare, basic.publish to it and basic.get get the expected
 *     replies (the very message back), and connection.close its close-ok.
 *
 * WARREN_FUZZ_LOG=debug|info|warning shows the broker's log (default:
 * errors only); WARREN_FUZZ_TRACE=1 lists the frames the broker sent the
 * fuzzed client.  The data directories live under /dev/shm when it is
 * usable (fdatasync there costs nothing), else under $TMPDIR or /tmp.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "fuzz_target.h"
#include "fuzz_session.h"
#include "amqp.h"
#include "broker.h"
#include "config.h"
#include "connection.h"
#include "frame.h"
#include "log.h"
#include "method.h"
#include "properties.h"
#include "wire.h"

/* Loop turns without any movement before the sides count as quiet. */
#define QUIET_TURNS 3
/* Turns that move nothing but the loop itself: more is a livelock. */
#define MAX_IDLE_TURNS 200000
/* Blocking waits for the store thread before giving up on it. */
#define MAX_STORE_WAITS 40

static char tmp_parent[200];	/* where data directories are made */
static char data_dir[256];	/* this input's warren.data_dir */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_connection: %s\n", what);
	abort();
}

static int rm_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool usable_dir(const char *dir)
{
	struct stat st;

	return dir && *dir && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    access(dir, W_OK | X_OK) == 0;
}

static void setup_once(void)
{
	static bool done;
	const char *tmp = getenv("TMPDIR"), *lvl = getenv("WARREN_FUZZ_LOG");
	int level;

	if (done)
		return;
	done = true;
	/* A peer that vanishes must not kill us (as in warrend). */
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmp_parent, sizeof(tmp_parent), "%s", usable_dir("/dev/shm") ?
	    "/dev/shm" : usable_dir(tmp) ? tmp : "/tmp");
	level = lvl ? log_level_parse(lvl) : -1;
	log_set_level(level >= 0 ? (enum log_level)level : LOG_LVL_ERROR);
}

/* A new, empty data directory (removed at the end of the input). */
static void make_data_dir(void)
{
	snprintf(data_dir, sizeof(data_dir), "%s/warren-fuzz.XXXXXX",
	    tmp_parent);
	if (mkdtemp(data_dir) == NULL) {
		perror(data_dir);
		fail("cannot make a data directory");
	}
}

/*
 * A port nothing listens on now, for the AMQP listener broker_init opens
 * (it takes no port 0); no client ever connects to it.
 */
static uint16_t spare_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	if (port == 0)
		fail("no spare port on 127.0.0.1");
	return port;
}

/*
 * broker_init as warrend does it; another process may take the port
 * between spare_port and the bind, so a failure is retried a few times.
 */
static void start_broker(struct broker *b, struct warren_config *cfg)
{
	for (int tries = 0; ; tries++) {
		cfg->tcp_port = spare_port();
		if (broker_init(b, cfg))
			return;
		broker_free(b);
		rm_tree(data_dir);
		if (tries == 5)
			fail("broker_init failed");
		make_data_dir();
	}
}

/* ---- the client end of a socketpair -------------------------------------- */

struct peer {
	int fd;			/* the client's end; -1 once closed */
	int broker_fd;		/* the end conn_accept was given */
	uint64_t conn_id;	/* its connection; 0: refused */
	const uint8_t *out;	/* what the client sends */
	size_t out_len, out_pos, chunk;
	struct evbuffer *in;	/* what the broker sent (NULL: dropped) */
	bool eof;		/* the broker closed its end */
};

/* A connection from 127.0.0.1, as the listener would have accepted it. */
static void peer_connect(struct broker *b, struct peer *p, uint16_t port)
{
	struct sockaddr_in sin;
	uint64_t next = b->next_conn_id;
	int sv[2];

	memset(p, 0, sizeof(*p));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		fail("socketpair failed");
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	p->fd = sv[0];
	p->broker_fd = sv[1];
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	conn_accept(b, sv[1], (struct sockaddr *)&sin, sizeof(sin), NULL);
	p->conn_id = b->next_conn_id != next ? next : 0;
}

static struct conn *peer_conn(struct broker *b, const struct peer *p)
{
	return p->conn_id ? broker_find_conn(b, p->conn_id) : NULL;
}

static void peer_send(struct peer *p, const void *data, size_t len,
    size_t chunk)
{
	p->out = data;
	p->out_len = len;
	p->out_pos = 0;
	p->chunk = chunk ? chunk : len;
}

static void peer_close(struct peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

/* Bytes the broker's end has not read yet. */
static int unread(const struct peer *p)
{
	int n = 0;

	if (ioctl(p->broker_fd, FIONREAD, &n) != 0)
		return 0;
	return n;
}

/* What can be seen moving: if none of it changes, nothing happened. */
struct snapshot {
	size_t out_pos, received;
	int unread;
	size_t conn_in, conn_out;
	bool conn_alive;
};

static void snap(struct broker *b, const struct peer *p, size_t received,
    struct snapshot *s)
{
	struct conn *c = peer_conn(b, p);

	memset(s, 0, sizeof(*s));
	s->out_pos = p->out_pos;
	s->received = received;
	s->conn_alive = c != NULL;
	if (c != NULL) {
		s->unread = unread(p);
		s->conn_in = evbuffer_get_length(bufferevent_get_input(c->bev));
		s->conn_out = evbuffer_get_length(bufferevent_get_output(c->bev));
	}
}

static bool same(const struct snapshot *a, const struct snapshot *b)
{
	return a->out_pos == b->out_pos && a->received == b->received &&
	    a->unread == b->unread && a->conn_in == b->conn_in &&
	    a->conn_out == b->conn_out && a->conn_alive == b->conn_alive;
}

/* Something waits for the message store's thread to sync. */
static bool store_pending(struct broker *b)
{
	struct conn *c;

	if (!TAILQ_EMPTY(&b->store_waiters))
		return true;
	TAILQ_FOREACH(c, &b->conns, link)
		if (c->commit_waits)
			return true;
	return false;
}

/*
 * Write what is left of the stream, read what the broker says, run the
 * loop; until nothing moves for QUIET_TURNS turns (or, with until_gone,
 * until the connection is freed).
 */
static void pump(struct broker *b, struct peer *p, bool until_gone)
{
	unsigned quiet = 0, idle = 0, store_waits = 0;
	size_t received = 0;
	uint8_t buf[16384];

	for (;;) {
		struct snapshot before, after;
		bool moved;

		snap(b, p, received, &before);
		/* A piece goes in only once the store has synced what the
		 * last ones asked for (confirms, tx.commit), so where the
		 * syncs land does not depend on the disk's speed. */
		while (p->out_pos > 0 && p->out_pos < p->out_len &&
		    store_pending(b) && store_waits < MAX_STORE_WAITS) {
			store_waits++;
			event_base_loop(b->base, EVLOOP_ONCE);
		}
		if (p->fd >= 0 && p->out_pos < p->out_len) {
			size_t n = p->out_len - p->out_pos;
			ssize_t w;

			if (n > p->chunk)
				n = p->chunk;
			w = send(p->fd, p->out + p->out_pos, n,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w > 0)
				p->out_pos += (size_t)w;
			else if (w < 0 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR)
				p->out_pos = p->out_len;  /* broker hung up */
		}
		while (p->fd >= 0 && !p->eof) {
			ssize_t r = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (r > 0) {
				received += (size_t)r;
				if (p->in)
					evbuffer_add(p->in, buf, (size_t)r);
			} else {
				if (r == 0 || (errno != EAGAIN &&
				    errno != EWOULDBLOCK && errno != EINTR))
					p->eof = true;
				break;
			}
		}
		event_base_loop(b->base, EVLOOP_NONBLOCK);
		snap(b, p, received, &after);
		if (until_gone && !after.conn_alive)
			return;
		moved = !same(&before, &after) ||
		    event_base_get_num_events(b->base,
		    EVENT_BASE_COUNT_ACTIVE) > 0;
		if (moved) {
			quiet = 0;
			if (after.out_pos == before.out_pos && ++idle >
			    MAX_IDLE_TURNS)
				fail("the broker never goes quiet");
			continue;
		}
		if (store_pending(b) && store_waits < MAX_STORE_WAITS) {
			/* Sleep until the store thread's pipe (or a timer)
			 * wakes the loop. */
			store_waits++;
			event_base_loop(b->base, EVLOOP_ONCE);
			quiet = 0;
			continue;
		}
		if (++quiet >= QUIET_TURNS)
			return;
	}
}

/*
 * The client hangs up: run the loop until the broker frees the
 * connection.  One it would only drop on a timer gets the timer now; one
 * it would keep (not reading, and a socketpair has no TCP_INFO to tell it
 * the peer went) is freed as broker_run frees connections at shutdown.
 */
static void hang_up(struct broker *b, struct peer *p)
{
	struct conn *c;

	peer_close(p);
	pump(b, p, true);
	if ((c = peer_conn(b, p)) != NULL) {
		event_active(c->timer, EV_TIMEOUT, 1);
		pump(b, p, true);
	}
	if ((c = peer_conn(b, p)) != NULL)
		conn_free(c, "fuzz: client gone");
	/* What the close left to do (dispatch, auto-delete, ...). */
	pump(b, p, false);
}

static void check_books(struct broker *b, const char *when)
{
	char msg[200];
	const char *bad = NULL;

	if (!TAILQ_EMPTY(&b->conns))
		bad = "a connection is still listed";
	else if (b->n_open_conns != 0)
		bad = "n_open_conns is not 0";
	else if (b->n_handshaking != 0)
		bad = "n_handshaking is not 0";
	else if (b->content_bytes != 0)
		bad = "content_bytes (unfinished content) is not 0";
	if (bad) {
		snprintf(msg, sizeof(msg), "%s: %s", when, bad);
		fail(msg);
	}
}

/* ---- the health check: a well-behaved client afterwards ------------------- */

struct reply {
	uint8_t type;
	uint16_t channel;
	uint32_t method;	/* method frames */
	struct amqp_method m;	/* borrows from the evbuffer */
	struct bytes payload;
};

static const char *frame_what(const struct reply *r)
{
	static char s[64];

	if (r->type == AMQP_FRAME_METHOD)
		return method_name(r->method);
	snprintf(s, sizeof(s), "frame type %u", r->type);
	return s;
}

/* The next whole frame the broker sent; false when there is none. */
static bool next_reply(struct evbuffer *in, struct frame *f,
    struct reply *r)
{
	if (frame_peek(in, 0, f) != FRAME_READY)
		return false;
	memset(r, 0, sizeof(*r));
	r->type = f->type;
	r->channel = f->channel;
	r->payload = f->payload;
	if (f->type == AMQP_FRAME_METHOD &&
	    method_decode(f->payload, &r->m) == 0)
		r->method = r->m.id;
	return true;
}

static void expect(struct evbuffer *in, uint8_t type, uint16_t ch,
    uint32_t method, struct reply *out, struct frame *f)
{
	char msg[300];
	struct reply r;

	if (!next_reply(in, f, &r)) {
		snprintf(msg, sizeof(msg), "health check: no reply where %s "
		    "was expected", type == AMQP_FRAME_METHOD ?
		    method_name(method) : "content");
		fail(msg);
	}
	if (r.type != type || r.channel != ch ||
	    (type == AMQP_FRAME_METHOD && r.method != method)) {
		snprintf(msg, sizeof(msg), "health check: got %s on channel "
		    "%u where %s on channel %u was expected", frame_what(&r),
		    r.channel, type == AMQP_FRAME_METHOD ? method_name(method) :
		    "content", ch);
		if (r.method == AMQP_connection_close ||
		    r.method == AMQP_channel_close) {
			size_t n = strlen(msg);

			snprintf(msg + n, sizeof(msg) - n, " (%u %.*s)",
			    r.m.a.connection_close.reply_code,
			    (int)(r.m.a.connection_close.reply_text.len > 150 ?
			    150 : r.m.a.connection_close.reply_text.len),
			    (const char *)r.m.a.connection_close.reply_text.ptr);
		}
		fail(msg);
	}
	*out = r;
}

static void health_check(struct broker *b)
{
	static const char body[] = "health check after a hostile client";
	struct amqp_method m;
	struct frame f;
	struct reply r;
	struct content_header h;
	struct peer p;
	struct wbuf out;
	char qname[256];

	wbuf_init(&out);
	peer_connect(b, &p, 40001);
	if (p.conn_id == 0)
		fail("health check: the connection was refused");
	p.in = evbuffer_new();

	/* Round one: up to a server-named queue (its name is the broker's). */
	sess_handshake(&out, false, SESS_FRAME_MAX, 0, "/");
	memset(&m, 0, sizeof(m));
	m.id = AMQP_channel_open;
	sess_method(&out, 1, &m);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_queue_declare;
	m.a.queue_declare.exclusive = true;
	m.a.queue_declare.auto_delete = true;
	sess_method(&out, 1, &m);
	peer_send(&p, out.p, out.len, 0);
	pump(b, &p, false);
	expect(p.in, AMQP_FRAME_METHOD, 0, AMQP_connection_start, &r, &f);
	frame_consume(p.in, &f);
	expect(p.in, AMQP_FRAME_METHOD, 0, AMQP_connection_tune, &r, &f);
	frame_consume(p.in, &f);
	expect(p.in, AMQP_FRAME_METHOD, 0, AMQP_connection_open_ok, &r, &f);
	frame_consume(p.in, &f);
	expect(p.in, AMQP_FRAME_METHOD, 1, AMQP_channel_open_ok, &r, &f);
	frame_consume(p.in, &f);
	expect(p.in, AMQP_FRAME_METHOD, 1, AMQP_queue_declare_ok, &r, &f);
	if (r.m.a.queue_declare_ok.queue.len == 0)
		fail("health check: queue.declare-ok without a name");
	snprintf(qname, sizeof(qname), "%.*s",
	    (int)r.m.a.queue_declare_ok.queue.len,
	    (const char *)r.m.a.queue_declare_ok.queue.ptr);
	frame_consume(p.in, &f);

	/* Round two: the message there and back, then a clean close. */
	wbuf_reset(&out);
	sess_publish(&out, 1, "", qname, true, NULL, body, sizeof(body) - 1);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_basic_get;
	m.a.basic_get.queue = bytes_str(qname);
	m.a.basic_get.no_ack = true;
	sess_method(&out, 1, &m);
	memset(&m, 0, sizeof(m));
	m.id = AMQP_connection_close;
	m.a.connection_close.reply_code = AMQP_REPLY_SUCCESS;
	sess_method(&out, 0, &m);
	peer_send(&p, out.p, out.len, 0);
	pump(b, &p, false);
	expect(p.in, AMQP_FRAME_METHOD, 1, AMQP_basic_get_ok, &r, &f);
	if (!bytes_eq_str(r.m.a.basic_get_ok.routing_key, qname))
		fail("health check: basic.get-ok with another routing key");
	frame_consume(p.in, &f);
	expect(p.in, AMQP_FRAME_HEADER, 1, 0, &r, &f);
	if (content_header_parse(r.payload, &h) != 0 ||
	    h.body_size != sizeof(body) - 1)
		fail("health check: bad content header");
	frame_consume(p.in, &f);
	expect(p.in, AMQP_FRAME_BODY, 1, 0, &r, &f);
	if (r.payload.len != sizeof(body) - 1 ||
	    memcmp(r.payload.ptr, body, r.payload.len) != 0)
		fail("health check: the body came back different");
	frame_consume(p.in, &f);
	expect(p.in, AMQP_FRAME_METHOD, 0, AMQP_connection_close_ok, &r, &f);
	frame_consume(p.in, &f);
	if (evbuffer_get_length(p.in) != 0)
		fail("health check: more after connection.close-ok");
	/* The broker hangs up after close-ok: no timer, no shortcut. */
	peer_close(&p);
	pump(b, &p, true);
	if (peer_conn(b, &p) != NULL)
		fail("health check: the connection outlived its close-ok");
	check_books(b, "after the health check");
	evbuffer_free(p.in);
	wbuf_free(&out);
}

/* WARREN_FUZZ_TRACE: what the broker said to the fuzzed client. */
static void trace_replies(struct evbuffer *in)
{
	struct frame f;
	struct reply r;

	while (next_reply(in, &f, &r)) {
		fprintf(stderr, "  <- channel %u: %s", r.channel, frame_what(&r));
		if (r.method == AMQP_connection_close ||
		    r.method == AMQP_channel_close)
			fprintf(stderr, " %u %.*s", r.m.a.connection_close.reply_code,
			    (int)r.m.a.connection_close.reply_text.len,
			    (const char *)r.m.a.connection_close.reply_text.ptr);
		fputc('\n', stderr);
		frame_consume(in, &f);
	}
	if (evbuffer_get_length(in))
		fprintf(stderr, "  <- %zu more bytes\n", evbuffer_get_length(in));
}

/* ---- one input ------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct warren_config cfg;
	struct broker b;
	struct peer p;

	if (size < 1)
		return 0;
	setup_once();
	make_data_dir();

	config_defaults(&cfg);
	cfg.mgmt_port = 0;		/* no management API */
	cfg.prometheus_port = 0;	/* no metrics */
	cfg.disk_free_limit = 0;	/* no disk alarm from the machine */
	cfg.memory_high_watermark = 256u << 20;	/* the same everywhere */
	free(cfg.data_dir);
	cfg.data_dir = xstrdup(data_dir);
	start_broker(&b, &cfg);

	peer_connect(&b, &p, 40000);
	if (p.conn_id == 0)
		fail("the connection was refused");
	if (getenv("WARREN_FUZZ_TRACE"))
		p.in = evbuffer_new();
	peer_send(&p, data + 1, size - 1, data[0]);
	pump(&b, &p, false);
	hang_up(&b, &p);
	if (p.in) {
		trace_replies(p.in);
		evbuffer_free(p.in);
	}
	check_books(&b, "after the client hung up");

	health_check(&b);

	/* As warrend stops (broker_run, then broker_free). */
	broker_close_store(&b);
	while (!TAILQ_EMPTY(&b.conns))
		conn_free(TAILQ_FIRST(&b.conns), "broker shutting down");
	broker_free(&b);
	config_free(&cfg);
	rm_tree(data_dir);
	return 0;
}
