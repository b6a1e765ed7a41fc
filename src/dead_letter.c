/*
 * Dead-lettering, as RabbitMQ 3.10 does it:
 *
 * - the message goes to the queue's x-dead-letter-exchange with
 *   x-dead-letter-routing-key, or its own routing key;
 * - its headers get an x-death array, newest first; an entry for the same
 *   queue and reason is counted up and moved to the front instead of
 *   repeated; each entry is {count, exchange, original-expiration?, queue,
 *   reason, routing-keys, time} (keys sorted);
 * - x-first-death-reason/-queue/-exchange are set the first time;
 * - the expiration property is removed (kept as original-expiration);
 * - a message that would return to a queue it already died in, with no
 *   "rejected" death on the way, is dropped there: automatic cycles end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dead_letter.h"
#include "exchange.h"
#include "journal.h"
#include "field_table.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"
#include "queue.h"
#include "vhost.h"

static const char *const reason_names[] = {
	[DEATH_REJECTED] = "rejected",
	[DEATH_EXPIRED] = "expired",
	[DEATH_MAXLEN] = "maxlen",
	[DEATH_DELIVERY_LIMIT] = "delivery_limit",
};

/* One x-death entry as far as cycle detection cares. */
struct death {
	struct bytes queue, reason;
};

static struct bytes entry_str(const struct field_table *t, const char *key)
{
	const struct field_value *v = ftable_get(t, key);

	return v && v->type == 'S' ? v->v.str : (struct bytes){ NULL, 0 };
}

static void put_key(struct wbuf *b, const char *key)
{
	wbuf_put_shortstr(b, bytes_str(key));
}

static void put_longstr(struct wbuf *b, const char *key, struct bytes v)
{
	put_key(b, key);
	wbuf_put_u8(b, 'S');
	wbuf_put_longstr(b, v);
}

/* A new x-death entry for this death, keys in sorted order. */
static void put_new_death(struct wbuf *b, const struct queue *q,
    const struct message *msg, const struct basic_properties *props,
    enum death_reason why, const struct field_table *old)
{
	struct bytes cc[64];
	uint32_t n_cc = message_header_keys(old, "CC", cc, 64);
	size_t t, arr;

	wbuf_put_u8(b, 'F');
	t = b->len;
	wbuf_put_u32(b, 0);
	put_key(b, "count");
	wbuf_put_u8(b, 'l');
	wbuf_put_u64(b, 1);
	put_longstr(b, "exchange", msg->exchange);
	if (props_has(props, PROP_expiration))
		put_longstr(b, "original-expiration", props->expiration);
	put_longstr(b, "queue", bytes_str(q->name));
	put_longstr(b, "reason", bytes_str(reason_names[why]));
	put_key(b, "routing-keys");
	wbuf_put_u8(b, 'A');
	arr = b->len;
	wbuf_put_u32(b, 0);
	wbuf_put_u8(b, 'S');
	wbuf_put_longstr(b, msg->routing_key);
	for (uint32_t i = 0; i < n_cc; i++) {
		wbuf_put_u8(b, 'S');
		wbuf_put_longstr(b, cc[i]);
	}
	wbuf_patch_u32(b, arr, (uint32_t)(b->len - arr - 4));
	put_key(b, "time");
	wbuf_put_u8(b, 'T');
	wbuf_put_u64(b, (uint64_t)time(NULL));
	wbuf_patch_u32(b, t, (uint32_t)(b->len - t - 4));
}

/*
 * Write the new headers table content (no length prefix) into b and the
 * resulting x-death (queue, reason) list, newest first, into deaths;
 * props are msg's properties, already parsed by the caller.
 */
static uint32_t build_headers(struct wbuf *b, const struct queue *q,
    const struct message *msg, const struct basic_properties *props,
    enum death_reason why, struct death **deaths)
{
	struct field_table *old = msg_has_prop(msg, PROP_headers) ?
	    ftable_decode(msg->headers) : NULL;
	const struct field_value *xd = ftable_get(old, "x-death");
	const struct field_array *arr = xd && xd->type == 'A' ? xd->v.array : NULL;
	struct bytes qname = bytes_str(q->name);
	struct bytes reason = bytes_str(reason_names[why]);
	uint32_t n = 0, match = UINT32_MAX;
	size_t a;

	*deaths = xcalloc((arr ? arr->n : 0) + 1, sizeof(**deaths));
	for (uint32_t i = 0; arr && i < arr->n; i++) {
		const struct field_value *e = &arr->items[i];

		if (e->type == 'F' && match == UINT32_MAX &&
		    bytes_eq(entry_str(e->v.table, "queue"), qname) &&
		    bytes_eq(entry_str(e->v.table, "reason"), reason))
			match = i;
	}

	/* x-death first: the matching entry (counted up) or a new one. */
	put_key(b, "x-death");
	wbuf_put_u8(b, 'A');
	a = b->len;
	wbuf_put_u32(b, 0);
	if (match != UINT32_MAX) {
		struct field_table *t = arr->items[match].v.table;

		for (uint32_t k = 0; k < t->n; k++) {
			struct field_value *v = &t->entries[k].value;
			int64_t count;

			if (!bytes_eq_str(t->entries[k].key, "count"))
				continue;
			count = (v->type == 'l' || v->type == 'I') ? v->v.i :
			    (int64_t)v->v.u;
			v->type = 'l';
			v->v.i = count + 1;
		}
		fvalue_encode(b, &arr->items[match]);
	} else {
		put_new_death(b, q, msg, props, why, old);
	}
	(*deaths)[n++] = (struct death){ qname, reason };
	for (uint32_t i = 0; arr && i < arr->n; i++) {
		const struct field_value *e = &arr->items[i];

		if (i == match)
			continue;
		fvalue_encode(b, e);
		if (e->type == 'F')
			(*deaths)[n++] = (struct death){
			    entry_str(e->v.table, "queue"),
			    entry_str(e->v.table, "reason") };
	}
	wbuf_patch_u32(b, a, (uint32_t)(b->len - a - 4));

	if (ftable_get(old, "x-first-death-reason") == NULL) {
		put_longstr(b, "x-first-death-exchange", msg->exchange);
		put_longstr(b, "x-first-death-queue", qname);
		put_longstr(b, "x-first-death-reason", reason);
	}
	for (uint32_t i = 0; old && i < old->n; i++) {
		if (bytes_eq_str(old->entries[i].key, "x-death"))
			continue;
		/* A fixed dead-letter routing key replaces the CC keys too. */
		if (q->args.dl_routing_key &&
		    bytes_eq_str(old->entries[i].key, "CC"))
			continue;
		wbuf_put_shortstr(b, old->entries[i].key);
		fvalue_encode(b, &old->entries[i].value);
	}
	/* The deaths borrow names from msg's header, which outlives them;
	 * but the decoded tree must go: copy nothing, free the tree. */
	ftable_free(old);
	return n;
}

/* RabbitMQ's is_cycle: target seen before with no "rejected" on the way. */
static bool is_cycle(const struct death *deaths, uint32_t n, const char *target)
{
	for (uint32_t i = 0; i < n; i++) {
		if (bytes_eq_str(deaths[i].reason, "rejected"))
			return false;
		if (bytes_eq_str(deaths[i].queue, target))
			return true;
	}
	return false;
}

/*
 * Dead-lettering is synchronous and can cascade (a TTL-0 queue dead-letters
 * what it is given at once); RabbitMQ's cycle rule ends every path, but a
 * fanout of such queues can still multiply copies.  Bound the depth and the
 * copies made for one original event; past them, drop and say so.
 */
#define DEAD_LETTER_MAX_DEPTH 32
#define DEAD_LETTER_MAX_COPIES 10000
static unsigned dl_depth, dl_copies;

static void dead_letter_one(struct queue *q, struct message *msg,
    enum death_reason why);

/* The journey's step when q lets msg go for why. */
static void journal_death(struct queue *q, struct message *msg,
    enum death_reason why)
{
	char detail[JOURNAL_NAME_MAX + 1];

	if (why == DEATH_EXPIRED)
		journal_note(q->vh->journal, J_EXPIRED, msg, 0, 0, q->name,
		    NULL);
	if (q->args.dlx) {
		snprintf(detail, sizeof(detail), "%s, to exchange '%s'",
		    reason_names[why], q->args.dlx);
		journal_note(q->vh->journal, J_DEAD_LETTERED, msg, 0, 0,
		    q->name, detail);
	} else if (why != DEATH_EXPIRED) {
		journal_note(q->vh->journal, J_DROPPED, msg, 0, 0, q->name,
		    reason_names[why]);
	}
}

void dead_letter(struct queue *q, struct message *msg, enum death_reason why)
{
	if (q->vh->journal)
		journal_death(q, msg, why);
	if (q->args.dlx == NULL)
		return;
	if (dl_depth == 0)
		dl_copies = 0;
	if (dl_depth >= DEAD_LETTER_MAX_DEPTH ||
	    dl_copies >= DEAD_LETTER_MAX_COPIES) {
		log_warning("queue '%s': dead-letter cascade too deep or wide; "
		    "message dropped", q->name);
		return;
	}
	dl_depth++;
	dl_copies++;
	dead_letter_one(q, msg, why);
	dl_depth--;
}

static void dead_letter_one(struct queue *q, struct message *msg,
    enum death_reason why)
{
	struct exchange *dlx;
	struct content_header h;
	struct route_result r;
	struct message *dead;
	struct death *deaths;
	struct wbuf headers;
	uint32_t n_deaths;
	struct bytes rk;

	if (q->args.dlx == NULL)
		return;
	dlx = vhost_find_exchange(q->vh, bytes_str(q->args.dlx));
	if (dlx == NULL) {
		log_debug("queue '%s': dead-letter exchange '%s' does not exist; "
		    "message dropped", q->name, q->args.dlx);
		return;
	}
	msg_content_header(msg, &h);
	wbuf_init(&headers);
	n_deaths = build_headers(&headers, q, msg, &h.props, why, &deaths);
	h.props.headers = (struct bytes){ headers.p, (uint32_t)headers.len };
	h.props.flags |= PROP_FLAG(PROP_headers);
	h.props.flags &= (uint16_t)~PROP_FLAG(PROP_expiration);
	rk = q->args.dl_routing_key ? bytes_str(q->args.dl_routing_key) :
	    msg->routing_key;
	dead = msg_rewrite(msg, bytes_str(dlx->name), rk, &h);

	exchange_route(dlx, dead, &r);
	for (uint32_t i = 0; i < r.n; i++) {
		if (why != DEATH_REJECTED && is_cycle(deaths, n_deaths,
		    r.queues[i]->name)) {
			log_debug("dead-letter cycle at queue '%s': message dropped",
			    r.queues[i]->name);
			continue;
		}
		queue_push(r.queues[i], dead, NULL);
	}
	route_result_free(&r);
	msg_unref(dead);
	free(deaths);
	wbuf_free(&headers);
}
