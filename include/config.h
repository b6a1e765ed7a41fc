/*
 * warrend's configuration: `key = value` lines with `#` comments, RabbitMQ's
 * rabbitmq.conf key names where the concept is the same.  The keys are a
 * table in config.c that drives parsing, validation and defaults.
 */
#ifndef WARREN_CONFIG_H
#define WARREN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_user {
	char *name;
	char *password;
};

struct warren_config {
	/* listeners.tcp.default: "5672" or "127.0.0.1:5672" or "[::1]:5672" */
	char *tcp_addr;			/* default "127.0.0.1" */
	uint16_t tcp_port;		/* default 5672 */

	/*
	 * TLS (AMQPS): listeners.ssl.default as above, none by default
	 * (ssl_port 0); RabbitMQ's ssl_options.* for the rest.
	 */
	char *ssl_addr;
	uint16_t ssl_port;
	char *ssl_certfile;		/* PEM, may hold the chain */
	char *ssl_keyfile;		/* PEM, unencrypted */
	char *ssl_cacertfile;		/* CAs for client certificates */
	bool ssl_verify_peer;		/* ssl_options.verify = verify_peer */
	bool ssl_fail_if_no_peer_cert;
	unsigned ssl_versions;		/* TLS_VERSION_* bits; 0: all */
	/* auth_mechanisms.N: AUTH_* bits offered (EXTERNAL only to TLS
	 * clients with a verified certificate); default PLAIN, AMQPLAIN. */
	unsigned auth_mechanisms;
	bool auth_mechanisms_listed;	/* the first key replaces the default */
	bool cert_login_common_name;	/* ssl_cert_login_from = common_name */
	char *ssl_ciphers;		/* OpenSSL list; NULL: its default */

	/* The HTTP management API: management.tcp.ip / .port (0: none). */
	char *mgmt_ip;			/* default "127.0.0.1" */
	uint16_t mgmt_port;		/* default 15672 */
	/* The API over HTTPS: management.ssl.* (port 0: none). */
	char *mgmt_ssl_ip;		/* default "127.0.0.1" */
	uint16_t mgmt_ssl_port;
	char *mgmt_ssl_certfile, *mgmt_ssl_keyfile, *mgmt_ssl_cacertfile;
	char *console_dir;		/* management.console_dir; "": none */
	/* Prometheus metrics: prometheus.tcp.ip / .port (0: none). */
	char *prometheus_ip;		/* default "127.0.0.1" */
	uint16_t prometheus_port;	/* default 15692 */

	char *default_user;		/* default "guest" */
	char *default_pass;		/* default "guest" */
	char *default_vhost;		/* default "/" */

	/*
	 * Users who may connect from loopback only.  rabbitmq.conf spells it
	 * `loopback_users.guest = true` (false removes) or
	 * `loopback_users = none` (empty list).  Default: guest.
	 */
	char **loopback_users;
	size_t n_loopback_users;

	uint16_t heartbeat;		/* seconds, default 60; 0 disables */
	uint32_t frame_max;		/* default 131072; 4096.. 2^31-1 or 0 */
	uint16_t channel_max;		/* default 2047; 0 means 65535 */
	uint32_t connection_max;	/* default 10000; UINT32_MAX: infinity */
	uint32_t consumer_max_per_channel; /* default 10000 */
	uint64_t max_message_size;	/* bytes, default 134217728, max 512 MiB */
	uint32_t handshake_timeout;	/* ms, default 10000 */
	uint32_t consumer_timeout;	/* ms, default 1800000 (30 min) */
	uint32_t blocked_content_timeout; /* ms, default 30000 */
	uint32_t shutdown_timeout;	/* ms, default 10000 */
	/* vm_memory_high_watermark.absolute: bytes; 0: .relative of RAM */
	uint64_t memory_high_watermark;
	double memory_high_watermark_relative;	/* default 0.4 */
	/* log.*: each output's level is an enum log_level */
	bool log_console;		/* default true */
	int log_level;			/* log.console.level */
	bool log_console_json;		/* log.console.formatter = json */
	char *log_file;			/* NULL: none */
	int log_file_level;
	bool log_file_json;
	bool log_syslog;
	int log_syslog_level;
	char *log_syslog_identity;
	char *data_dir;			/* warren.data_dir, default "data" */
	uint64_t disk_free_limit;	/* disk_free_limit.absolute; 0: none */
	uint64_t paging_watermark;	/* warren.paging_watermark.absolute */
	uint32_t queue_memory_messages;	/* warren.queue.memory_messages */
	uint64_t store_segment_size;	/* warren.store.segment_size */
	uint32_t store_sync_delay_us;	/* warren.store.sync_delay_us */
	uint64_t store_max_pending;	/* warren.store.max_pending */
	char *load_definitions;		/* imported at start; NULL: none */
	/* Not a key: $WARREN_NODENAME, else "warren@" and the host name. */
	char *node_name;
};

#define AUTH_PLAIN 1u
#define AUTH_AMQPLAIN 2u
#define AUTH_EXTERNAL 4u
#define TLS_VERSION_1_2 1u
#define TLS_VERSION_1_3 2u

/* Fill cfg with the defaults above. */
void config_defaults(struct warren_config *cfg);

/*
 * Read path over the defaults already in cfg.  On error return false and
 * write "FILE:LINE: message" (or "FILE: message" when it cannot be opened)
 * into err; every line is checked, and the first error is reported.
 */
bool config_load(struct warren_config *cfg, const char *path,
    char *err, size_t errlen);

/* The i-th key's name ("prefix.*" for a family), NULL past the last: for
 * tests that check every key is documented. */
const char *config_key_name(size_t i);

/* True when user may connect only from loopback addresses. */
bool config_is_loopback_user(const struct warren_config *cfg,
    const char *user);

void config_free(struct warren_config *cfg);

#endif
