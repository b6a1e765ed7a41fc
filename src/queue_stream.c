/*
 * Stream queues (x-queue-type = stream), with RabbitMQ's semantics over
 * AMQP 0-9-1: an append-only log (stream_log.c) in which consuming
 * removes nothing.  Every consumer reads from its own offset, chosen with
 * the x-stream-offset consume argument, and each delivery carries its
 * offset in the x-stream-offset header (added once, when the message is
 * appended, so every reader shares the same bytes).  Consumers must ack
 * manually and set a prefetch: acks only return credit.  basic.get and
 * purge are refused; retention (x-max-length-bytes, x-max-age) drops
 * whole segments.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "amqp.h"
#include "amqp_error.h"
#include "broker.h"
#include "config.h"
#include "field_table.h"
#include "log.h"
#include "message.h"
#include "message_edit.h"
#include "queue.h"
#include "store.h"
#include "stream_log.h"
#include "stream_offsets.h"
#include "stream_reader.h"
#include "vhost.h"

/* RabbitMQ's default x-stream-max-segment-size-bytes. */
#define DEFAULT_SEGMENT_SIZE 500000000LL
/* How often age retention is checked, at most. */
#define RETAIN_MAX_INTERVAL_MS 60000

struct stream {
	struct stream_log *log;
	struct stream_offsets *offsets;	/* named consumers' stored offsets */
	char *dir;
	struct event *retain_ev;	/* age retention */
};

/* A consumer's place in the stream. */
struct reader {
	uint64_t offset;		/* the next to deliver */
	bool tracked;			/* the broker stores its offset */
	struct stream_filter *filter;	/* x-stream-filter, or NULL */
	struct stream_cursor cursor;
};

static void filter_free(struct stream_filter *f)
{
	if (f == NULL)
		return;
	for (uint32_t i = 0; i < f->n; i++)
		free((void *)f->values[i].ptr);
	free(f->values);
	free(f);
}

static void filter_add(struct stream_filter *f, struct bytes v)
{
	uint8_t *copy = xmalloc(v.len ? v.len : 1);

	memcpy(copy, v.ptr, v.len);
	f->values = xrealloc(f->values, (f->n + 1) * sizeof(*f->values));
	f->values[f->n++] = (struct bytes){ copy, v.len };
}

/* x-stream-filter (a string or an array of them) and
 * x-stream-match-unfiltered; *out stays NULL without a filter. */
static int parse_filter(struct queue *q, const struct field_table *t,
    struct stream_filter **out, struct amqp_error *err)
{
	const struct field_value *v = ftable_get(t, "x-stream-filter");
	const struct field_value *u = ftable_get(t, "x-stream-match-unfiltered");
	struct stream_filter *f;

	*out = NULL;
	if (u && u->type != 't')
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid arg 'x-stream-match-unfiltered' for queue '%s' in "
		    "vhost '%s': expected a boolean", q->name, q->vh->name);
	if (v == NULL)
		return 0;
	f = xcalloc(1, sizeof(*f));
	f->match_unfiltered = u && u->v.b;
	if (v->type == 'S') {
		filter_add(f, v->v.str);
	} else if (v->type == 'A') {
		for (uint32_t i = 0; i < v->v.array->n; i++) {
			if (v->v.array->items[i].type != 'S') {
				filter_free(f);
				goto bad;
			}
			filter_add(f, v->v.array->items[i].v.str);
		}
	} else {
		filter_free(f);
		goto bad;
	}
	*out = f;
	return 0;
bad:
	return amqp_fail(err, AMQP_PRECONDITION_FAILED,
	    "invalid arg 'x-stream-filter' for queue '%s' in vhost '%s': "
	    "expected a string or an array of strings", q->name, q->vh->name);
}

static struct stream *sq(const struct queue *q)
{
	return q->state;
}

/* The queue's counts, as the log has them (q->bytes: its files). */
static void refresh_counts(struct queue *q)
{
	struct stream_log_stats st;

	stream_log_stats(sq(q)->log, &st);
	q->count = (uint32_t)(st.messages > UINT32_MAX ? UINT32_MAX :
	    st.messages);
	q->bytes = st.bytes;
}

static void retain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	if (sq(q)->log) {
		stream_log_retain(sq(q)->log);
		refresh_counts(q);
	}
}

static void stream_init(struct queue *q)
{
	q->state = xcalloc(1, sizeof(struct stream));
}

static int stream_check_declare(struct bytes raw, bool durable,
    bool exclusive, bool auto_delete, const char *name, const char *vhost,
    struct amqp_error *err)
{
	static const char *const refused[] = {
		"x-max-length", "x-message-ttl", "x-expires",
		"x-dead-letter-exchange", "x-dead-letter-routing-key",
		"x-max-priority", "x-overflow", "x-single-active-consumer",
		"x-queue-mode", "x-queue-master-locator", "x-delivery-limit",
		"x-quorum-initial-group-size", "x-dead-letter-strategy",
	};
	struct field_table *t;
	const char *bad = NULL;

	/* The channel has named it already: amq.gen- is the broker's. */
	if (strncmp(name, "amq.gen-", 8) == 0)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "Cannot declare a server-named queue for type "
		    "rabbit_stream_queue");
	if (!durable)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid property 'non-durable' for queue '%s' in vhost "
		    "'%s'", name, vhost);
	if (exclusive)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid property 'exclusive-owner' for queue '%s' in "
		    "vhost '%s'", name, vhost);
	if (auto_delete)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid property 'auto-delete' for queue '%s' in vhost "
		    "'%s'", name, vhost);
	t = raw.len ? ftable_decode(raw) : NULL;
	for (size_t i = 0; t && bad == NULL &&
	    i < sizeof(refused) / sizeof(refused[0]); i++)
		if (ftable_get(t, refused[i]))
			bad = refused[i];
	ftable_free(t);
	if (bad)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid arg '%s' for queue '%s' in vhost '%s' of queue "
		    "type rabbit_stream_queue", bad, name, vhost);
	return 0;
}

static int stream_open(struct queue *q, struct amqp_error *err)
{
	struct broker *b = q->vh->broker;
	struct stream_log_options opt = {
		.max_segment_size = q->args.max_segment_size > 0 ?
		    (uint64_t)q->args.max_segment_size : DEFAULT_SEGMENT_SIZE,
		.max_bytes = q->args.max_length_bytes,
		.max_age_ms = q->args.max_age_ms,
	};
	char dir[4096], why[512];

	if (b->store == NULL || q->store_qid == 0)
		return amqp_fail(err, AMQP_INTERNAL_ERROR,
		    "stream queues need the message store");
	snprintf(dir, sizeof(dir), "%s/streams", b->cfg->data_dir);
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return amqp_fail(err, AMQP_INTERNAL_ERROR, "%s: %s", dir,
		    strerror(errno));
	snprintf(dir, sizeof(dir), "%s/streams/%016" PRIx64, b->cfg->data_dir,
	    q->store_qid);
	sq(q)->dir = xstrdup(dir);
	if (b->stream_reader == NULL)
		b->stream_reader = stream_reader_new(b->base);
	sq(q)->log = stream_log_open(b->store, b->stream_reader, dir, &opt, why,
	    sizeof(why));
	if (sq(q)->log == NULL) {
		log_error("stream '%s' in vhost '%s': %s", q->name,
		    q->vh->name, why);
		return amqp_fail(err, AMQP_INTERNAL_ERROR,
		    "cannot open stream '%s': %s", q->name, why);
	}
	sq(q)->offsets = stream_offsets_open(b->store, dir);
	stream_log_retain(sq(q)->log);
	refresh_counts(q);
	if (opt.max_age_ms > 0) {
		uint64_t every = (uint64_t)opt.max_age_ms / 10;

		struct timeval tv;

		if (every > RETAIN_MAX_INTERVAL_MS)
			every = RETAIN_MAX_INTERVAL_MS;
		if (every < 100)
			every = 100;
		tv.tv_sec = (time_t)(every / 1000);
		tv.tv_usec = (suseconds_t)(every % 1000) * 1000;
		sq(q)->retain_ev = event_new(b->base, -1, EV_PERSIST, retain_cb,
		    q);
		if (sq(q)->retain_ev == NULL)
			fatalx("event_new failed");
		event_add(sq(q)->retain_ev, &tv);
	}
	return 0;
}

static void stream_destroy(struct queue *q)
{
	struct stream *s = sq(q);
	struct store *store = q->vh->broker->store;

	if (s->retain_ev)
		event_free(s->retain_ev);
	if (s->offsets) {
		char path[4200];

		stream_offsets_close(s->offsets, q->deleted ? NULL : store);
		for (int i = 0; q->deleted && store && i < 2; i++) {
			snprintf(path, sizeof(path), "%s/offsets.%d", s->dir, i);
			unlink(path);
		}
	}
	if (s->log) {
		/* Without a store the broker is stopping: keep the files. */
		if (q->deleted && store)
			stream_log_remove(s->log, store);
		else
			stream_log_close(s->log, store);
	}
	free(s->dir);
	free(s);
}

/* x-stream-filter-value, when the message has one (a string). */
static struct bytes filter_value(const struct message *msg,
    struct field_table **t)
{
	const struct field_value *v;

	*t = NULL;
	if (!msg_has_prop(msg, PROP_headers) ||
	    !memmem(msg->headers.ptr, msg->headers.len,
	    "\x15" "x-stream-filter-value", 22))
		return (struct bytes){ NULL, 0 };
	*t = ftable_decode(msg->headers);
	v = ftable_get(*t, "x-stream-filter-value");
	return v && v->type == 'S' ? v->v.str : (struct bytes){ NULL, 0 };
}

static bool stream_push(struct queue *q, struct message *msg,
    uint64_t *ticket)
{
	struct stream_log *log = sq(q)->log;
	struct message *stamped;
	struct field_table *t;
	struct bytes filter;
	uint64_t t_done;

	if (log == NULL)
		return false;
	stamped = msg_with_header_long(msg, "x-stream-offset",
	    (int64_t)stream_log_next(log));
	filter = filter_value(msg, &t);
	t_done = stream_log_append(log, stamped, filter.ptr, filter.len);
	ftable_free(t);
	msg_unref(stamped);
	if (t_done > *ticket)
		*ticket = t_done;
	refresh_counts(q);
	queue_schedule_dispatch(q);
	return true;
}

/* Streams hand out through their own dispatch, never by pop. */
static bool stream_pop(struct queue *q, struct queue_entry *out)
{
	return false;
}

/* An ack, nack or reject only returns credit: the log keeps everything. */
static void stream_settle(struct queue *q, const struct queue_entry *e,
    enum settle_how how)
{
	msg_unref(e->msg);
}

static uint32_t stream_purge(struct queue *q)
{
	return 0;
}

static bool stream_recover_entry(struct queue *q,
    const struct store_recovered *msg,
    const struct store_recovered_entry *entry)
{
	return false;
}

/* As RabbitMQ 3.10: 540, which closes the connection. */
static int stream_refuse(struct queue *q, enum queue_request what,
    struct amqp_error *err)
{
	static const char *const what_text[] = {
		[QUEUE_GET] = "basic.get",
		[QUEUE_PURGE] = "queue.purge",
		[QUEUE_NACK] = "basic.nack and basic.reject",
	};

	err->connection_level = true;
	return amqp_fail(err, AMQP_NOT_IMPLEMENTED,
	    "%s not supported by stream queues queue '%s' in vhost '%s'",
	    what_text[what], q->name, q->vh->name);
}

/* Where x-stream-offset says to start; 0 or amqp_fail. */
static int start_offset(struct queue *q, const struct field_value *v,
    uint64_t *out, struct amqp_error *err)
{
	struct stream_log *log = sq(q)->log;
	uint64_t first = stream_log_first(log), next = stream_log_next(log);
	int64_t n, ms;

	if (v == NULL) {
		*out = next;
		return 0;
	}
	switch (v->type) {
	case 'x':
		/* RabbitMQ takes the keywords as byte arrays too */
		if (duration_parse(v->v.str, &ms))
			break;
		/* fall through */
	case 'S':
		if (bytes_eq_str(v->v.str, "first"))
			*out = first;
		else if (bytes_eq_str(v->v.str, "last"))
			*out = stream_log_last_chunk(log);
		else if (bytes_eq_str(v->v.str, "next"))
			*out = next;
		else if (duration_parse(v->v.str, &ms))
			*out = stream_log_since(log, ms);
		else
			break;
		return 0;
	case 'T':
		*out = stream_log_at_time(log, (int64_t)(v->v.u * 1000));
		return 0;
	case 'b': case 's': case 'I': case 'l':
	case 'B': case 'u': case 'i': case 'L':
		/* Past the end: wait there, as RabbitMQ does. */
		n = strchr("bsIl", v->type) ? v->v.i : (int64_t)v->v.u;
		*out = n < 0 || (uint64_t)n < first ? first : (uint64_t)n;
		return 0;
	}
	return amqp_fail(err, AMQP_PRECONDITION_FAILED,
	    "invalid arg 'x-stream-offset' for queue '%s' in vhost '%s': "
	    "expected first, last, next, an offset, a timestamp or an "
	    "interval such as 30m", q->name, q->vh->name);
}

/* A reader's chunks came off the disk: deliver them. */
static void wake_queue(void *arg)
{
	queue_schedule_dispatch(arg);
}

static int stream_check_consumer(struct queue *q, struct consumer *c,
    struct bytes args, struct amqp_error *err)
{
	struct field_table *t = args.len ? ftable_decode(args) : NULL;
	const struct field_value *v, *auto_track;
	struct stream_filter *filter;
	struct reader *r;
	uint64_t offset = 0;
	bool tracked;
	int rc;

	/* RabbitMQ's checks, in its order and words. */
	if (c->prefetch == 0) {
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "consumer prefetch count is not set for 'queue '%s' in "
		    "vhost '%s''", q->name, q->vh->name);
		goto out;
	}
	if (c->no_ack) {
		err->connection_level = true;
		rc = amqp_fail(err, AMQP_NOT_IMPLEMENTED,
		    "automatic acknowledgement not supported by stream queues "
		    "queue '%s' in vhost '%s'", q->name, q->vh->name);
		goto out;
	}
	if (ftable_get(t, "x-priority")) {
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid arg 'x-priority' for queue '%s' in vhost '%s' of "
		    "queue type rabbit_stream_queue", q->name, q->vh->name);
		goto out;
	}
	v = ftable_get(t, "x-stream-offset");
	auto_track = ftable_get(t, "x-stream-automatic-offset-tracking");
	if (auto_track && auto_track->type != 't') {
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid arg 'x-stream-automatic-offset-tracking' for queue "
		    "'%s' in vhost '%s': expected a boolean", q->name,
		    q->vh->name);
		goto out;
	}
	/* Offset tracking: asked for, or x-stream-offset = null. */
	tracked = (auto_track && auto_track->v.b) || (v && v->type == 'V');
	if (tracked && strncmp(c->tag, "amq.ctag-", 9) == 0) {
		rc = amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "offset tracking on stream queue '%s' in vhost '%s' needs "
		    "a consumer tag naming the consumer", q->name, q->vh->name);
		goto out;
	}
	if (tracked && stream_offsets_get(sq(q)->offsets, bytes_str(c->tag),
	    &offset)) {
		uint64_t first = stream_log_first(sq(q)->log);
		uint64_t next = stream_log_next(sq(q)->log);

		offset = offset < first ? first : offset > next ? next : offset;
	} else if (v && v->type == 'V') {
		offset = stream_log_first(sq(q)->log);
	} else if ((rc = start_offset(q, v, &offset, err)) != 0) {
		goto out;
	}
	if ((rc = parse_filter(q, t, &filter, err)) != 0)
		goto out;
	r = xcalloc(1, sizeof(*r));
	r->cursor.wake = wake_queue;
	r->cursor.wake_arg = q;
	r->offset = offset;
	r->tracked = tracked;
	r->filter = filter;
	c->type_state = r;
out:
	ftable_free(t);
	return rc;
}

/* A tracked consumer acked e: it has processed everything before it. */
static void stream_acked(struct queue *q, struct consumer *c,
    const struct queue_entry *e)
{
	struct reader *r = c->type_state;

	if (r && r->tracked && sq(q)->offsets)
		stream_offsets_commit(sq(q)->offsets, bytes_str(c->tag),
		    e->seq + 1);
}

static void stream_consumer_removed(struct queue *q, struct consumer *c)
{
	struct reader *r = c->type_state;

	if (r) {
		filter_free(r->filter);
		stream_cursor_clear(&r->cursor);
		free(r);
		c->type_state = NULL;
	}
}

/*
 * Hand each consumer with credit what it has not read yet, up to the
 * budget in all; false when the budget ran out first.
 */
static bool stream_dispatch(struct queue *q, int budget)
{
	struct stream_log *log = sq(q)->log;
	struct consumer *c;
	bool more = false;

	if (log == NULL)
		return true;
	TAILQ_FOREACH(c, &q->consumers, qlink) {
		struct reader *r = c->type_state;

		while (r && c->q == q && c->ops->has_credit(c) &&
		    r->offset < stream_log_next(log)) {
			struct queue_entry e = { .seq = r->offset };
			enum stream_read_result rc;
			struct bytes value;

			if (budget-- <= 0) {
				more = true;
				break;
			}
			if (r->offset < stream_log_first(log))
				r->offset = stream_log_first(log);
			if (r->filter) {
				r->offset = stream_log_skip(log, r->offset,
				    r->filter);
				if (r->offset >= stream_log_next(log))
					break;
			}
			rc = stream_log_read(log, &r->cursor, r->offset, &e.msg,
			    &value);
			if (rc == STREAM_READ_WAIT || rc == STREAM_READ_END)
				break;		/* woken when the read lands */
			e.seq = r->offset++;
			if (rc == STREAM_READ_SKIP)
				continue;	/* damaged on disk: logged */
			if (r->filter && !stream_filter_matches(r->filter,
			    value)) {
				msg_unref(e.msg);
				continue;
			}
			q->counters.delivered++;
			c->ops->deliver(c, &e);
			msg_unref(e.msg);
		}
		if (more)
			break;
	}
	return !more;
}

static void stream_stats(const struct queue *q, struct queue_stats *out)
{
	struct stream_log_stats st = { 0 };

	memset(out, 0, sizeof(*out));
	out->messages = q->count;
	out->bytes = q->bytes;
	out->consumers = q->n_consumers;
	out->unacked = q->unacked;
	out->stream = true;
	if (sq(q)->log) {
		stream_log_stats(sq(q)->log, &st);
		out->first_offset = stream_log_first(sq(q)->log);
		out->next_offset = stream_log_next(sq(q)->log);
		out->segments = st.segments;
		out->disk_bytes = st.bytes;
	}
}

static void stream_each_offset(const struct queue *q, queue_offset_fn *fn,
    void *arg)
{
	if (sq(q)->offsets)
		stream_offsets_each(sq(q)->offsets, fn, arg);
}

static uint64_t stream_memory(const struct queue *q)
{
	struct stream_log_stats st = { 0 };

	if (sq(q)->log)
		stream_log_stats(sq(q)->log, &st);
	return sizeof(*q) + sizeof(struct stream) + st.memory;
}

const struct queue_type queue_stream = {
	.name = "stream",
	.init = stream_init,
	.destroy = stream_destroy,
	.push = stream_push,
	.pop = stream_pop,
	.settle = stream_settle,
	.purge = stream_purge,
	.recover_entry = stream_recover_entry,
	.check_consumer = stream_check_consumer,
	.consumer_removed = stream_consumer_removed,
	.acked = stream_acked,
	.stats = stream_stats,
	.memory = stream_memory,
	.check_declare = stream_check_declare,
	.open = stream_open,
	.dispatch = stream_dispatch,
	.refuse = stream_refuse,
	.each_offset = stream_each_offset,
};
