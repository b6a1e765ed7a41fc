/*
 * Per-address allowance of failed logins (see login_throttle.h): a token
 * bucket per address in a small open-addressed table.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "login_throttle.h"

#define SLOTS 1024		/* addresses remembered; a power of two */
#define PROBE 8			/* slots looked at per address */

struct slot {
	char host[48];		/* "" when free */
	double tokens;
	uint64_t refilled_ms;
};

struct login_throttle {
	struct slot slots[SLOTS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static void refill(struct slot *s, uint64_t now)
{
	s->tokens += (double)(now - s->refilled_ms) / LOGIN_FAILURE_REFILL_MS;
	if (s->tokens > LOGIN_FAILURE_BURST)
		s->tokens = LOGIN_FAILURE_BURST;
	s->refilled_ms = now;
}

/* host's slot; with make, one is taken for it (the fullest, if none free). */
static struct slot *find(struct login_throttle *t, const char *host,
    bool make)
{
	uint32_t h = hash(host);
	struct slot *victim = NULL;
	uint64_t now = now_ms();

	for (uint32_t i = 0; i < PROBE; i++) {
		struct slot *s = &t->slots[(h + i) & (SLOTS - 1)];

		if (strcmp(s->host, host) == 0) {
			refill(s, now);
			return s;
		}
		if (!make)
			continue;
		if (s->host[0] != '\0')
			refill(s, now);
		if (victim == NULL || s->host[0] == '\0' ||
		    (victim->host[0] != '\0' && s->tokens > victim->tokens))
			victim = s;
	}
	if (victim == NULL)
		return NULL;
	snprintf(victim->host, sizeof(victim->host), "%s", host);
	victim->tokens = LOGIN_FAILURE_BURST;
	victim->refilled_ms = now;
	return victim;
}

struct login_throttle *login_throttle_new(void)
{
	return xcalloc(1, sizeof(struct login_throttle));
}

void login_throttle_free(struct login_throttle *t)
{
	free(t);
}

bool login_throttle_admits(struct login_throttle *t, const char *host)
{
	struct slot *s = find(t, host, false);

	return s == NULL || s->tokens >= 1.0;
}

void login_throttle_failed(struct login_throttle *t, const char *host)
{
	struct slot *s = find(t, host, true);

	if (s->tokens >= 1.0)
		s->tokens -= 1.0;
	if (s->tokens < 1.0)
		log_warning("%s: %d failed logins: refusing its connections "
		    "for a while", host, LOGIN_FAILURE_BURST);
}
