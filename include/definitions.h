/*
 * Durable metadata as RabbitMQ's definitions JSON (`rabbitmqctl
 * export_definitions`, the management API's /api/definitions).  The same
 * code exports and imports, for the data directory's definitions file and
 * for the management API.
 *
 * Export holds what RabbitMQ would: durable, non-exclusive queues; durable
 * exchanges but the default and the amq.* ones; bindings between those
 * (or to and from amq.*), never from the default exchange; every vhost,
 * user, permission and topic permission (definitions_access.c).
 * Parameters and policies are exported empty and ignored on import (with
 * a warning when present).
 *
 * Arguments tables become JSON as RabbitMQ shows them: strings, numbers,
 * booleans, tables as objects, arrays as arrays; a byte array as a string
 * (when it is UTF-8; else "Not UTF-8, base64 is: ..." as RabbitMQ prints
 * it), a decimal as its number (value / 10^scale), a timestamp as seconds,
 * void, NaN and infinities as null.  JSON loses the AMQP types ('I' and
 * 'l' both become 10), and redeclaring compares arguments, so each object
 * also carries its raw table, base64, under "x-warren-raw-arguments", and
 * a durable queue its message store id under "x-warren-store-qid" (hex),
 * so its stored messages find it after a restart.  RabbitMQ ignores both.
 *
 * Import converts "arguments" as RabbitMQ's import does (integers to
 * signed 64-bit 'l', strings 'S', booleans 't', reals 'd', objects 'F',
 * arrays 'A'; null is refused), unless the raw table decodes and says the
 * same as "arguments": then its exact bytes are used, and a hand edit of
 * "arguments" still wins.
 */
#ifndef WARREN_DEFINITIONS_H
#define WARREN_DEFINITIONS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "wire.h"

struct broker;

/* The definitions object; the caller owns the reference. */
json_t *definitions_export(struct broker *b);

/*
 * Make what defs describes: users, vhosts, permissions, topic
 * permissions, then exchanges, queues and bindings, each with the checks
 * of the AMQP declare (declare.h).  Users and permissions replace what
 * exists of the same name.  What exists and
 * is equivalent is left alone; what exists but differs is left alone with
 * a warning (as RabbitMQ, whose import does not redeclare).  Skipped with
 * a warning: entries of vhosts that neither exist nor are in "vhosts",
 * the default exchange, amq.* exchanges.  Exclusive queues are
 * never imported.  An invalid entry stops the import: false, with err
 * naming it ("queues[3] \"name\": ..."), and nothing of that entry made;
 * the entries before it stay.
 */
bool definitions_import(struct broker *b, json_t *defs, char *err,
    size_t errlen);

/*
 * Write the export to path atomically: path.tmp, fsync, rename over path,
 * fsync the directory.  On failure path is as it was and no path.tmp
 * remains; err says "PATH: why".
 */
bool definitions_save(struct broker *b, const char *path, char *err,
    size_t errlen);

/*
 * Import the file at path (which must exist).  Errors read "PATH:LINE:
 * message" for JSON syntax, "PATH: message" otherwise.
 */
bool definitions_load_file(struct broker *b, const char *path, char *err,
    size_t errlen);

/* A raw arguments table as RabbitMQ's JSON shows it (an object). */
json_t *definitions_args_to_json(const uint8_t *raw, uint32_t len);
/*
 * A JSON object (or NULL: none) as the raw arguments table RabbitMQ's
 * import makes of it, into out (reset first); false with why set.
 */
bool definitions_json_to_args(json_t *obj, struct wbuf *out, char *why,
    size_t whylen);

#endif
