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
#include <dirent.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "broker.h"
#include "config.h"
#include "definitions.h"
#include "delayed.h"
#include "exchange.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "store.h"
#include "strmap.h"
#include "vhost.h"

#define DEFINITIONS_FILE	"definitions.json"
#define STORE_DIR		"msg_store"
#define TAILS_DIR		"paged"		/* queue_tail files */
#define LOCK_FILE		"warrend.lock"
#define FORMAT_FILE		"FORMAT"
/*
 * The data directory's layout: raise it when a warrend could misread an
 * older directory, and teach that warrend to convert.  A warrend refuses
 * a directory of a newer format rather than damage it.
 */
#define DATA_FORMAT		1
#define FORMAT_MAGIC		"warren-data-format"

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

static void on_store_state(void *arg, const struct store_state *st)
{
	struct broker *b = arg;

	/* What cannot be stored is refused: block publishers meanwhile. */
	if (st->failing != !!(b->alarms & ALARM_STORE)) {
		if (st->failing)
			log_warning("message store cannot write; blocking "
			    "publishers and nacking what needs the store "
			    "until it can");
		else
			log_warning("message store writes again; unblocking "
			    "publishers");
		broker_set_alarm(b, ALARM_STORE, st->failing);
	}
	/* A disk slower than the publishers: slow them down, silently. */
	if (st->behind != b->store_behind) {
		if (st->behind)
			log_info("message store is behind; slowing publishers");
		else
			log_info("message store caught up; publishers resume "
			    "(at most %llu bytes waited)",
			    (unsigned long long)st->peak_pending);
		broker_set_flow(b, st->behind);
	}
	broker_store_synced(b, st->synced, st->failing);
}

/* Who owns a store id: durable queues and delayed exchanges. */
struct owners {
	struct strmap *queues, *delayed;
};

/* The store's recovered entries go to the owner of their qid. */
static bool recover_entry(void *arg, uint64_t qid,
    const struct store_recovered *msg,
    const struct store_recovered_entry *entry)
{
	struct owners *o = arg;
	uint8_t key[8];
	struct queue *q;
	struct delayed *d;

	le64_put(key, qid);
	if ((q = strmap_get(o->queues, (struct bytes){ key, 8 })) != NULL)
		return queue_recover_entry(q, msg, entry);
	if ((d = strmap_get(o->delayed, (struct bytes){ key, 8 })) != NULL)
		return delayed_recover(d, msg, entry);
	return false;
}

static struct strmap *delayed_by_qid(struct broker *b)
{
	struct strmap *m = strmap_new();
	struct bytes k, xk;
	void *v, *x;
	uint8_t key[8];

	for (size_t it = 0; strmap_next(b->vhosts, &it, &k, &v); ) {
		struct vhost *vh = v;

		for (size_t xi = 0; strmap_next(vh->exchanges, &xi, &xk, &x); ) {
			struct delayed *d = ((struct exchange *)x)->delayed;

			if (d == NULL || delayed_qid(d) == 0)
				continue;
			le64_put(key, delayed_qid(d));
			strmap_put(m, (struct bytes){ key, 8 }, d);
		}
	}
	return m;
}

static void add_by_qid(struct queue *q, void *m)
{
	uint8_t key[8];

	if (q->store_qid == 0)
		return;
	le64_put(key, q->store_qid);
	strmap_put(m, (struct bytes){ key, 8 }, q);
}

static struct strmap *queues_by_qid(struct broker *b)
{
	struct strmap *m = strmap_new();

	broker_each_queue(b, add_by_qid, m);
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

void broker_tail_path(struct broker *b, char *out, size_t len)
{
	snprintf(out, len, "%s/%s/%llu.tail", b->cfg->data_dir, TAILS_DIR,
	    (unsigned long long)++b->next_tail);
}

/*
 * Queues' paged-out entries are rebuilt from the log at every start: an
 * earlier run's files are stale.  False (logged) if the directory cannot
 * be made.
 */
static bool reset_tails(struct broker *b)
{
	char path[4096], file[4400];
	struct dirent *de;
	DIR *d;

	data_path(b, TAILS_DIR, path, sizeof(path));
	if (mkdir(path, 0750) != 0 && errno != EEXIST) {
		log_error("%s: %s", path, strerror(errno));
		return false;
	}
	if ((d = opendir(path)) == NULL) {
		log_error("%s: %s", path, strerror(errno));
		return false;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n < 5 || strcmp(de->d_name + n - 5, ".tail") != 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		if (unlink(file) != 0)
			log_warning("%s: cannot delete: %s", file,
			    strerror(errno));
	}
	closedir(d);
	return true;
}

/*
 * One broker per data directory: a second one would interleave its
 * writes with ours.  The lock (flock on data_dir/warrend.lock, which
 * holds the owner's pid) goes with the process, however it ends.
 */
static bool lock_data_dir(struct broker *b)
{
	char path[4096], pid[32];
	ssize_t n;
	int fd;

	data_path(b, LOCK_FILE, path, sizeof(path));
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0) {
		log_error("%s: %s", path, strerror(errno));
		return false;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		log_error("%s: %s is in use by another warrend%s%s", path,
		    b->cfg->data_dir, *pid ? ", pid " : "", pid);
		close(fd);
		return false;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warning("%s: cannot write our pid: %s", path,
		    strerror(errno));
	b->lock_fd = fd;
	return true;
}

/*
 * The directory's format stamp: written when missing (a new directory,
 * or one from before stamps, which is format 1); a newer or unreadable
 * one stops the start.
 */
static bool check_format(struct broker *b)
{
	char path[4096], text[128], tail[8], err[600];
	unsigned long version;
	FILE *fp;
	int n;

	data_path(b, FORMAT_FILE, path, sizeof(path));
	if ((fp = fopen(path, "re")) == NULL) {
		if (errno != ENOENT) {
			log_error("%s: %s", path, strerror(errno));
			return false;
		}
		snprintf(text, sizeof(text), "%s %d\n", FORMAT_MAGIC,
		    DATA_FORMAT);
		if (!atomic_file_write(path, text, strlen(text), NULL, err,
		    sizeof(err))) {
			log_error("%s", err);
			return false;
		}
		return true;
	}
	n = fscanf(fp, FORMAT_MAGIC " %lu%7s", &version, tail);
	fclose(fp);
	if (n != 1) {
		log_error("%s: not a Warren data directory stamp (expected "
		    "\"%s N\"); refusing to use %s", path, FORMAT_MAGIC,
		    b->cfg->data_dir);
		return false;
	}
	if (version != DATA_FORMAT) {
		log_error("%s: data directory %s has format %lu; this warrend "
		    "(%s) reads format %d%s; refusing to start", path,
		    b->cfg->data_dir, version, PACKAGE_VERSION, DATA_FORMAT,
		    version > DATA_FORMAT ? " (it was written by a newer "
		    "warrend)" : "");
		return false;
	}
	return true;
}

bool broker_recover(struct broker *b)
{
	const struct warren_config *cfg = b->cfg;
	struct store_options opt = { cfg->store_segment_size,
	    cfg->store_sync_delay_us, cfg->store_max_pending };
	struct store_recovery st;
	struct owners owners;
	char path[4096], err[512];
	struct stat sb;
	bool ok;

	if (!lock_data_dir(b) || !check_format(b) || !reset_tails(b))
		return false;
	/* Open (not yet recovered) before the definitions: stream queues
	 * open their logs as they are declared. */
	data_path(b, STORE_DIR, path, sizeof(path));
	b->store = store_open(b->base, path, &opt, on_store_state, b, err,
	    sizeof(err));
	if (b->store == NULL) {
		log_error("message store: %s", err);
		return false;
	}
	data_path(b, DEFINITIONS_FILE, path, sizeof(path));
	if (stat(path, &sb) == 0 && !load_definitions(b, path))
		return false;
	if (cfg->load_definitions && !load_definitions(b, cfg->load_definitions))
		return false;
	broker_seed_access(b);
	broker_save_definitions(b);

	owners.queues = queues_by_qid(b);
	owners.delayed = delayed_by_qid(b);
	ok = store_recover(b->store, recover_entry, &owners, &st);
	strmap_free(owners.queues);
	strmap_free(owners.delayed);
#ifdef __GLIBC__
	/* Recovery's index of every message is gone: hand it back. */
	malloc_trim(0);
#endif
	return ok;
}

void broker_close_store(struct broker *b)
{
	broker_save_definitions(b);
	b->stopping = true;
	store_close(b->store);
	b->store = NULL;
}
