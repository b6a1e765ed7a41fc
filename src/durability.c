/*
 * What survives a restart, by RabbitMQ's rules: durable exchanges, durable
 * (non-exclusive) queues and the bindings between durable ends, kept as a
 * definitions file (RabbitMQ's JSON) in the data directory; persistent
 * messages of durable queues, kept by the message store.
 *
 * The definitions file is rewritten whole (atomically) whenever durable
 * metadata changed, at the end of the input turn that changed it: before
 * the declare-ok or bind-ok leaves the process, the change is on disk.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "broker.h"
#include "config.h"
#include "definitions.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "store.h"
#include "strmap.h"
#include "vhost.h"

#define DEFINITIONS_FILE	"definitions.json"
#define STORE_DIR		"msg_store"

static void data_path(const struct broker *b, const char *name, char *out,
    size_t outlen)
{
	snprintf(out, outlen, "%s/%s", b->cfg->data_dir, name);
}

void broker_durable_changed(struct broker *b)
{
	if (b)
		b->durable_dirty = true;
}

void broker_save_definitions(struct broker *b)
{
	char path[4096], err[512];

	if (!b->durable_dirty || b->stopping)
		return;
	b->durable_dirty = false;
	data_path(b, DEFINITIONS_FILE, path, sizeof(path));
	if (!definitions_save(b, path, err, sizeof(err)))
		log_error("cannot save definitions: %s", err);
}

static void on_synced(void *arg, uint64_t ticket)
{
	broker_store_synced(arg, ticket);
}

/* The store's recovered entries go to the queue with their qid. */
static bool recover_entry(void *arg, uint64_t qid, struct message *msg,
    uint32_t enq_seg, bool delivered)
{
	struct strmap *by_qid = arg;
	uint8_t key[8];
	struct queue *q;

	le64_put(key, qid);
	if ((q = strmap_get(by_qid, (struct bytes){ key, 8 })) == NULL)
		return false;
	queue_recover_entry(q, msg, enq_seg, delivered);
	return true;
}

static struct strmap *queues_by_qid(struct broker *b)
{
	struct strmap *m = strmap_new();
	struct bytes k, qk;
	void *v, *qv;

	for (size_t it = 0; strmap_next(b->vhosts, &it, &k, &v); ) {
		struct vhost *vh = v;

		for (size_t qit = 0; strmap_next(vh->queues, &qit, &qk, &qv); ) {
			struct queue *q = qv;
			uint8_t key[8];

			if (q->store_qid == 0)
				continue;
			le64_put(key, q->store_qid);
			strmap_put(m, (struct bytes){ key, 8 }, q);
		}
	}
	return m;
}

static bool load_definitions(struct broker *b, const char *path)
{
	char err[1024];

	if (!definitions_load_file(b, path, err, sizeof(err))) {
		log_error("%s", err);
		return false;
	}
	return true;
}

bool broker_recover(struct broker *b)
{
	const struct warren_config *cfg = b->cfg;
	struct store_options opt = { cfg->store_segment_size,
	    cfg->store_sync_delay_us };
	struct store_recovery st;
	struct strmap *by_qid;
	char path[4096], err[512];
	struct stat sb;
	bool ok;

	data_path(b, DEFINITIONS_FILE, path, sizeof(path));
	if (stat(path, &sb) == 0 && !load_definitions(b, path))
		return false;
	if (cfg->load_definitions && !load_definitions(b, cfg->load_definitions))
		return false;
	broker_save_definitions(b);

	data_path(b, STORE_DIR, path, sizeof(path));
	b->store = store_open(b->base, path, &opt, on_synced, b, err,
	    sizeof(err));
	if (b->store == NULL) {
		log_error("message store: %s", err);
		return false;
	}
	by_qid = queues_by_qid(b);
	ok = store_recover(b->store, recover_entry, by_qid, &st);
	strmap_free(by_qid);
	return ok;
}

void broker_close_store(struct broker *b)
{
	broker_save_definitions(b);
	b->stopping = true;
	store_close(b->store);
	b->store = NULL;
}
