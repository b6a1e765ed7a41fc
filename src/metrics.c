/*
 * Prometheus metrics in the text exposition format (see metrics.h), with
 * rabbitmq_prometheus's names where the concept is the same, so RabbitMQ's
 * published Grafana dashboards read Warren, and warren_* for what is
 * Warren's own (the message store, its sync latency).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "broker.h"
#include "config.h"
#include "connection.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "queue.h"
#include "queue_latency.h"
#include "store.h"
#include "strmap.h"
#include "vhost.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif

static void header(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* One sample without labels, under its own HELP and TYPE. */
static void sample(struct evbuffer *out, const char *name, const char *type,
    const char *help, uint64_t value)
{
	header(out, name, type, help);
	evbuffer_add_printf(out, "%s %llu\n", name, (unsigned long long)value);
}

/* A label value, escaped as the exposition format wants. */
static void label_value(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(out, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

struct queue_totals {
	uint64_t queues, ready, unacked, consumers, bytes, paged_out;
};

static void add_totals(struct queue *q, void *arg)
{
	struct queue_totals *t = arg;
	struct queue_stats st;

	queue_stats(q, &st);
	t->queues++;
	t->ready += st.messages;
	t->unacked += st.unacked;
	t->consumers += st.consumers;
	t->bytes += st.bytes;
	t->paged_out += st.paged_out;
}

static uint64_t resident_bytes(void)
{
	unsigned long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &pages, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void broker_metrics(struct broker *b, struct evbuffer *out)
{
	const struct broker_counters *c = &b->counters;
	uint64_t channels = 0, conns = 0, disk_free = 0;
	struct queue_totals t = { 0 };
	struct statvfs sv;
	struct conn *cn;
	char host[256] = "localhost";

	TAILQ_FOREACH(cn, &b->conns, link) {
		conns++;
		channels += cn->n_channels;
	}
	broker_each_queue(b, add_totals, &t);
	gethostname(host, sizeof(host) - 1);

	header(out, "rabbitmq_build_info", "untyped",
	    "The broker's version (the RabbitMQ whose behaviour it follows)");
	evbuffer_add_printf(out, "rabbitmq_build_info{rabbitmq_version="
	    "\"3.10.8\",product_name=\"Warren\",product_version=\"%s\"} 1\n",
	    PACKAGE_VERSION);
	header(out, "rabbitmq_identity_info", "untyped", "The node's name");
	evbuffer_add_printf(out, "rabbitmq_identity_info{rabbitmq_node="
	    "\"warren@%s\",rabbitmq_cluster=\"warren@%s\"} 1\n", host, host);

	if (statvfs(b->cfg->data_dir, &sv) == 0)
		disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	{
		const struct {
			const char *name, *type, *help;
			uint64_t value;
		} rows[] = {
		{ "rabbitmq_connections", "gauge",
		    "Connections open", conns },
		{ "rabbitmq_channels", "gauge",
		    "Channels open", channels },
		{ "rabbitmq_consumers", "gauge",
		    "Consumers", t.consumers },
		{ "rabbitmq_queues", "gauge",
		    "Queues", t.queues },
		{ "rabbitmq_queue_messages_ready", "gauge",
		    "Messages ready to be delivered", t.ready },
		{ "rabbitmq_queue_messages_unacked", "gauge",
		    "Messages delivered and not yet acknowledged", t.unacked },
		{ "rabbitmq_queue_messages", "gauge",
		    "Messages ready or unacknowledged", t.ready + t.unacked },
		{ "rabbitmq_queue_messages_ready_bytes", "gauge",
		    "Body bytes of the ready messages", t.bytes },
		{ "rabbitmq_queue_messages_paged_out", "gauge",
		    "Ready messages kept on disk, not in memory", t.paged_out },
		{ "rabbitmq_queue_consumers", "gauge",
		    "Consumers of queues", t.consumers },
		{ "rabbitmq_connections_opened_total", "counter",
		    "Connections opened", c->connections_opened },
		{ "rabbitmq_connections_closed_total", "counter",
		    "Connections closed", c->connections_closed },
		{ "rabbitmq_channels_opened_total", "counter",
		    "Channels opened", c->channels_opened },
		{ "rabbitmq_channels_closed_total", "counter",
		    "Channels closed", c->channels_closed },
		{ "rabbitmq_queues_created_total", "counter",
		    "Queues created", c->queues_created },
		{ "rabbitmq_queues_deleted_total", "counter",
		    "Queues deleted", c->queues_deleted },
		{ "rabbitmq_global_messages_received_total", "counter",
		    "Messages published to the broker", c->messages_received },
		{ "rabbitmq_global_messages_routed_total", "counter",
		    "Messages routed to at least one queue",
		    c->messages_routed },
		{ "rabbitmq_global_messages_unroutable_dropped_total",
		    "counter",
		    "Unroutable messages dropped", c->unroutable_dropped },
		{ "rabbitmq_global_messages_unroutable_returned_total",
		    "counter",
		    "Unroutable messages returned to publishers",
		    c->unroutable_returned },
		{ "rabbitmq_global_messages_confirmed_total", "counter",
		    "Messages confirmed to publishers", c->messages_confirmed },
		{ "rabbitmq_global_messages_delivered_total", "counter",
		    "Messages delivered to consumers or fetched with basic.get",
		    c->messages_delivered + c->messages_get },
		{ "rabbitmq_global_messages_delivered_get_total", "counter",
		    "Messages fetched with basic.get", c->messages_get },
		{ "rabbitmq_global_messages_redelivered_total", "counter",
		    "Messages delivered again after a requeue",
		    c->messages_redelivered },
		{ "rabbitmq_global_messages_acknowledged_total", "counter",
		    "Messages acknowledged by consumers",
		    c->messages_acknowledged },
		{ "rabbitmq_process_resident_memory_bytes", "gauge",
		    "Resident memory of the broker process", resident_bytes() },
		{ "rabbitmq_resident_memory_limit_bytes", "gauge",
		    "Message memory above which publishers are blocked",
		    b->memory_limit },
		{ "rabbitmq_disk_space_available_bytes", "gauge",
		    "Free space in the data directory's file system",
		    disk_free },
		{ "rabbitmq_disk_space_available_limit_bytes", "gauge",
		    "Free space below which publishers are blocked",
		    b->cfg->disk_free_limit },
		{ "rabbitmq_alarms_memory_used_watermark", "gauge",
		    "1 while the memory alarm is in effect",
		    (b->alarms & ALARM_MEMORY) != 0 },
		{ "rabbitmq_alarms_free_disk_space_watermark", "gauge",
		    "1 while the disk alarm is in effect",
		    (b->alarms & ALARM_DISK) != 0 },
		{ "warren_message_bytes", "gauge",
		    "Bytes held by messages in memory", msg_live_bytes() },
		{ "warren_alarm_store_write_failing", "gauge",
		    "1 while the message store's writes fail",
		    (b->alarms & ALARM_STORE) != 0 },
		{ "warren_store_behind", "gauge",
		    "1 while publishers wait for the message store to catch up",
		    b->store_behind },
		};

		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
			sample(out, rows[i].name, rows[i].type, rows[i].help,
			    rows[i].value);
	}
}

static void store_metrics(struct store *s, struct evbuffer *out)
{
	struct store_metrics m;

	if (s == NULL)
		return;
	store_get_metrics(s, &m);
	sample(out, "warren_store_segments", "gauge",
	    "Segment files in the message store", m.segments);
	sample(out, "warren_store_written_bytes_total", "counter",
	    "Bytes written to the message store", m.bytes_written);
	sample(out, "warren_store_pending_bytes", "gauge",
	    "Bytes waiting to be written to the message store", m.pending);
	header(out, "warren_store_sync_seconds", "histogram",
	    "Time the message store's fdatasync calls took");
	for (int i = 0; i < STORE_SYNC_BUCKETS; i++)
		evbuffer_add_printf(out, "warren_store_sync_seconds_bucket"
		    "{le=\"%g\"} %llu\n", store_sync_bucket_le[i],
		    (unsigned long long)m.sync_le[i]);
	evbuffer_add_printf(out, "warren_store_sync_seconds_bucket"
	    "{le=\"+Inf\"} %llu\n", (unsigned long long)m.syncs);
	evbuffer_add_printf(out, "warren_store_sync_seconds_sum %.9f\n",
	    m.sync_seconds);
	evbuffer_add_printf(out, "warren_store_sync_seconds_count %llu\n",
	    (unsigned long long)m.syncs);
}

/* ---- per object ------------------------------------------------------------ */

static const struct {
	const char *name, *help;
} per_queue[] = {
	{ "rabbitmq_queue_messages_ready", "Messages ready to be delivered" },
	{ "rabbitmq_queue_messages_unacked",
	    "Messages delivered and not yet acknowledged" },
	{ "rabbitmq_queue_messages", "Messages ready or unacknowledged" },
	{ "rabbitmq_queue_consumers", "Consumers of the queue" },
	{ "rabbitmq_queue_messages_published_total",
	    "Messages the queue accepted" },
	/* streams only, from here on (FIRST_STREAM_METRIC) */
	{ "warren_stream_first_offset", "The oldest offset a stream keeps" },
	{ "warren_stream_last_offset", "The newest offset in a stream" },
	{ "warren_stream_segments", "Segment files of a stream" },
	{ "warren_stream_disk_bytes", "Bytes in a stream's segment files" },
};
#define FIRST_STREAM_METRIC 5

/* A sample's name and labels, up to its value. */
static void queue_labels(struct evbuffer *out, const char *name,
    const struct queue *q)
{
	evbuffer_add_printf(out, "%s{vhost=\"", name);
	label_value(out, q->vh->name);
	evbuffer_add_printf(out, "\",queue=\"");
	label_value(out, q->name);
	evbuffer_add_printf(out, "\"} ");
}

struct per_queue_arg {
	struct evbuffer *out;
	size_t which;
};

static void queue_sample(struct queue *q, void *arg)
{
	struct per_queue_arg *a = arg;
	struct queue_stats st;
	uint64_t v[9];

	queue_stats(q, &st);
	if (a->which >= FIRST_STREAM_METRIC && (!st.stream ||
	    (a->which == 6 && st.next_offset == 0)))
		return;
	v[0] = st.messages;
	v[1] = st.unacked;
	v[2] = st.messages + st.unacked;
	v[3] = st.consumers;
	v[4] = st.counters.published;
	v[5] = st.first_offset;
	v[6] = st.next_offset - 1;
	v[7] = st.segments;
	v[8] = st.disk_bytes;

	queue_labels(a->out, per_queue[a->which].name, q);
	evbuffer_add_printf(a->out, "%llu\n", (unsigned long long)v[a->which]);
}

struct offset_arg {
	struct evbuffer *out;
	struct queue *q;
	uint64_t next;			/* for the lag; 0: print the offset */
	bool lag;
};

static void offset_sample(void *arg, struct bytes name, uint64_t offset)
{
	struct offset_arg *a = arg;
	char consumer[256];

	snprintf(consumer, sizeof(consumer), "%.*s", (int)name.len,
	    (const char *)name.ptr);
	evbuffer_add_printf(a->out, "%s{vhost=\"", a->lag ?
	    "warren_stream_consumer_lag" : "warren_stream_consumer_offset");
	label_value(a->out, a->q->vh->name);
	evbuffer_add_printf(a->out, "\",queue=\"");
	label_value(a->out, a->q->name);
	evbuffer_add_printf(a->out, "\",consumer=\"");
	label_value(a->out, consumer);
	evbuffer_add_printf(a->out, "\"} %llu\n", (unsigned long long)(a->lag ?
	    (a->next > offset ? a->next - offset : 0) : offset));
}

static void offsets_of(struct queue *q, struct evbuffer *out, bool lag)
{
	struct offset_arg a = { out, q, 0, lag };
	struct queue_stats st;

	if (lag) {
		queue_stats(q, &st);
		a.next = st.next_offset;
	}
	queue_each_offset(q, offset_sample, &a);
}

static void stream_offsets_sample(struct queue *q, void *out)
{
	offsets_of(q, out, false);
}

static void stream_lag_sample(struct queue *q, void *out)
{
	offsets_of(q, out, true);
}

/* queue_latency.h's figures, for queues that have them. */
enum latency_figure { OLDEST_AGE, WAIT_P50, WAIT_P99, ACK_P50, ACK_P99,
    UTILISATION, N_LATENCY_FIGURES };

static const struct {
	const char *name, *help;
} latency_rows[N_LATENCY_FIGURES] = {
	{ "warren_queue_oldest_ready_age_seconds",
	    "How long the oldest ready message has waited" },
	{ "warren_queue_time_in_queue_p50_seconds",
	    "Median time from enqueue to delivery over the last minute" },
	{ "warren_queue_time_in_queue_p99_seconds",
	    "99th percentile of enqueue to delivery over the last minute" },
	{ "warren_queue_delivery_to_ack_p50_seconds",
	    "Median time from delivery to ack over the last minute" },
	{ "warren_queue_delivery_to_ack_p99_seconds",
	    "99th percentile of delivery to ack over the last minute" },
	{ "rabbitmq_queue_consumer_utilisation",
	    "Share of the last minute with consumers in which the queue could "
	    "deliver at once" },
};

/* One queue's figures, read once per scrape and printed per family. */
struct latency_row {
	struct queue *q;
	bool has[N_LATENCY_FIGURES];
	double value[N_LATENCY_FIGURES];
};

struct latency_rows {
	struct latency_row *rows;
	size_t n, cap;
};

static void latency_collect(struct queue *q, void *arg)
{
	struct latency_rows *all = arg;
	uint64_t now = q->vh->broker->clock_ms;
	struct latency_row *row;
	struct qlat_report r;
	int64_t age;

	/* Streams are read at offsets: their figures are lags, not waits. */
	if (!queue_browsable(q))
		return;
	if (all->n == all->cap) {
		all->cap = all->cap ? 2 * all->cap : 64;
		all->rows = xrealloc(all->rows, all->cap * sizeof(*all->rows));
	}
	row = &all->rows[all->n++];
	memset(row, 0, sizeof(*row));
	row->q = q;
	qlat_report(q, now, &r);
	if ((age = queue_oldest_age(q, now)) >= 0) {
		row->has[OLDEST_AGE] = true;
		row->value[OLDEST_AGE] = (double)age / 1000.0;
	}
	row->has[WAIT_P50] = row->has[WAIT_P99] = r.has_waits;
	row->value[WAIT_P50] = (double)r.wait_p50 / 1000.0;
	row->value[WAIT_P99] = (double)r.wait_p99 / 1000.0;
	row->has[ACK_P50] = row->has[ACK_P99] = r.has_acks;
	row->value[ACK_P50] = (double)r.ack_p50 / 1000.0;
	row->value[ACK_P99] = (double)r.ack_p99 / 1000.0;
	row->has[UTILISATION] = r.utilisation >= 0;
	row->value[UTILISATION] = r.utilisation;
}

static void latency_metrics(struct broker *b, struct evbuffer *out)
{
	struct latency_rows all = { NULL, 0, 0 };

	b->clock_ms = conn_now_ms();
	broker_each_queue(b, latency_collect, &all);
	for (int i = 0; i < N_LATENCY_FIGURES; i++) {
		header(out, latency_rows[i].name, "gauge", latency_rows[i].help);
		for (size_t j = 0; j < all.n; j++) {
			if (!all.rows[j].has[i])
				continue;
			queue_labels(out, latency_rows[i].name, all.rows[j].q);
			evbuffer_add_printf(out, "%.4f\n", all.rows[j].value[i]);
		}
	}
	free(all.rows);
}

void metrics_render(struct broker *b, bool per_object, struct evbuffer *out)
{
	if (!per_object) {
		broker_metrics(b, out);
		store_metrics(b->store, out);
		return;
	}
	for (size_t i = 0; i < sizeof(per_queue) / sizeof(per_queue[0]); i++) {
		struct per_queue_arg a = { out, i };

		header(out, per_queue[i].name, i == 4 ? "counter" : "gauge",
		    per_queue[i].help);
		broker_each_queue(b, queue_sample, &a);
	}
	latency_metrics(b, out);
	header(out, "warren_stream_consumer_offset", "gauge",
	    "The offset stored for a named stream consumer");
	broker_each_queue(b, stream_offsets_sample, out);
	header(out, "warren_stream_consumer_lag", "gauge",
	    "Messages a named stream consumer has yet to process");
	broker_each_queue(b, stream_lag_sample, out);
}
