/*
 * Virtual hosts: the queue and exchange namespaces and the cascade of
 * deletions (a queue takes its bindings along; an auto-delete exchange goes
 * when its last binding does).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "broker.h"
#include "dedup.h"
#include "exchange.h"
#include "journal.h"
#include "log.h"
#include "queue.h"
#include "strmap.h"
#include "vhost.h"

static const struct {
	const char *name;
	const struct exchange_type *type;
	bool internal;
} predeclared[] = {
	{ "amq.direct", &exchange_direct, false },
	{ "amq.fanout", &exchange_fanout, false },
	{ "amq.topic", &exchange_topic, false },
	{ "amq.headers", &exchange_headers, false },
	{ "amq.match", &exchange_headers, false },
	{ "amq.rabbitmq.trace", &exchange_topic, true },
};

struct vhost *vhost_new(struct broker *b, const char *name)
{
	struct vhost *vh = xcalloc(1, sizeof(*vh));
	struct exchange *x;

	vh->name = xstrdup(name);
	vh->broker = b;
	vh->max_connections = vh->max_queues = -1;
	vh->queues = strmap_new();
	vh->exchanges = strmap_new();
	x = vhost_add_exchange(vh, BYTES_LIT(""), &exchange_default);
	x->durable = true;
	for (size_t i = 0; i < sizeof(predeclared) / sizeof(predeclared[0]); i++) {
		x = vhost_add_exchange(vh, bytes_str(predeclared[i].name),
		    predeclared[i].type);
		x->durable = true;
		x->internal = predeclared[i].internal;
	}
	return vh;
}

void vhost_set_tracing(struct vhost *vh, bool on)
{
	if (on == (vh->journal != NULL))
		return;
	if (on) {
		vh->journal = journal_new();
	} else {
		journal_free(vh->journal);
		vh->journal = NULL;
	}
	log_info("vhost '%s': tracing %s", vh->name, on ? "on" : "off");
}

void vhost_free(struct vhost *vh)
{
	journal_free(vh->journal);
	struct bytes k;
	void *v;

	/* Exchanges first: freeing one unlinks its bindings from queues. */
	for (size_t it = 0; strmap_next(vh->exchanges, &it, &k, &v); )
		exchange_free(v);
	strmap_free(vh->exchanges);
	for (size_t it = 0; strmap_next(vh->queues, &it, &k, &v); ) {
		queue_delete(v);
		queue_unref(v);
	}
	strmap_free(vh->queues);
	free(vh->name);
	free(vh);
}

struct queue *vhost_find_queue(struct vhost *vh, struct bytes name)
{
	return strmap_get(vh->queues, name);
}

struct queue *vhost_add_queue(struct vhost *vh, struct bytes name,
    struct queue_args *args)
{
	struct queue *q = queue_new(vh, name, args);

	vh->broker->counters.queues_created++;
	strmap_put(vh->queues, name, q);
	return q;
}

void vhost_remove_queue(struct vhost *vh, struct queue *q)
{
	struct binding *b;

	while ((b = TAILQ_FIRST(&q->inbound)) != NULL)
		vhost_unbind(vh, b);
	if (q->store_qid)
		broker_durable_changed(vh->broker);
	strmap_del(vh->queues, bytes_str(q->name));
	vh->broker->counters.queues_deleted++;
	/* Deleted for good: its dedup cache's file goes too. */
	dedup_free(q->dedup, true);
	q->dedup = NULL;
	queue_delete(q);
	queue_unref(q);
}

struct exchange *vhost_find_exchange(struct vhost *vh, struct bytes name)
{
	return strmap_get(vh->exchanges, name);
}

struct exchange *vhost_add_exchange(struct vhost *vh, struct bytes name,
    const struct exchange_type *type)
{
	struct exchange *x = exchange_new(vh, name, type);

	strmap_put(vh->exchanges, name, x);
	return x;
}

void vhost_unbind(struct vhost *vh, struct binding *b)
{
	struct exchange *source = b->source;

	exchange_unbind(b);
	if (source->auto_delete && source->n_bindings == 0)
		vhost_remove_exchange(vh, source);
}

void vhost_remove_exchange(struct vhost *vh, struct exchange *x)
{
	struct binding *b;

	if (x->durable)
		broker_durable_changed(vh->broker);
	strmap_del(vh->exchanges, bytes_str(x->name));
	exchange_discard_state(x);
	/* Unbinding from x's destinations cannot cascade back to x: it is
	 * no longer in the namespace, and it goes once its lists are empty. */
	while ((b = TAILQ_FIRST(&x->bindings)) != NULL)
		exchange_unbind(b);
	while ((b = TAILQ_FIRST(&x->inbound)) != NULL)
		vhost_unbind(vh, b);
	exchange_free(x);
}

void vhost_object_digest(const char *kind, const char *vhost, const char *name,
    unsigned char out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;

	if (ctx == NULL)
		fatalx("EVP_MD_CTX_new failed");
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, kind, strlen(kind) + 1);
	EVP_DigestUpdate(ctx, vhost, strlen(vhost) + 1);
	EVP_DigestUpdate(ctx, name, strlen(name));
	EVP_DigestFinal_ex(ctx, out, &n);
	EVP_MD_CTX_free(ctx);
}
