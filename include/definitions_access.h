/*
 * The access part of RabbitMQ's definitions JSON: users, permissions and
 * topic permissions, to and from the user database (users.h).
 * definitions.c puts them in the export and calls the imports for each
 * entry of "users", "permissions" and "topic_permissions".
 *
 * Users are exported as RabbitMQ 3.10 does: password_hash,
 * hashing_algorithm, tags as a list, limits {}.  Import also takes tags
 * as one comma-separated string (RabbitMQ before 3.9) and a missing
 * hashing_algorithm (SHA-256).
 */
#ifndef WARREN_DEFINITIONS_ACCESS_H
#define WARREN_DEFINITIONS_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct user_db;

json_t *access_export_users(const struct user_db *db);
json_t *access_export_permissions(const struct user_db *db);
json_t *access_export_topic_permissions(const struct user_db *db);

/* Each: false with why set when the entry is invalid (nothing of it made). */
bool access_import_user(struct user_db *db, json_t *e, char *why,
    size_t whylen);
bool access_import_permission(struct user_db *db, json_t *e, char *why,
    size_t whylen);
bool access_import_topic_permission(struct user_db *db, json_t *e,
    char *why, size_t whylen);

#endif
