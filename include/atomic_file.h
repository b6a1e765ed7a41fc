/*
 * A file replaced whole or not at all, and durably: what a crash at any
 * moment leaves is the old file or the new one.
 */
#ifndef WARREN_ATOMIC_FILE_H
#define WARREN_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Write data (then tail, a string, if not NULL) to path.tmp, fsync it,
 * rename it over path and fsync the directory.  On failure path is as it
 * was, no path.tmp remains, and err says "PATH: why".
 */
bool atomic_file_write(const char *path, const char *data, size_t len,
    const char *tail, char *err, size_t errlen);

#endif
