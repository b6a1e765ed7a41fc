/*
 * The schedule of an x-delayed-message exchange (RabbitMQ's delayed
 * message plugin's semantics): a message published to it with an x-delay
 * header of 1 .. 2^32-1 ms waits that long, then is routed by the
 * exchange's x-delayed-type (its bindings as they are then), with x-delay
 * set to minus the delay as the plugin does.  Other messages route at once.
 *
 * Scheduled messages live in the message store's log, not in memory: a
 * persistent message to a durable exchange as an ENQ under the exchange's
 * store id whose expiry field is the wall-clock due time, so it survives
 * restarts and crashes and fires once, late only by the downtime; any
 * other as a held record that recovery skips.  In memory each costs one
 * heap entry (DELAYED_ENTRY_BYTES); firing pops the heap, O(log n).
 */
#ifndef WARREN_DELAYED_H
#define WARREN_DELAYED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct exchange;
struct message;
struct store_recovered;
struct store_recovered_entry;

struct delayed;

/*
 * A schedule for x; qid is the store id its persistent messages are kept
 * under (0: x is not durable, nothing is recovered).
 */
struct delayed *delayed_new(struct exchange *x, uint64_t qid);
/*
 * Free; with discard (the exchange was deleted) its messages are let go in
 * the store too, else (shutting down) the log keeps them.
 */
void delayed_free(struct delayed *d, bool discard);
uint64_t delayed_qid(const struct delayed *d);
/* The store id of the durable delayed exchange vhost/name. */
uint64_t delayed_qid_for(const char *vhost, const char *name);

/* msg's x-delay in ms when it asks to wait (1 .. 2^32-1); else 0. */
uint64_t delayed_delay_of(const struct message *msg);

/*
 * Schedule msg to fire after delay_ms; *ticket (if not NULL) rises to the
 * store batch that keeps it, for a publisher confirm.
 */
void delayed_schedule(struct delayed *d, struct message *msg,
    uint64_t delay_ms, uint64_t *ticket);
/* A recovered entry of this schedule's qid. */
bool delayed_recover(struct delayed *d, const struct store_recovered *rec,
    const struct store_recovered_entry *entry);

uint64_t delayed_count(const struct delayed *d);
/* Ms until the next one fires (0: due now); -1 when none is scheduled. */
int64_t delayed_next_in(const struct delayed *d);

/* One scheduled message, as listed; msg is read back (NULL: unreadable). */
typedef void delayed_list_fn(void *arg, uint64_t id, uint64_t due_in_ms,
    const struct message *msg);
/* The scheduled messages from the offset-th soonest, at most n, soonest
 * first; returns how many were listed. */
size_t delayed_list(struct delayed *d, size_t offset, size_t n,
    delayed_list_fn *fn, void *arg);
/* Cancel scheduled message id (it is dropped); false when there is none. */
bool delayed_cancel(struct delayed *d, uint64_t id);

#define DELAYED_ENTRY_BYTES 56

#endif
