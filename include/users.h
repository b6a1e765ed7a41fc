/*
 * The user database: users with salted password hashes and tags, their
 * permissions per vhost (configure, write and read regular expressions)
 * and topic permissions, as RabbitMQ's internal database keeps them.
 *
 * Password hashes are RabbitMQ's: base64 of a 4-byte random salt followed
 * by H(salt ‖ password), H being SHA-256 (rabbit_password_hashing_sha256,
 * what Warren writes), SHA-512 or MD5 (read, so that users exported from
 * any RabbitMQ import with their passwords).  Checks run in constant time
 * over the digest.
 *
 * Everything here is durable through the definitions file (definitions.c
 * exports and imports it in RabbitMQ's format).
 */
#ifndef WARREN_USERS_H
#define WARREN_USERS_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct strmap;

enum pw_hashing {
	PW_SHA256,		/* rabbit_password_hashing_sha256 */
	PW_SHA512,		/* rabbit_password_hashing_sha512 */
	PW_MD5,			/* rabbit_password_hashing_md5 */
};

struct user {
	char *name;
	char *password_hash;		/* base64; "": no password login */
	enum pw_hashing hashing;
	char **tags;			/* "administrator", "monitoring", ... */
	uint32_t n_tags;
	/* RabbitMQ's user limits (-1: none): connections authenticated as
	 * this user, and channels on all of them. */
	int64_t max_connections, max_channels;
};

/* What an operation needs on a resource, as RabbitMQ names it. */
enum access { ACCESS_CONFIGURE, ACCESS_WRITE, ACCESS_READ };

struct permission {
	char *user, *vhost;
	char *configure, *write, *read;	/* regular expressions */
	regex_t *compiled[3];		/* by enum access, made on first use */
};

struct topic_permission {
	char *user, *vhost, *exchange;
	char *write, *read;		/* regular expressions on routing keys */
	regex_t *compiled[2];		/* write, read ({username} and {vhost}
					 * expanded), made on first use */
};

struct user_db {
	struct strmap *users;		/* name -> struct user */
	struct permission *perms;
	uint32_t n_perms, cap_perms;
	struct topic_permission *topic_perms;
	uint32_t n_topic_perms, cap_topic_perms;
	uint64_t generation;		/* grows whenever a permission changes:
					 * for caches of access checks */
};

struct user_db *userdb_new(void);
void userdb_free(struct user_db *db);

struct user *userdb_find(const struct user_db *db, struct bytes name);
/* Users sorted by name (the array is the caller's, the users are not). */
struct user **userdb_sorted(const struct user_db *db, size_t *n);

/*
 * Create user name or change it (RabbitMQ's PUT /api/users/{name}): its
 * password (hashed with a fresh salt; NULL: keep the current one, or none
 * for a new user) and its tags, comma-separated ("administrator,
 * management"; spaces around tags are ignored).  0, or -1 with err set.
 */
int userdb_put(struct user_db *db, const char *name, const char *password,
    const char *tags, char *err, size_t errlen);
/*
 * The same with a hash as RabbitMQ exports it: base64 of salt and digest,
 * algorithm by RabbitMQ's name (NULL or "": SHA-256, RabbitMQ's
 * default).  tags[] replaces the user's tags.
 */
int userdb_put_hash(struct user_db *db, const char *name, const char *hash,
    const char *algorithm, const char *const *tags, size_t n_tags,
    char *err, size_t errlen);
/* Delete a user and every permission it has; false if there was none. */
bool userdb_delete(struct user_db *db, const char *name);

/* Whether password is u's (false for a user without a password). */
bool user_password_ok(const struct user *u, struct bytes password);
bool user_has_tag(const struct user *u, const char *tag);
/* RabbitMQ's name of u's hashing algorithm. */
const char *user_hashing_name(const struct user *u);

/*
 * Set user's permissions on vhost (each a regular expression; "" matches
 * nothing, ".*" everything).  The user must exist; -1 with err set for an
 * unknown user or an invalid expression.
 */
int userdb_set_permissions(struct user_db *db, const char *user,
    const char *vhost, const char *configure, const char *write,
    const char *read, char *err, size_t errlen);
bool userdb_clear_permissions(struct user_db *db, const char *user,
    const char *vhost);
/*
 * Whether user may do `what` to the resource called name in vhost (its
 * regular expression matches the name; "" matches nothing but ""):
 * RabbitMQ's configure/write/read check.
 */
bool userdb_permitted(struct user_db *db, const char *user,
    const char *vhost, enum access what, const char *name);
/* user's permissions on vhost, or NULL: no access. */
const struct permission *userdb_permissions(const struct user_db *db,
    const char *user, const char *vhost);

int userdb_set_topic_permissions(struct user_db *db, const char *user,
    const char *vhost, const char *exchange, const char *write,
    const char *read, char *err, size_t errlen);
/*
 * RabbitMQ's topic permissions: whether user may publish (ACCESS_WRITE) or
 * bind (ACCESS_READ) with routing key `key` on the topic exchange called
 * exchange in vhost.  True when the user has no topic permission for that
 * exchange.
 */
bool userdb_topic_permitted(struct user_db *db, const char *user,
    const char *vhost, const char *exchange, enum access what,
    const char *key);
/* Any of user, vhost, exchange NULL: any; true if one was cleared. */
bool userdb_clear_topic_permissions(struct user_db *db, const char *user,
    const char *vhost, const char *exchange);

/* A vhost went away: forget every permission on it. */
void userdb_vhost_deleted(struct user_db *db, const char *vhost);

#endif
