/*
 * warrenctl's HTTP requests (see ctl.h): one request per call, on its own
 * event loop, with HTTP basic authentication.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "ctl.h"

#define CTL_TIMEOUT_S 60

struct pending {
	struct ctl_reply *reply;
	struct event_base *base;
};

static void on_done(struct evhttp_request *r, void *arg)
{
	struct pending *p = arg;
	struct evbuffer *in;
	size_t n;

	if (r == NULL || evhttp_request_get_response_code(r) == 0) {
		snprintf(p->reply->error, sizeof(p->reply->error),
		    "no answer (connection refused, reset or timed out)");
		event_base_loopexit(p->base, NULL);
		return;
	}
	p->reply->status = evhttp_request_get_response_code(r);
	in = evhttp_request_get_input_buffer(r);
	n = evbuffer_get_length(in);
	if (n > 0)
		p->reply->json = json_loadb((const char *)evbuffer_pullup(in,
		    -1), n, 0, NULL);
	event_base_loopexit(p->base, NULL);
}

static enum evhttp_cmd_type command(const char *method)
{
	if (strcmp(method, "PUT") == 0)
		return EVHTTP_REQ_PUT;
	if (strcmp(method, "POST") == 0)
		return EVHTTP_REQ_POST;
	if (strcmp(method, "DELETE") == 0)
		return EVHTTP_REQ_DELETE;
	return EVHTTP_REQ_GET;
}

static void add_auth(const struct ctl *c, struct evkeyvalq *h)
{
	size_t n = strlen(c->user) + strlen(c->password) + 2;
	char *plain = malloc(n), *b64 = malloc(4 * ((n + 2) / 3) + 8);

	if (plain == NULL || b64 == NULL) {
		fprintf(stderr, "warrenctl: out of memory\n");
		exit(CTL_UNREACHABLE);
	}
	snprintf(plain, n, "%s:%s", c->user, c->password);
	memcpy(b64, "Basic ", 6);
	EVP_EncodeBlock((unsigned char *)b64 + 6, (unsigned char *)plain,
	    (int)strlen(plain));
	evhttp_add_header(h, "Authorization", b64);
	free(plain);
	free(b64);
}

bool ctl_request(const struct ctl *c, const char *method, const char *path,
    json_t *body, struct ctl_reply *reply)
{
	struct event_base *base = event_base_new();
	struct evhttp_connection *conn;
	struct evhttp_request *req;
	struct pending p = { reply, base };
	struct evkeyvalq *h;
	char *text;

	memset(reply, 0, sizeof(*reply));
	if (base == NULL || (conn = evhttp_connection_base_new(base, NULL,
	    c->host, (unsigned short)c->port)) == NULL) {
		snprintf(reply->error, sizeof(reply->error), "out of memory");
		if (base)
			event_base_free(base);
		return false;
	}
	evhttp_connection_set_timeout(conn, CTL_TIMEOUT_S);
	req = evhttp_request_new(on_done, &p);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", c->host);
	evhttp_add_header(h, "Connection", "close");
	add_auth(c, h);
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), text,
		    strlen(text));
		free(text);
	}
	if (evhttp_make_request(conn, req, command(method), path) != 0)
		snprintf(reply->error, sizeof(reply->error),
		    "cannot send the request");
	else
		event_base_dispatch(base);
	evhttp_connection_free(conn);
	event_base_free(base);
	return reply->status != 0;
}

void ctl_reply_free(struct ctl_reply *reply)
{
	json_decref(reply->json);
	reply->json = NULL;
}

char *ctl_encode(const char *name)
{
	char *e = evhttp_uriencode(name, -1, 0);

	if (e == NULL) {
		fprintf(stderr, "warrenctl: out of memory\n");
		exit(CTL_UNREACHABLE);
	}
	return e;
}
