/*
 * Files replaced whole or not at all (atomic_file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "log.h"

/* A rename in path's directory survives a crash once this returns 0. */
static int sync_dir(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int fd, rc, saved;

	/* "/file" lives in "/", keep its slash. */
	if (slash != NULL)
		slash[slash == dir] = '\0';
	fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -1 : fsync(fd);
	saved = errno;
	if (fd >= 0)
		close(fd);
	free(dir);
	errno = saved;
	return rc;
}

/* Write all of buf; false with errno set (EIO for a write of nothing). */
static bool write_whole(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return false;
		}
		buf += w;
		len -= (size_t)w;
	}
	return true;
}

bool atomic_file_write(const char *path, const char *data, size_t len,
    const char *tail, char *err, size_t errlen)
{
	size_t plen = strlen(path);
	char *tmp = xmalloc(plen + sizeof(".tmp"));
	const char *step;
	int fd = -1, saved;
	bool ok = false;

	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", sizeof(".tmp"));
	step = "create";
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) < 0)
		goto fail;
	step = "write";
	if (!write_whole(fd, data, len) ||
	    (tail && !write_whole(fd, tail, strlen(tail))))
		goto fail;
	step = "sync";
	if (fsync(fd) != 0)
		goto fail;
	step = "close";
	saved = close(fd);
	fd = -1;
	if (saved != 0)
		goto fail;
	step = "rename";
	if (rename(tmp, path) != 0)
		goto fail;
	/* path is whole either way now; only the rename's durability waits. */
	if (!(ok = sync_dir(path) == 0))
		snprintf(err, errlen, "%s: cannot sync its directory: %s", path,
		    strerror(errno));
	free(tmp);
	return ok;
fail:
	saved = errno;
	snprintf(err, errlen, "%s: cannot %s %s: %s", path, step, tmp,
	    strerror(saved));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return false;
}
