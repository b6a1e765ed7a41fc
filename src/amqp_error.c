/*
 * AMQP exceptions (see amqp_error.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "amqp_error.h"

int amqp_fail(struct amqp_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return code;
}
