/*
 * sync_latency: how long this disk takes to make an appended write
 * durable, the limit group commit works against.
 *
 * It appends -s bytes to a fresh file in DIR and calls fdatasync after
 * each write, -n times (after -w warm-up rounds), then prints the median,
 * 99th percentile and mean latency and the syncs per second they imply:
 * a broker that confirms only after fdatasync cannot finish more
 * sync rounds than that per second, so its confirmed messages per second
 * are at most (syncs/s) x (messages per sync).  The file is removed at
 * the end.  Output: a human line, then one JSON line.
 *
 *   sync_latency [-s BYTES] [-n SYNCS] [-w WARMUP] DIR
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr, "usage: sync_latency [-s BYTES] [-n SYNCS] "
	    "[-w WARMUP] DIR\n");
	exit(1);
}

int main(int argc, char **argv)
{
	long size = 4096, n = 2000, warmup = 50;
	char path[4096], *buf;
	double *lat, sum = 0;
	int opt, fd;

	while ((opt = getopt(argc, argv, "s:n:w:")) != -1) {
		switch (opt) {
		case 's': size = atol(optarg); break;
		case 'n': n = atol(optarg); break;
		case 'w': warmup = atol(optarg); break;
		default: usage();
		}
	}
	if (optind != argc - 1 || size <= 0 || n <= 0 || warmup < 0)
		usage();
	snprintf(path, sizeof(path), "%s/sync_latency.%ld", argv[optind],
	    (long)getpid());
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
	    0600)) < 0) {
		fprintf(stderr, "sync_latency: %s: %s\n", path, strerror(errno));
		return 1;
	}
	buf = malloc((size_t)size);
	lat = malloc((size_t)n * sizeof(*lat));
	if (buf == NULL || lat == NULL) {
		fprintf(stderr, "sync_latency: out of memory\n");
		return 1;
	}
	memset(buf, 'x', (size_t)size);
	for (long i = -warmup; i < n; i++) {
		double t0 = now_us();

		if (write(fd, buf, (size_t)size) != size || fdatasync(fd) != 0) {
			fprintf(stderr, "sync_latency: %s: %s\n", path,
			    strerror(errno));
			unlink(path);
			return 1;
		}
		if (i >= 0)
			sum += lat[i] = now_us() - t0;
	}
	close(fd);
	unlink(path);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	double median = lat[n / 2], p99 = lat[(n * 99) / 100], mean = sum / n;

	printf("write %ld B + fdatasync: median %.0f us, p99 %.0f us, mean "
	    "%.0f us: %.0f syncs/s\n", size, median, p99, mean, 1e6 / mean);
	printf("{\"bytes\": %ld, \"syncs\": %ld, \"median_us\": %.1f, "
	    "\"p99_us\": %.1f, \"mean_us\": %.1f, \"syncs_per_s\": %.0f}\n",
	    size, n, median, p99, mean, 1e6 / mean);
	free(buf);
	free(lat);
	return 0;
}
