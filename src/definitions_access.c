/*
 * Users and permissions in the definitions JSON (see definitions_access.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "definitions_access.h"
#include "log.h"
#include "resource_limits.h"
#include "users.h"

json_t *access_export_users(const struct user_db *db)
{
	json_t *list = json_array();
	size_t n;
	struct user **users = userdb_sorted(db, &n);

	for (size_t i = 0; i < n; i++) {
		struct user *u = users[i];
		json_t *tags = json_array();

		for (uint32_t t = 0; t < u->n_tags; t++)
			json_array_append_new(tags, json_string(u->tags[t]));
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:o}",
		    "name", u->name, "password_hash", u->password_hash,
		    "hashing_algorithm", user_hashing_name(u), "tags", tags,
		    "limits", limits_user_json(u)));
	}
	free(users);
	return list;
}

json_t *access_export_permissions(const struct user_db *db)
{
	json_t *list = json_array();

	for (uint32_t i = 0; i < db->n_perms; i++) {
		const struct permission *p = &db->perms[i];

		json_array_append_new(list, json_pack(
		    "{s:s, s:s, s:s, s:s, s:s}", "user", p->user, "vhost",
		    p->vhost, "configure", p->configure, "write", p->write,
		    "read", p->read));
	}
	return list;
}

json_t *access_export_topic_permissions(const struct user_db *db)
{
	json_t *list = json_array();

	for (uint32_t i = 0; i < db->n_topic_perms; i++) {
		const struct topic_permission *p = &db->topic_perms[i];

		json_array_append_new(list, json_pack(
		    "{s:s, s:s, s:s, s:s, s:s}", "user", p->user, "vhost",
		    p->vhost, "exchange", p->exchange, "write", p->write,
		    "read", p->read));
	}
	return list;
}

/* The string members keys[] of e, in order, into out[]. */
static bool strings(json_t *e, const char *const *keys, size_t n,
    const char **out, char *why, size_t whylen)
{
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(e, keys[i]);

		if (!json_is_string(v)) {
			snprintf(why, whylen, "'%s' must be a string", keys[i]);
			return false;
		}
		out[i] = json_string_value(v);
	}
	return true;
}

bool access_import_user(struct user_db *db, json_t *e, char *why,
    size_t whylen)
{
	static const char *const keys[] = { "name" };
	const char *s[2] = { NULL, "" }, *algorithm = NULL, **tags = NULL;
	json_t *hash = json_object_get(e, "password_hash");
	json_t *alg = json_object_get(e, "hashing_algorithm");
	json_t *t = json_object_get(e, "tags"), *v, *limits;
	char *csv = NULL, *tok, *save;
	size_t n = 0, i;
	int rc;

	if (!strings(e, keys, 1, s, why, whylen))
		return false;
	/* A user without one logs in by other means (certificates). */
	if (hash && !json_is_string(hash)) {
		snprintf(why, whylen, "'password_hash' must be a string");
		return false;
	}
	if (hash)
		s[1] = json_string_value(hash);
	if (alg && !json_is_string(alg)) {
		snprintf(why, whylen, "'hashing_algorithm' must be a string");
		return false;
	}
	algorithm = alg ? json_string_value(alg) : NULL;
	if (json_is_array(t)) {
		tags = xcalloc(json_array_size(t) + 1, sizeof(*tags));
		json_array_foreach(t, i, v) {
			if (!json_is_string(v)) {
				free(tags);
				snprintf(why, whylen, "'tags' must hold strings");
				return false;
			}
			tags[n++] = json_string_value(v);
		}
	} else if (json_is_string(t)) {
		/* "administrator,management", as RabbitMQ < 3.9 exports. */
		csv = xstrdup(json_string_value(t));
		tags = xcalloc(strlen(csv) / 2 + 2, sizeof(*tags));
		for (tok = strtok_r(csv, ", ", &save); tok;
		    tok = strtok_r(NULL, ", ", &save))
			tags[n++] = tok;
	} else if (t != NULL) {
		snprintf(why, whylen, "'tags' must be a list or a string");
		return false;
	}
	rc = userdb_put_hash(db, s[0], s[1], algorithm, tags, n, why, whylen);
	free(tags);
	free(csv);
	if (rc == 0 && (limits = json_object_get(e, "limits")) != NULL &&
	    !limits_user_from_json(userdb_find(db, bytes_str(s[0])), limits,
	    why, whylen))
		rc = -1;
	return rc == 0;
}

bool access_import_permission(struct user_db *db, json_t *e, char *why,
    size_t whylen)
{
	static const char *const keys[] = { "user", "vhost", "configure",
	    "write", "read" };
	const char *s[5];

	return strings(e, keys, 5, s, why, whylen) &&
	    userdb_set_permissions(db, s[0], s[1], s[2], s[3], s[4], why,
	    whylen) == 0;
}

bool access_import_topic_permission(struct user_db *db, json_t *e,
    char *why, size_t whylen)
{
	static const char *const keys[] = { "user", "vhost", "exchange",
	    "write", "read" };
	const char *s[5];

	return strings(e, keys, 5, s, why, whylen) &&
	    userdb_set_topic_permissions(db, s[0], s[1], s[2], s[3], s[4],
	    why, whylen) == 0;
}
