/*
 * Queue argument parsing and validation.  A table of known arguments says
 * what each accepts; unknown arguments are kept (they are part of the
 * queue's identity) but ignored, as in RabbitMQ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"
#include "connection.h"
#include "field_table.h"
#include "log.h"
#include "queue_args.h"

enum arg_kind { ARG_NONNEG_INT, ARG_TTL, ARG_POS_TTL, ARG_PRIORITY,
    ARG_STRING, ARG_BOOL, ARG_OVERFLOW, ARG_QUEUE_TYPE, ARG_DURATION };

/* RabbitMQ's ceiling for TTLs and expiries: ten years in milliseconds. */
#define MAX_TTL_MS 315360000000LL

static const struct {
	const char *name;
	enum arg_kind kind;
	size_t off;
} known_args[] = {
	{ "x-message-ttl", ARG_TTL, offsetof(struct queue_args, message_ttl) },
	{ "x-expires", ARG_POS_TTL, offsetof(struct queue_args, expires) },
	{ "x-max-length", ARG_NONNEG_INT, offsetof(struct queue_args, max_length) },
	{ "x-max-length-bytes", ARG_NONNEG_INT,
	    offsetof(struct queue_args, max_length_bytes) },
	{ "x-overflow", ARG_OVERFLOW, offsetof(struct queue_args, overflow) },
	{ "x-dead-letter-exchange", ARG_STRING, offsetof(struct queue_args, dlx) },
	{ "x-dead-letter-routing-key", ARG_STRING,
	    offsetof(struct queue_args, dl_routing_key) },
	{ "x-max-priority", ARG_PRIORITY, offsetof(struct queue_args, max_priority) },
	{ "x-single-active-consumer", ARG_BOOL,
	    offsetof(struct queue_args, single_active_consumer) },
	{ "x-consumer-timeout", ARG_NONNEG_INT,
	    offsetof(struct queue_args, consumer_timeout) },
	{ "x-queue-type", ARG_QUEUE_TYPE, offsetof(struct queue_args, kind) },
	{ "x-max-age", ARG_DURATION, offsetof(struct queue_args, max_age_ms) },
	{ "x-stream-max-segment-size-bytes", ARG_NONNEG_INT,
	    offsetof(struct queue_args, max_segment_size) },
	{ "x-delivery-limit", ARG_NONNEG_INT,
	    offsetof(struct queue_args, delivery_limit) },
};

bool duration_parse(struct bytes s, int64_t *ms)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = {
		{ 'Y', 365LL * 86400000 }, { 'M', 30LL * 86400000 },
		{ 'D', 86400000 }, { 'h', 3600000 }, { 'm', 60000 },
		{ 's', 1000 },
	};
	int64_t n = 0;
	uint32_t i;

	if (s.len < 2)
		return false;
	for (i = 0; i + 1 < s.len; i++) {
		if (s.ptr[i] < '0' || s.ptr[i] > '9' || n > INT64_MAX / 100)
			return false;
		n = n * 10 + (s.ptr[i] - '0');
	}
	for (size_t u = 0; n > 0 && u < sizeof(units) / sizeof(units[0]); u++)
		if (s.ptr[i] == units[u].unit && n <= INT64_MAX / units[u].ms) {
			*ms = n * units[u].ms;
			return true;
		}
	return false;
}

static int check_arg(const struct field_value *v, enum arg_kind kind,
    void *field, char *why, size_t whylen)
{
	int64_t n;

	switch (kind) {
	case ARG_NONNEG_INT:
	case ARG_TTL:
	case ARG_POS_TTL:
	case ARG_PRIORITY:
		if (!fvalue_int64(v, &n)) {
			snprintf(why, whylen, "expected an integer");
			return -1;
		}
		if ((kind == ARG_NONNEG_INT || kind == ARG_TTL) && n < 0) {
			snprintf(why, whylen, "%lld is negative", (long long)n);
			return -1;
		}
		if (kind == ARG_POS_TTL && n < 1) {
			snprintf(why, whylen, "%lld is not positive", (long long)n);
			return -1;
		}
		if ((kind == ARG_TTL || kind == ARG_POS_TTL) && n > MAX_TTL_MS) {
			snprintf(why, whylen, "%lld is larger than %lld",
			    (long long)n, MAX_TTL_MS);
			return -1;
		}
		if (kind == ARG_PRIORITY) {
			/* 0 is accepted and means an ordinary queue. */
			if (n < 0 || n > 255) {
				snprintf(why, whylen,
				    "%lld is not in 0..255", (long long)n);
				return -1;
			}
			*(uint8_t *)field = (uint8_t)n;
			return 0;
		}
		*(int64_t *)field = n;
		return 0;
	case ARG_STRING:
		if (v->type != 'S') {
			snprintf(why, whylen, "expected a string");
			return -1;
		}
		free(*(char **)field);
		*(char **)field = bytes_strdup(v->v.str);
		return 0;
	case ARG_BOOL:
		if (v->type != 't') {
			snprintf(why, whylen, "expected a boolean");
			return -1;
		}
		*(bool *)field = v->v.b;
		return 0;
	case ARG_OVERFLOW:
		if (v->type == 'S' && bytes_eq_str(v->v.str, "drop-head"))
			*(enum overflow *)field = OVERFLOW_DROP_HEAD;
		else if (v->type == 'S' && bytes_eq_str(v->v.str, "reject-publish"))
			*(enum overflow *)field = OVERFLOW_REJECT_PUBLISH;
		else if (v->type == 'S' &&
		    bytes_eq_str(v->v.str, "reject-publish-dlx"))
			*(enum overflow *)field = OVERFLOW_REJECT_PUBLISH_DLX;
		else {
			snprintf(why, whylen, "expected drop-head, "
			    "reject-publish or reject-publish-dlx");
			return -1;
		}
		return 0;
	case ARG_QUEUE_TYPE:
		if (v->type == 'S' && bytes_eq_str(v->v.str, "classic"))
			*(enum queue_kind *)field = QUEUE_KIND_CLASSIC;
		else if (v->type == 'S' && bytes_eq_str(v->v.str, "stream"))
			*(enum queue_kind *)field = QUEUE_KIND_STREAM;
		else {
			snprintf(why, whylen, "expected classic or stream");
			return -1;
		}
		return 0;
	case ARG_DURATION:
		if (v->type != 'S' || !duration_parse(v->v.str, (int64_t *)field)) {
			snprintf(why, whylen, "expected a duration such as 7D, "
			    "12h, 30m or 10s");
			return -1;
		}
		return 0;
	}
	return -1;
}

int queue_args_parse(struct bytes raw, const char *name, const char *vhost,
    struct queue_args *out, struct amqp_error *err)
{
	struct field_table *t;
	char why[128];

	memset(out, 0, sizeof(*out));
	out->message_ttl = out->expires = -1;
	out->max_length = out->max_length_bytes = -1;
	out->consumer_timeout = -1;
	out->max_age_ms = out->max_segment_size = -1;
	out->delivery_limit = -1;
	dedup_args_parse(NULL, "queue", name, vhost, &out->dedup, err);
	if (raw.len == 0)
		return 0;
	if ((t = ftable_decode(raw)) == NULL)
		fatalx("queue arguments were validated but do not decode");
	for (size_t i = 0; i < sizeof(known_args) / sizeof(known_args[0]); i++) {
		const struct field_value *v = ftable_get(t, known_args[i].name);

		if (v && check_arg(v, known_args[i].kind,
		    (char *)out + known_args[i].off, why, sizeof(why)) != 0) {
			ftable_free(t);
			queue_args_free(out);
			return amqp_fail(err, AMQP_PRECONDITION_FAILED,
			    "invalid arg '%s' for queue '%s' in vhost '%s': %s",
			    known_args[i].name, name, vhost, why);
		}
	}
	if (dedup_args_parse(t, "queue", name, vhost, &out->dedup, err) != 0) {
		ftable_free(t);
		queue_args_free(out);
		return AMQP_PRECONDITION_FAILED;
	}
	ftable_free(t);
	if (out->dl_routing_key && out->dlx == NULL) {
		queue_args_free(out);
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "invalid arg 'x-dead-letter-routing-key' for queue '%s' in "
		    "vhost '%s': requires x-dead-letter-exchange", name, vhost);
	}
	return 0;
}

void queue_args_free(struct queue_args *a)
{
	free(a->dlx);
	free(a->dl_routing_key);
	a->dlx = a->dl_routing_key = NULL;
	dedup_args_free(&a->dedup);
}

bool expiration_parse(struct bytes e, bool present, int64_t *ttl)
{
	uint32_t i = 0;
	bool negative = false;
	int64_t n = 0;

	*ttl = -1;
	if (!present)
		return true;
	/* An Erlang integer literal, as RabbitMQ reads it: "+5", "-0" too. */
	if (e.len > 0 && (e.ptr[0] == '+' || e.ptr[0] == '-')) {
		negative = e.ptr[0] == '-';
		i = 1;
	}
	if (i == e.len)
		return false;
	for (; i < e.len; i++) {
		if (e.ptr[i] < '0' || e.ptr[i] > '9')
			return false;
		n = n * 10 + (e.ptr[i] - '0');
		if (n > MAX_TTL_MS)
			return false;
	}
	if (negative && n != 0)
		return false;
	*ttl = n;
	return true;
}
