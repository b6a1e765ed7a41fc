/*
 * Logging, one line per event with a timestamp and a level, to the
 * console (stderr), a file and syslog (log.* in warren.conf).
 */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_INFO, LOG_LVL_DEBUG };

struct log_output {
	bool on;
	enum log_level level;		/* events up to this level */
	bool json;			/* JSON lines (not for syslog) */
};

struct log_settings {
	struct log_output console, file, syslog;
	const char *file_path;		/* with file.on */
	const char *syslog_ident;	/* NULL: "warrend" */
};

/*
 * Use these outputs from now on (the file is opened, appending); false
 * with err set when the file cannot be opened (nothing changes then).
 */
bool log_configure(const struct log_settings *s, char *err, size_t errlen);
/* SIGHUP: open the log file again (it may have been rotated away); on
 * failure the old one stays. */
bool log_reopen(char *err, size_t errlen);
void log_close(void);

/* The console's level. */
void log_set_level(enum log_level lvl);
/* The most detailed level any output takes. */
enum log_level log_get_level(void);
/* "debug", "info", "warning" (or "warn"), "error"; -1 if unknown. */
int log_level_parse(const char *name);

#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))
void log_error(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_warning(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_info(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_debug(const char *fmt, ...) PRINTFLIKE(1, 2);
/* Broken invariant or out of memory: log and exit(1). */
void fatalx(const char *fmt, ...) PRINTFLIKE(1, 2) __attribute__((noreturn));

/* malloc family that dies on failure. */
#include <stddef.h>
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
