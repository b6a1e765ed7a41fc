/*
 * Entry rings (see entry_ring.h).
 */
#include <stdlib.h>

#include "entry_ring.h"
#include "log.h"

static struct queue_entry *at(struct entry_ring *r, uint32_t i)
{
	return &r->slots[(r->head + i) & (r->cap - 1)];
}

const struct queue_entry *ring_at(const struct entry_ring *r, uint32_t i)
{
	return &r->slots[(r->head + i) & (r->cap - 1)];
}

static void grow(struct entry_ring *r)
{
	uint32_t cap = r->cap ? r->cap * 2 : 64;
	struct queue_entry *slots = xmalloc(sizeof(*slots) * cap);

	for (uint32_t i = 0; i < r->count; i++)
		slots[i] = *at(r, i);
	free(r->slots);
	r->slots = slots;
	r->cap = cap;
	r->head = 0;
}

void ring_push(struct entry_ring *r, struct queue_entry e)
{
	if (r->count == r->cap)
		grow(r);
	*at(r, r->count++) = e;
}

void ring_insert_by_seq(struct entry_ring *r, struct queue_entry e)
{
	uint32_t pos = 0;

	if (r->count == r->cap)
		grow(r);
	/* Requeued messages belong near the head: scan from there. */
	while (pos < r->count && at(r, pos)->seq < e.seq)
		pos++;
	r->head = (r->head - 1) & (r->cap - 1);
	for (uint32_t i = 0; i < pos; i++)
		*at(r, i) = *at(r, i + 1);
	r->count++;
	*at(r, pos) = e;
}

struct queue_entry *ring_head(struct entry_ring *r)
{
	return r->count ? at(r, 0) : NULL;
}

bool ring_pop(struct entry_ring *r, struct queue_entry *out)
{
	if (r->count == 0)
		return false;
	*out = *at(r, 0);
	r->head = (r->head + 1) & (r->cap - 1);
	r->count--;
	return true;
}

void ring_free(struct entry_ring *r)
{
	free(r->slots);
	r->slots = NULL;
	r->head = r->count = r->cap = 0;
}
