/*
 * warrenctl's output (see ctl.h): aligned tables for people, JSON for
 * scripts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* obj's member at a dotted path ("queue.name"), or NULL. */
static json_t *member(json_t *obj, const char *path)
{
	char key[128];
	const char *dot;

	while ((dot = strchr(path, '.')) != NULL && json_is_object(obj)) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		obj = json_object_get(obj, key);
		path = dot + 1;
	}
	return json_is_object(obj) ? json_object_get(obj, path) : NULL;
}

/* A value as a table shows it (malloc'd): lists joined by commas. */
static char *cell(json_t *v)
{
	char buf[64], *s;
	size_t i;
	json_t *item;

	if (v == NULL)		/* a member this row does not have */
		return strdup("");
	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%lld",
		    (long long)json_integer_value(v));
		return strdup(buf);
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%.1f", json_real_value(v));
		return strdup(buf);
	case JSON_TRUE:
		return strdup("true");
	case JSON_FALSE:
		return strdup("false");
	case JSON_ARRAY:
		s = strdup("");
		json_array_foreach(v, i, item) {
			char *c = cell(item), *joined;
			size_t n = strlen(s) + strlen(c) + 2;

			joined = malloc(n);
			if (joined == NULL)
				exit(CTL_UNREACHABLE);
			snprintf(joined, n, "%s%s%s", s, i ? "," : "", c);
			free(c);
			free(s);
			s = joined;
		}
		return s;
	case JSON_OBJECT:
		s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		return s ? s : strdup("");
	default:
		return strdup("");
	}
}

void ctl_print_table(json_t *list, const char *const *columns, size_t n)
{
	size_t rows = json_array_size(list), *width = calloc(n, sizeof(*width));
	char **cells = calloc((rows + 1) * n, sizeof(*cells));

	if (width == NULL || cells == NULL)
		exit(CTL_UNREACHABLE);
	for (size_t c = 0; c < n; c++)
		cells[c] = strdup(columns[c]);
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < n; c++)
			cells[(r + 1) * n + c] = cell(member(
			    json_array_get(list, r), columns[c]));
	for (size_t i = 0; i < (rows + 1) * n; i++)
		if (strlen(cells[i]) > width[i % n])
			width[i % n] = strlen(cells[i]);
	for (size_t r = 0; r <= rows; r++) {
		for (size_t c = 0; c < n; c++) {
			const char *s = cells[r * n + c];

			if (c + 1 == n)
				printf("%s\n", s);
			else
				printf("%-*s  ", (int)width[c], s);
		}
	}
	for (size_t i = 0; i < (rows + 1) * n; i++)
		free(cells[i]);
	free(cells);
	free(width);
}

void ctl_print_fields(json_t *obj, const char *const *keys, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++)
		if (strlen(keys[i]) > w)
			w = strlen(keys[i]);
	for (size_t i = 0; i < n; i++) {
		char *v = cell(member(obj, keys[i]));

		printf("%-*s  %s\n", (int)w, keys[i], v);
		free(v);
	}
}

void ctl_print_json(json_t *json)
{
	char *s = json_dumps(json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s) {
		printf("%s\n", s);
		free(s);
	}
}
