/*
 * Logging to stderr, one line per event, with a level.
 */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level lvl);
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
