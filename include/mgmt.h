/*
 * The HTTP management API: RabbitMQ's paths and JSON (rabbitmq_management)
 * on libevent's evhttp, in the broker's own loop, so handlers read and
 * change the broker directly and never race the AMQP side.
 *
 * mgmt.c is the server: the listener, HTTP basic auth against the broker's
 * users, access by tags as RabbitMQ grants it, the route table, path and
 * query decoding, JSON replies and errors.  The handlers are in
 * mgmt_access.c (whoami, users, vhosts, permissions) and mgmt_objects.c
 * (overview, queues, exchanges, definitions, health checks); they share
 * mgmt_handlers.h.
 */
#ifndef WARREN_MGMT_H
#define WARREN_MGMT_H

#include <stdbool.h>

struct broker;

/*
 * Listen on management.tcp.ip:port and on prometheus.tcp.ip:port (for
 * /metrics); either is off when its port is 0.
 */
bool mgmt_start(struct broker *b);
/* SIGHUP: the HTTPS API's certificate, key and CAs read again (kept as
 * they were, with an error logged, if they no longer load). */
void mgmt_reload_tls(struct broker *b);
void mgmt_stop(struct broker *b);

#endif
