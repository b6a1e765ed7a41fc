/*
 * Message journeys (journal.h): a ring of fixed-size events per traced
 * vhost.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal.h"
#include "log.h"
#include "message.h"
#include "properties.h"

struct journal {
	struct journal_event *ring;	/* JOURNAL_EVENTS of them */
	size_t head, count;		/* the oldest; how many are kept */
	uint64_t next_seq;
};

static const char *const step_names[J_STEPS] = {
	[J_PUBLISHED] = "published", [J_ENQUEUED] = "enqueued",
	[J_UNROUTABLE] = "unroutable", [J_RETURNED] = "returned",
	[J_DELIVERED] = "delivered", [J_ACKED] = "acked",
	[J_REQUEUED] = "requeued", [J_REJECTED] = "rejected",
	[J_EXPIRED] = "expired", [J_DEAD_LETTERED] = "dead_lettered",
	[J_DROPPED] = "dropped", [J_DUPLICATE] = "duplicate",
	[J_DELAYED] = "delayed",
};

const char *journal_step_name(enum journal_step step)
{
	return step < J_STEPS ? step_names[step] : "?";
}

struct journal *journal_new(void)
{
	struct journal *j = xcalloc(1, sizeof(*j));

	j->ring = xcalloc(JOURNAL_EVENTS, sizeof(*j->ring));
	j->next_seq = 1;
	return j;
}

void journal_free(struct journal *j)
{
	if (j == NULL)
		return;
	free(j->ring);
	free(j);
}

/* Copy into out (cap bytes, NUL-terminated, cut to fit): no printf on
 * the path of every traced message. */
static size_t copy_bytes(char *out, size_t cap, struct bytes b)
{
	size_t n = b.len < cap - 1 ? b.len : cap - 1;

	if (n)			/* an empty key may have no pointer at all */
		memcpy(out, b.ptr, n);
	out[n] = '\0';
	return n;
}

static size_t copy_str(char *out, size_t cap, const char *s)
{
	if (s == NULL) {
		out[0] = '\0';
		return 0;
	}
	return copy_bytes(out, cap, bytes_str(s));
}

void journal_note(struct journal *j, enum journal_step step,
    const struct message *msg, uint64_t conn, uint16_t channel,
    const char *where, const char *detail)
{
	struct journal_event *ev;
	struct timespec ts;
	struct bytes id;

	if (j->count < JOURNAL_EVENTS) {
		ev = &j->ring[(j->head + j->count++) % JOURNAL_EVENTS];
	} else {
		ev = &j->ring[j->head];		/* the oldest goes */
		j->head = (j->head + 1) % JOURNAL_EVENTS;
	}
	/* The coarse clock: a few ms of precision is plenty for a journey. */
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	ev->seq = j->next_seq++;
	ev->wall_ms = (uint64_t)ts.tv_sec * 1000 +
	    (uint64_t)ts.tv_nsec / 1000000;
	ev->step = step;
	ev->conn = conn;
	ev->channel = channel;
	ev->message_id[0] = ev->correlation_id[0] = '\0';
	if (msg && msg_string_prop(msg, PROP_message_id, &id))
		copy_bytes(ev->message_id, sizeof(ev->message_id), id);
	if (msg && msg_string_prop(msg, PROP_correlation_id, &id))
		copy_bytes(ev->correlation_id, sizeof(ev->correlation_id), id);
	copy_str(ev->where, sizeof(ev->where), where);
	if (detail || step != J_PUBLISHED || msg == NULL) {
		copy_str(ev->detail, sizeof(ev->detail), detail);
	} else {
		/* A publish's detail is its routing key. */
		size_t n = copy_str(ev->detail, sizeof(ev->detail),
		    "routing key '");

		n += copy_bytes(ev->detail + n, sizeof(ev->detail) - n - 1,
		    msg->routing_key);
		copy_str(ev->detail + n, sizeof(ev->detail) - n, "'");
	}
}

static bool matches(const struct journal_event *ev, const char *id)
{
	return id == NULL || strcmp(ev->message_id, id) == 0 ||
	    strcmp(ev->correlation_id, id) == 0;
}

size_t journal_find(const struct journal *j, const char *id, size_t limit,
    journal_event_fn *fn, void *arg)
{
	size_t matched = 0, skip;

	for (size_t i = 0; i < j->count; i++)
		matched += matches(&j->ring[(j->head + i) % JOURNAL_EVENTS],
		    id);
	/* The newest `limit`: skip the older ones. */
	skip = matched > limit ? matched - limit : 0;
	for (size_t i = 0; i < j->count; i++) {
		const struct journal_event *ev =
		    &j->ring[(j->head + i) % JOURNAL_EVENTS];

		if (!matches(ev, id))
			continue;
		if (skip) {
			skip--;
			continue;
		}
		fn(arg, ev);
	}
	return matched;
}
