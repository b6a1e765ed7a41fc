/*
 * Failed logins, rate-limited per source address: each address may fail
 * LOGIN_FAILURE_BURST times in a row, then once per LOGIN_FAILURE_REFILL_MS;
 * while it has no allowance left, its new connections are closed as soon
 * as they are accepted (the cheapest refusal there is), so guessing
 * passwords costs the broker a bounded amount of work.  A bounded table
 * of addresses: when it is full, the address whose allowance is fullest
 * (the least suspicious) is forgotten.
 */
#ifndef WARREN_LOGIN_THROTTLE_H
#define WARREN_LOGIN_THROTTLE_H

#include <stdbool.h>

#define LOGIN_FAILURE_BURST 20
#define LOGIN_FAILURE_REFILL_MS 1000

struct login_throttle;

struct login_throttle *login_throttle_new(void);
void login_throttle_free(struct login_throttle *t);
/* Whether a new connection from host ("127.0.0.1", "::1") is let in. */
bool login_throttle_admits(struct login_throttle *t, const char *host);
/* A login from host failed. */
void login_throttle_failed(struct login_throttle *t, const char *host);

#endif
