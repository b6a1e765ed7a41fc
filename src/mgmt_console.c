/*
 * The web console's files, on the management port: console/ in the
 * source, installed under $(pkgdatadir)/console (management.console_dir).
 * They hold no data, so they are served without authentication; every
 * API call the page makes authenticates as the user who logged in.  Only
 * the files listed here are served, whatever the path asks for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "log.h"
#include "mgmt_console.h"

static const struct {
	const char *path, *file, *type;
} files[] = {
	{ "/", "index.html", "text/html; charset=utf-8" },
	{ "/index.html", "index.html", "text/html; charset=utf-8" },
	{ "/console.js", "console.js", "text/javascript; charset=utf-8" },
	{ "/console.css", "console.css", "text/css; charset=utf-8" },
};

bool mgmt_console_path(const char *path)
{
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (path && strcmp(path, files[i].path) == 0)
			return true;
	return false;
}

void mgmt_console_serve(struct evhttp_request *r,
    const struct warren_config *cfg, const char *path)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r);
	char file[4200];
	size_t i;
	FILE *fp;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (strcmp(path, files[i].path) == 0)
			break;
	if (i == sizeof(files) / sizeof(files[0]) || cfg->console_dir == NULL ||
	    *cfg->console_dir == '\0' ||
	    evhttp_request_get_command(r) != EVHTTP_REQ_GET) {
		evhttp_send_error(r, HTTP_NOTFOUND, NULL);
		return;
	}
	snprintf(file, sizeof(file), "%s/%s", cfg->console_dir, files[i].file);
	if ((fp = fopen(file, "re")) == NULL) {
		log_warning("web console: %s: %s", file, strerror(errno));
		evhttp_send_error(r, HTTP_NOTFOUND, NULL);
		return;
	}
	{
		struct evbuffer *out = evhttp_request_get_output_buffer(r);
		char buf[16384];
		size_t n;

		while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
			evbuffer_add(out, buf, n);
	}
	fclose(fp);
	evhttp_add_header(h, "Content-Type", files[i].type);
	evhttp_add_header(h, "Cache-Control", "no-cache");
	/* The page loads only its own files and talks only to this API. */
	evhttp_add_header(h, "Content-Security-Policy", "default-src 'self'; "
	    "img-src 'self' data:; frame-ancestors 'none'");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(r, HTTP_OK, NULL, NULL);
}
