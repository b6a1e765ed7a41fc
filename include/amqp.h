/*
 * AMQP 0-9-1 constants: frame types, reply codes, and the protocol header.
 */
#ifndef WARREN_AMQP_H
#define WARREN_AMQP_H

#define AMQP_FRAME_METHOD	1
#define AMQP_FRAME_HEADER	2
#define AMQP_FRAME_BODY		3
#define AMQP_FRAME_HEARTBEAT	8
#define AMQP_FRAME_END		0xCE
#define AMQP_FRAME_MIN_SIZE	4096
/* type(1) + channel(2) + size(4) before the payload, frame-end(1) after. */
#define AMQP_FRAME_OVERHEAD	8

#define AMQP_PROTOCOL_HEADER	"AMQP\x00\x00\x09\x01"
/*
 * The 0-9 header (class 1, instance 1, version 0-9).  0-9-1 is 0-9 with
 * errata, so RabbitMQ answers it in 0-9-1, byte for byte as above.
 */
#define AMQP_PROTOCOL_HEADER_0_9	"AMQP\x01\x01\x00\x09"

/* Reply codes: X(name, code, is_hard_error) */
#define AMQP_REPLY_CODES(X)				\
	X(REPLY_SUCCESS, 200, 0)			\
	X(CONTENT_TOO_LARGE, 311, 0)			\
	X(NO_ROUTE, 312, 0)				\
	X(NO_CONSUMERS, 313, 0)				\
	X(CONNECTION_FORCED, 320, 1)			\
	X(INVALID_PATH, 402, 1)				\
	X(ACCESS_REFUSED, 403, 0)			\
	X(NOT_FOUND, 404, 0)				\
	X(RESOURCE_LOCKED, 405, 0)			\
	X(PRECONDITION_FAILED, 406, 0)			\
	X(FRAME_ERROR, 501, 1)				\
	X(SYNTAX_ERROR, 502, 1)				\
	X(COMMAND_INVALID, 503, 1)			\
	X(CHANNEL_ERROR, 504, 1)			\
	X(UNEXPECTED_FRAME, 505, 1)			\
	X(RESOURCE_ERROR, 506, 1)			\
	X(NOT_ALLOWED, 530, 1)				\
	X(NOT_IMPLEMENTED, 540, 1)			\
	X(INTERNAL_ERROR, 541, 1)

enum amqp_reply_code {
#define X(name, code, hard) AMQP_##name = code,
	AMQP_REPLY_CODES(X)
#undef X
};

/* "NOT_FOUND" for 404; "UNKNOWN" for a code not in the table. */
const char *amqp_reply_name(int code);
/* True for codes that close the connection rather than the channel. */
int amqp_reply_is_hard(int code);

#endif
