/*
 * The broker: event loop, TCP listener, vhosts, connection list, shutdown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/statvfs.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <event2/event.h>
#include <event2/listener.h>

#include "amqp.h"
#include "broker.h"
#include "stream_reader.h"
#include "config.h"
#include "channel.h"
#include "connection.h"
#include "log.h"
#include "login_throttle.h"
#include "message.h"
#include "mgmt.h"
#include "service_notify.h"
#include "queue.h"
#include "store.h"
#include "strmap.h"
#include "tls.h"
#include "users.h"
#include "vhost.h"

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	conn_accept(arg, fd, sa, salen, NULL);
}

static void on_accept_tls(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct broker *b = arg;
	SSL *ssl = SSL_new(b->tls_ctx);

	if (ssl == NULL) {
		char why[256];

		/* Also empties OpenSSL's error queue for the next connection. */
		tls_error_text(0, why, sizeof(why));
		log_warning("cannot start TLS on an accepted socket: %s", why);
		evutil_closesocket(fd);
		return;
	}
	conn_accept(b, fd, sa, salen, ssl);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	/* Out of descriptors and the like: log and keep listening. */
	log_warning("accept failed: %s", evutil_socket_error_to_string(err));
}

static void stop_listening(struct broker *b);

/* Every client has been sent its connection.close (or has gone). */
static bool clients_told(const struct broker *b)
{
	const struct conn *c;

	TAILQ_FOREACH(c, &b->conns, link)
		if (!conn_output_drained(c))
			return false;
	return true;
}

static void on_shutdown_check(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	if (clients_told(b)) {
		event_base_loopexit(b->base, NULL);
	} else if (conn_now_ms() >= b->shutdown_deadline_ms) {
		log_warning("shutdown: not every client took its "
		    "connection.close within %u ms; closing anyway",
		    b->cfg->shutdown_timeout);
		event_base_loopexit(b->base, NULL);
	}
}

/*
 * Shutdown's first half: no new clients, and every client is sent
 * connection.close 320 CONNECTION_FORCED (as RabbitMQ words it); once
 * that has left (a client need not answer), or after shutdown_timeout,
 * the loop ends and broker_run does the rest.  A second signal stops at
 * once.
 */
static void begin_shutdown(struct broker *b)
{
	struct conn *c, *next;

	if (b->shutting_down) {
		event_base_loopexit(b->base, NULL);
		return;
	}
	b->shutting_down = true;
	service_notify("STOPPING=1");
	stop_listening(b);
	mgmt_stop(b);
	for (c = TAILQ_FIRST(&b->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		conn_close(c, AMQP_CONNECTION_FORCED, "broker forced "
		    "connection closure with reason 'shutdown'");
	}
	b->shutdown_deadline_ms = conn_now_ms() + b->cfg->shutdown_timeout;
	b->shutdown_timer = event_new(b->base, -1, EV_PERSIST,
	    on_shutdown_check, b);
	event_add(b->shutdown_timer, &(struct timeval){ 0, 10000 });
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;

	log_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" :
	    "SIGINT");
	begin_shutdown(b);
}

/*
 * SIGHUP: TLS certificates, keys and CAs are read again, for new
 * connections (those open keep the context they began with: each SSL
 * holds a reference); on an error the old ones stay.
 */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;
	char err[512];
	SSL_CTX *ctx;

	log_info("received SIGHUP: reloading");
	service_notify("RELOADING=1");
	if (b->on_reload)
		b->on_reload(b, b->on_reload_arg);
	if (b->tls_ctx != NULL) {
		if ((ctx = tls_server_context(b->cfg, err, sizeof(err))) == NULL) {
			log_error("TLS files not reloaded: %s", err);
		} else {
			SSL_CTX_free(b->tls_ctx);
			b->tls_ctx = ctx;
			log_info("TLS certificate and key reloaded");
		}
	}
	mgmt_reload_tls(b);
	service_notify("READY=1");
}

void broker_set_alarm(struct broker *b, enum broker_alarm which, bool on)
{
	unsigned before = b->alarms;
	struct conn *c;

	if (on)
		b->alarms |= which;
	else
		b->alarms &= ~(unsigned)which;
	if ((before == 0) == (b->alarms == 0))
		return;
	TAILQ_FOREACH(c, &b->conns, link)
		if (b->alarms == 0 || c->published)
			conn_set_blocked(c, b->alarms != 0);
}

void broker_set_flow(struct broker *b, bool on)
{
	struct conn *c;

	b->store_behind = on;
	TAILQ_FOREACH(c, &b->conns, link)
		if (!on || c->published)
			conn_set_flow(c, on);
}

const char *broker_alarm_reason(const struct broker *b)
{
	return b->alarms & ALARM_MEMORY ? "low on memory" : "low on disk";
}

static void redispatch_all(struct broker *b)
{
	struct conn *c;

	TAILQ_FOREACH(c, &b->conns, link)
		for (uint32_t i = 0; i < c->channels_cap; i++)
			if (c->channels[i])
				chan_redispatch(c->channels[i]);
}

void broker_check_memory(struct broker *b)
{
	uint64_t used = msg_live_bytes();
	bool on = b->alarms & ALARM_MEMORY;

	if (!on && used > b->memory_limit) {
		log_warning("memory alarm: messages hold %llu bytes, above the "
		    "high watermark of %llu; blocking publishers",
		    (unsigned long long)used, (unsigned long long)b->memory_limit);
		b->memory_alarm_since = conn_now_ms();
		broker_set_alarm(b, ALARM_MEMORY, true);
	} else if (on && used <= b->memory_limit) {
		log_warning("memory alarm cleared: %llu bytes in messages",
		    (unsigned long long)used);
		broker_set_alarm(b, ALARM_MEMORY, false);
	}
	if (b->unacked_held && used <= b->memory_limit) {
		b->unacked_held = false;
		redispatch_all(b);	/* channels held by their unacked bytes */
	}
}

void broker_check_disk(struct broker *b)
{
	uint64_t limit = b->cfg->disk_free_limit, free_bytes;
	bool on = b->alarms & ALARM_DISK;
	struct statvfs sv;

	if (limit == 0 || statvfs(b->cfg->data_dir, &sv) != 0)
		return;
	free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (!on && free_bytes < limit) {
		log_warning("disk alarm: %llu bytes free in %s, below "
		    "disk_free_limit of %llu; blocking publishers",
		    (unsigned long long)free_bytes, b->cfg->data_dir,
		    (unsigned long long)limit);
		broker_set_alarm(b, ALARM_DISK, true);
	} else if (on && free_bytes >= limit) {
		log_warning("disk alarm cleared: %llu bytes free in %s",
		    (unsigned long long)free_bytes, b->cfg->data_dir);
		broker_set_alarm(b, ALARM_DISK, false);
	}
}

/*
 * After a backlog drains, glibc keeps the freed memory (our resident size
 * stays at the peak).  Hand it back once message memory has fallen by at
 * least half and by TRIM_MIN_DROP from its peak since the last trim (the
 * peak is tracked exactly, not sampled on the tick): rarely, so the
 * cost of walking the heap does not matter.
 */
#define TRIM_MIN_DROP (32u << 20)

static void return_freed_memory(void)
{
	uint64_t used = msg_live_bytes(), peak = msg_live_bytes_peak();

	if (peak - used < TRIM_MIN_DROP || used > peak / 2)
		return;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	msg_live_bytes_peak_reset();
}

/*
 * Rates for the management API, over RabbitMQ's statistics interval:
 * every queue's, and the broker's publish / deliver-or-get / ack rates.
 */
#define RATE_INTERVAL_MS 5000

void broker_each_queue(struct broker *b, void (*fn)(struct queue *, void *),
    void *arg)
{
	struct bytes k, qk;
	void *v, *q;

	for (size_t it = 0; strmap_next(b->vhosts, &it, &k, &v); ) {
		struct vhost *vh = v;

		for (size_t qi = 0; strmap_next(vh->queues, &qi, &qk, &q); )
			fn(q, arg);
	}
}

static void sample_queue(struct queue *q, void *now)
{
	queue_sample_rates(q, *(const uint64_t *)now);
}

static void sample_rates(struct broker *b, uint64_t now)
{
	const struct broker_counters *c = &b->counters;
	uint64_t totals[3] = { c->messages_received, c->messages_delivered +
	    c->messages_get, c->messages_acknowledged };
	double secs = (double)(now - b->rates_at_ms) / 1000.0;

	for (int i = 0; i < 3; i++) {
		b->rates[i] = (double)(totals[i] - b->rate_base[i]) / secs;
		b->rate_base[i] = totals[i];
	}
	b->rates_at_ms = now;
	broker_each_queue(b, sample_queue, &now);
}

/*
 * While the memory alarm is on, a connection that has held unfinished
 * content for blocked_content_timeout without finishing a message is
 * closed: otherwise a client that starts a large message and never ends
 * it keeps every publisher blocked.
 */
static void check_unfinished_content(struct broker *b, struct conn *c,
    uint64_t now)
{
	uint64_t since = c->content_since_ms;
	char text[160];

	if (!(b->alarms & ALARM_MEMORY) || c->content_bytes == 0)
		return;
	if (since < b->memory_alarm_since)
		since = b->memory_alarm_since;
	if (now - since < b->cfg->blocked_content_timeout)
		return;
	snprintf(text, sizeof(text), "%llu bytes of message content not "
	    "finished within %u ms while the memory alarm is on",
	    (unsigned long long)c->content_bytes,
	    b->cfg->blocked_content_timeout);
	conn_close(c, AMQP_RESOURCE_ERROR, text);
}

/*
 * Every 250 ms: the memory and disk alarms, returning freed memory,
 * deliveries left unacknowledged past their consumer timeout, and
 * content that holds the memory alarm up.
 */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	uint64_t now = b->clock_ms = conn_now_ms();
	struct conn *c;

	broker_check_memory(b);
	broker_check_disk(b);
	return_freed_memory();
	/* Durable changes made outside an input turn (x-expires, auto-delete
	 * when a connection drops). */
	broker_save_definitions(b);
	if (now - b->rates_at_ms >= RATE_INTERVAL_MS)
		sample_rates(b, now);

	TAILQ_FOREACH(c, &b->conns, link) {
		if (c->state != CONN_RUNNING)
			continue;
		check_unfinished_content(b, c, now);
		if (c->state != CONN_RUNNING)
			continue;
		for (uint32_t i = 0; i < c->channels_cap; i++)
			if (c->channels[i])
				chan_check_consumer_timeouts(c->channels[i], now);
	}
}

/* A listener on addr:port calling cb, or NULL (logged). */
static struct evconnlistener *listen_on(struct broker *b, const char *addr,
    uint16_t port, evconnlistener_cb cb, const char *what)
{
	struct evconnlistener *l;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char spec[300];

	if (strchr(addr, ':'))
		snprintf(spec, sizeof(spec), "[%s]:%u", addr, port);
	else
		snprintf(spec, sizeof(spec), "%s:%u", addr, port);
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) != 0) {
		log_error("cannot parse listener address %s", spec);
		return NULL;
	}
	l = evconnlistener_new_bind(b->base, cb, b,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    1024, (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		log_error("cannot listen on %s: %s", spec, strerror(errno));
		return NULL;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	log_info("%s listener on %s", what, spec);
	return l;
}

static bool listen_all(struct broker *b)
{
	const struct warren_config *cfg = b->cfg;
	char err[512];

	/* Certificates first: a bad one should stop us before we listen. */
	if (cfg->ssl_port != 0 &&
	    (b->tls_ctx = tls_server_context(cfg, err, sizeof(err))) == NULL) {
		log_error("%s", err);
		return false;
	}
	b->listener = listen_on(b, cfg->tcp_addr, cfg->tcp_port, on_accept,
	    "AMQP");
	if (b->listener == NULL)
		return false;
	if (cfg->ssl_port == 0)
		return true;
	b->tls_listener = listen_on(b, cfg->ssl_addr, cfg->ssl_port,
	    on_accept_tls, "AMQPS (TLS)");
	return b->tls_listener != NULL;
}

static void stop_listening(struct broker *b)
{
	if (b->listener)
		evconnlistener_free(b->listener);
	if (b->tls_listener)
		evconnlistener_free(b->tls_listener);
	b->listener = b->tls_listener = NULL;
}

bool broker_init(struct broker *b, const struct warren_config *cfg)
{
	memset(b, 0, sizeof(*b));
	b->lock_fd = -1;
	b->cfg = cfg;
	b->clock_ms = conn_now_ms();
	TAILQ_INIT(&b->conns);
	TAILQ_INIT(&b->store_waiters);
	b->conns_by_id = strmap_new();
	b->next_conn_id = 1;
	b->base = event_base_new();
	if (b->base == NULL || !conn_output_init(b)) {
		log_error("event_base_new failed");
		return false;
	}
	b->vhosts = strmap_new();
	b->users = userdb_new();
	b->login_throttle = login_throttle_new();
	b->sig_term = evsignal_new(b->base, SIGTERM, on_signal, b);
	b->sig_int = evsignal_new(b->base, SIGINT, on_signal, b);
	b->sig_hup = evsignal_new(b->base, SIGHUP, on_sighup, b);
	event_add(b->sig_term, NULL);
	event_add(b->sig_int, NULL);
	event_add(b->sig_hup, NULL);
	b->memory_limit = cfg->memory_high_watermark;
	if (b->memory_limit == 0) {
		/* RabbitMQ's default: 0.4 of physical memory. */
		long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

		b->memory_limit = pages > 0 && size > 0 ? (uint64_t)((double)
		    pages * (double)size * cfg->memory_high_watermark_relative) :
		    (1ULL << 30);
	}
	b->paging_watermark = cfg->paging_watermark ? cfg->paging_watermark :
	    b->memory_limit / 2;
	b->rates_at_ms = conn_now_ms();
	b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
	event_add(b->tick, &(struct timeval){ 0, 250000 });
	/* Everything durable is back before the first client arrives. */
	/* The AMQP listener last: once it accepts, everything else does. */
	return broker_recover(b) && mgmt_start(b) && listen_all(b);
}

void broker_run(struct broker *b)
{
	struct conn *c;

	event_base_dispatch(b->base);
	stop_listening(b);
	mgmt_stop(b);
	/* Closing connections requeues in memory only: the disk keeps all. */
	broker_close_store(b);
	while ((c = TAILQ_FIRST(&b->conns)) != NULL)
		conn_free(c, "broker shutting down");
}

void broker_store_wait(struct broker *b, struct channel *ch)
{
	if (!ch->store_waiting) {
		ch->store_waiting = true;
		TAILQ_INSERT_TAIL(&b->store_waiters, ch, store_link);
	}
}

void broker_store_unwait(struct broker *b, struct channel *ch)
{
	if (ch->store_waiting) {
		ch->store_waiting = false;
		TAILQ_REMOVE(&b->store_waiters, ch, store_link);
	}
}

/*
 * The store synced everything up to ticket synced; write_failed: its
 * writes fail, and confirms still waiting are nacked.
 */
void broker_store_synced(struct broker *b, uint64_t synced, bool write_failed)
{
	struct channel *ch, *next;

	for (ch = TAILQ_FIRST(&b->store_waiters); ch; ch = next) {
		bool confirms_done;

		next = TAILQ_NEXT(ch, store_link);
		confirms_done = chan_confirm_synced(ch, synced, write_failed);

		if (chan_tx_synced(ch, synced) && confirms_done)
			broker_store_unwait(b, ch);
	}
}

struct conn *broker_find_conn(struct broker *b, uint64_t id)
{
	return strmap_get(b->conns_by_id, (struct bytes){ (const uint8_t *)&id,
	    sizeof(id) });
}

void broker_free(struct broker *b)
{
	struct bytes k;
	void *v;

	stop_listening(b);
	mgmt_stop(b);
	/* A failed start: nothing of the store may be acked while freeing. */
	b->stopping = true;
	store_close(b->store);
	b->store = NULL;
	SSL_CTX_free(b->tls_ctx);
	if (b->vhosts) {
		for (size_t it = 0; strmap_next(b->vhosts, &it, &k, &v); )
			vhost_free(v);
		strmap_free(b->vhosts);
	}
	/* After the streams: their readers' cursors cancel what is pending. */
	stream_reader_free(b->stream_reader);
	b->stream_reader = NULL;
	userdb_free(b->users);
	login_throttle_free(b->login_throttle);
	strmap_free(b->conns_by_id);
	if (b->sig_term)
		event_free(b->sig_term);
	if (b->sig_int)
		event_free(b->sig_int);
	if (b->sig_hup)
		event_free(b->sig_hup);
	if (b->tick)
		event_free(b->tick);
	if (b->shutdown_timer)
		event_free(b->shutdown_timer);
	if (b->flush_ev)
		event_free(b->flush_ev);
	if (b->base)
		event_base_free(b->base);
	/* Last: the data directory is ours until everything is written. */
	if (b->lock_fd >= 0)
		close(b->lock_fd);
}

struct vhost *broker_find_vhost(struct broker *b, struct bytes name)
{
	return strmap_get(b->vhosts, name);
}

struct vhost *broker_add_vhost(struct broker *b, const char *name)
{
	struct vhost *vh = strmap_get(b->vhosts, bytes_str(name));

	if (vh == NULL) {
		vh = vhost_new(b, name);
		strmap_put(b->vhosts, bytes_str(vh->name), vh);
		broker_durable_changed(b);
	}
	return vh;
}

void broker_delete_vhost(struct broker *b, struct vhost *vh)
{
	struct conn *c, *next;
	struct bytes k;
	char text[300];
	void *v;

	log_info("deleting vhost '%s'", vh->name);
	snprintf(text, sizeof(text), "vhost '%s' is deleted", vh->name);
	for (c = TAILQ_FIRST(&b->conns); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->vh == vh)
			conn_drop_vhost(c, text);
	}
	for (size_t it = 0; strmap_next(vh->queues, &it, &k, &v); it = 0)
		vhost_remove_queue(vh, v);
	for (size_t it = 0; strmap_next(vh->exchanges, &it, &k, &v); )
		exchange_discard_state(v);
	userdb_vhost_deleted(b->users, vh->name);
	strmap_del(b->vhosts, bytes_str(vh->name));
	vhost_free(vh);
	broker_durable_changed(b);
}

void broker_seed_access(struct broker *b)
{
	const struct warren_config *cfg = b->cfg;
	char err[256];

	if (strmap_count(b->vhosts) == 0)
		broker_add_vhost(b, cfg->default_vhost);
	if (strmap_count(b->users->users) != 0)
		return;
	log_info("creating user '%s' (administrator) with full access to "
	    "vhost '%s'", cfg->default_user, cfg->default_vhost);
	if (userdb_put(b->users, cfg->default_user, cfg->default_pass,
	    "administrator", err, sizeof(err)) != 0 ||
	    userdb_set_permissions(b->users, cfg->default_user,
	    cfg->default_vhost, ".*", ".*", ".*", err, sizeof(err)) != 0)
		log_error("cannot create the default user: %s", err);
	broker_durable_changed(b);
}
