/*
 * The unacked ledger of a channel (channel_ledger.c).  Settling is
 * declared in channel.h (chan_settle and friends); this is what the rest
 * of the channel code needs to fill and walk the ledger.
 */
#ifndef WARREN_CHANNEL_LEDGER_H
#define WARREN_CHANNEL_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

struct channel;
struct delivery;

/* Entry i of the ledger, oldest first (0 <= i < ch->ledger_count). */
struct delivery *chan_ledger_at(struct channel *ch, uint32_t i);
/* Record a delivery under the next tag; older entries keep their index. */
void chan_ledger_append(struct channel *ch, struct delivery d);
/* Neither settled nor held for a transaction's commit. */
bool chan_delivery_outstanding(const struct delivery *d);

#endif
