/*
 * The connection class on channel 0: start / start-ok, tune / tune-ok,
 * open / open-ok, and close from the peer.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>

#include "auth.h"
#include "broker.h"
#include "config.h"
#include "connection.h"
#include "field_table.h"
#include "log.h"
#include "login_throttle.h"
#include "method.h"
#include "resource_limits.h"
#include "tls.h"
#include "users.h"
#include "vhost.h"

static void put_server_properties(struct wbuf *b)
{
	size_t t = ftw_begin(b), caps;

	caps = ftw_table_begin(b, "capabilities");
	ftw_bool(b, "publisher_confirms", true);
	ftw_bool(b, "exchange_exchange_bindings", true);
	ftw_bool(b, "basic.nack", true);
	ftw_bool(b, "consumer_cancel_notify", true);
	ftw_bool(b, "connection.blocked", true);
	ftw_bool(b, "consumer_priorities", true);
	ftw_bool(b, "authentication_failure_close", true);
	ftw_bool(b, "per_consumer_qos", true);
	ftw_bool(b, "direct_reply_to", true);
	ftw_end(b, caps);
	/* The keys in RabbitMQ's order, for clients that print them. */
	ftw_longstr(b, "cluster_name", "warren");
	ftw_longstr(b, "copyright", "Copyright (c) the Warren authors");
	ftw_longstr(b, "information", "An AMQP 0-9-1 broker");
	ftw_longstr(b, "platform", "C11/libevent");
	ftw_longstr(b, "product", "Warren");
	ftw_longstr(b, "version", PACKAGE_VERSION);
	ftw_end(b, t);
}

/* A true boolean in client-properties' capabilities table. */
static bool client_capability(struct bytes props, const char *name)
{
	struct field_table *t = ftable_decode(props);
	const struct field_value *caps = ftable_get(t, "capabilities");
	const struct field_value *v = caps && caps->type == 'F' ?
	    ftable_get(caps->v.table, name) : NULL;
	bool yes = v && v->type == 't' && v->v.b;

	ftable_free(t);
	return yes;
}

/*
 * The headers RabbitMQ 3.10 answers in 0-9-1: its own and the 0-9 one
 * (AnyEvent::RabbitMQ and other Net::AMQP clients send it).  The 0-8
 * headers (AMQP 1 1 8 0, AMQP 1 1 9 1) are refused: RabbitMQ speaks 0-8
 * to them, a second protocol no maintained client needs.
 */
bool conn_protocol_header_accepted(const uint8_t hdr[8])
{
	return memcmp(hdr, AMQP_PROTOCOL_HEADER, 8) == 0 ||
	    memcmp(hdr, AMQP_PROTOCOL_HEADER_0_9, 8) == 0;
}

/* The user c's verified client certificate names, or NULL. */
static const char *cert_user(struct conn *c, char *buf, size_t len)
{
	SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;

	if (ssl == NULL || !tls_peer_user(ssl,
	    c->broker->cfg->cert_login_common_name, buf, len))
		return NULL;
	return buf;
}

void conn_send_start(struct conn *c)
{
	struct amqp_method m = { .id = AMQP_connection_start };
	char mechanisms[64], user[256];
	struct wbuf props;

	wbuf_init(&props);
	put_server_properties(&props);
	m.a.connection_start.version_major = 0;
	m.a.connection_start.version_minor = 9;
	/* The method carries the table without its length prefix. */
	m.a.connection_start.server_properties =
	    (struct bytes){ props.p + 4, (uint32_t)props.len - 4 };
	auth_offered(c->broker->cfg, cert_user(c, user, sizeof(user)),
	    mechanisms, sizeof(mechanisms));
	m.a.connection_start.mechanisms = bytes_str(mechanisms);
	m.a.connection_start.locales = BYTES_LIT("en_US");
	conn_send_method(c, 0, &m);
	wbuf_free(&props);
	conn_enter_state(c, CONN_START);
}

static int on_start_ok(struct conn *c, const struct amqp_connection_start_ok *a,
    struct amqp_error *err)
{
	char user[256];
	const struct warren_config *cfg = c->broker->cfg;
	struct amqp_method m = { .id = AMQP_connection_tune };
	int rc;

	rc = auth_check(c->broker->users, cfg, a->mechanism, a->response,
	    c->peer_is_loopback, cert_user(c, user, sizeof(user)), &c->user,
	    err);
	if (rc) {
		login_throttle_failed(c->broker->login_throttle, c->peer_host);
		return rc;
	}
	free(c->client_props);
	c->client_props = xmalloc(a->client_properties.len + 1);
	memcpy(c->client_props, a->client_properties.ptr,
	    a->client_properties.len);
	c->client_props_len = a->client_properties.len;
	c->cancel_notify = client_capability(a->client_properties,
	    "consumer_cancel_notify");
	c->blocked_notify = client_capability(a->client_properties,
	    "connection.blocked");
	m.a.connection_tune.channel_max = cfg->channel_max;
	m.a.connection_tune.frame_max = cfg->frame_max;
	m.a.connection_tune.heartbeat = cfg->heartbeat;
	conn_send_method(c, 0, &m);
	conn_enter_state(c, CONN_TUNE);
	return 0;
}

/* The smaller of two limits where 0 means "no limit". */
static uint32_t negotiate(uint32_t server, uint32_t client)
{
	if (server == 0)
		return client;
	if (client == 0)
		return server;
	return client < server ? client : server;
}

static int on_tune_ok(struct conn *c, const struct amqp_connection_tune_ok *a,
    struct amqp_error *err)
{
	const struct warren_config *cfg = c->broker->cfg;

	/* As RabbitMQ: 0 ("no limit") is too much when the server has one. */
	if (a->frame_max != 0 && a->frame_max < AMQP_FRAME_MIN_SIZE)
		return amqp_fail(err, AMQP_NOT_ALLOWED,
		    "negotiated frame_max = %u is lower than the minimum "
		    "allowed value (%u)", a->frame_max, AMQP_FRAME_MIN_SIZE);
	if (cfg->frame_max != 0 &&
	    (a->frame_max == 0 || a->frame_max > cfg->frame_max))
		return amqp_fail(err, AMQP_NOT_ALLOWED,
		    "negotiated frame_max = %u is higher than the maximum "
		    "allowed value (%u)", a->frame_max, cfg->frame_max);
	if (cfg->channel_max != 0 &&
	    (a->channel_max == 0 || a->channel_max > cfg->channel_max))
		return amqp_fail(err, AMQP_NOT_ALLOWED,
		    "negotiated channel_max = %u is higher than the maximum "
		    "allowed value (%u)", a->channel_max, cfg->channel_max);
	conn_set_frame_max(c, negotiate(cfg->frame_max, a->frame_max));
	c->channel_max = (uint16_t)negotiate(cfg->channel_max, a->channel_max);
	c->heartbeat = a->heartbeat;
	conn_enter_state(c, CONN_OPEN);
	return 0;
}

static int on_open(struct conn *c, const struct amqp_connection_open *a,
    struct amqp_error *err)
{
	struct amqp_method m = { .id = AMQP_connection_open_ok };
	struct vhost *vh = broker_find_vhost(c->broker, a->virtual_host);

	if (vh == NULL)
		return amqp_fail(err, AMQP_NOT_ALLOWED, "vhost '%.*s' not found",
		    (int)a->virtual_host.len, (const char *)a->virtual_host.ptr);
	/* Any permissions at all on the vhost let a user in (RabbitMQ). */
	if (userdb_permissions(c->broker->users, c->user, vh->name) == NULL) {
		log_warning("conn %llu: %s: access to vhost '%s' refused for "
		    "user '%s'", (unsigned long long)c->id, c->peer, vh->name,
		    c->user);
		return amqp_fail(err, AMQP_NOT_ALLOWED,
		    "access to vhost '%s' refused for user '%s'", vh->name,
		    c->user);
	}
	if (limits_check_connection(c, vh, err) != 0) {
		log_warning("conn %llu: %s: %s", (unsigned long long)c->id,
		    c->peer, err->text);
		return err->code;
	}
	c->vh = vh;
	conn_opened(c);
	conn_send_method(c, 0, &m);
	conn_enter_state(c, CONN_RUNNING);
	conn_arm_heartbeat(c);
	log_info("conn %llu: %s: user '%s' authenticated and granted access to vhost '%s'",
	    (unsigned long long)c->id, c->peer, c->user, vh->name);
	return 0;
}

int conn_handle_method(struct conn *c, const struct amqp_method *m,
    struct amqp_error *err)
{
	static const uint32_t expected[] = {
		[CONN_START] = AMQP_connection_start_ok,
		[CONN_TUNE] = AMQP_connection_tune_ok,
		[CONN_OPEN] = AMQP_connection_open,
	};

	if (m->id == AMQP_connection_close) {
		conn_peer_closed(c);
		return 0;
	}
	if (AMQP_METHOD_CLASS(m->id) != 10)
		return amqp_fail(err, AMQP_CHANNEL_ERROR,
		    "'%s' is not allowed on channel 0", method_name(m->id));
	if (c->state == CONN_RUNNING) {
		if (m->id == AMQP_connection_close_ok)
			return 0;
		/* RabbitMQ's code for this, odd as it is. */
		return amqp_fail(err, AMQP_CHANNEL_ERROR,
		    "unexpected method '%s' in connection state running",
		    method_name(m->id));
	}
	if (c->state >= sizeof(expected) / sizeof(expected[0]) ||
	    expected[c->state] == 0 || m->id != expected[c->state])
		return amqp_fail(err, AMQP_COMMAND_INVALID,
		    "expected '%s', got '%s'",
		    c->state < sizeof(expected) / sizeof(expected[0]) ?
		    method_name(expected[c->state]) : "nothing",
		    method_name(m->id));
	switch (m->id) {
	case AMQP_connection_start_ok:
		return on_start_ok(c, &m->a.connection_start_ok, err);
	case AMQP_connection_tune_ok:
		return on_tune_ok(c, &m->a.connection_tune_ok, err);
	default:
		return on_open(c, &m->a.connection_open, err);
	}
}
