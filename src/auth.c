/*
 * Authentication.  PLAIN's response is "authzid NUL user NUL password";
 * AMQPLAIN's is a field table (without its length prefix) holding LOGIN
 * and PASSWORD.  Users and their password hashes are the broker's user
 * database (users.c), which compares them in constant time.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "amqp.h"
#include "auth.h"
#include "config.h"
#include "connection.h"
#include "field_table.h"
#include "log.h"
#include "users.h"

void auth_offered(const struct warren_config *cfg, const char *cert_user,
    char *out, size_t len)
{
	unsigned m = cfg->auth_mechanisms;

	/* In RabbitMQ 3.10's order. */
	snprintf(out, len, "%s%s%s",
	    (m & AUTH_EXTERNAL) && cert_user ? "EXTERNAL " : "",
	    m & AUTH_AMQPLAIN ? "AMQPLAIN " : "", m & AUTH_PLAIN ? "PLAIN" : "");
	if (*out && out[strlen(out) - 1] == ' ')
		out[strlen(out) - 1] = '\0';
}

/* Whether the space-separated list names mechanism. */
static bool offers(const char *list, const char *mechanism)
{
	size_t n = strlen(mechanism);

	for (const char *p = list; (p = strstr(p, mechanism)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

static int refused(struct bytes mechanism, struct amqp_error *err)
{
	return amqp_fail(err, AMQP_ACCESS_REFUSED,
	    "Login was refused using authentication mechanism %.*s. "
	    "For details see the broker logfile.",
	    (int)mechanism.len, (const char *)mechanism.ptr);
}

static bool parse_plain(struct bytes r, struct bytes *user, struct bytes *pass)
{
	const uint8_t *nul1, *nul2, *end = r.ptr + r.len;

	if (r.len == 0 || (nul1 = memchr(r.ptr, 0, r.len)) == NULL)
		return false;
	nul2 = memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1));
	if (nul2 == NULL)
		return false;
	*user = (struct bytes){ nul1 + 1, (uint32_t)(nul2 - nul1 - 1) };
	*pass = (struct bytes){ nul2 + 1, (uint32_t)(end - nul2 - 1) };
	return true;
}

static bool parse_amqplain(struct bytes r, struct bytes *user,
    struct bytes *pass)
{
	struct field_table *t = ftable_decode(r);
	const struct field_value *login, *password;
	bool ok = false;

	if (t == NULL)
		return false;
	login = ftable_get(t, "LOGIN");
	password = ftable_get(t, "PASSWORD");
	if (login && password && login->type == 'S' && password->type == 'S') {
		*user = login->v.str;
		*pass = password->v.str;
		ok = true;
	}
	ftable_free(t);		/* the strings borrow from r, not from t */
	return ok;
}

int auth_check(const struct user_db *users, const struct warren_config *cfg,
    struct bytes mechanism, struct bytes response, bool from_loopback,
    const char *cert_user, char **user, struct amqp_error *err)
{
	const struct user *found;
	struct bytes u, p;
	bool parsed;
	char *name, offered[64], mech[32];

	auth_offered(cfg, cert_user, offered, sizeof(offered));
	snprintf(mech, sizeof(mech), "%.*s", BYTES_ARG(mechanism));
	if (bytes_eq_str(mechanism, "EXTERNAL") && offers(offered, "EXTERNAL")) {
		/* The certificate names the user; its response is not read. */
		if (userdb_find(users, bytes_str(cert_user)) == NULL) {
			log_warning("login refused for certificate user '%s' "
			    "(mechanism EXTERNAL): no such user", cert_user);
			return refused(mechanism, err);
		}
		name = xstrdup(cert_user);
		goto found;
	}
	if (bytes_eq_str(mechanism, "PLAIN") && offers(offered, "PLAIN"))
		parsed = parse_plain(response, &u, &p);
	else if (bytes_eq_str(mechanism, "AMQPLAIN") &&
	    offers(offered, "AMQPLAIN"))
		parsed = parse_amqplain(response, &u, &p);
	else {
		name = bytes_strdup(mechanism);
		amqp_fail(err, AMQP_COMMAND_INVALID,
		    "unknown authentication mechanism '%s'", name);
		free(name);
		return AMQP_COMMAND_INVALID;
	}
	if (!parsed)
		return amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "malformed %s response", mechanism.len == 5 ? "PLAIN" : "AMQPLAIN");
	name = bytes_strdup(u);
	if ((found = userdb_find(users, u)) == NULL ||
	    !user_password_ok(found, p)) {
		log_warning("login refused for user '%s' (mechanism %s)", name,
		    mech);
		free(name);
		return refused(mechanism, err);
	}
found:
	if (!from_loopback && config_is_loopback_user(cfg, name)) {
		amqp_fail(err, AMQP_ACCESS_REFUSED,
		    "User '%s' can only connect via localhost", name);
		free(name);
		return AMQP_ACCESS_REFUSED;
	}
	*user = name;
	return 0;
}
