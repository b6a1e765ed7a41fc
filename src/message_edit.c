/*
 * Changed copies of messages (see message_edit.h).
 */
#include "field_table.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"

struct message *msg_without_header(const struct message *msg,
    const char *key)
{
	struct field_table *t = ftable_decode(msg->headers);
	struct content_header h;
	struct wbuf headers, hdr;
	struct message *copy;

	if (t == NULL || content_header_parse((struct bytes){ msg->header,
	    msg->header_len }, &h) != 0)
		fatalx("stored message header no longer parses");
	wbuf_init(&headers);
	for (uint32_t i = 0; i < t->n; i++) {
		if (bytes_eq_str(t->entries[i].key, key))
			continue;
		wbuf_put_shortstr(&headers, t->entries[i].key);
		fvalue_encode(&headers, &t->entries[i].value);
	}
	h.props.headers = (struct bytes){ headers.p, (uint32_t)headers.len };
	wbuf_init(&hdr);
	content_header_encode(&hdr, &h);
	if (content_header_parse((struct bytes){ hdr.p, (uint32_t)hdr.len }, &h))
		fatalx("edited message header does not parse");
	copy = msg_new_header(msg, msg->exchange, msg->routing_key,
	    (struct bytes){ hdr.p, (uint32_t)hdr.len }, &h);
	wbuf_free(&hdr);
	wbuf_free(&headers);
	ftable_free(t);
	return copy;
}
