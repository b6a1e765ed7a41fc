/*
 * Names and classes of AMQP reply codes, derived from AMQP_REPLY_CODES.
 */
#include "amqp.h"

const char *amqp_reply_name(int code)
{
	switch (code) {
#define X(name, c, hard) case c: return #name;
	AMQP_REPLY_CODES(X)
#undef X
	}
	return "UNKNOWN";
}

int amqp_reply_is_hard(int code)
{
	switch (code) {
#define X(name, c, hard) case c: return hard;
	AMQP_REPLY_CODES(X)
#undef X
	}
	return 1;
}
