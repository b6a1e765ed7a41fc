/*
 * Where a message's bytes are in the message store's log (store.h): what
 * a queue keeps of a message it has paged out, and what a message read
 * back from the log remembers.
 */
#ifndef WARREN_STORE_LOC_H
#define WARREN_STORE_LOC_H

#include <stdint.h>

struct store_loc {
	uint64_t id;			/* its MSG id; 0: not kept by the store */
	uint64_t ticket;		/* the batch that wrote it */
	uint32_t seg;			/* its segment; 0: no record */
	uint32_t off;			/* where the record starts in it */
	uint32_t len;			/* the record's bytes, header included */
};

#endif
