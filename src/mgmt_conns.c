/*
 * Management API: connections, channels and consumers (RabbitMQ's
 * /api/connections, /api/channels, /api/consumers).  A connection is
 * named as RabbitMQ names it, "PEER:PORT -> HOST:PORT"; DELETE closes it
 * with 320 CONNECTION_FORCED, as RabbitMQ's does.  Management users see
 * their own connections, monitoring users and administrators all.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/http.h>

#include "amqp.h"
#include "broker.h"
#include "channel.h"
#include "config.h"
#include "connection.h"
#include "definitions.h"
#include "mgmt_handlers.h"
#include "queue.h"
#include "users.h"
#include "vhost.h"

/* "ADDRESS:PORT" of the broker's side of c's socket. */
static void local_address(struct conn *c, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getsockname(bufferevent_getfd(c->bev), (struct sockaddr *)&ss,
	    &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, host,
			    sizeof(host));
			port = ntohs(in6->sin6_port);
		}
	}
	snprintf(out, len, "%s:%u", host, port);
}

void mgmt_conn_name(struct conn *c, char *out, size_t len)
{
	char local[80];

	local_address(c, local, sizeof(local));
	snprintf(out, len, "%s -> %s", c->peer, local);
}

/* Split "host:port" (the last colon) into its parts. */
static json_t *host_port(const char *addr, const char *host_key,
    const char *port_key, json_t *o)
{
	const char *colon = strrchr(addr, ':');

	json_object_set_new(o, host_key, colon ? json_stringn(addr,
	    (size_t)(colon - addr)) : json_string(addr));
	json_object_set_new(o, port_key, json_integer(colon ?
	    atoi(colon + 1) : 0));
	return o;
}

static bool may_see_conn(const struct mgmt_req *q, const struct conn *c)
{
	return c->vh != NULL && c->user != NULL && (q->sees_all_vhosts ||
	    strcmp(c->user, q->user->name) == 0);
}

static json_t *connection_details(struct conn *c)
{
	char name[200];

	mgmt_conn_name(c, name, sizeof(name));
	return host_port(c->peer, "peer_host", "peer_port",
	    json_pack("{s:s}", "name", name));
}

static json_t *msg_stats_json(const struct msg_counters *m)
{
	return json_pack("{s:I, s:I, s:I}", "publish", (json_int_t)m->published,
	    "deliver_get", (json_int_t)m->delivered, "ack",
	    (json_int_t)m->acked);
}

static json_t *connection_json(struct conn *c)
{
	char name[200], local[80];
	struct conn_stats st;
	json_t *o;

	conn_stats(c, &st);
	mgmt_conn_name(c, name, sizeof(name));
	local_address(c, local, sizeof(local));
	o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:b, s:s, s:i, "
	    "s:i, s:i, s:I, s:o}", "name", name, "node", c->broker->cfg->node_name,
	    "user", c->user,
	    "vhost", c->vh->name, "channels", (int)st.channels, "state",
	    c->state == CONN_RUNNING ? (c->blocked || c->flow ? "blocked" :
	    "running") : "closing", "ssl", c->tls, "protocol", "AMQP 0-9-1",
	    "frame_max", (int)c->frame_max, "channel_max", (int)c->channel_max,
	    "timeout", (int)c->heartbeat, "connected_at",
	    (json_int_t)c->connected_at, "client_properties",
	    definitions_args_to_json(c->client_props, c->client_props_len));
	host_port(c->peer, "peer_host", "peer_port", o);
	host_port(local, "host", "port", o);
	if (st.have_octets) {
		json_object_set_new(o, "recv_oct", json_integer(
		    (json_int_t)st.recv_oct));
		json_object_set_new(o, "send_oct", json_integer(
		    (json_int_t)st.send_oct));
	}
	json_object_set_new(o, "message_stats", msg_stats_json(&st.msgs));
	return o;
}

void mgmt_connections(struct mgmt_req *q)
{
	json_t *list = json_array();
	struct conn *c;

	TAILQ_FOREACH(c, &q->b->conns, link)
		if (may_see_conn(q, c))
			json_array_append_new(list, connection_json(c));
	mgmt_reply(q, HTTP_OK, list);
}

void mgmt_connection(struct mgmt_req *q)
{
	struct conn *c;
	char name[200];

	TAILQ_FOREACH(c, &q->b->conns, link) {
		if (!may_see_conn(q, c))
			continue;
		mgmt_conn_name(c, name, sizeof(name));
		if (strcmp(name, q->seg[1]) == 0)
			break;
	}
	if (c == NULL) {
		mgmt_not_found(q);
		return;
	}
	if (evhttp_request_get_command(q->r) == EVHTTP_REQ_DELETE) {
		/* RabbitMQ takes the reason from an X-Reason header. */
		const char *why = evhttp_find_header(
		    evhttp_request_get_input_headers(q->r), "X-Reason");

		conn_close(c, AMQP_CONNECTION_FORCED, why ? why :
		    "Closed via management plugin");
		mgmt_reply(q, HTTP_NOCONTENT, NULL);
		return;
	}
	mgmt_reply(q, HTTP_OK, connection_json(c));
}

/* ---- channels and consumers ------------------------------------------------ */

static json_t *channel_details(struct channel *ch)
{
	char name[240], conn[200];
	json_t *o;

	mgmt_conn_name(ch->conn, conn, sizeof(conn));
	snprintf(name, sizeof(name), "%s (%u)", conn, ch->number);
	o = connection_details(ch->conn);
	json_object_set_new(o, "connection_name", json_string(conn));
	json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "number", json_integer(ch->number));
	json_object_set_new(o, "user", json_string(ch->conn->user));
	return o;
}

static json_t *channel_json(struct channel *ch)
{
	json_t *o = channel_details(ch);
	struct consumer *c;
	int consumers = 0;

	TAILQ_FOREACH(c, &ch->consumers, chlink)
		consumers++;
	json_object_set_new(o, "connection_details",
	    connection_details(ch->conn));
	json_object_set_new(o, "vhost", json_string(ch->conn->vh->name));
	json_object_set_new(o, "consumer_count", json_integer(consumers));
	json_object_set_new(o, "messages_unacknowledged",
	    json_integer(ch->unacked));
	json_object_set_new(o, "prefetch_count",
	    json_integer(ch->prefetch_consumer));
	json_object_set_new(o, "global_prefetch_count",
	    json_integer(ch->prefetch_channel));
	json_object_set_new(o, "confirm", json_boolean(ch->confirm_mode));
	json_object_set_new(o, "transactional", json_boolean(ch->tx_mode));
	json_object_set_new(o, "state", json_string(ch->state == CHAN_OPEN ?
	    "running" : "closing"));
	json_object_set_new(o, "message_stats", msg_stats_json(&ch->msgs));
	return o;
}

/* Each visible channel (of vhost vh only, unless NULL), to fn. */
static void each_channel(struct mgmt_req *q, const struct vhost *vh,
    void (*fn)(struct channel *, json_t *), json_t *list)
{
	struct conn *c;

	TAILQ_FOREACH(c, &q->b->conns, link) {
		if (!may_see_conn(q, c) || (vh && c->vh != vh))
			continue;
		for (uint32_t i = 0; i < c->channels_cap; i++)
			if (c->channels[i])
				fn(c->channels[i], list);
	}
}

static void add_channel(struct channel *ch, json_t *list)
{
	json_array_append_new(list, channel_json(ch));
}

void mgmt_channels(struct mgmt_req *q)
{
	json_t *list = json_array();

	each_channel(q, NULL, add_channel, list);
	mgmt_reply(q, HTTP_OK, list);
}

static void add_consumers(struct channel *ch, json_t *list)
{
	struct consumer *c;

	TAILQ_FOREACH(c, &ch->consumers, chlink) {
		if (c->q == NULL)
			continue;	/* direct reply-to: no queue */
		json_array_append_new(list, json_pack("{s:s, s:{s:s, s:s}, "
		    "s:o, s:b, s:b, s:i, s:i, s:{}}", "consumer_tag", c->tag,
		    "queue", "name", c->q->name, "vhost", c->q->vh->name,
		    "channel_details", channel_details(ch), "ack_required",
		    !c->no_ack, "exclusive", c->exclusive, "prefetch_count",
		    (int)c->prefetch, "priority", (int)c->priority,
		    "arguments"));
	}
}

void mgmt_consumers(struct mgmt_req *q)
{
	struct vhost *vh = NULL;
	json_t *list;

	if (q->n_seg == 2 && (vh = mgmt_vhost(q, 1)) == NULL)
		return;
	list = json_array();
	each_channel(q, vh, add_consumers, list);
	mgmt_reply(q, HTTP_OK, list);
}
