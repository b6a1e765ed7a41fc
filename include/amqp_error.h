/*
 * An AMQP exception (a reply code and its text) on its way to
 * channel.close or connection.close.  Every broker operation reports its
 * refusals this way, whichever front end (AMQP, definitions import, later
 * the management API) called it.
 */
#ifndef WARREN_AMQP_ERROR_H
#define WARREN_AMQP_ERROR_H

#include <stdbool.h>
#include <stdint.h>

struct amqp_error {
	int code;
	uint32_t method_id;		/* the method that caused it, or 0 */
	bool connection_level;		/* close the connection whatever the code */
	char text[256];
};

/* Fill err and return code: `return amqp_fail(err, AMQP_NOT_FOUND, ...);` */
int amqp_fail(struct amqp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
