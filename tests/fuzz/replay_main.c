/*
 * Replays a fuzz target's saved inputs without libFuzzer, so that make
 * check runs every corpus file through the target's property checks with
 * the plain compiler, and under ASan+UBSan in the sanitizer build.  A
 * violated property aborts, which the totals count as a failure.
 *
 *   replay_TARGET [FILE|DIR]...
 *
 * Without arguments it replays $WARREN_SRCDIR/tests/fuzz/corpus/TARGET
 * (TARGET is compiled in as FUZZ_TARGET).  Ends with the suite's result
 * line; replaying nothing is a failure.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_target.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the target's corpus directory"
#endif

static int replayed;

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			if ((buf = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "%s: out of memory\n", path);
				fclose(f);
				return -1;
			}
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	printf("replay %s (%zu bytes)\n", path, len);
	fflush(stdout);		/* name the input before a crash can hide it */
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	replayed++;
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's regular files, in name order so runs are repeatable. */
static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t count = 0, i;
	int rc = 0;

	if (d == NULL) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char **grown;

		if (e->d_name[0] == '.')
			continue;
		grown = realloc(names, (count + 1) * sizeof(*names));
		if (grown == NULL || (grown[count] = malloc(strlen(dir) +
		    strlen(e->d_name) + 2)) == NULL) {
			fprintf(stderr, "%s: out of memory\n", dir);
			names = grown ? grown : names;
			rc = -1;
			break;
		}
		names = grown;
		sprintf(names[count++], "%s/%s", dir, e->d_name);
	}
	closedir(d);
	qsort(names, count, sizeof(*names), compare_names);
	for (i = 0; i < count; i++) {
		if (rc == 0 && replay_file(names[i]) != 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

static int replay_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	return S_ISDIR(st.st_mode) ? replay_dir(path) : replay_file(path);
}

int main(int argc, char **argv)
{
	int i, rc = 0;

	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_path(argv[i]) != 0)
				rc = -1;
	} else {
		const char *top = getenv("WARREN_SRCDIR");
		char dir[4096];

		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s",
		    top ? top : ".", FUZZ_TARGET);
		rc = replay_path(dir);
	}
	if (rc != 0 || replayed == 0) {
		printf("RESULT: %d passed, 1 failed, 0 skipped\n", replayed);
		return 1;
	}
	printf("RESULT: %d passed, 0 failed, 0 skipped\n", replayed);
	return 0;
}
