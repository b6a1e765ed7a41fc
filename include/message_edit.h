/*
 * Making a changed copy of a message: the content header is immutable (it
 * is re-sent as received), so a change means a new message that shares
 * the original's body.  Every property rewrite (BCC removal, direct
 * reply-to's reply_to, dead-lettering's x-death) goes through
 * msg_rewrite, so a copy is always re-encoded and re-validated the same
 * way.
 */
#ifndef WARREN_MESSAGE_EDIT_H
#define WARREN_MESSAGE_EDIT_H

#include <stdint.h>

#include "properties.h"
#include "wire.h"

struct message;

/* msg's content header, parsed (its strings point into msg's header). */
void msg_content_header(const struct message *msg, struct content_header *h);

/*
 * A copy of msg with h's properties (h is usually msg_content_header's,
 * edited), published to exchange with routing_key, sharing msg's body.
 */
struct message *msg_rewrite(const struct message *msg, struct bytes exchange,
    struct bytes routing_key, const struct content_header *h);

/* A copy of msg without header `key` (BCC is never delivered). */
struct message *msg_without_header(const struct message *msg,
    const char *key);

/* A copy of msg with header `key` set to a long-long (replacing any). */
struct message *msg_with_header_long(const struct message *msg,
    const char *key, int64_t value);

#endif
