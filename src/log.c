/*
 * Logging: one event per line, with a UTC timestamp and a level, to any
 * of the console (stderr), a file and syslog, each with its own level and
 * (console and file) plain text or JSON lines.
 *
 * Lines are rate-limited per call site (its format string): a flood of
 * one kind of event (failed logins, refused connections) cannot fill the
 * disk or drown the others.  Each site may burst LOG_BURST lines and then
 * LOG_PER_SECOND a second; what it drops is counted and reported with the
 * next line it writes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static const int syslog_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO,
    LOG_DEBUG };

/* Until log_configure: the console only, at info. */
static struct log_settings settings = {
	.console = { true, LOG_LVL_INFO, false },
};
static FILE *file;			/* file_path, opened */
static char *file_path;			/* ours: settings.file_path is it */
static char syslog_ident[64];
/* The store's and stream reader's threads log too. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(enum log_level lvl)
{
	settings.console.level = lvl;
}

/* The most detailed level any output takes. */
enum log_level log_get_level(void)
{
	enum log_level max = LOG_LVL_ERROR;

	if (settings.console.on && settings.console.level > max)
		max = settings.console.level;
	if (file && settings.file.level > max)
		max = settings.file.level;
	if (settings.syslog.on && settings.syslog.level > max)
		max = settings.syslog.level;
	return max;
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

static FILE *open_log_file(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "ae");

	if (fp == NULL)
		snprintf(err, errlen, "log.file: cannot open %s: %s", path,
		    strerror(errno));
	else
		setvbuf(fp, NULL, _IOLBF, 0);
	return fp;
}

bool log_configure(const struct log_settings *s, char *err, size_t errlen)
{
	FILE *fp = NULL;

	if (s->file.on && (fp = open_log_file(s->file_path, err,
	    errlen)) == NULL)
		return false;
	pthread_mutex_lock(&mu);
	if (file)
		fclose(file);
	file = fp;
	free(file_path);
	file_path = s->file.on ? xstrdup(s->file_path) : NULL;
	settings = *s;
	settings.file_path = file_path;
	if (settings.syslog.on) {
		snprintf(syslog_ident, sizeof(syslog_ident), "%s",
		    s->syslog_ident ? s->syslog_ident : "warrend");
		settings.syslog_ident = NULL;
		openlog(syslog_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
	pthread_mutex_unlock(&mu);
	return true;
}

bool log_reopen(char *err, size_t errlen)
{
	FILE *fp;

	if (!settings.file.on)
		return true;
	/* On failure the old file stays: it may have been moved, not lost. */
	if ((fp = open_log_file(settings.file_path, err, errlen)) == NULL)
		return false;
	pthread_mutex_lock(&mu);
	if (file)
		fclose(file);
	file = fp;
	pthread_mutex_unlock(&mu);
	return true;
}

void log_close(void)
{
	pthread_mutex_lock(&mu);
	if (file)
		fclose(file);
	file = NULL;
	settings.file.on = false;
	free(file_path);
	file_path = NULL;
	settings.file_path = NULL;
	if (settings.syslog.on)
		closelog();
	settings.syslog.on = false;
	pthread_mutex_unlock(&mu);
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
 * lines it lost since its last one.  Called under mu.  Sites that collide
 * in the table share a bucket, which only makes them stricter.
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

/* Length of the valid UTF-8 sequence at p (of n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 :
	    p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : 0;

	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

/* msg as a JSON string's contents: names of queues and users are any
 * bytes, so controls are escaped and invalid UTF-8 becomes U+FFFD. */
static void put_json_string(FILE *fp, const char *msg)
{
	const unsigned char *p = (const unsigned char *)msg;
	size_t n = strlen(msg);

	for (size_t i = 0; i < n; ) {
		unsigned char c = p[i];
		size_t len;

		if (c == '"' || c == '\\') {
			fputc('\\', fp);
			fputc(c, fp);
		} else if (c < 0x20) {
			fprintf(fp, "\\u%04x", c);
		} else if (c < 0x80) {
			fputc(c, fp);
		} else if ((len = utf8_len(p + i, n - i)) != 0) {
			fwrite(p + i, 1, len, fp);
			i += len;
			continue;
		} else {
			fputs("\\ufffd", fp);
		}
		i++;
	}
}

static void put_line(FILE *fp, bool json, const char *stamp,
    enum log_level lvl, const char *msg)
{
	if (json) {
		fprintf(fp, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
		    stamp, level_names[lvl]);
		put_json_string(fp, msg);
		fputs("\"}\n", fp);
	} else {
		fprintf(fp, "%s [%s] %s\n", stamp, level_names[lvl], msg);
	}
}

/* One event to every output whose level takes it. */
static void emit(enum log_level lvl, const char *stamp, const char *msg)
{
	if (settings.console.on && lvl <= settings.console.level) {
		put_line(stderr, settings.console.json, stamp, lvl, msg);
		fflush(stderr);
	}
	if (file && lvl <= settings.file.level)
		put_line(file, settings.file.json, stamp, lvl, msg);
	if (settings.syslog.on && lvl <= settings.syslog.level)
		syslog(syslog_priorities[lvl], "%s", msg);
}

static void log_emit(enum log_level lvl, bool limited, const char *fmt,
    va_list ap)
{
	char stamp[40], msg[2048], note[160];
	struct timespec ts;
	struct tm tm;
	uint64_t dropped = 0;
	size_t n;

	if (lvl > log_get_level())
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	pthread_mutex_lock(&mu);
	if (limited && !site_allows(fmt, &dropped)) {
		pthread_mutex_unlock(&mu);
		return;
	}
	if (dropped) {
		snprintf(note, sizeof(note), "(%llu more lines like the next "
		    "were dropped: more than %d a second)",
		    (unsigned long long)dropped, LOG_PER_SECOND);
		emit(lvl, stamp, note);
	}
	emit(lvl, stamp, msg);
	pthread_mutex_unlock(&mu);
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
