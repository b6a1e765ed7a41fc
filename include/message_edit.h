/*
 * Making a changed copy of a message: the content header is immutable (it
 * is re-sent as received), so a change means a new message that shares
 * the original's body.
 */
#ifndef WARREN_MESSAGE_EDIT_H
#define WARREN_MESSAGE_EDIT_H

#include "wire.h"

struct message;

/* A copy of msg without header `key` (BCC is never delivered). */
struct message *msg_without_header(const struct message *msg,
    const char *key);

#endif
