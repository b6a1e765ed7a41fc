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
#include "strmap.h"
#include "wire.h"

enum record_type {
	REC_MSG = 'M',
	REC_ENQ = 'E',
	REC_DLV = 'D',
	REC_ACK = 'A',
};

/* What the loop knows of one segment. */
struct segment {
	uint64_t live;			/* live MSG and ENQ records in it */
	uint64_t ack_floor;		/* oldest segment its ACKs cancel ENQs in */
	bool deleted;
};

/* A run of bytes for one segment file, or a segment to delete. */
struct chunk {
	struct chunk *next;
	uint64_t seg;
	uint8_t *data;
	size_t len;
	uint64_t ticket;
	bool closes_batch;		/* the last chunk of its ticket */
	bool unlink;
};

struct store {
	char *dir;
	struct store_options opt;
	store_synced_fn *synced_cb;
	void *cb_arg;

	/* loop side */
	struct event_base *base;
	struct event *flush_ev;		/* hand the batch over, end of turn */
	struct event *notify_ev;	/* the thread synced something */
	uint8_t *buf;			/* the batch being filled */
	size_t len, cap;
	uint64_t ticket;		/* the batch's number */
	uint64_t cur_seg;		/* where appended records go */
	uint64_t cur_off;		/* bytes in it, written or pending */
	uint64_t next_msg_id;
	struct segment *segs;		/* segs[i] is segment first_seg + i */
	uint64_t first_seg, n_segs;
	bool gc_wanted;
	uint64_t reported;		/* the last ticket passed on */

	/* shared with the thread, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk *head, **tail;
	bool stop;
	uint64_t synced;
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
	uint64_t done;		/* the last ticket written whole */
};

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
	for (struct chunk *g = c; g && !g->unlink && g->seg == c->seg &&
	    n < GATHER_MAX; g = g->next)
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
		if ((*next)->closes_batch)
			r->done = (*next)->ticket;
		*next = (*next)->next;
	}
	return true;
}

static void free_chunks(struct chunk *c, const struct chunk *until)
{
	while (c != until) {
		struct chunk *next = c->next;

		free(c->data);
		free(c);
		c = next;
	}
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
	struct round r = { false, false, 0 };
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
	if (!r.sync_failed && s->fd >= 0 && fdatasync(s->fd) != 0)
		r.sync_failed = true;
	if (!r.sync_failed && r.new_file && fsync(s->dir_fd) != 0)
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
		uint64_t done;

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
			    "retrying every second, confirms wait", s->dir,
			    strerror(errno));
		else if (!retry && failing)
			log_warning("message store %s: writing again", s->dir);
		failing = retry != NULL;
		free_chunks(list, retry);
		if (done) {
			pthread_mutex_lock(&s->mu);
			s->synced = done;
			pthread_mutex_unlock(&s->mu);
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
				free_chunks(retry, NULL);
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

static void hand_over(struct store *s, uint64_t seg, uint8_t *data,
    size_t len, bool closes_batch, bool unlink_it)
{
	struct chunk *c = xcalloc(1, sizeof(*c));

	c->seg = seg;
	c->data = data;
	c->len = len;
	c->ticket = s->ticket;
	c->closes_batch = closes_batch;
	c->unlink = unlink_it;
	pthread_mutex_lock(&s->mu);
	*s->tail = c;
	s->tail = &c->next;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* The pending bytes go to the thread as a chunk of segment cur_seg. */
static void hand_over_buffer(struct store *s, bool closes_batch)
{
	hand_over(s, s->cur_seg, s->buf, s->len, closes_batch, false);
	s->buf = NULL;
	s->len = s->cap = 0;
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
		hand_over(s, number, NULL, 0, false, true);
	}
	while (s->n_segs && s->segs[0].deleted) {
		memmove(s->segs, s->segs + 1, (s->n_segs - 1) * sizeof(*s->segs));
		s->n_segs--;
		s->first_seg++;
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;

	if (s->len)
		hand_over_buffer(s, true);
	s->ticket++;
	if (s->gc_wanted)
		collect_garbage(s);
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;
	char drain[64];
	uint64_t synced;

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&s->mu);
	synced = s->synced;
	pthread_mutex_unlock(&s->mu);
	if (synced > s->reported) {
		s->reported = synced;
		s->synced_cb(s->cb_arg, synced);
	}
}

/* ---- loop side: appending records --------------------------------------- */

static void buf_put(struct store *s, const void *p, size_t n)
{
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

/* Append one record; returns the segment it lands in. */
static uint64_t append(struct store *s, const struct iovec *parts, int n)
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
	buf_put(s, hdr, sizeof(hdr));
	for (int i = 0; i < n; i++)
		buf_put(s, parts[i].iov_base, parts[i].iov_len);
	s->cur_off += size;
	if (!event_pending(s->flush_ev, EV_TIMEOUT, NULL))
		event_active(s->flush_ev, EV_TIMEOUT, 0);
	return s->cur_seg;
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

/* A record naming a queue and a message: ENQ, DLV. */
static uint64_t append_ref(struct store *s, uint8_t type, uint64_t qid,
    uint64_t msg_id)
{
	uint8_t rec[17];

	rec[0] = type;
	le64_put(rec + 1, qid);
	le64_put(rec + 9, msg_id);
	return append(s, &(struct iovec){ rec, sizeof(rec) }, 1);
}

static void append_msg(struct store *s, struct message *m)
{
	uint8_t head[1 + 8 + 1], rk_len[1], hdr_len[4];
	struct iovec parts[7];

	m->store_id = s->next_msg_id++;
	head[0] = REC_MSG;
	le64_put(head + 1, m->store_id);
	head[9] = (uint8_t)m->exchange.len;
	rk_len[0] = (uint8_t)m->routing_key.len;
	le32_put(hdr_len, m->header_len);
	parts[0] = (struct iovec){ head, sizeof(head) };
	parts[1] = (struct iovec){ (void *)m->exchange.ptr, m->exchange.len };
	parts[2] = (struct iovec){ rk_len, 1 };
	parts[3] = (struct iovec){ (void *)m->routing_key.ptr, m->routing_key.len };
	parts[4] = (struct iovec){ hdr_len, 4 };
	parts[5] = (struct iovec){ m->header, m->header_len };
	parts[6] = (struct iovec){ m->body, (size_t)m->body_len };
	m->store_seg = (uint32_t)append(s, parts, 7);
	m->store_refs = 0;
	live_inc(s, m->store_seg);
}

uint32_t store_enqueue(struct store *s, uint64_t qid, struct message *m,
    uint64_t *ticket)
{
	uint64_t seg;

	if (m->store_id == 0)
		append_msg(s, m);
	seg = append_ref(s, REC_ENQ, qid, m->store_id);
	live_inc(s, seg);
	m->store_refs++;
	if (ticket && *ticket < s->ticket)
		*ticket = s->ticket;
	return (uint32_t)seg;
}

void store_delivered(struct store *s, uint64_t qid, const struct message *m)
{
	append_ref(s, REC_DLV, qid, m->store_id);
}

void store_ack(struct store *s, uint64_t qid, struct message *m,
    uint32_t enq_seg)
{
	uint64_t at = append_ref(s, REC_ACK, qid, m->store_id);
	struct segment *sg = seg_at(s, at);

	if (sg && enq_seg < sg->ack_floor)
		sg->ack_floor = enq_seg;
	live_dec(s, enq_seg);
	if (m->store_refs && --m->store_refs == 0)
		live_dec(s, m->store_seg);
}

uint64_t store_segment_count(const struct store *s)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < s->n_segs; i++)
		n += !s->segs[i].deleted;
	return n;
}

/* ---- open, close -------------------------------------------------------- */

struct store *store_open(struct event_base *base, const char *dir,
    const struct store_options *opt, store_synced_fn *synced, void *arg,
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
	s->synced_cb = synced;
	s->cb_arg = arg;
	s->base = base;
	s->ticket = 1;
	s->next_msg_id = 1;
	s->fd = -1;
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
		if (s->len)
			hand_over_buffer(s, true);
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	free_chunks(s->head, NULL);
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
	uint32_t seg;
	bool delivered, acked;
};

struct rec_msg {
	uint64_t id;
	struct message *msg;
	uint32_t seg;
	uint32_t n_enq, cap_enq;
	struct rec_enq *enq;
};

struct scan_state {
	struct store *s;
	struct strmap *msgs;		/* 8-byte id -> struct rec_msg */
	uint64_t seg;
	struct store_recovery *st;
	const char *path;
};

static struct rec_msg *find_msg(struct scan_state *ss, uint64_t id)
{
	uint8_t key[8];

	le64_put(key, id);
	return strmap_get(ss->msgs, (struct bytes){ key, 8 });
}

static struct rec_enq *find_enq(struct rec_msg *rm, uint64_t qid)
{
	/* The newest first: a message requeued to the same queue twice
	 * (dead-letter cycles) has the latest ENQ live. */
	for (uint32_t i = rm->n_enq; i-- > 0; )
		if (rm->enq[i].qid == qid && !rm->enq[i].acked)
			return &rm->enq[i];
	return NULL;
}

/* A MSG record's body into a message; NULL (logged) if it is malformed. */
static struct message *parse_msg(struct scan_state *ss, uint64_t offset,
    const uint8_t *p, uint32_t n, uint64_t *id)
{
	struct bytes ex, rk, hdr;
	struct content_header h;
	struct message *m;
	uint32_t hdr_len;
	size_t at = 9;

	if (n < 10 + 1 + 4)
		goto bad;
	*id = le64_get(p + 1);
	ex = (struct bytes){ p + at + 1, p[at] };
	at += 1 + ex.len;
	if (at + 1 > n)
		goto bad;
	rk = (struct bytes){ p + at + 1, p[at] };
	at += 1 + rk.len;
	if (at + 4 > n)
		goto bad;
	hdr_len = le32_get(p + at);
	at += 4;
	if (hdr_len > n - at)
		goto bad;
	hdr = (struct bytes){ p + at, hdr_len };
	at += hdr_len;
	if (content_header_parse(hdr, &h) != 0 || h.body_size != n - at)
		goto bad;
	m = msg_new(ex, rk, hdr, &h);
	msg_append_body(m, p + at, n - (uint32_t)at);
	return m;
bad:
	log_warning("%s: offset %llu: malformed message record, skipped",
	    ss->path, (unsigned long long)offset);
	ss->st->corrupt_records++;
	return NULL;
}

static void on_record(void *arg, uint64_t offset, uint8_t type,
    const uint8_t *body, uint32_t len)
{
	struct scan_state *ss = arg;
	struct rec_msg *rm;
	struct rec_enq *re;
	uint64_t id, qid;

	ss->st->records++;
	if (type == REC_MSG) {
		struct message *m = parse_msg(ss, offset, body, len, &id);
		uint8_t key[8];

		if (m == NULL || find_msg(ss, id)) {
			msg_unref(m);
			return;
		}
		rm = xcalloc(1, sizeof(*rm));
		rm->id = id;
		rm->msg = m;
		rm->seg = (uint32_t)ss->seg;
		le64_put(key, id);
		strmap_put(ss->msgs, (struct bytes){ key, 8 }, rm);
		if (id >= ss->s->next_msg_id)
			ss->s->next_msg_id = id + 1;
		return;
	}
	if (len != 17 || (type != REC_ENQ && type != REC_DLV &&
	    type != REC_ACK)) {
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
		if (re)
			break;
		if (rm->n_enq == rm->cap_enq) {
			rm->cap_enq = rm->cap_enq ? 2 * rm->cap_enq : 2;
			rm->enq = xrealloc(rm->enq, rm->cap_enq * sizeof(*rm->enq));
		}
		rm->enq[rm->n_enq++] = (struct rec_enq){ qid,
		    (uint32_t)ss->seg, false, false };
		break;
	case REC_DLV:
		if (re)
			re->delivered = true;
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

static int by_id(const void *a, const void *b)
{
	const struct rec_msg *x = *(struct rec_msg *const *)a;
	const struct rec_msg *y = *(struct rec_msg *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
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
	size_t n = strmap_count(ss->msgs), i = 0;
	struct rec_msg **all = xcalloc(n ? n : 1, sizeof(*all));
	struct bytes k;
	void *v;

	for (size_t it = 0; strmap_next(ss->msgs, &it, &k, &v); )
		all[i++] = v;
	qsort(all, n, sizeof(*all), by_id);
	for (i = 0; i < n; i++) {
		struct rec_msg *rm = all[i];
		struct message *m = rm->msg;

		m->store_id = rm->id;
		m->store_seg = rm->seg;
		for (uint32_t j = 0; j < rm->n_enq; j++) {
			struct rec_enq *re = &rm->enq[j];

			if (re->acked)
				continue;
			if (!fn(arg, re->qid, m, re->seg, re->delivered)) {
				ss->st->dropped_entries++;
				continue;
			}
			ss->st->entries++;
			m->store_refs++;
			live_inc(s, re->seg);
		}
		if (m->store_refs) {
			live_inc(s, rm->seg);
			ss->st->messages++;
			ss->st->bytes += m->body_len;
		}
		msg_unref(m);
		free(rm->enq);
		free(rm);
	}
	free(all);
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
	ss.msgs = strmap_new();
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
	strmap_free(ss.msgs);
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
