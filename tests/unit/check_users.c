/*
 * Unit tests for the user database (users.c) and its definitions JSON
 * (definitions_access.c):
 *
 *  - a hash exported by RabbitMQ 3.10.8 (rabbitmqctl add_user alice
 *    alice-secret) verifies, and only for that password; SHA-512 and MD5
 *    hashes (vectors made with Python's hashlib) verify too;
 *  - Warren's own hashes are RabbitMQ's format (4-byte salt, SHA-256,
 *    base64) with a fresh salt each time;
 *  - malformed hashes, unknown algorithms and empty names are refused;
 *  - tags from a comma-separated string, trimmed and deduplicated;
 *  - permissions: unknown users and invalid expressions refused, set
 *    replaces, clear, deleting a user or a vhost drops its permissions;
 *    topic permissions likewise;
 *  - export -> import into an empty database -> the same export.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "definitions_access.h"
#include "strmap.h"
#include "users.h"

#define ERR char err[256]; err[0] = '\0'

static bool password_is(struct user_db *db, const char *name, const char *pw)
{
	struct user *u = userdb_find(db, bytes_str(name));

	ck_assert_ptr_nonnull(u);
	return user_password_ok(u, bytes_str(pw));
}

START_TEST(rabbitmq_hash_verifies)
{
	struct user_db *db = userdb_new();
	const char *tags[] = { "monitoring", "management" };
	ERR;

	ck_assert_int_eq(userdb_put_hash(db, "alice",
	    "b+CvgCflk8WC8PMD+QMi+f0sRs4fv0CQvmIzc5TzVuwBd4Gb",
	    "rabbit_password_hashing_sha256", tags, 2, err, sizeof(err)), 0);
	ck_assert(password_is(db, "alice", "alice-secret"));
	ck_assert(!password_is(db, "alice", "alice-secreT"));
	ck_assert(!password_is(db, "alice", "alice-secre"));
	ck_assert(!password_is(db, "alice", ""));
	/* A NUL inside the given password never matches. */
	ck_assert(!user_password_ok(userdb_find(db, BYTES_LIT("alice")),
	    (struct bytes){ (const uint8_t *)"alice-secret\0x", 14 }));
	ck_assert(user_has_tag(userdb_find(db, BYTES_LIT("alice")),
	    "management"));
	ck_assert(!user_has_tag(userdb_find(db, BYTES_LIT("alice")),
	    "administrator"));
	userdb_free(db);
}
END_TEST

START_TEST(other_algorithms_verify)
{
	struct user_db *db = userdb_new();
	ERR;

	ck_assert_int_eq(userdb_put_hash(db, "s", "V1JOMcQc8QP2dbLaRPO+YEVvjZyB"
	    "sQH+dTu+ZkoJq1Kj8sHVfbJaNDkmW4vleX3qc1GiiUFXHVTjFpHQoDfjodneYVs=",
	    "rabbit_password_hashing_sha512", NULL, 0, err, sizeof(err)), 0);
	ck_assert(password_is(db, "s", "pw-sha512"));
	ck_assert(!password_is(db, "s", "pw-md5"));
	ck_assert_str_eq(user_hashing_name(userdb_find(db, BYTES_LIT("s"))),
	    "rabbit_password_hashing_sha512");
	ck_assert_int_eq(userdb_put_hash(db, "m", "V1JOMRv6c2TONK6Lb++kI5aE2b8=",
	    "rabbit_password_hashing_md5", NULL, 0, err, sizeof(err)), 0);
	ck_assert(password_is(db, "m", "pw-md5"));
	/* A user without a password cannot log in with any. */
	ck_assert_int_eq(userdb_put_hash(db, "nopw", "", NULL, NULL, 0, err,
	    sizeof(err)), 0);
	ck_assert(!password_is(db, "nopw", ""));
	userdb_free(db);
}
END_TEST

START_TEST(own_hashes_are_rabbitmq_format)
{
	struct user_db *db = userdb_new();
	uint8_t raw[64];
	char first[80];
	struct user *u;
	ERR;

	ck_assert_int_eq(userdb_put(db, "bob", "s3cret", "", err,
	    sizeof(err)), 0);
	u = userdb_find(db, BYTES_LIT("bob"));
	ck_assert_str_eq(user_hashing_name(u), "rabbit_password_hashing_sha256");
	/* base64 of 4 salt bytes and a SHA-256 digest: 36 bytes, 48 chars. */
	ck_assert_uint_eq(strlen(u->password_hash), 48);
	ck_assert_int_eq(EVP_DecodeBlock(raw,
	    (const unsigned char *)u->password_hash, 48), 36);
	ck_assert(password_is(db, "bob", "s3cret"));
	strcpy(first, u->password_hash);
	/* The same password again: a new salt, a new hash, still valid. */
	ck_assert_int_eq(userdb_put(db, "bob", "s3cret", "", err,
	    sizeof(err)), 0);
	ck_assert_str_ne(first, u->password_hash);
	ck_assert(password_is(db, "bob", "s3cret"));
	/* No password given: the old one stays. */
	ck_assert_int_eq(userdb_put(db, "bob", NULL, "management", err,
	    sizeof(err)), 0);
	ck_assert(password_is(db, "bob", "s3cret"));
	ck_assert(user_has_tag(u, "management"));
	userdb_free(db);
}
END_TEST

START_TEST(bad_hashes_refused)
{
	struct user_db *db = userdb_new();
	ERR;

	ck_assert_int_eq(userdb_put_hash(db, "x", "not base64!", NULL, NULL, 0,
	    err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "password_hash"));
	/* An MD5-sized hash claimed as SHA-256. */
	ck_assert_int_eq(userdb_put_hash(db, "x", "V1JOMRv6c2TONK6Lb++kI5aE2b8=",
	    "rabbit_password_hashing_sha256", NULL, 0, err, sizeof(err)), -1);
	ck_assert_int_eq(userdb_put_hash(db, "x", "V1JOMRv6c2TONK6Lb++kI5aE2b8=",
	    "bcrypt", NULL, 0, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "bcrypt"));
	ck_assert_int_eq(userdb_put(db, "", "pw", "", err, sizeof(err)), -1);
	ck_assert_ptr_null(userdb_find(db, BYTES_LIT("x")));
	userdb_free(db);
}
END_TEST

START_TEST(tags_from_csv)
{
	struct user_db *db = userdb_new();
	struct user *u;
	ERR;

	ck_assert_int_eq(userdb_put(db, "t", "pw",
	    " administrator , management,,administrator", err, sizeof(err)), 0);
	u = userdb_find(db, BYTES_LIT("t"));
	ck_assert_uint_eq(u->n_tags, 2);
	ck_assert_str_eq(u->tags[0], "administrator");
	ck_assert_str_eq(u->tags[1], "management");
	ck_assert_int_eq(userdb_put(db, "t", NULL, "", err, sizeof(err)), 0);
	ck_assert_uint_eq(u->n_tags, 0);
	userdb_free(db);
}
END_TEST

START_TEST(permissions)
{
	struct user_db *db = userdb_new();
	const struct permission *p;
	ERR;

	ck_assert_int_eq(userdb_set_permissions(db, "ghost", "/", ".*", ".*",
	    ".*", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "ghost"));
	userdb_put(db, "u", "pw", "", err, sizeof(err));
	ck_assert_int_eq(userdb_set_permissions(db, "u", "/", "(", ".*", ".*",
	    err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "configure"));
	ck_assert_ptr_null(userdb_permissions(db, "u", "/"));
	ck_assert_int_eq(userdb_set_permissions(db, "u", "/", "^a", "^b", "^c",
	    err, sizeof(err)), 0);
	ck_assert_int_eq(userdb_set_permissions(db, "u", "v2", "", "", ".*",
	    err, sizeof(err)), 0);
	/* Set again: replaced, not added. */
	ck_assert_int_eq(userdb_set_permissions(db, "u", "/", ".*", "", "",
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(db->n_perms, 2);
	p = userdb_permissions(db, "u", "/");
	ck_assert_str_eq(p->configure, ".*");
	ck_assert_str_eq(p->write, "");
	ck_assert(userdb_clear_permissions(db, "u", "/"));
	ck_assert(!userdb_clear_permissions(db, "u", "/"));
	ck_assert_ptr_null(userdb_permissions(db, "u", "/"));
	ck_assert_ptr_nonnull(userdb_permissions(db, "u", "v2"));

	ck_assert_int_eq(userdb_set_topic_permissions(db, "u", "v2",
	    "amq.topic", "^x\\.", "^y\\.", err, sizeof(err)), 0);
	ck_assert_int_eq(userdb_set_topic_permissions(db, "u", "v2",
	    "amq.topic", "^z", "", err, sizeof(err)), 0);
	ck_assert_uint_eq(db->n_topic_perms, 1);
	ck_assert_str_eq(db->topic_perms[0].write, "^z");
	/* The vhost goes: so does everything on it. */
	userdb_vhost_deleted(db, "v2");
	ck_assert_uint_eq(db->n_perms, 0);
	ck_assert_uint_eq(db->n_topic_perms, 0);
	/* The user goes: so do its permissions. */
	userdb_set_permissions(db, "u", "/", ".*", ".*", ".*", err, sizeof(err));
	ck_assert(userdb_delete(db, "u"));
	ck_assert(!userdb_delete(db, "u"));
	ck_assert_uint_eq(db->n_perms, 0);
	userdb_free(db);
}
END_TEST

static json_t *export_all(struct user_db *db)
{
	return json_pack("{s:o, s:o, s:o}", "users", access_export_users(db),
	    "permissions", access_export_permissions(db),
	    "topic_permissions", access_export_topic_permissions(db));
}

START_TEST(definitions_round_trip)
{
	struct user_db *db = userdb_new(), *copy = userdb_new();
	json_t *first, *second, *e;
	size_t i;
	ERR;

	userdb_put(db, "b", "pw-b", "administrator", err, sizeof(err));
	userdb_put(db, "a", "pw-a", "monitoring,management", err, sizeof(err));
	userdb_set_permissions(db, "a", "/", "^a", ".*", "", err, sizeof(err));
	userdb_set_topic_permissions(db, "a", "/", "amq.topic", "^k", ".*",
	    err, sizeof(err));
	first = export_all(db);
	/* RabbitMQ 3.10's shape: tags a list, limits {}, sorted by name. */
	e = json_array_get(json_object_get(first, "users"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(e, "name")), "a");
	ck_assert(json_is_array(json_object_get(e, "tags")));
	ck_assert(json_is_object(json_object_get(e, "limits")));
	json_array_foreach(json_object_get(first, "users"), i, e)
		ck_assert_msg(access_import_user(copy, e, err, sizeof(err)),
		    "%s", err);
	json_array_foreach(json_object_get(first, "permissions"), i, e)
		ck_assert(access_import_permission(copy, e, err, sizeof(err)));
	json_array_foreach(json_object_get(first, "topic_permissions"), i, e)
		ck_assert(access_import_topic_permission(copy, e, err,
		    sizeof(err)));
	second = export_all(copy);
	ck_assert(json_equal(first, second));
	ck_assert(password_is(copy, "a", "pw-a"));
	ck_assert(password_is(copy, "b", "pw-b"));
	json_decref(first);
	json_decref(second);
	userdb_free(db);
	userdb_free(copy);
}
END_TEST

START_TEST(import_old_tag_string)
{
	struct user_db *db = userdb_new();
	json_t *e = json_pack("{s:s, s:s, s:s}", "name", "old",
	    "password_hash", "", "tags", "administrator,management");
	ERR;

	ck_assert(access_import_user(db, e, err, sizeof(err)));
	ck_assert_uint_eq(userdb_find(db, BYTES_LIT("old"))->n_tags, 2);
	json_decref(e);
	e = json_pack("{s:s, s:i}", "name", "bad", "tags", 3);
	ck_assert(!access_import_user(db, e, err, sizeof(err)));
	ck_assert_ptr_null(userdb_find(db, BYTES_LIT("bad")));
	json_decref(e);
	userdb_free(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("users");
	TCase *tc = tcase_create("users");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, rabbitmq_hash_verifies);
	tcase_add_test(tc, other_algorithms_verify);
	tcase_add_test(tc, own_hashes_are_rabbitmq_format);
	tcase_add_test(tc, bad_hashes_refused);
	tcase_add_test(tc, tags_from_csv);
	tcase_add_test(tc, permissions);
	tcase_add_test(tc, definitions_round_trip);
	tcase_add_test(tc, import_old_tag_string);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
