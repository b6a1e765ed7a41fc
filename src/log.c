/*
 * Logging to stderr and the allocation wrappers that die on failure.
 *
 * Lines are rate-limited per call site (its format string): a flood of
 * one kind of event (failed logins, refused connections) cannot fill the
 * disk or drown the others.  Each site may burst LOG_BURST lines and then
 * LOG_PER_SECOND a second; what it drops is counted and reported with the
 * next line it writes.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static enum log_level current_level = LOG_LVL_INFO;
static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_set_level(enum log_level lvl)
{
	current_level = lvl;
}

enum log_level log_get_level(void)
{
	return current_level;
}

int log_level_parse(const char *name)
{
	for (int i = 0; i <= LOG_LVL_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	if (strcmp(name, "warn") == 0)
		return LOG_LVL_WARNING;
	return -1;
}

#define LOG_BURST 200
#define LOG_PER_SECOND 50
#define LOG_SITES 256		/* a power of two */

struct log_site {
	const char *fmt;
	double tokens;
	uint64_t refilled_ms;
	uint64_t dropped;
};

static struct log_site sites[LOG_SITES];

static uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Whether a line from fmt may be written now; *dropped is set to the
 * lines it lost since its last one.  Called under stderr's lock.  Sites
 * that collide in the table share a bucket, which only makes them
 * stricter.
 */
static bool site_allows(const char *fmt, uint64_t *dropped)
{
	struct log_site *s = &sites[((uintptr_t)fmt >> 3) & (LOG_SITES - 1)];
	uint64_t now = monotonic_ms();

	if (s->fmt != fmt) {
		s->fmt = fmt;
		s->tokens = LOG_BURST;
		s->refilled_ms = now;
		s->dropped = 0;
	}
	s->tokens += (double)(now - s->refilled_ms) * LOG_PER_SECOND / 1000.0;
	if (s->tokens > LOG_BURST)
		s->tokens = LOG_BURST;
	s->refilled_ms = now;
	if (s->tokens < 1.0) {
		s->dropped++;
		return false;
	}
	s->tokens -= 1.0;
	*dropped = s->dropped;
	s->dropped = 0;
	return true;
}

static void log_emit(enum log_level lvl, bool limited, const char *fmt,
    va_list ap)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	uint64_t dropped = 0;

	if (lvl > current_level)
		return;
	flockfile(stderr);
	if (limited && !site_allows(fmt, &dropped)) {
		funlockfile(stderr);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	if (dropped)
		fprintf(stderr, "%s.%03ldZ [%s] (%llu more lines like the next "
		    "were dropped: more than %d a second)\n", stamp,
		    ts.tv_nsec / 1000000, level_names[lvl],
		    (unsigned long long)dropped, LOG_PER_SECOND);
	fprintf(stderr, "%s.%03ldZ [%s] ", stamp, ts.tv_nsec / 1000000,
	    level_names[lvl]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

#define LOG_FN(name, lvl)				\
	void name(const char *fmt, ...)			\
	{						\
		va_list ap;				\
		va_start(ap, fmt);			\
		log_emit(lvl, true, fmt, ap);		\
		va_end(ap);				\
	}
LOG_FN(log_error, LOG_LVL_ERROR)
LOG_FN(log_warning, LOG_LVL_WARNING)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LVL_ERROR, false, fmt, ap);
	va_end(ap);
	exit(1);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatalx("out of memory allocating %zu bytes", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatalx("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		fatalx("out of memory reallocating %zu bytes", n);
	return q;
}

char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		fatalx("out of memory duplicating a string");
	return d;
}
