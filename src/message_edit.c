/*
 * Changed copies of messages (see message_edit.h).
 */
#include <string.h>

#include "field_table.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"

void msg_content_header(const struct message *msg, struct content_header *h)
{
	if (content_header_parse((struct bytes){ msg->header, msg->header_len },
	    h) != 0)
		fatalx("stored content header no longer parses");
}

struct message *msg_rewrite(const struct message *msg, struct bytes exchange,
    struct bytes routing_key, const struct content_header *h)
{
	struct content_header parsed;
	struct message *copy;
	struct wbuf hdr;

	wbuf_init(&hdr);
	content_header_encode(&hdr, h);
	/* The copy points into its own header: parse what was encoded. */
	if (content_header_parse((struct bytes){ hdr.p, (uint32_t)hdr.len },
	    &parsed) != 0)
		fatalx("rewritten content header does not parse");
	copy = msg_new_header(msg, exchange, routing_key,
	    (struct bytes){ hdr.p, (uint32_t)hdr.len }, &parsed);
	wbuf_free(&hdr);
	return copy;
}

/*
 * Whether the raw headers table may hold `key`: its bytes as a shortstr.
 * (A false positive only costs a decode.)
 */
static bool may_hold(struct bytes headers, const char *key)
{
	uint8_t pat[257];
	size_t n = strlen(key);

	pat[0] = (uint8_t)n;
	memcpy(pat + 1, key, n);
	return headers.len && memmem(headers.ptr, headers.len, pat, n + 1);
}

/* A copy of msg whose headers lose `key` and, with add, end with it. */
static struct message *rewrite_header(const struct message *msg,
    const char *key, const struct field_value *add)
{
	struct field_table *t = NULL;
	struct content_header h;
	struct message *copy;
	struct wbuf headers;

	msg_content_header(msg, &h);
	wbuf_init(&headers);
	if (!may_hold(msg->headers, key)) {
		/* Nothing to drop: keep the table's bytes as they are. */
		if (msg->headers.len)
			wbuf_put_raw(&headers, msg->headers.ptr,
			    msg->headers.len);
	} else if ((t = ftable_decode(msg->headers)) == NULL) {
		fatalx("stored message headers no longer parse");
	}
	for (uint32_t i = 0; t && i < t->n; i++) {
		if (bytes_eq_str(t->entries[i].key, key))
			continue;
		wbuf_put_shortstr(&headers, t->entries[i].key);
		fvalue_encode(&headers, &t->entries[i].value);
	}
	if (add) {
		wbuf_put_shortstr(&headers, bytes_str(key));
		fvalue_encode(&headers, add);
		h.props.flags |= PROP_FLAG(PROP_headers);
	}
	h.props.headers = (struct bytes){ headers.p, (uint32_t)headers.len };
	copy = msg_rewrite(msg, msg->exchange, msg->routing_key, &h);
	wbuf_free(&headers);
	ftable_free(t);
	return copy;
}

struct message *msg_without_header(const struct message *msg,
    const char *key)
{
	return rewrite_header(msg, key, NULL);
}

struct message *msg_with_header_long(const struct message *msg,
    const char *key, int64_t value)
{
	struct field_value v = { .type = 'l', .v.i = value };

	return rewrite_header(msg, key, &v);
}
