/* Stream segment reads on a thread of their own (see stream_reader.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "stream_reader.h"

struct stream_reader {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct stream_read *todo, **todo_tail;	/* under mu */
	struct stream_read *done;		/* under mu, newest first */
	bool stop;
	pthread_t thread;
	int pipe[2];
	struct event *notify_ev;
};

static void job_free(struct stream_read *job)
{
	close(job->fd);
	free(job->buf);
	free(job);
}

static void *reader_thread(void *arg)
{
	struct stream_reader *r = arg;

	for (;;) {
		struct stream_read *job;
		size_t have = 0;

		pthread_mutex_lock(&r->mu);
		while (r->todo == NULL && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		job = r->todo;
		r->todo = job->next;
		if (r->todo == NULL)
			r->todo_tail = &r->todo;
		pthread_mutex_unlock(&r->mu);

		job->got = 0;
		while (have < job->len) {
			ssize_t n = pread(job->fd, job->buf + have,
			    job->len - have, (off_t)(job->off + have));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				job->err = n < 0 ? errno : 0;
				break;
			}
			have += (size_t)n;
		}
		job->got = (ssize_t)have;

		pthread_mutex_lock(&r->mu);
		job->next = r->done;
		r->done = job;
		pthread_mutex_unlock(&r->mu);
		if (write(r->pipe[1], "", 1) < 0 && errno != EAGAIN)
			log_warning("stream reader notify: %s", strerror(errno));
	}
	return NULL;
}

/* On the loop: run the finished jobs' callbacks, oldest first. */
static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream_reader *r = arg;
	struct stream_read *list, *ordered = NULL;
	char drain[64];

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&r->mu);
	list = r->done;
	r->done = NULL;
	pthread_mutex_unlock(&r->mu);
	while (list) {
		struct stream_read *next = list->next;

		list->next = ordered;
		ordered = list;
		list = next;
	}
	while (ordered) {
		struct stream_read *next = ordered->next;

		if (!ordered->cancelled)
			ordered->done(ordered->arg, ordered);
		job_free(ordered);
		ordered = next;
	}
}

struct stream_reader *stream_reader_new(struct event_base *base)
{
	struct stream_reader *r = xcalloc(1, sizeof(*r));

	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->todo_tail = &r->todo;
	if (pipe2(r->pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		fatalx("stream reader: pipe: %s", strerror(errno));
	r->notify_ev = event_new(base, r->pipe[0], EV_READ | EV_PERSIST,
	    notify_cb, r);
	if (r->notify_ev == NULL || event_add(r->notify_ev, NULL) != 0)
		fatalx("stream reader: event_new failed");
	if (pthread_create(&r->thread, NULL, reader_thread, r) != 0)
		fatalx("cannot start the stream reader thread");
	return r;
}

void stream_reader_free(struct stream_reader *r)
{
	struct stream_read *lists[2];

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	lists[0] = r->todo;
	lists[1] = r->done;
	for (int i = 0; i < 2; i++)
		while (lists[i]) {
			struct stream_read *next = lists[i]->next;

			job_free(lists[i]);
			lists[i] = next;
		}
	event_free(r->notify_ev);
	close(r->pipe[0]);
	close(r->pipe[1]);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

struct stream_read *stream_reader_submit(struct stream_reader *r, int fd,
    uint64_t off, size_t len, void (*done)(void *, struct stream_read *),
    void *arg)
{
	int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	struct stream_read *job;

	if (own < 0)
		return NULL;
	job = xcalloc(1, sizeof(*job));
	job->fd = own;
	job->off = off;
	job->len = len;
	job->buf = xmalloc(len);
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&r->mu);
	*r->todo_tail = job;
	r->todo_tail = &job->next;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return job;
}
