/*
 * The user database (see users.h).
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "strmap.h"
#include "users.h"

#define SALT_LEN 4

static const struct {
	const char *name;
	enum pw_hashing hashing;
} hashings[] = {
	{ "rabbit_password_hashing_sha256", PW_SHA256 },
	{ "rabbit_password_hashing_sha512", PW_SHA512 },
	{ "rabbit_password_hashing_md5", PW_MD5 },
};

static const EVP_MD *digest_of(enum pw_hashing h)
{
	switch (h) {
	case PW_SHA512:
		return EVP_sha512();
	case PW_MD5:
		return EVP_md5();
	case PW_SHA256:
		break;
	}
	return EVP_sha256();
}

static void fail(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
}

struct user_db *userdb_new(void)
{
	struct user_db *db = xcalloc(1, sizeof(*db));

	db->users = strmap_new();
	return db;
}

static void free_tags(struct user *u)
{
	for (uint32_t i = 0; i < u->n_tags; i++)
		free(u->tags[i]);
	free(u->tags);
	u->tags = NULL;
	u->n_tags = 0;
}

static void user_free(struct user *u)
{
	free_tags(u);
	free(u->password_hash);
	free(u->name);
	free(u);
}

static void compiled_free(struct permission *p)
{
	for (int i = 0; i < 3; i++)
		if (p->compiled[i]) {
			regfree(p->compiled[i]);
			free(p->compiled[i]);
			p->compiled[i] = NULL;
		}
}

static void permission_free(struct permission *p)
{
	compiled_free(p);
	free(p->user);
	free(p->vhost);
	free(p->configure);
	free(p->write);
	free(p->read);
}

static void topic_permission_free(struct topic_permission *p)
{
	for (int i = 0; i < 2; i++)
		if (p->compiled[i]) {
			regfree(p->compiled[i]);
			free(p->compiled[i]);
		}
	free(p->user);
	free(p->vhost);
	free(p->exchange);
	free(p->write);
	free(p->read);
}

void userdb_free(struct user_db *db)
{
	struct bytes k;
	void *v;

	if (db == NULL)
		return;
	for (size_t it = 0; strmap_next(db->users, &it, &k, &v); )
		user_free(v);
	strmap_free(db->users);
	for (uint32_t i = 0; i < db->n_perms; i++)
		permission_free(&db->perms[i]);
	free(db->perms);
	for (uint32_t i = 0; i < db->n_topic_perms; i++)
		topic_permission_free(&db->topic_perms[i]);
	free(db->topic_perms);
	free(db);
}

struct user *userdb_find(const struct user_db *db, struct bytes name)
{
	return strmap_get(db->users, name);
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct user *const *)a)->name,
	    (*(struct user *const *)b)->name);
}

struct user **userdb_sorted(const struct user_db *db, size_t *n)
{
	size_t count = strmap_count(db->users), i = 0;
	struct user **list = xcalloc(count ? count : 1, sizeof(*list));
	struct bytes k;
	void *v;

	for (size_t it = 0; strmap_next(db->users, &it, &k, &v); )
		list[i++] = v;
	qsort(list, count, sizeof(*list), by_name);
	*n = count;
	return list;
}

/* The user called name, made (without password or tags) if need be. */
static struct user *user_get(struct user_db *db, const char *name)
{
	struct user *u = strmap_get(db->users, bytes_str(name));

	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		u->name = xstrdup(name);
		u->password_hash = xstrdup("");
		u->max_connections = u->max_channels = -1;
		strmap_put(db->users, bytes_str(u->name), u);
	}
	return u;
}

static void add_tag(struct user *u, const char *tag, size_t len)
{
	for (uint32_t i = 0; i < u->n_tags; i++)
		if (strlen(u->tags[i]) == len && memcmp(u->tags[i], tag, len) == 0)
			return;
	u->tags = xrealloc(u->tags, sizeof(*u->tags) * (u->n_tags + 1));
	u->tags[u->n_tags] = xmalloc(len + 1);
	memcpy(u->tags[u->n_tags], tag, len);
	u->tags[u->n_tags++][len] = '\0';
}

/* "a, b,c" -> a b c: RabbitMQ's API and CLI split tags on commas. */
static void set_tags_csv(struct user *u, const char *csv)
{
	free_tags(u);
	while (csv && *csv) {
		size_t skip = strspn(csv, " ,"), len;

		csv += skip;
		len = strcspn(csv, ",");
		while (len && csv[len - 1] == ' ')
			len--;
		if (len)
			add_tag(u, csv, len);
		csv += strcspn(csv, ",");
	}
}

static char *hash_password(enum pw_hashing h, const uint8_t *salt,
    const char *password)
{
	uint8_t buf[SALT_LEN + EVP_MAX_MD_SIZE];
	char *out;
	unsigned len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL ||
	    !EVP_DigestInit_ex(ctx, digest_of(h), NULL) ||
	    !EVP_DigestUpdate(ctx, salt, SALT_LEN) ||
	    !EVP_DigestUpdate(ctx, password, strlen(password)) ||
	    !EVP_DigestFinal_ex(ctx, buf + SALT_LEN, &len))
		fatalx("password digest failed");
	EVP_MD_CTX_free(ctx);
	memcpy(buf, salt, SALT_LEN);
	out = xmalloc(4 * ((SALT_LEN + len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, buf, (int)(SALT_LEN + len));
	return out;
}

/* The salt and digest of a stored hash; 0 bytes if it does not decode. */
static size_t decode_hash(const char *hash, uint8_t *out, size_t cap)
{
	size_t n = strlen(hash), pad = 0;
	int len;

	if (n == 0 || n % 4 != 0 || 3 * (n / 4) > cap)
		return 0;
	if ((len = EVP_DecodeBlock(out, (const unsigned char *)hash,
	    (int)n)) < 0)
		return 0;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	while (pad < 2 && hash[n - 1 - pad] == '=')
		pad++;
	return (size_t)len - pad;
}

int userdb_put(struct user_db *db, const char *name, const char *password,
    const char *tags, char *err, size_t errlen)
{
	uint8_t salt[SALT_LEN];
	struct user *u;

	if (*name == '\0') {
		fail(err, errlen, "%sa user name must not be empty", "");
		return -1;
	}
	u = user_get(db, name);
	if (password) {
		if (RAND_bytes(salt, sizeof(salt)) != 1)
			fatalx("RAND_bytes failed");
		free(u->password_hash);
		u->password_hash = hash_password(PW_SHA256, salt, password);
		u->hashing = PW_SHA256;
	}
	set_tags_csv(u, tags);
	return 0;
}

int userdb_put_hash(struct user_db *db, const char *name, const char *hash,
    const char *algorithm, const char *const *tags, size_t n_tags,
    char *err, size_t errlen)
{
	enum pw_hashing h = PW_SHA256;
	uint8_t raw[SALT_LEN + EVP_MAX_MD_SIZE + 3];
	size_t len, i;
	struct user *u;

	if (*name == '\0') {
		fail(err, errlen, "%sa user name must not be empty", "");
		return -1;
	}
	if (algorithm && *algorithm) {
		for (i = 0; i < sizeof(hashings) / sizeof(hashings[0]); i++)
			if (strcmp(hashings[i].name, algorithm) == 0)
				break;
		if (i == sizeof(hashings) / sizeof(hashings[0])) {
			fail(err, errlen, "unknown hashing_algorithm '%s'",
			    algorithm);
			return -1;
		}
		h = hashings[i].hashing;
	}
	len = decode_hash(hash, raw, sizeof(raw));
	if (*hash && len != SALT_LEN + (size_t)EVP_MD_get_size(digest_of(h))) {
		fail(err, errlen, "password_hash is not a salted %s hash "
		    "in base64", algorithm && *algorithm ? algorithm :
		    hashings[0].name);
		return -1;
	}
	u = user_get(db, name);
	free(u->password_hash);
	u->password_hash = xstrdup(hash);
	u->hashing = h;
	free_tags(u);
	for (i = 0; i < n_tags; i++)
		if (*tags[i])
			add_tag(u, tags[i], strlen(tags[i]));
	return 0;
}

/* NULL matches anything. */
static bool matches(const char *field, const char *want)
{
	return want == NULL || strcmp(field, want) == 0;
}

/* Drop the permissions of user on vhost (either NULL: any). */
static void drop_permissions(struct user_db *db, const char *user,
    const char *vhost)
{
	uint32_t kept = 0;

	db->generation++;
	for (uint32_t i = 0; i < db->n_perms; i++) {
		struct permission *p = &db->perms[i];

		if (matches(p->user, user) && matches(p->vhost, vhost))
			permission_free(p);
		else
			db->perms[kept++] = *p;
	}
	db->n_perms = kept;
}

bool userdb_delete(struct user_db *db, const char *name)
{
	struct user *u = strmap_del(db->users, bytes_str(name));

	if (u == NULL)
		return false;
	drop_permissions(db, name, NULL);
	userdb_clear_topic_permissions(db, name, NULL, NULL);
	user_free(u);
	return true;
}

bool user_password_ok(const struct user *u, struct bytes password)
{
	uint8_t stored[SALT_LEN + EVP_MAX_MD_SIZE + 3];
	uint8_t given[SALT_LEN + EVP_MAX_MD_SIZE + 3];
	size_t n = decode_hash(u->password_hash, stored, sizeof(stored));
	char *pw, *mine;
	bool ok;

	if (n <= SALT_LEN || memchr(password.ptr, 0, password.len))
		return false;
	pw = bytes_strdup(password);
	mine = hash_password(u->hashing, stored, pw);
	ok = decode_hash(mine, given, sizeof(given)) == n &&
	    CRYPTO_memcmp(given, stored, n) == 0;
	OPENSSL_cleanse(pw, password.len);
	free(pw);
	free(mine);
	return ok;
}

bool user_has_tag(const struct user *u, const char *tag)
{
	for (uint32_t i = 0; i < u->n_tags; i++)
		if (strcmp(u->tags[i], tag) == 0)
			return true;
	return false;
}

const char *user_hashing_name(const struct user *u)
{
	for (size_t i = 0; i < sizeof(hashings) / sizeof(hashings[0]); i++)
		if (hashings[i].hashing == u->hashing)
			return hashings[i].name;
	return hashings[0].name;
}

/* ---- permissions -------------------------------------------------------- */

static bool regex_ok(const char *what, const char *re, char *err,
    size_t errlen)
{
	regex_t r;
	int rc;

	if ((rc = regcomp(&r, re, REG_EXTENDED | REG_NOSUB)) != 0) {
		char why[128];

		regerror(rc, &r, why, sizeof(why));
		snprintf(err, errlen, "invalid %s regular expression '%s': %s",
		    what, re, why);
		return false;
	}
	regfree(&r);
	return true;
}

static bool user_known(struct user_db *db, const char *user, char *err,
    size_t errlen)
{
	if (strmap_get(db->users, bytes_str(user)))
		return true;
	fail(err, errlen, "no user '%s'", user);
	return false;
}

static struct permission *find_perm(const struct user_db *db,
    const char *user, const char *vhost)
{
	for (uint32_t i = 0; i < db->n_perms; i++)
		if (strcmp(db->perms[i].user, user) == 0 &&
		    strcmp(db->perms[i].vhost, vhost) == 0)
			return &db->perms[i];
	return NULL;
}

int userdb_set_permissions(struct user_db *db, const char *user,
    const char *vhost, const char *configure, const char *write,
    const char *read, char *err, size_t errlen)
{
	struct permission *p;

	db->generation++;
	if (!user_known(db, user, err, errlen) ||
	    !regex_ok("configure", configure, err, errlen) ||
	    !regex_ok("write", write, err, errlen) ||
	    !regex_ok("read", read, err, errlen))
		return -1;
	if ((p = find_perm(db, user, vhost)) == NULL) {
		if (db->n_perms == db->cap_perms) {
			db->cap_perms = db->cap_perms ? 2 * db->cap_perms : 8;
			db->perms = xrealloc(db->perms,
			    sizeof(*db->perms) * db->cap_perms);
		}
		p = &db->perms[db->n_perms++];
		p->user = xstrdup(user);
		p->vhost = xstrdup(vhost);
	} else {
		compiled_free(p);
		free(p->configure);
		free(p->write);
		free(p->read);
	}
	memset(p->compiled, 0, sizeof(p->compiled));
	p->configure = xstrdup(configure);
	p->write = xstrdup(write);
	p->read = xstrdup(read);
	return 0;
}

bool userdb_clear_permissions(struct user_db *db, const char *user,
    const char *vhost)
{
	struct permission *p = find_perm(db, user, vhost);

	db->generation++;
	if (p == NULL)
		return false;
	permission_free(p);
	*p = db->perms[--db->n_perms];
	return true;
}

bool userdb_permitted(struct user_db *db, const char *user,
    const char *vhost, enum access what, const char *name)
{
	struct permission *p = find_perm(db, user, vhost);
	const char *re;

	if (p == NULL)
		return false;
	re = what == ACCESS_CONFIGURE ? p->configure :
	    what == ACCESS_WRITE ? p->write : p->read;
	if (*re == '\0')
		return *name == '\0';
	if (p->compiled[what] == NULL) {
		p->compiled[what] = xmalloc(sizeof(regex_t));
		/* Checked when set: it compiles. */
		if (regcomp(p->compiled[what], re, REG_EXTENDED | REG_NOSUB) != 0)
			fatalx("permission regular expression '%s' no longer "
			    "compiles", re);
	}
	return regexec(p->compiled[what], name, 0, NULL, 0) == 0;
}

const struct permission *userdb_permissions(const struct user_db *db,
    const char *user, const char *vhost)
{
	return find_perm(db, user, vhost);
}

/* re with RabbitMQ's variables {username} and {vhost} replaced. */
static char *expand_variables(const char *re, const char *user,
    const char *vhost)
{
	size_t cap = strlen(re) + 1, len = 0;
	char *out = xmalloc(cap);

	while (*re) {
		const char *value = NULL;
		size_t skip = 1, n;

		if (strncmp(re, "{username}", 10) == 0)
			value = user, skip = 10;
		else if (strncmp(re, "{vhost}", 7) == 0)
			value = vhost, skip = 7;
		n = value ? strlen(value) : 1;
		if (len + n + 1 > cap) {
			cap = 2 * (len + n + 1);
			out = xrealloc(out, cap);
		}
		memcpy(out + len, value ? value : re, n);
		len += n;
		re += skip;
	}
	out[len] = '\0';
	return out;
}

int userdb_set_topic_permissions(struct user_db *db, const char *user,
    const char *vhost, const char *exchange, const char *write,
    const char *read, char *err, size_t errlen)
{
	struct topic_permission *p;

	char *w = expand_variables(write, user, vhost);
	char *r = expand_variables(read, user, vhost);
	bool ok = user_known(db, user, err, errlen) &&
	    regex_ok("write", w, err, errlen) && regex_ok("read", r, err, errlen);

	free(w);
	free(r);
	if (!ok)
		return -1;
	userdb_clear_topic_permissions(db, user, vhost, exchange);
	if (db->n_topic_perms == db->cap_topic_perms) {
		db->cap_topic_perms = db->cap_topic_perms ?
		    2 * db->cap_topic_perms : 8;
		db->topic_perms = xrealloc(db->topic_perms,
		    sizeof(*db->topic_perms) * db->cap_topic_perms);
	}
	p = &db->topic_perms[db->n_topic_perms++];
	p->user = xstrdup(user);
	p->vhost = xstrdup(vhost);
	p->exchange = xstrdup(exchange);
	p->write = xstrdup(write);
	p->read = xstrdup(read);
	p->compiled[0] = p->compiled[1] = NULL;
	return 0;
}

bool userdb_topic_permitted(struct user_db *db, const char *user,
    const char *vhost, const char *exchange, enum access what,
    const char *key)
{
	int i = what == ACCESS_WRITE ? 0 : 1;

	for (uint32_t n = 0; n < db->n_topic_perms; n++) {
		struct topic_permission *p = &db->topic_perms[n];
		const char *re = i == 0 ? p->write : p->read;
		char *expanded;

		if (strcmp(p->user, user) != 0 || strcmp(p->vhost, vhost) != 0 ||
		    strcmp(p->exchange, exchange) != 0)
			continue;
		if (*re == '\0')
			return *key == '\0';
		if (p->compiled[i] == NULL) {
			expanded = expand_variables(re, user, vhost);
			p->compiled[i] = xmalloc(sizeof(regex_t));
			/* A name can make a checked expression invalid
			 * ("{username}" of "a(b"): then nothing matches. */
			if (regcomp(p->compiled[i], expanded,
			    REG_EXTENDED | REG_NOSUB) != 0 &&
			    regcomp(p->compiled[i], "$^.", REG_EXTENDED |
			    REG_NOSUB) != 0)
				fatalx("cannot compile a regular expression");
			free(expanded);
		}
		return regexec(p->compiled[i], key, 0, NULL, 0) == 0;
	}
	return true;
}

bool userdb_clear_topic_permissions(struct user_db *db, const char *user,
    const char *vhost, const char *exchange)
{
	uint32_t kept = 0, before = db->n_topic_perms;

	for (uint32_t i = 0; i < db->n_topic_perms; i++) {
		struct topic_permission *p = &db->topic_perms[i];

		if (matches(p->user, user) && matches(p->vhost, vhost) &&
		    matches(p->exchange, exchange))
			topic_permission_free(p);
		else
			db->topic_perms[kept++] = *p;
	}
	db->n_topic_perms = kept;
	return kept != before;
}

void userdb_vhost_deleted(struct user_db *db, const char *vhost)
{
	drop_permissions(db, NULL, vhost);
	userdb_clear_topic_permissions(db, NULL, vhost, NULL);
}
