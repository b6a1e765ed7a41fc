/*
 * warrenctl, the admin CLI: a client of the management API.  warrenctl.c
 * parses the command line and runs the verbs; ctl_http.c makes the HTTP
 * requests (libevent's evhttp client); ctl_format.c prints replies as
 * aligned tables or JSON.
 */
#ifndef WARREN_CTL_H
#define WARREN_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Exit codes scripts can rely on (warrenctl(1)). */
enum {
	CTL_OK = 0,
	CTL_REFUSED = 1,	/* the broker said no (an HTTP error status) */
	CTL_USAGE = 2,		/* the command line is wrong */
	CTL_UNREACHABLE = 3,	/* no answer from the management API */
};

struct ctl {
	const char *host;
	unsigned port;
	const char *user, *password;
	const char *vhost;
	bool json;			/* --format json */
};

struct ctl_reply {
	int status;			/* HTTP status; 0: no answer */
	json_t *json;			/* the body, parsed; NULL if none */
	char error[256];		/* why there was no answer */
};

/*
 * method path (already percent-encoded) with body (or NULL); false when
 * the broker could not be reached (reply->error says why).
 */
bool ctl_request(const struct ctl *c, const char *method, const char *path,
    json_t *body, struct ctl_reply *reply);
void ctl_reply_free(struct ctl_reply *reply);

/* name, percent-encoded for a path segment (the caller frees it). */
char *ctl_encode(const char *name);

/*
 * A list of objects as a table of the given columns ("queue.name" reaches
 * into nested objects), aligned, with a header.
 */
void ctl_print_table(json_t *list, const char *const *columns, size_t n);
/* An object as "key  value" lines, in the given order. */
void ctl_print_fields(json_t *obj, const char *const *keys, size_t n);
void ctl_print_json(json_t *json);

#endif
