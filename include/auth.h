/*
 * SASL PLAIN, AMQPLAIN and EXTERNAL (a verified TLS client certificate)
 * against the broker's users (users.h).
 */
#ifndef WARREN_AUTH_H
#define WARREN_AUTH_H

#include <stdbool.h>

#include "wire.h"

struct user_db;
struct warren_config;
struct amqp_error;

/*
 * The mechanisms connection.start offers ("EXTERNAL AMQPLAIN PLAIN" at
 * most, in RabbitMQ's order): auth_mechanisms.*, EXTERNAL only when the
 * client presented a verified certificate (cert_user not NULL).
 */
void auth_offered(const struct warren_config *cfg, const char *cert_user,
    char *out, size_t len);

/*
 * Check a connection.start-ok response.  cert_user: the user named by the
 * client's verified certificate (ssl_cert_login_from), or NULL.  On
 * success return 0 and set *user to a malloc'd user name; otherwise return
 * the reply code (filled in err): 503 for a mechanism not offered, 403 for
 * refused credentials.
 */
int auth_check(const struct user_db *users, const struct warren_config *cfg,
    struct bytes mechanism, struct bytes response, bool from_loopback,
    const char *cert_user, char **user, struct amqp_error *err);

#endif
