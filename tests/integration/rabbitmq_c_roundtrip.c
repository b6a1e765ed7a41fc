/*
 * rabbitmq_c_roundtrip: a rabbitmq-c (librabbitmq) client run against the
 * broker by test_rabbitmq_c.py.
 *
 *   usage: rabbitmq_c_roundtrip HOST PORT [COUNT]
 *
 * Declares a server-named queue, publishes COUNT (default 1000) messages
 * with properties and a headers table, consumes them with basic.consume and
 * manual acks (prefetch 50), checks every message arrives once, in order,
 * with its properties intact, and that the queue is empty afterwards.
 * Exits 0 on success, 1 with a message on stderr otherwise.
 *
 * Build: cc -o rabbitmq_c_roundtrip rabbitmq_c_roundtrip.c \
 *            $(pkg-config --cflags --libs librabbitmq)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

static const char *progname = "rabbitmq_c_roundtrip";

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void check_reply(amqp_rpc_reply_t r, const char *what)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return;
	case AMQP_RESPONSE_NONE:
		die("%s: missing RPC reply type", what);
		break;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		die("%s: %s", what, amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;
			die("%s: server connection error %u: %.*s", what, m->reply_code,
			    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;
			die("%s: server channel error %u: %.*s", what, m->reply_code,
			    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		}
		die("%s: unexpected server method 0x%08x", what, r.reply.id);
		break;
	}
	die("%s: unknown reply type %d", what, (int)r.reply_type);
}

static int bytes_eq(amqp_bytes_t b, const char *s)
{
	size_t n = strlen(s);

	return b.len == n && memcmp(b.bytes, s, n) == 0;
}

static const amqp_table_entry_t *find_entry(const amqp_table_t *t, const char *key)
{
	for (int i = 0; i < t->num_entries; i++)
		if (bytes_eq(t->entries[i].key, key))
			return &t->entries[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const char *host;
	int port, count = 1000;
	const int channel = 1;
	amqp_connection_state_t conn;
	amqp_socket_t *sock;
	struct timeval tv;
	char queue[256];

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s HOST PORT [COUNT]\n", progname);
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	if (argc == 4)
		count = atoi(argv[3]);
	if (port <= 0 || count <= 0)
		die("bad port or count");

	conn = amqp_new_connection();
	sock = amqp_tcp_socket_new(conn);
	if (!sock)
		die("cannot create socket");
	tv.tv_sec = 5;
	tv.tv_usec = 0;
	if (amqp_socket_open_noblock(sock, host, port, &tv) != AMQP_STATUS_OK)
		die("cannot connect to %s:%d", host, port);
	tv.tv_sec = 30;
	if (amqp_set_rpc_timeout(conn, &tv) != AMQP_STATUS_OK)
		die("cannot set rpc timeout");

	/* channel_max 0 and frame_max 131072: take the server's limits */
	check_reply(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
	                       "guest", "guest"), "login");
	if (amqp_get_channel_max(conn) <= 0)
		die("negotiated channel_max %d", amqp_get_channel_max(conn));
	amqp_channel_open(conn, channel);
	check_reply(amqp_get_rpc_reply(conn), "channel.open");

	/* server-named, exclusive (not auto-delete: it is checked after cancel) */
	amqp_queue_declare_ok_t *dok = amqp_queue_declare(conn, channel, amqp_empty_bytes,
	    0, 0, 1, 0, amqp_empty_table);
	check_reply(amqp_get_rpc_reply(conn), "queue.declare");
	if (dok->queue.len == 0 || dok->queue.len >= sizeof(queue))
		die("bad server-named queue (len %zu)", dok->queue.len);
	memcpy(queue, dok->queue.bytes, dok->queue.len);
	queue[dok->queue.len] = '\0';
	if (strncmp(queue, "amq.gen-", 8) != 0)
		die("server-named queue '%s' does not start with amq.gen-", queue);
	if (dok->message_count != 0 || dok->consumer_count != 0)
		die("new queue has %u messages, %u consumers", dok->message_count,
		    dok->consumer_count);

	/* publish */
	for (int i = 0; i < count; i++) {
		char body[64], msgid[32], corr[32];
		amqp_basic_properties_t props;
		amqp_table_entry_t hdr[3];

		snprintf(body, sizeof(body), "message %06d", i);
		snprintf(msgid, sizeof(msgid), "id-%d", i);
		snprintf(corr, sizeof(corr), "corr-%d", i * 7);
		hdr[0].key = amqp_cstring_bytes("seq");
		hdr[0].value.kind = AMQP_FIELD_KIND_I32;
		hdr[0].value.value.i32 = i;
		hdr[1].key = amqp_cstring_bytes("client");
		hdr[1].value.kind = AMQP_FIELD_KIND_UTF8;
		hdr[1].value.value.bytes = amqp_cstring_bytes("rabbitmq-c");
		hdr[2].key = amqp_cstring_bytes("big");
		hdr[2].value.kind = AMQP_FIELD_KIND_I64;
		hdr[2].value.value.i64 = -5000000000LL - i;

		memset(&props, 0, sizeof(props));
		props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
		    AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
		    AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_PRIORITY_FLAG |
		    AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG;
		props.content_type = amqp_cstring_bytes("text/plain");
		props.delivery_mode = 2;
		props.message_id = amqp_cstring_bytes(msgid);
		props.correlation_id = amqp_cstring_bytes(corr);
		props.priority = (uint8_t)(i % 10);
		props.timestamp = 1700000000ULL + (uint64_t)i;
		props.app_id = amqp_cstring_bytes("warren-it");
		props.headers.num_entries = 3;
		props.headers.entries = hdr;
		if (amqp_basic_publish(conn, channel, amqp_empty_bytes,
		                       amqp_cstring_bytes(queue), 0, 0, &props,
		                       amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
			die("basic.publish %d failed", i);
	}

	/* consume with manual acks */
	amqp_basic_qos(conn, channel, 0, 50, 0);
	check_reply(amqp_get_rpc_reply(conn), "basic.qos");
	amqp_basic_consume_ok_t *cok = amqp_basic_consume(conn, channel,
	    amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	check_reply(amqp_get_rpc_reply(conn), "basic.consume");
	if (cok->consumer_tag.len == 0)
		die("empty consumer tag");
	amqp_bytes_t tag = amqp_bytes_malloc_dup(cok->consumer_tag);

	uint64_t last_tag = 0;
	for (int i = 0; i < count; i++) {
		amqp_envelope_t env;
		amqp_rpc_reply_t r;
		char want[64], msgid[32], corr[32];
		const amqp_basic_properties_t *p;
		const amqp_table_entry_t *e;

		amqp_maybe_release_buffers(conn);
		tv.tv_sec = 30;	/* generous: only reached when a message is lost */
		tv.tv_usec = 0;
		r = amqp_consume_message(conn, &env, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
			    r.library_error == AMQP_STATUS_TIMEOUT)
				die("timed out waiting for message %d of %d", i, count);
			check_reply(r, "consume");
		}
		snprintf(want, sizeof(want), "message %06d", i);
		snprintf(msgid, sizeof(msgid), "id-%d", i);
		snprintf(corr, sizeof(corr), "corr-%d", i * 7);
		if (!bytes_eq(env.message.body, want))
			die("message %d: got body '%.*s', want '%s' (missing, duplicated or "
			    "out of order)", i, (int)env.message.body.len,
			    (const char *)env.message.body.bytes, want);
		if (env.consumer_tag.len != tag.len ||
		    memcmp(env.consumer_tag.bytes, tag.bytes, tag.len) != 0)
			die("message %d: wrong consumer tag", i);
		if (env.redelivered)
			die("message %d: redelivered flag set", i);
		if (!bytes_eq(env.routing_key, queue) || env.exchange.len != 0)
			die("message %d: wrong exchange/routing key", i);
		if (env.delivery_tag <= last_tag)
			die("message %d: delivery tag %llu not increasing", i,
			    (unsigned long long)env.delivery_tag);
		last_tag = env.delivery_tag;

		p = &env.message.properties;
		if (!(p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) ||
		    !bytes_eq(p->content_type, "text/plain"))
			die("message %d: content_type lost", i);
		if (!(p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) || p->delivery_mode != 2)
			die("message %d: delivery_mode lost", i);
		if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) || !bytes_eq(p->message_id, msgid))
			die("message %d: message_id lost", i);
		if (!(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) ||
		    !bytes_eq(p->correlation_id, corr))
			die("message %d: correlation_id lost", i);
		if (!(p->_flags & AMQP_BASIC_PRIORITY_FLAG) || p->priority != i % 10)
			die("message %d: priority lost", i);
		if (!(p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) ||
		    p->timestamp != 1700000000ULL + (uint64_t)i)
			die("message %d: timestamp lost", i);
		if (!(p->_flags & AMQP_BASIC_APP_ID_FLAG) || !bytes_eq(p->app_id, "warren-it"))
			die("message %d: app_id lost", i);
		if (p->_flags & (AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
		    AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_TYPE_FLAG))
			die("message %d: unexpected properties appeared (flags 0x%04x)", i,
			    p->_flags);
		if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG) || p->headers.num_entries != 3)
			die("message %d: headers lost", i);
		e = find_entry(&p->headers, "seq");
		if (!e || e->value.kind != AMQP_FIELD_KIND_I32 || e->value.value.i32 != i)
			die("message %d: header seq wrong", i);
		e = find_entry(&p->headers, "client");
		if (!e || e->value.kind != AMQP_FIELD_KIND_UTF8 ||
		    !bytes_eq(e->value.value.bytes, "rabbitmq-c"))
			die("message %d: header client wrong", i);
		e = find_entry(&p->headers, "big");
		if (!e || e->value.kind != AMQP_FIELD_KIND_I64 ||
		    e->value.value.i64 != -5000000000LL - i)
			die("message %d: header big wrong", i);

		/* ack singly, and every 10th with multiple */
		if (i % 10 == 9) {
			if (amqp_basic_ack(conn, channel, env.delivery_tag, 1) != 0)
				die("basic.ack multiple failed");
		} else if (i % 10 < 5) {
			if (amqp_basic_ack(conn, channel, env.delivery_tag, 0) != 0)
				die("basic.ack failed");
		}
		amqp_destroy_envelope(&env);
	}
	/* ack whatever is left (count not a multiple of 10) */
	if (count % 10 != 0 && amqp_basic_ack(conn, channel, last_tag, 1) != 0)
		die("final basic.ack failed");

	/* no extra delivery */
	{
		amqp_envelope_t env;
		amqp_rpc_reply_t r;

		tv.tv_sec = 0;
		tv.tv_usec = 500000;
		r = amqp_consume_message(conn, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL)
			die("extra delivery after %d messages: '%.*s'", count,
			    (int)env.message.body.len, (const char *)env.message.body.bytes);
		if (!(r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		      r.library_error == AMQP_STATUS_TIMEOUT))
			check_reply(r, "waiting for extra deliveries");
	}

	amqp_basic_cancel(conn, channel, tag);
	check_reply(amqp_get_rpc_reply(conn), "basic.cancel");
	amqp_bytes_free(tag);

	dok = amqp_queue_declare(conn, channel, amqp_cstring_bytes(queue), 1, 0, 0, 0,
	    amqp_empty_table);
	check_reply(amqp_get_rpc_reply(conn), "queue.declare passive");
	if (dok->message_count != 0 || dok->consumer_count != 0)
		die("queue not empty after acks: %u messages, %u consumers",
		    dok->message_count, dok->consumer_count);

	check_reply(amqp_channel_close(conn, channel, AMQP_REPLY_SUCCESS), "channel.close");
	check_reply(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
	if (amqp_destroy_connection(conn) != AMQP_STATUS_OK)
		die("destroy connection");
	printf("%s: %d messages round-tripped via %s\n", progname, count, queue);
	return 0;
}
