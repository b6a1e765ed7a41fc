/*
 * SASL PLAIN and AMQPLAIN against the broker's users (users.h).
 */
#ifndef WARREN_AUTH_H
#define WARREN_AUTH_H

#include <stdbool.h>

#include "wire.h"

struct user_db;
struct warren_config;
struct amqp_error;

/* "PLAIN AMQPLAIN", as advertised in connection.start. */
extern const char auth_mechanisms[];

/*
 * Check a connection.start-ok response.  On success return 0 and set *user
 * to a malloc'd user name; otherwise return the reply code (filled in err):
 * 503 for an unknown mechanism, 403 for refused credentials.
 */
int auth_check(const struct user_db *users, const struct warren_config *cfg,
    struct bytes mechanism, struct bytes response, bool from_loopback,
    char **user, struct amqp_error *err);

#endif
