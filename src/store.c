/*
 * The message store (see store.h for the record kinds and the rules).
 *
 * The event loop owns the layout: it numbers messages, frames records,
 * decides where a segment ends and counts what is live in each segment.
 * The store thread only writes the chunks it is handed, in order, syncs
 * them and reports the highest ticket whose chunks are all on disk, so the
 * loop never waits for the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "log.h"
#include "message.h"
#include "properties.h"
#include "store.h"
#include "store_record.h"
#include "store_segment.h"
#include "wire.h"

enum record_type {
	REC_MSG = 'M',
	REC_ENQ = 'E',
	REC_DLV = 'D',
	REC_ACK = 'A',
	REC_TMSG = 'T',		/* a paged-out message recovery ignores */
	REC_RET = 'R',		/* a delivery returned: the count so far */
};

/*
 * Body sizes: DLV and ACK [type][qid][msg id]; ENQ adds [expires, wall ms],
 * RET [returns] in the same place.
 */
#define REF_SIZE 17
#define ENQ_SIZE 25

/*
 * Written batch buffers kept for new batches: allocating and freeing one
 * per loop turn made the heap grow and shrink (brk, page faults) at every
 * turn.  Larger ones are freed.
 */
#define SPARES 4
#define SPARE_MAX (1u << 20)

/* Segments store_read keeps open, most recently opened replacing. */
#define READERS 4

/* What the loop knows of one segment. */
struct segment {
	uint64_t live;			/* live MSG, ENQ and RET records in it */
	uint64_t ack_floor;		/* oldest segment its ACKs cancel ENQs in */
	bool deleted;
};

/* A run of bytes for one segment file, or a segment to delete. */
struct chunk {
	struct chunk *next;
	uint64_t seg;
	uint8_t *data;
	size_t len, cap;		/* bytes in data, and its size */
	uint64_t ticket;
	bool closes_batch;		/* the last chunk of its ticket */
	bool unlink;
	bool durable;			/* holds records a restart needs */
	int file_fd;			/* >= 0: bytes for another file (a
					 * stream's segment), at file_off */
	uint64_t file_off;
};

struct store {
	char *dir;
	struct store_options opt;
	store_state_fn *changed_cb;
	void *cb_arg;

	/* loop side */
	struct event_base *base;
	struct event *flush_ev;		/* hand the batch over, end of turn */
	struct event *notify_ev;	/* the thread synced something */
	uint8_t *buf;			/* the batch being filled */
	size_t len, cap;
	bool buf_durable;		/* it holds more than TMSG records */
	uint64_t ticket;		/* the batch's number */
	uint64_t cur_seg;		/* where appended records go */
	uint64_t cur_off;		/* bytes in it, written or pending */
	uint64_t next_msg_id;
	struct segment *segs;		/* segs[i] is segment first_seg + i */
	uint64_t first_seg, n_segs;
	bool gc_wanted;
	struct store_flusher *flushers;	/* called before the batch closes */
	bool batch_has_files;		/* store_write_file chunks in it */
	struct store_state reported;	/* what the owner was told */
	struct {
		uint64_t seg;
		int fd;			/* -1: none */
	} readers[READERS];		/* segments open for store_read */
	unsigned next_reader;
	uint8_t *rbuf;			/* what store_read reads into */
	size_t rbuf_cap;

	/* shared with the thread, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk *head, **tail;
	bool stop;
	uint64_t synced;
	bool failing;			/* writes fail and are being retried */
	uint64_t pending;		/* bytes handed over, not yet written */
	struct {
		uint8_t *data;
		size_t cap;
	} spare[SPARES];		/* written buffers, for the next batch */
	unsigned n_spare;
	uint64_t peak_pending;		/* the most since behind changed */
	uint64_t bytes_written;
	uint64_t syncs, sync_le[STORE_SYNC_BUCKETS];
	double sync_seconds;
	bool behind;			/* reported behind: wake when caught up */
	int notify_pipe[2];
	pthread_t thread;
	bool thread_started;

	/* thread side */
	int fd;				/* open segment, or -1 */
	uint64_t fd_seg;
	off_t fd_size;			/* its length: where a write starts */
	int dir_fd;
};

uint64_t store_new_qid(void)
{
	uint64_t id = 0;

	while (id == 0)
		if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1)
			fatalx("RAND_bytes failed");
	return id;
}

/* ---- the store thread --------------------------------------------------- */

/* Write iov[0..n) whole, however the kernel splits it; iov is consumed. */
static bool writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return false;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return true;
}

/* Sync and close the open segment; false (errno set) if the sync failed. */
static bool sync_and_close(struct store *s)
{
	bool ok = true;

	if (s->fd >= 0) {
		ok = fdatasync(s->fd) == 0;
		close(s->fd);
		s->fd = -1;
	}
	return ok;
}

/* One pass of the thread over a list of chunks. */
struct round {
	bool new_file;		/* the directory changed: fsync it */
	bool sync_failed;	/* something written this round may be lost */
	bool needs_sync;	/* it wrote records a restart needs */
	uint64_t done;		/* the last ticket written whole */
	int files[16];		/* other files written: sync them too */
	struct {
		dev_t dev;
		ino_t ino;
	} file_ids[16];		/* one sync per file, whatever the fd */
	int n_files;
};

/* pwrite all of it; false with errno set. */
static bool pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return false;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return true;
}

static bool sync_files(struct round *r)
{
	bool ok = true;

	for (int i = 0; i < r->n_files; i++)
		ok &= fdatasync(r->files[i]) == 0;
	r->n_files = 0;
	return ok;
}

/*
 * A chunk for another file: written where its owner said (so a retry
 * after a failed sync rewrites the same bytes in place), synced with the
 * round (a chunk of no bytes only syncs the file).
 */
static bool write_file_chunk(struct chunk *c, struct round *r)
{
	struct stat st;

	if (!pwrite_all(c->file_fd, c->data, c->len, c->file_off))
		return false;
	if (fstat(c->file_fd, &st) != 0)
		return false;
	/* Each chunk has a descriptor of its own: compare the files. */
	for (int i = 0; i < r->n_files; i++)
		if (r->file_ids[i].dev == st.st_dev &&
		    r->file_ids[i].ino == st.st_ino)
			return true;
	if (r->n_files == (int)(sizeof(r->files) / sizeof(r->files[0])) &&
	    !sync_files(r)) {
		errno = EIO;
		return false;
	}
	r->file_ids[r->n_files].dev = st.st_dev;
	r->file_ids[r->n_files].ino = st.st_ino;
	r->files[r->n_files++] = c->file_fd;
	return true;
}

/* Chunks written with one writev: the kernel's limit is 1024. */
#define GATHER_MAX 64

/*
 * Write c and the chunks after it that go to the same segment (up to
 * GATHER_MAX) with one writev; *next is the first chunk not written.  On
 * failure the file is cut back to where it was, so none of them is there.
 */
static bool write_chunks(struct store *s, struct chunk *c,
    struct chunk **next, struct round *r)
{
	struct iovec iov[GATHER_MAX];
	char path[4096];
	struct stat st;
	off_t before;
	int n = 0;

	*next = c;
	if (c->file_fd >= 0) {
		if (!write_file_chunk(c, r))
			return false;
		*next = c->next;
		return true;
	}
	store_segment_path(path, sizeof(path), s->dir, c->seg);
	if (c->unlink) {
		if (s->fd >= 0 && s->fd_seg == c->seg &&
		    !sync_and_close(s)) {
			r->sync_failed = true;
			return false;
		}
		if (unlink(path) != 0 && errno != ENOENT)
			log_warning("%s: cannot delete: %s", path, strerror(errno));
		r->new_file = true;	/* the directory changed */
		*next = c->next;
		return true;
	}
	if (s->fd < 0 || s->fd_seg != c->seg) {
		if (!sync_and_close(s)) {
			r->sync_failed = true;
			return false;
		}
		s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		    0640);
		if (s->fd < 0)
			return false;
		if (fstat(s->fd, &st) != 0) {
			close(s->fd);
			s->fd = -1;
			return false;
		}
		s->fd_seg = c->seg;
		s->fd_size = st.st_size;
		r->new_file = true;
	}
	before = s->fd_size;
	for (struct chunk *g = c; g && !g->unlink && g->file_fd < 0 &&
	    g->seg == c->seg && n < GATHER_MAX; g = g->next)
		iov[n++] = (struct iovec){ g->data, g->len };
	if (!writev_all(s->fd, iov, n)) {
		int saved = errno;

		if (ftruncate(s->fd, before) != 0)
			log_warning("%s: cannot cut back a failed write: %s",
			    path, strerror(errno));
		errno = saved;
		return false;
	}
	while (n-- > 0) {
		s->fd_size += (off_t)(*next)->len;
		r->needs_sync |= (*next)->durable;
		if ((*next)->closes_batch)
			r->done = (*next)->ticket;
		*next = (*next)->next;
	}
	return true;
}

/*
 * Free the chunks from c up to until, keeping a few buffers as spares;
 * returns the bytes they held.
 */
static uint64_t free_chunks(struct store *s, struct chunk *c,
    const struct chunk *until)
{
	uint64_t bytes = 0;

	pthread_mutex_lock(&s->mu);
	while (c != until) {
		struct chunk *next = c->next;

		bytes += c->len;
		if (c->file_fd >= 0)
			close(c->file_fd);
		if (c->data && c->cap <= SPARE_MAX && s->n_spare < SPARES) {
			s->spare[s->n_spare].data = c->data;
			s->spare[s->n_spare++].cap = c->cap;
		} else {
			free(c->data);
		}
		free(c);
		c = next;
	}
	pthread_mutex_unlock(&s->mu);
	return bytes;
}

/* Put the chunks from c on back at the head of the queue, in order. */
static void put_back(struct store *s, struct chunk *c)
{
	struct chunk *last = c;

	while (last->next)
		last = last->next;
	pthread_mutex_lock(&s->mu);
	last->next = s->head;
	if (s->head == NULL)
		s->tail = &last->next;
	s->head = c;
	pthread_mutex_unlock(&s->mu);
}

const double store_sync_bucket_le[STORE_SYNC_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.5, 1,
};

/* One fdatasync took secs: into the histogram (thread side). */
static void record_sync(struct store *s, double secs)
{
	pthread_mutex_lock(&s->mu);
	s->syncs++;
	s->sync_seconds += secs;
	for (int i = 0; i < STORE_SYNC_BUCKETS; i++)
		if (secs <= store_sync_bucket_le[i])
			s->sync_le[i]++;
	pthread_mutex_unlock(&s->mu);
}

void store_get_metrics(struct store *s, struct store_metrics *out)
{
	out->segments = store_segment_count(s);
	pthread_mutex_lock(&s->mu);
	out->bytes_written = s->bytes_written;
	out->pending = s->pending;
	out->syncs = s->syncs;
	memcpy(out->sync_le, s->sync_le, sizeof(out->sync_le));
	out->sync_seconds = s->sync_seconds;
	pthread_mutex_unlock(&s->mu);
}

/*
 * Write the list and sync it.  Returns the first chunk that must be
 * written again (NULL: all done) and sets *done to the last ticket now on
 * disk.  A write that fails (ENOSPC, EIO) is cut back and retried from
 * that chunk: what was written before it is synced and counts.  A failed
 * sync loses the guarantee for everything written since the last good
 * one, so the whole list is written again; recovery ignores the
 * duplicate records that may leave.
 */
static struct chunk *write_round(struct store *s, struct chunk *list,
    uint64_t *done)
{
	struct round r = { .done = 0 };
	struct chunk *c = list, *next;
	int saved = 0;

	while (c) {
		if (!write_chunks(s, c, &next, &r)) {
			saved = errno;
			break;
		}
		c = next;
	}
	*done = r.done;
	if (!r.sync_failed && r.needs_sync && s->fd >= 0) {
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (fdatasync(s->fd) != 0)
			r.sync_failed = true;
		else {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			record_sync(s, (double)(t1.tv_sec - t0.tv_sec) +
			    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		}
	}
	if (!r.sync_failed && r.new_file && fsync(s->dir_fd) != 0)
		r.sync_failed = true;
	if (!sync_files(&r))
		r.sync_failed = true;
	if (r.sync_failed) {
		saved = errno;
		*done = 0;
		c = list;
	}
	errno = saved;
	return c;
}

static void *store_thread(void *arg)
{
	struct store *s = arg;
	bool failing = false;

	for (;;) {
		struct chunk *list, *retry;
		uint64_t done, written;
		bool caught_up;

		pthread_mutex_lock(&s->mu);
		while (s->head == NULL && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->head == NULL) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		pthread_mutex_unlock(&s->mu);
		/* Let more of the batch arrive, if configured to. */
		if (s->opt.sync_delay_us && !failing)
			usleep(s->opt.sync_delay_us);
		pthread_mutex_lock(&s->mu);
		list = s->head;
		s->head = NULL;
		s->tail = &s->head;
		pthread_mutex_unlock(&s->mu);

		retry = write_round(s, list, &done);
		if (retry && !failing)
			log_error("message store %s: write failed: %s; "
			    "retrying every second, publishes waiting for "
			    "it nacked", s->dir, strerror(errno));
		else if (!retry && failing)
			log_warning("message store %s: writing again", s->dir);
		written = free_chunks(s, list, retry);
		pthread_mutex_lock(&s->mu);
		s->pending -= written;
		s->bytes_written += written;
		caught_up = s->behind && s->pending < s->opt.max_pending / 4;
		if (done)
			s->synced = done;
		s->failing = retry != NULL;
		pthread_mutex_unlock(&s->mu);
		if (done || caught_up || failing != (retry != NULL)) {
			failing = retry != NULL;
			if (write(s->notify_pipe[1], "", 1) < 0 && errno != EAGAIN)
				log_warning("store notify: %s", strerror(errno));
		}
		if (retry) {
			bool stopping;

			/* The file is reopened on the next try. */
			sync_and_close(s);
			pthread_mutex_lock(&s->mu);
			stopping = s->stop;
			pthread_mutex_unlock(&s->mu);
			if (stopping) {
				/* Shutting down: nothing of it was confirmed. */
				log_error("message store %s: stopping with "
				    "unwritten records; their publishes were "
				    "not confirmed", s->dir);
				free_chunks(s, retry, NULL);
				break;
			}
			put_back(s, retry);
			sleep(1);
		}
	}
	sync_and_close(s);
	return NULL;
}

/* ---- loop side: handing batches over ------------------------------------ */

/* The current batch closes at the end of this loop turn (flush_cb). */
static void close_batch_soon(struct store *s)
{
	if (!event_pending(s->flush_ev, EV_TIMEOUT, NULL))
		event_active(s->flush_ev, EV_TIMEOUT, 0);
}

/*
 * Queue c for the thread (waking it when wake); tell the owner when the
 * thread falls behind.
 */
static void enqueue_chunk(struct store *s, struct chunk *c, bool wake)
{
	bool over;

	c->ticket = s->ticket;
	pthread_mutex_lock(&s->mu);
	*s->tail = c;
	s->tail = &c->next;
	s->pending += c->len;
	if (s->pending > s->peak_pending)
		s->peak_pending = s->pending;
	over = s->opt.max_pending && !s->behind &&
	    s->pending > s->opt.max_pending;
	if (wake)
		pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* Tell the owner from the loop, not from deep in an append. */
	if (over && s->notify_ev)
		event_active(s->notify_ev, EV_READ, 0);
}

static void hand_over(struct store *s, uint64_t seg, uint8_t *data,
    size_t len, size_t cap, bool closes_batch, bool unlink_it, bool durable)
{
	struct chunk *c = xcalloc(1, sizeof(*c));

	c->durable = durable;
	c->file_fd = -1;
	c->cap = cap;
	c->seg = seg;
	c->data = data;
	c->len = len;
	c->closes_batch = closes_batch;
	c->unlink = unlink_it;
	enqueue_chunk(s, c, true);
}

/* The pending bytes go to the thread as a chunk of segment cur_seg. */
static void hand_over_buffer(struct store *s, bool closes_batch)
{
	hand_over(s, s->cur_seg, s->buf, s->len, s->cap, closes_batch, false,
	    s->buf_durable);
	s->buf = NULL;
	s->len = s->cap = 0;
	s->buf_durable = false;
}

static struct segment *seg_at(struct store *s, uint64_t number)
{
	if (number < s->first_seg || number >= s->first_seg + s->n_segs)
		return NULL;
	return &s->segs[number - s->first_seg];
}

/* Make room for segment number (always the newest). */
static struct segment *seg_add(struct store *s, uint64_t number)
{
	struct segment *sg;

	if (s->n_segs == 0)
		s->first_seg = number;
	while (s->first_seg + s->n_segs <= number) {
		s->segs = xrealloc(s->segs, (s->n_segs + 1) * sizeof(*s->segs));
		sg = &s->segs[s->n_segs++];
		memset(sg, 0, sizeof(*sg));
		sg->ack_floor = UINT64_MAX;
	}
	return seg_at(s, number);
}

/*
 * The parts of a MSG or TMSG record body: [type][u64 id][u8 len][exchange]
 * [u8 len][routing key][u32 len][content header][body].  False if they do
 * not add up.
 */
static bool msg_record_parts(const uint8_t *p, uint32_t n, uint64_t *id,
    struct bytes *ex, struct bytes *rk, struct bytes *hdr, struct bytes *body)
{
	size_t at = 9;
	uint32_t hdr_len;

	if (n < 10 + 1 + 4)
		return false;
	*id = le64_get(p + 1);
	*ex = (struct bytes){ p + at + 1, p[at] };
	at += 1 + ex->len;
	if (at + 1 > n)
		return false;
	*rk = (struct bytes){ p + at + 1, p[at] };
	at += 1 + rk->len;
	if (at + 4 > n)
		return false;
	hdr_len = le32_get(p + at);
	at += 4;
	if (hdr_len > n - at)
		return false;
	*hdr = (struct bytes){ p + at, hdr_len };
	at += hdr_len;
	*body = (struct bytes){ p + at, n - at };
	return true;
}

/* A message record's body into a new message; NULL if it is malformed. */
static struct message *msg_from_record(const uint8_t *p, uint32_t n)
{
	struct bytes ex, rk, hdr, body;
	struct content_header h;
	struct message *m;
	uint64_t id;

	if (!msg_record_parts(p, n, &id, &ex, &rk, &hdr, &body) ||
	    content_header_parse(hdr, &h) != 0 || h.body_size != body.len)
		return NULL;
	m = msg_new(ex, rk, hdr, &h);
	msg_append_body(m, body.ptr, (uint32_t)body.len);
	return m;
}

/* Close the read descriptor of segment seg, if one is open. */
static void close_reader(struct store *s, uint64_t seg)
{
	for (unsigned i = 0; i < READERS; i++)
		if (s->readers[i].fd >= 0 && s->readers[i].seg == seg) {
			close(s->readers[i].fd);
			s->readers[i].fd = -1;
		}
}

/* A descriptor to read segment seg from, or -1 (errno set). */
static int reader_for(struct store *s, uint64_t seg)
{
	char path[4096];
	unsigned i;
	int fd;

	for (i = 0; i < READERS; i++)
		if (s->readers[i].fd >= 0 && s->readers[i].seg == seg)
			return s->readers[i].fd;
	store_segment_path(path, sizeof(path), s->dir, seg);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	i = s->next_reader++ % READERS;
	if (s->readers[i].fd >= 0)
		close(s->readers[i].fd);
	s->readers[i].seg = seg;
	s->readers[i].fd = fd;
	return fd;
}

struct message *store_read(struct store *s, const struct store_loc *loc)
{
	char path[4096];
	const uint8_t *body;
	uint32_t body_len;
	size_t got = 0, rec_size;
	struct message *m = NULL;
	int fd = reader_for(s, loc->seg);

	store_segment_path(path, sizeof(path), s->dir, loc->seg);
	if (fd < 0) {
		log_error("%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (loc->len > s->rbuf_cap) {
		s->rbuf_cap = loc->len;
		s->rbuf = xrealloc(s->rbuf, s->rbuf_cap);
	}
	while (got < loc->len) {
		ssize_t r = pread(fd, s->rbuf + got, loc->len - got,
		    (off_t)loc->off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			log_error("%s: offset %u: cannot read a message: %s",
			    path, loc->off, r < 0 ? strerror(errno) :
			    "end of file");
			return NULL;
		}
		got += (size_t)r;
	}
	if (store_record_read(s->rbuf, loc->len, &rec_size, &body,
	    &body_len) == STORE_SCAN_OK && rec_size == loc->len &&
	    (body[0] == REC_MSG || body[0] == REC_TMSG))
		m = msg_from_record(body, body_len);
	if (m == NULL) {
		log_error("%s: offset %u: damaged message record", path,
		    loc->off);
		return NULL;
	}
	m->stored = *loc;
	return m;
}

/*
 * Delete every segment with nothing live whose ACKs cancel nothing in an
 * older segment still there; forget deleted ones at the front.
 */
static void collect_garbage(struct store *s)
{
	s->gc_wanted = false;
	for (uint64_t i = 0; i < s->n_segs; i++) {
		struct segment *sg = &s->segs[i];
		uint64_t number = s->first_seg + i;
		bool older_needed = false;

		if (sg->deleted || sg->live || number == s->cur_seg)
			continue;
		for (uint64_t j = sg->ack_floor; j < number; j++) {
			struct segment *o = seg_at(s, j);

			if (o && !o->deleted) {
				older_needed = true;
				break;
			}
			if (j < s->first_seg)
				j = s->first_seg - 1;
		}
		if (older_needed)
			continue;
		sg->deleted = true;
		close_reader(s, number);
		hand_over(s, number, NULL, 0, 0, false, true, false);
	}
	while (s->n_segs && s->segs[0].deleted) {
		memmove(s->segs, s->segs + 1, (s->n_segs - 1) * sizeof(*s->segs));
		s->n_segs--;
		s->first_seg++;
	}
}

/* Let the flushers hand their bytes over, then close the batch. */
static void close_batch(struct store *s)
{
	struct store_flusher *f;

	while ((f = s->flushers) != NULL) {
		s->flushers = f->next;
		f->queued = false;
		f->fn(f->arg);
	}
	if (s->len || s->batch_has_files)
		hand_over_buffer(s, true);
	s->batch_has_files = false;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;

	close_batch(s);
	s->ticket++;
	if (s->gc_wanted)
		collect_garbage(s);
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;
	struct store_state now;
	char drain[64];
	uint64_t max = s->opt.max_pending;

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&s->mu);
	now.synced = s->synced;
	now.failing = s->failing;
	now.behind = max && (s->reported.behind ? s->pending >= max / 4 :
	    s->pending > max);
	s->behind = now.behind;
	now.peak_pending = s->peak_pending;
	if (now.behind != s->reported.behind)
		s->peak_pending = s->pending;
	pthread_mutex_unlock(&s->mu);
	if (now.synced != s->reported.synced ||
	    now.failing != s->reported.failing ||
	    now.behind != s->reported.behind) {
		s->reported = now;
		s->changed_cb(s->cb_arg, &now);
	}
}

/* ---- loop side: appending records --------------------------------------- */

static void buf_put(struct store *s, const void *p, size_t n)
{
	if (s->buf == NULL) {
		/* A new batch: a written buffer if one is spare. */
		pthread_mutex_lock(&s->mu);
		if (s->n_spare) {
			s->n_spare--;
			s->buf = s->spare[s->n_spare].data;
			s->cap = s->spare[s->n_spare].cap;
		}
		pthread_mutex_unlock(&s->mu);
	}
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 65536;

		while (cap < s->len + n)
			cap *= 2;
		s->buf = xrealloc(s->buf, cap);
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

/*
 * Append one record; returns the segment it lands in and, with at, where
 * it starts there and its size.
 */
static uint64_t append_at(struct store *s, const struct iovec *parts, int n,
    struct store_loc *at)
{
	uint8_t hdr[STORE_RECORD_HEADER_SIZE];
	size_t size = sizeof(hdr);

	for (int i = 0; i < n; i++)
		size += parts[i].iov_len;
	if (s->cur_off > 0 && s->cur_off + size > s->opt.segment_size) {
		/* Roll: what is pending belongs to the old segment. */
		if (s->len)
			hand_over_buffer(s, false);
		s->cur_seg++;
		s->cur_off = 0;
		seg_add(s, s->cur_seg);
		s->gc_wanted = true;
	}
	store_record_header(hdr, parts, n);
	/* Records only this run reads back need no sync. */
	if (((const uint8_t *)parts[0].iov_base)[0] != REC_TMSG)
		s->buf_durable = true;
	buf_put(s, hdr, sizeof(hdr));
	for (int i = 0; i < n; i++)
		buf_put(s, parts[i].iov_base, parts[i].iov_len);
	if (at) {
		at->ticket = s->ticket;
		at->seg = (uint32_t)s->cur_seg;
		at->off = (uint32_t)s->cur_off;
		at->len = (uint32_t)size;
	}
	s->cur_off += size;
	close_batch_soon(s);
	return s->cur_seg;
}

static uint64_t append(struct store *s, const struct iovec *parts, int n)
{
	return append_at(s, parts, n, NULL);
}

static void live_inc(struct store *s, uint64_t seg)
{
	struct segment *sg = seg_at(s, seg);

	if (sg)
		sg->live++;
}

static void live_dec(struct store *s, uint64_t seg)
{
	struct segment *sg = seg_at(s, seg);

	if (sg && sg->live && --sg->live == 0)
		s->gc_wanted = true;
}

/*
 * A record naming a queue and a message: DLV, ACK; ENQ with its expiry,
 * RET with its count (extra).
 */
static uint64_t append_ref(struct store *s, uint8_t type, uint64_t qid,
    uint64_t msg_id, uint64_t extra)
{
	uint8_t rec[ENQ_SIZE];

	rec[0] = type;
	le64_put(rec + 1, qid);
	le64_put(rec + 9, msg_id);
	if (type != REC_ENQ && type != REC_RET)
		return append(s, &(struct iovec){ rec, REF_SIZE }, 1);
	le64_put(rec + 17, extra);
	return append(s, &(struct iovec){ rec, ENQ_SIZE }, 1);
}

/* Milliseconds of wall-clock time, which survives a restart. */
static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A message record: MSG with an id, or TMSG (id 0) that recovery skips. */
static void append_msg(struct store *s, struct message *m, uint8_t type,
    uint64_t id, struct store_loc *loc)
{
	uint8_t head[1 + 8 + 1], rk_len[1], hdr_len[4];
	struct iovec parts[7];

	head[0] = type;
	le64_put(head + 1, id);
	head[9] = (uint8_t)m->exchange.len;
	rk_len[0] = (uint8_t)m->routing_key.len;
	le32_put(hdr_len, m->header_len);
	parts[0] = (struct iovec){ head, sizeof(head) };
	parts[1] = (struct iovec){ (void *)m->exchange.ptr, m->exchange.len };
	parts[2] = (struct iovec){ rk_len, 1 };
	parts[3] = (struct iovec){ (void *)m->routing_key.ptr, m->routing_key.len };
	parts[4] = (struct iovec){ hdr_len, 4 };
	parts[5] = (struct iovec){ m->header, m->header_len };
	parts[6] = (struct iovec){ (void *)msg_body(m), (size_t)m->body_len };
	append_at(s, parts, 7, loc);
	loc->id = id;
}

uint32_t store_enqueue(struct store *s, uint64_t qid, struct message *m,
    uint64_t ttl_ms, uint64_t *ticket)
{
	uint64_t seg;

	if (m->stored.id == 0)
		append_msg(s, m, REC_MSG, s->next_msg_id++, &m->stored);
	seg = append_ref(s, REC_ENQ, qid, m->stored.id,
	    ttl_ms ? wall_ms() + ttl_ms : 0);
	/* Each ENQ keeps its own record and the message's alive. */
	live_inc(s, seg);
	live_inc(s, m->stored.seg);
	if (ticket && *ticket < s->ticket)
		*ticket = s->ticket;
	return (uint32_t)seg;
}

void store_delivered(struct store *s, uint64_t qid, uint64_t msg_id)
{
	append_ref(s, REC_DLV, qid, msg_id, 0);
}

uint32_t store_returned(struct store *s, uint64_t qid, uint64_t msg_id,
    uint32_t returns, uint32_t old_ret_seg)
{
	uint64_t seg = append_ref(s, REC_RET, qid, msg_id, returns);

	/* Its segment stays while the entry lives: recovery needs the count. */
	live_inc(s, seg);
	store_forget_returns(s, old_ret_seg);
	return (uint32_t)seg;
}

void store_forget_returns(struct store *s, uint32_t ret_seg)
{
	if (ret_seg)
		live_dec(s, ret_seg);
}

void store_ack(struct store *s, uint64_t qid, const struct store_loc *msg,
    uint32_t enq_seg)
{
	uint64_t at = append_ref(s, REC_ACK, qid, msg->id, 0);
	struct segment *sg = seg_at(s, at);

	if (sg && enq_seg < sg->ack_floor)
		sg->ack_floor = enq_seg;
	live_dec(s, enq_seg);
	live_dec(s, msg->seg);
}

void store_hold(struct store *s, struct message *m, struct store_loc *loc)
{
	/* A record of it already there (MSG or TMSG) is shared. */
	if (m->stored.seg == 0)
		append_msg(s, m, REC_TMSG, 0, &m->stored);
	*loc = m->stored;
	live_inc(s, loc->seg);
}

void store_release(struct store *s, const struct store_loc *loc)
{
	live_dec(s, loc->seg);
}

bool store_readable(const struct store *s, const struct store_loc *loc)
{
	return loc->ticket <= s->reported.synced;
}

uint64_t store_segment_count(const struct store *s)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < s->n_segs; i++)
		n += !s->segs[i].deleted;
	return n;
}

/* ---- other files: streams' segments -------------------------------------- */

uint64_t store_want_flush(struct store *s, struct store_flusher *f)
{
	if (!f->queued) {
		f->queued = true;
		f->next = s->flushers;
		s->flushers = f;
	}
	close_batch_soon(s);
	return s->ticket;
}

void store_cancel_flush(struct store *s, struct store_flusher *f)
{
	struct store_flusher **p = &s->flushers;

	while (*p && *p != f)
		p = &(*p)->next;
	if (*p)
		*p = f->next;
	f->queued = false;
}

bool store_write_file(struct store *s, int fd, uint64_t off, uint8_t *data,
    size_t len, size_t cap)
{
	int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	struct chunk *c;

	if (own < 0)
		return false;
	c = xcalloc(1, sizeof(*c));
	c->file_fd = own;
	c->file_off = off;
	c->data = data;
	c->len = len;
	c->cap = cap;
	c->durable = true;
	/* The batch's closing chunk follows soon and wakes the thread: a
	 * round that took only this would sync without finishing a ticket. */
	enqueue_chunk(s, c, false);
	s->batch_has_files = true;
	close_batch_soon(s);
	return true;
}

bool store_sync_file(struct store *s, int fd)
{
	return store_write_file(s, fd, 0, NULL, 0, 0);	/* nothing to write */
}

uint64_t store_current_ticket(const struct store *s)
{
	return s->ticket;
}

uint64_t store_synced(const struct store *s)
{
	return s->reported.synced;
}

/* ---- open, close -------------------------------------------------------- */

struct store *store_open(struct event_base *base, const char *dir,
    const struct store_options *opt, store_state_fn *changed, void *arg,
    char *err, size_t errlen)
{
	struct store *s;

	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create: %s", dir,
		    strerror(errno));
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->dir = xstrdup(dir);
	s->opt = *opt;
	s->changed_cb = changed;
	s->cb_arg = arg;
	s->base = base;
	s->ticket = 1;
	s->next_msg_id = 1;
	s->fd = -1;
	for (unsigned i = 0; i < READERS; i++)
		s->readers[i].fd = -1;
	s->tail = &s->head;
	s->notify_pipe[0] = s->notify_pipe[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0 || pipe2(s->notify_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		store_close(s);
		return NULL;
	}
	s->flush_ev = event_new(base, -1, 0, flush_cb, s);
	s->notify_ev = event_new(base, s->notify_pipe[0], EV_READ | EV_PERSIST,
	    notify_cb, s);
	if (!s->flush_ev || !s->notify_ev)
		fatalx("event_new failed");
	event_add(s->notify_ev, NULL);
	return s;
}

/* After recovery: start the thread (appending may begin). */
static void start_thread(struct store *s)
{
	if (pthread_create(&s->thread, NULL, store_thread, s) != 0)
		fatalx("cannot start the store thread");
	s->thread_started = true;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->thread_started) {
		close_batch(s);
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	free_chunks(s, s->head, NULL);
	for (unsigned i = 0; i < s->n_spare; i++)
		free(s->spare[i].data);
	for (unsigned i = 0; i < READERS; i++)
		if (s->readers[i].fd >= 0)
			close(s->readers[i].fd);
	free(s->rbuf);
	free(s->buf);
	if (s->flush_ev)
		event_free(s->flush_ev);
	if (s->notify_ev)
		event_free(s->notify_ev);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	for (int i = 0; i < 2; i++)
		if (s->notify_pipe[i] >= 0)
			close(s->notify_pipe[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->segs);
	free(s->dir);
	free(s);
}

/* ---- recovery ----------------------------------------------------------- */

struct rec_enq {
	uint64_t qid;
	uint64_t expires_wall;		/* 0: never */
	uint32_t seg;
	bool delivered, acked;
	bool out;			/* a DLV after the newest RET */
	uint32_t returns, ret_seg;	/* the newest RET's count, segment */
};

/*
 * A message found by recovery, with its ENQs (almost always one: kept in
 * place; more only for fanout and dead-letter cycles).
 */
struct rec_msg {
	struct store_recovered r;
	uint32_t n_enq;
	struct rec_enq first;
	struct rec_enq *more;		/* ENQs after the first */
};

/*
 * Message ids grow in log order, so recovery's index is an array sorted by
 * id: records that name a message mostly name the newest one (its ENQ
 * follows it) or the one after the last looked up (ACKs in queue order),
 * and a binary search finds the others.
 */
struct scan_state {
	struct store *s;
	struct rec_msg *msgs;
	size_t n, cap;
	size_t hint;			/* the last one looked up */
	uint64_t seg;
	struct store_recovery *st;
	const char *path;
};

/* The index of id in ss->msgs, or where it would go (not found). */
static size_t msg_index(struct scan_state *ss, uint64_t id, bool *found)
{
	size_t lo = 0, hi = ss->n;

	*found = true;
	if (ss->n && ss->msgs[ss->n - 1].r.loc.id == id)
		return ss->n - 1;
	for (size_t h = ss->hint; h < ss->n && h <= ss->hint + 1; h++)
		if (ss->msgs[h].r.loc.id == id)
			return ss->hint = h;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ss->msgs[mid].r.loc.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < ss->n && ss->msgs[lo].r.loc.id == id;
	if (*found)
		ss->hint = lo;
	return lo;
}

static struct rec_msg *find_msg(struct scan_state *ss, uint64_t id)
{
	bool found;
	size_t i = msg_index(ss, id, &found);

	return found ? &ss->msgs[i] : NULL;
}

/* A new entry for id in order; NULL if id is there already. */
static struct rec_msg *add_msg(struct scan_state *ss, uint64_t id)
{
	size_t i = ss->n;
	bool found = false;

	if (ss->n && id <= ss->msgs[ss->n - 1].r.loc.id) {
		/* Written twice (a retried round), or out of order. */
		i = msg_index(ss, id, &found);
		if (found)
			return NULL;
	}
	if (ss->n == ss->cap) {
		ss->cap = ss->cap ? 2 * ss->cap : 4096;
		ss->msgs = xrealloc(ss->msgs, ss->cap * sizeof(*ss->msgs));
	}
	memmove(&ss->msgs[i + 1], &ss->msgs[i], (ss->n - i) * sizeof(*ss->msgs));
	ss->n++;
	memset(&ss->msgs[i], 0, sizeof(ss->msgs[i]));
	ss->msgs[i].r.loc.id = id;
	return &ss->msgs[i];
}

static struct rec_enq *enq_at(struct rec_msg *rm, uint32_t i)
{
	return i == 0 ? &rm->first : &rm->more[i - 1];
}

static struct rec_enq *find_enq(struct rec_msg *rm, uint64_t qid)
{
	/* The newest first: a message requeued to the same queue twice
	 * (dead-letter cycles) has the latest ENQ live. */
	for (uint32_t i = rm->n_enq; i-- > 0; ) {
		struct rec_enq *re = enq_at(rm, i);

		if (re->qid == qid && !re->acked)
			return re;
	}
	return NULL;
}

static void add_enq(struct rec_msg *rm, uint64_t qid, uint32_t seg,
    uint64_t expires_wall)
{
	if (rm->n_enq > 0)
		rm->more = xrealloc(rm->more, rm->n_enq * sizeof(*rm->more));
	*enq_at(rm, rm->n_enq++) = (struct rec_enq){ .qid = qid,
	    .expires_wall = expires_wall, .seg = seg };
}

static void on_record(void *arg, uint64_t offset, uint8_t type,
    const uint8_t *body, uint32_t len)
{
	struct scan_state *ss = arg;
	struct rec_msg *rm;
	struct rec_enq *re;
	uint64_t id, qid;

	ss->st->records++;
	if (type == REC_TMSG)
		return;		/* paged out for a queue that is gone now */
	if (type == REC_MSG) {
		struct bytes ex, rk, hdr, msg_body;
		struct content_header h;

		/* The message is made when it is read back; its queue needs
		 * only its priority and TTL now. */
		if (!msg_record_parts(body, len, &id, &ex, &rk, &hdr,
		    &msg_body) || content_header_parse(hdr, &h) != 0 ||
		    h.body_size != msg_body.len) {
			log_warning("%s: offset %llu: malformed message record, "
			    "skipped", ss->path, (unsigned long long)offset);
			ss->st->corrupt_records++;
			return;
		}
		if ((rm = add_msg(ss, id)) == NULL)
			return;
		rm->r.loc = (struct store_loc){ id, 0, (uint32_t)ss->seg,
		    (uint32_t)offset, STORE_RECORD_HEADER_SIZE + len };
		rm->r.body_len = (uint32_t)msg_body.len;
		if (props_has(&h.props, PROP_priority))
			rm->r.priority = h.props.priority;
		if (id >= ss->s->next_msg_id)
			ss->s->next_msg_id = id + 1;
		return;
	}
	if ((type != REC_ENQ && type != REC_DLV && type != REC_ACK &&
	    type != REC_RET) ||
	    len != (type == REC_ENQ || type == REC_RET ? ENQ_SIZE : REF_SIZE)) {
		log_warning("%s: offset %llu: unknown record type %u, skipped",
		    ss->path, (unsigned long long)offset, type);
		return;
	}
	qid = le64_get(body + 1);
	if ((rm = find_msg(ss, le64_get(body + 9))) == NULL)
		return;		/* its message was deleted or damaged */
	re = find_enq(rm, qid);
	switch (type) {
	case REC_ENQ:
		/* Written twice by a retry after a failed sync: one entry. */
		if (re == NULL)
			add_enq(rm, qid, (uint32_t)ss->seg, le64_get(body + 17));
		break;
	case REC_DLV:
		if (re)
			re->delivered = re->out = true;
		break;
	case REC_RET:
		if (re && le64_get(body + 17) >= re->returns) {
			re->returns = (uint32_t)le64_get(body + 17);
			re->ret_seg = (uint32_t)ss->seg;
			re->out = false;
		}
		break;
	case REC_ACK:
		if (re) {
			struct segment *sg = seg_at(ss->s, ss->seg);

			re->acked = true;
			if (re->seg < sg->ack_floor)
				sg->ack_floor = re->seg;
		}
		break;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Hand the live entries to the queues, oldest message first. */
static void replay(struct scan_state *ss, store_recover_fn *fn, void *arg)
{
	struct store *s = ss->s;
	uint64_t now_wall = wall_ms();

	for (size_t i = 0; i < ss->n; i++) {
		struct rec_msg *rm = &ss->msgs[i];
		bool live = false;

		for (uint32_t j = 0; j < rm->n_enq; j++) {
			struct rec_enq *re = enq_at(rm, j);

			/* A delivery the crash ended counts as returned. */
			struct store_recovered_entry e = { re->seg,
			    re->delivered, -1, re->returns + re->out,
			    re->ret_seg };

			if (re->acked)
				continue;
			if (re->expires_wall)
				e.expires_in = re->expires_wall > now_wall ?
				    (int64_t)(re->expires_wall - now_wall) : 0;
			if (!fn(arg, re->qid, &rm->r, &e)) {
				ss->st->dropped_entries++;
				continue;
			}
			ss->st->entries++;
			live_inc(s, re->seg);
			if (re->ret_seg)
				live_inc(s, re->ret_seg);
			live_inc(s, rm->r.loc.seg);
			live = true;
		}
		if (live) {
			ss->st->messages++;
			ss->st->bytes += rm->r.body_len;
		}
		free(rm->more);
	}
	free(ss->msgs);
	ss->msgs = NULL;
}

bool store_recover(struct store *s, store_recover_fn *fn, void *arg,
    struct store_recovery *st)
{
	struct scan_state ss = { .s = s, .st = st };
	uint64_t *numbers = NULL, started = now_ms();
	size_t n = 0;
	char path[4096];

	memset(st, 0, sizeof(*st));
	if (!store_segment_list(s->dir, &numbers, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		struct store_scan_stats sst;

		store_segment_path(path, sizeof(path), s->dir, numbers[i]);
		ss.seg = numbers[i];
		ss.path = path;
		seg_add(s, numbers[i]);
		if (!store_segment_scan(path, on_record, &ss, &sst))
			continue;
		st->segments++;
		st->corrupt_records += sst.corrupt_records;
		st->skipped_bytes += sst.skipped_bytes;
	}
	replay(&ss, fn, arg);
	/* New records go to a new segment: old ones are never appended to. */
	s->cur_seg = n ? numbers[n - 1] + 1 : 1;
	seg_add(s, s->cur_seg);
	free(numbers);
	start_thread(s);
	collect_garbage(s);
	st->ms = now_ms() - started;
	log_info("message store %s: recovered %llu messages (%llu bytes) in "
	    "%llu queue entries from %llu segments, %llu records; skipped "
	    "%llu damaged records (%llu bytes), dropped %llu entries of "
	    "deleted queues; %llu ms", s->dir,
	    (unsigned long long)st->messages, (unsigned long long)st->bytes,
	    (unsigned long long)st->entries, (unsigned long long)st->segments,
	    (unsigned long long)st->records,
	    (unsigned long long)st->corrupt_records,
	    (unsigned long long)st->skipped_bytes,
	    (unsigned long long)st->dropped_entries,
	    (unsigned long long)st->ms);
	return true;
}
