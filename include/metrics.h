/*
 * Prometheus metrics (metrics.c), served by the HTTP server (mgmt.c) on
 * prometheus.tcp.port at /metrics (totals) and /metrics/per-object (one
 * sample per queue, labelled vhost and queue), as RabbitMQ's
 * rabbitmq_prometheus plugin serves them.
 */
#ifndef WARREN_METRICS_H
#define WARREN_METRICS_H

#include <stdbool.h>

struct broker;
struct evbuffer;

void metrics_render(struct broker *b, bool per_object, struct evbuffer *out);

#endif
