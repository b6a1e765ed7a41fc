/*
 * warren.conf parsing.  Every key is a row of keys[] below: the row names
 * the key, says how to parse and check its value (setter, range) and where
 * it lands in struct warren_config, and carries the default.  Defaults are
 * applied through the same setters, so a default cannot escape validation.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "strmap.h"

/* Where make install puts the web console (Makefile.am sets it). */
#ifndef WARREN_CONSOLE_DIR
#define WARREN_CONSOLE_DIR "/usr/local/share/warren/console"
#endif

/* State for one pass over a file (or over the defaults). */
struct load {
	struct warren_config *cfg;
	char *listener_key;	/* first listeners.tcp.* key seen, or NULL */
	char *ssl_listener_key;	/* first listeners.ssl.* key seen, or NULL */
	struct strmap *seen;	/* key -> the line that set it (files only) */
	size_t lineno;
};

struct config_key;
typedef bool (*config_setter)(struct load *, const struct config_key *,
    const char *key, const char *val, char *msg, size_t msglen);

struct config_key {
	const char *name;	/* "prefix.*" matches any non-empty suffix */
	config_setter set;
	size_t off;		/* field in struct warren_config */
	size_t size;		/* its size, for integers */
	uint64_t min, max;	/* integer range */
	bool zero_ok;		/* 0 is allowed besides min..max */
	const char *dflt_key;	/* key the default is applied as, for "*" rows */
	const char *dflt;	/* default value, NULL for none */
	const char *help;
};

static bool set_string(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_uint(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_bytes(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_count(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_listener(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_loopback_none(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_loopback_user(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_log_level(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_bool(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_verify(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_tls_version(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_cipher(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_mechanism(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_cert_login_from(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_duration(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_fraction(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_log_file(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);
static bool set_formatter(struct load *, const struct config_key *,
    const char *, const char *, char *, size_t);

#define FIELD(f)	offsetof(struct warren_config, f), \
			sizeof(((struct warren_config *)0)->f)
#define STR(k, f, d, h)		{ k, set_string, FIELD(f), 0, 0, false, \
				    NULL, d, h }
#define UINT(k, f, lo, hi, z, d, h) \
				{ k, set_uint, FIELD(f), lo, hi, z, NULL, d, h }
#define BYTES(k, f, lo, hi, z, d, h) \
				{ k, set_bytes, FIELD(f), lo, hi, z, NULL, d, h }
/* An integer or "infinity" (the field's largest value), as RabbitMQ's. */
#define COUNT(k, f, lo, d, h) \
				{ k, set_count, FIELD(f), lo, UINT32_MAX, \
				    false, NULL, d, h }
#define BOOL(k, f, d, h)	{ k, set_bool, FIELD(f), 0, 0, false, \
				    NULL, d, h }
#define SPECIAL(k, fn, dk, d, h) \
				{ k, fn, 0, 0, 0, 0, false, dk, d, h }
/* A value of its own syntax, into field f. */
#define FIELD_ROW(k, fn, f, d, h) \
				{ k, fn, FIELD(f), 0, 0, false, NULL, d, h }
/* Milliseconds, or a number with ms, s, min, h. */
#define DURATION(k, f, lo, d, h) \
				{ k, set_duration, FIELD(f), lo, UINT32_MAX, \
				    false, NULL, d, h }

static const struct config_key keys[] = {
	SPECIAL("listeners.tcp.*", set_listener, "listeners.tcp.default",
	    "127.0.0.1:5672", "AMQP listener: PORT, IPv4:PORT or [IPv6]:PORT"),
	SPECIAL("listeners.ssl.*", set_listener, NULL, NULL,
	    "AMQPS (TLS) listener, as listeners.tcp; none by default; needs "
	    "ssl_options.certfile and keyfile"),
	STR("ssl_options.certfile", ssl_certfile, NULL,
	    "the server's certificate (PEM; may hold the chain)"),
	STR("ssl_options.keyfile", ssl_keyfile, NULL,
	    "the server's private key (PEM, not encrypted)"),
	STR("ssl_options.cacertfile", ssl_cacertfile, NULL,
	    "CA certificates that client certificates must chain to (PEM)"),
	SPECIAL("ssl_options.verify", set_verify, NULL, "verify_none",
	    "verify_peer: ask clients for a certificate and check it; "
	    "verify_none: don't"),
	SPECIAL("auth_mechanisms.*", set_mechanism, NULL, NULL,
	    "SASL mechanisms offered, one key each: PLAIN, AMQPLAIN, "
	    "EXTERNAL (TLS clients with a verified certificate); default "
	    "PLAIN and AMQPLAIN"),
	SPECIAL("ssl_cert_login_from", set_cert_login_from, NULL,
	    "distinguished_name", "EXTERNAL's user name: the certificate's "
	    "distinguished_name (RFC 4514) or common_name"),
	SPECIAL("ssl_options.versions.*", set_tls_version, NULL, NULL,
	    "TLS versions offered: tlsv1.2, tlsv1.3 (one key each, as "
	    "ssl_options.versions.1 = tlsv1.3); default both; also for the "
	    "HTTPS management API"),
	SPECIAL("ssl_options.ciphers.*", set_cipher, NULL, NULL,
	    "cipher suites offered, OpenSSL's names, one key each (TLS_* "
	    "names are TLS 1.3's); default OpenSSL's; also for HTTPS"),
	BOOL("ssl_options.fail_if_no_peer_cert", ssl_fail_if_no_peer_cert,
	    "false", "with verify_peer: refuse clients without a certificate"),
	UINT("management.tcp.port", mgmt_port, 0, 65535, false, "15672",
	    "HTTP management API port; 0: no management API"),
	STR("management.tcp.ip", mgmt_ip, "127.0.0.1",
	    "address the management API listens on"),
	STR("management.console_dir", console_dir, WARREN_CONSOLE_DIR,
	    "the web console's files, served on the management port; an "
	    "empty value turns the console off"),
	UINT("management.ssl.port", mgmt_ssl_port, 0, 65535, false, "0",
	    "HTTPS port of the management API; 0: none"),
	STR("management.ssl.ip", mgmt_ssl_ip, "127.0.0.1",
	    "address the HTTPS management API listens on"),
	STR("management.ssl.certfile", mgmt_ssl_certfile, NULL,
	    "the HTTPS API's certificate (PEM; may hold the chain)"),
	STR("management.ssl.keyfile", mgmt_ssl_keyfile, NULL,
	    "the HTTPS API's private key (PEM, not encrypted)"),
	STR("management.ssl.cacertfile", mgmt_ssl_cacertfile, NULL,
	    "CA certificates for the HTTPS API's chain (PEM)"),
	UINT("prometheus.tcp.port", prometheus_port, 0, 65535, false,
	    "15692", "Prometheus metrics port (/metrics); 0: none"),
	STR("prometheus.tcp.ip", prometheus_ip, "127.0.0.1",
	    "address the Prometheus metrics listen on"),
	STR("default_user", default_user, "guest",
	    "user created at first start"),
	STR("default_pass", default_pass, "guest",
	    "password of default_user"),
	STR("default_vhost", default_vhost, "/",
	    "virtual host created at first start"),
	/* "none" empties the list; the default comes from the next row. */
	SPECIAL("loopback_users", set_loopback_none, NULL, NULL,
	    "none: no user is restricted to loopback"),
	SPECIAL("loopback_users.*", set_loopback_user, "loopback_users.guest",
	    "true", "true: the user may connect from loopback only"),
	UINT("heartbeat", heartbeat, 0, 65535, false, "60",
	    "heartbeat interval proposed to clients, seconds; 0 disables"),
	UINT("frame_max", frame_max, 4096, INT32_MAX, true, "131072",
	    "largest frame proposed to clients, bytes; 0 means no limit"),
	UINT("channel_max", channel_max, 0, 65535, false, "2047",
	    "most channels per connection; 0 means 65535"),
	COUNT("connection_max", connection_max, 0, "10000", "most open "
	    "client connections; \"infinity\": no limit"),
	COUNT("consumer_max_per_channel", consumer_max_per_channel, 0,
	    "10000", "most consumers on one channel; \"infinity\": no "
	    "limit"),
	UINT("max_message_size", max_message_size, 1, 536870912, false,
	    "134217728", "largest message body accepted, bytes"),
	DURATION("handshake_timeout", handshake_timeout, 1, "10000",
	    "time allowed for the AMQP handshake, milliseconds"),
	BYTES("vm_memory_high_watermark.absolute", memory_high_watermark,
	    1048576, UINT64_MAX, true, "0", "message memory above which "
	    "publishers are blocked, bytes (or with a unit: MB, GiB, ...); 0 "
	    "means vm_memory_high_watermark.relative of physical memory"),
	FIELD_ROW("vm_memory_high_watermark.relative", set_fraction,
	    memory_high_watermark_relative, "0.4", "message memory above "
	    "which publishers are blocked, as a fraction of physical memory "
	    "(when .absolute is not set)"),
	BYTES("warren.paging_watermark.absolute", paging_watermark, 0,
	    UINT64_MAX, true, "0", "message memory above which queues page "
	    "transient messages out to disk too, bytes (or with a unit); 0 "
	    "means half of vm_memory_high_watermark"),
	UINT("warren.queue.memory_messages", queue_memory_messages, 0,
	    UINT32_MAX, true, "1024", "messages a queue (each priority level) "
	    "keeps in memory; more wait on disk; 0: all in memory"),
	BYTES("disk_free_limit.absolute", disk_free_limit, 0, UINT64_MAX, true,
	    "50000000", "free space in warren.data_dir's file system below "
	    "which publishers are blocked, bytes (or with a unit); 0: no limit"),
	DURATION("warren.blocked_content_timeout", blocked_content_timeout, 1,
	    "30000", "while the memory alarm is on, a "
	    "connection holding a message it has not finished for this long "
	    "is closed (506), milliseconds"),
	DURATION("consumer_timeout", consumer_timeout, 1, "1800000",
	    "longest a delivery may stay unacknowledged, milliseconds"),
	DURATION("warren.shutdown_timeout", shutdown_timeout, 0, "10000",
	    "at shutdown, how long clients get to answer connection.close "
	    "before their connections are dropped, milliseconds"),
	BOOL("log.console", log_console, "true",
	    "log to standard error"),
	FIELD_ROW("log.console.level", set_log_level, log_level, "info",
	    "debug, info, warning or error"),
	FIELD_ROW("log.console.formatter", set_formatter, log_console_json,
	    "plaintext", "plaintext or json (one JSON object per line)"),
	FIELD_ROW("log.file", set_log_file, log_file, "false",
	    "a file to log to (appended; reopened on SIGHUP), or false"),
	FIELD_ROW("log.file.level", set_log_level, log_file_level, "info",
	    "the file's level: debug, info, warning or error"),
	FIELD_ROW("log.file.formatter", set_formatter, log_file_json,
	    "plaintext", "plaintext or json"),
	BOOL("log.syslog", log_syslog, "false",
	    "log to syslog (facility daemon)"),
	FIELD_ROW("log.syslog.level", set_log_level, log_syslog_level, "info",
	    "syslog's level: debug, info, warning or error"),
	STR("log.syslog.identity", log_syslog_identity, "warrend",
	    "the name syslog lines carry"),
	STR("warren.data_dir", data_dir, "data",
	    "directory for broker state; relative to the working directory"),
	UINT("warren.store.segment_size", store_segment_size, 65536,
	    1073741824, false, "16777216", "bytes per message store segment "
	    "file; settled segments are deleted whole"),
	UINT("warren.store.sync_delay_us", store_sync_delay_us, 0, 100000,
	    false, "0", "how long the store waits to fill a batch before it "
	    "syncs, microseconds; 0: sync as soon as the last sync is done"),
	BYTES("warren.store.max_pending", store_max_pending, 0, UINT64_MAX,
	    true, "64MiB", "bytes waiting to be written above which "
	    "publishers are no longer read until a quarter remain; 0: no "
	    "limit"),
	STR("load_definitions", load_definitions, NULL,
	    "a definitions file (RabbitMQ's JSON) imported at every start"),
};

#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

static void *field(struct load *ld, const struct config_key *k)
{
	return (char *)ld->cfg + k->off;
}

static const struct config_key *key_find(const char *key)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const char *name = keys[i].name;
		size_t n = strlen(name);

		if (name[n - 1] == '*') {
			/* The suffix must be non-empty: "listeners.tcp." is not a key. */
			if (strncmp(key, name, n - 1) == 0 && key[n - 1] != '\0')
				return &keys[i];
		} else if (strcmp(key, name) == 0)
			return &keys[i];
	}
	return NULL;
}

static bool set_string(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	char **p = field(ld, k);

	free(*p);		/* the default's */
	*p = xstrdup(val);
	return true;
}

static void range_str(const struct config_key *k, char *buf, size_t len)
{
	if (k->zero_ok)
		snprintf(buf, len, "0 or %" PRIu64 "..%" PRIu64, k->min, k->max);
	else
		snprintf(buf, len, "%" PRIu64 "..%" PRIu64, k->min, k->max);
}

static bool set_count(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	if (strcmp(val, "infinity") == 0) {
		*(uint32_t *)field(ld, k) = UINT32_MAX;
		return true;
	}
	return set_uint(ld, k, key, val, msg, msglen);
}

static bool set_uint(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	char range[64], *end;
	unsigned long long v;
	void *p = field(ld, k);

	range_str(k, range, sizeof(range));
	/* strtoull skips blanks and takes a sign; only digits are numbers here. */
	if (!isdigit((unsigned char)val[0])) {
		snprintf(msg, msglen, "\"%s\" is not an integer in %s", val,
		    range);
		return false;
	}
	errno = 0;
	v = strtoull(val, &end, 10);
	if (*end != '\0') {
		snprintf(msg, msglen, "\"%s\" is not an integer in %s", val,
		    range);
		return false;
	}
	if (errno == ERANGE || ((v < k->min || v > k->max) &&
	    !(v == 0 && k->zero_ok))) {
		snprintf(msg, msglen, "%s is out of range %s", val, range);
		return false;
	}
	switch (k->size) {
	case sizeof(uint16_t):
		*(uint16_t *)p = (uint16_t)v;
		break;
	case sizeof(uint32_t):
		*(uint32_t *)p = (uint32_t)v;
		break;
	case sizeof(uint64_t):
		*(uint64_t *)p = (uint64_t)v;
		break;
	default:
		fatalx("config: %s has an integer field of size %zu",
		    k->name, k->size);
	}
	return true;
}

struct unit {
	const char *name;
	uint64_t scale;
};

/*
 * val is a number with one of units (the one named "" when it has none):
 * set the field to number x scale, range checked.  *matched says whether
 * val had that form at all.
 */
static bool set_scaled(struct load *ld, const struct config_key *k,
    const char *key, const char *val, const struct unit *units,
    size_t n_units, bool *matched, char *msg, size_t msglen)
{
	unsigned long long v;
	char scaled[32], *end;

	*matched = false;
	if (!isdigit((unsigned char)val[0]))
		return false;
	errno = 0;
	v = strtoull(val, &end, 10);
	for (size_t i = 0; i < n_units; i++) {
		if (strcmp(end, units[i].name) != 0)
			continue;
		*matched = true;
		if (units[i].name[0] == '\0')	/* no unit, range checked */
			return set_uint(ld, k, key, val, msg, msglen);
		if (errno == ERANGE || v > UINT64_MAX / units[i].scale) {
			snprintf(msg, msglen, "%s is too large", val);
			return false;
		}
		snprintf(scaled, sizeof(scaled), "%llu", v * units[i].scale);
		return set_uint(ld, k, key, scaled, msg, msglen);
	}
	return false;
}

/*
 * A size as RabbitMQ writes it: bytes, or a number with an information
 * unit (k, KiB, M, MiB, G, GiB: powers of 1024; kB, MB, GB: of 1000).
 */
static bool set_bytes(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	static const struct unit units[] = {
		{ "", 1 }, { "k", 1024 }, { "K", 1024 }, { "kiB", 1024 },
		{ "KiB", 1024 }, { "M", 1 << 20 }, { "MiB", 1 << 20 },
		{ "G", 1 << 30 }, { "GiB", 1 << 30 }, { "kB", 1000 },
		{ "KB", 1000 }, { "MB", 1000000 }, { "GB", 1000000000 },
	};
	bool matched, ok = set_scaled(ld, k, key, val, units,
	    sizeof(units) / sizeof(units[0]), &matched, msg, msglen);

	if (matched)
		return ok;
	snprintf(msg, msglen, "\"%s\" is not a size: bytes, or a number "
	    "with kB, MB, GB (powers of 1000) or k, M, G, KiB, MiB, GiB "
	    "(powers of 1024)", val);
	return false;
}

/* A duration in milliseconds (RabbitMQ's form), or with ms, s, min, h. */
static bool set_duration(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	static const struct unit units[] = {
		{ "", 1 }, { "ms", 1 }, { "s", 1000 }, { "min", 60000 },
		{ "h", 3600000 },
	};
	bool matched, ok = set_scaled(ld, k, key, val, units,
	    sizeof(units) / sizeof(units[0]), &matched, msg, msglen);

	if (matched)
		return ok;
	snprintf(msg, msglen, "\"%s\" is not a duration: milliseconds, or "
	    "a number with ms, s, min or h", val);
	return false;
}

/* A fraction in (0, 1], as vm_memory_high_watermark.relative = 0.4. */
static bool set_fraction(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (!isdigit((unsigned char)val[0]) || *end != '\0' ||
	    errno == ERANGE || !(v > 0.0 && v <= 1.0)) {
		snprintf(msg, msglen, "\"%s\" is not a fraction above 0 and "
		    "at most 1", val);
		return false;
	}
	*(double *)field(ld, k) = v;
	return true;
}

/* log.file: a path, or false for none. */
static bool set_log_file(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	char **p = field(ld, k);

	free(*p);
	*p = strcmp(val, "false") == 0 ? NULL : xstrdup(val);
	return true;
}

/* log.*.formatter: plaintext or json. */
static bool set_formatter(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	bool *json = field(ld, k);

	if (strcmp(val, "json") == 0)
		*json = true;
	else if (strcmp(val, "plaintext") == 0)
		*json = false;
	else {
		snprintf(msg, msglen, "\"%s\" is not plaintext or json", val);
		return false;
	}
	return true;
}

static bool parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return false;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/*
 * "5672" (all IPv4 interfaces, as RabbitMQ's bare port means every
 * interface), "127.0.0.1:5672", "[::1]:5672", or RabbitMQ's unbracketed
 * "::1:5672" where the last colon starts the port.
 */
static bool parse_listener(const char *val, char **addrp, uint16_t *portp,
    char *msg, size_t msglen)
{
	char buf[INET6_ADDRSTRLEN + 8], *addr, *port;
	struct in6_addr a6;
	struct in_addr a4;
	int af;

	if (strlen(val) >= sizeof(buf))
		goto bad;
	memcpy(buf, val, strlen(val) + 1);
	if (buf[0] == '[') {
		addr = buf + 1;
		if ((port = strchr(addr, ']')) == NULL || port[1] != ':')
			goto bad;
		*port = '\0';
		port += 2;
		af = AF_INET6;
	} else if ((port = strrchr(buf, ':')) != NULL) {
		addr = buf;
		*port++ = '\0';
		af = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	} else {
		addr = "0.0.0.0";
		port = buf;
		af = AF_INET;
	}
	if (!parse_port(port, portp)) {
		snprintf(msg, msglen, "bad port \"%s\" in \"%s\" "
		    "(expected 1..65535)", port, val);
		return false;
	}
	if (af == AF_INET ? inet_pton(AF_INET, addr, &a4) != 1 :
	    inet_pton(AF_INET6, addr, &a6) != 1) {
		snprintf(msg, msglen, "bad address \"%s\" in \"%s\" "
		    "(expected an IPv4 or IPv6 address)", addr, val);
		return false;
	}
	*addrp = xstrdup(addr);
	return true;
bad:
	snprintf(msg, msglen, "bad listener \"%s\" "
	    "(expected PORT, IPv4:PORT or [IPv6]:PORT)", val);
	return false;
}

static bool set_listener(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	struct warren_config *cfg = ld->cfg;
	bool tls = strncmp(key, "listeners.ssl.", 14) == 0;
	char **seen = tls ? &ld->ssl_listener_key : &ld->listener_key;
	char **cur_addr = tls ? &cfg->ssl_addr : &cfg->tcp_addr;
	uint16_t *cur_port = tls ? &cfg->ssl_port : &cfg->tcp_port;
	uint16_t port;
	char *addr;

	if (!parse_listener(val, &addr, &port, msg, msglen))
		return false;
	/*
	 * The same key again replaces the listener; another key naming the
	 * same address is harmless; anything else would need a second socket.
	 */
	if (*seen != NULL && strcmp(*seen, key) != 0 &&
	    (port != *cur_port || strcmp(addr, *cur_addr) != 0)) {
		free(addr);
		snprintf(msg, msglen, "only one %s listener is supported "
		    "(already have %s)", tls ? "TLS" : "TCP", *seen);
		return false;
	}
	if (*seen == NULL)
		*seen = xstrdup(key);
	free(*cur_addr);
	*cur_addr = addr;
	*cur_port = port;
	return true;
}

static void loopback_clear(struct warren_config *cfg)
{
	for (size_t i = 0; i < cfg->n_loopback_users; i++)
		free(cfg->loopback_users[i]);
	free(cfg->loopback_users);
	cfg->loopback_users = NULL;
	cfg->n_loopback_users = 0;
}

static bool set_loopback_none(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	if (strcmp(val, "none") != 0) {
		snprintf(msg, msglen, "\"%s\" is not none "
		    "(use loopback_users.NAME = true)", val);
		return false;
	}
	loopback_clear(ld->cfg);
	return true;
}

static bool parse_bool(const char *val, bool *b, char *msg, size_t msglen)
{
	if (strcmp(val, "true") == 0)
		*b = true;
	else if (strcmp(val, "false") == 0)
		*b = false;
	else {
		snprintf(msg, msglen, "\"%s\" is not true or false", val);
		return false;
	}
	return true;
}

static bool set_loopback_user(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	struct warren_config *cfg = ld->cfg;
	const char *user = key + strlen(k->name) - 1;
	size_t i;
	bool on;

	if (!parse_bool(val, &on, msg, msglen))
		return false;
	for (i = 0; i < cfg->n_loopback_users; i++)
		if (strcmp(cfg->loopback_users[i], user) == 0)
			break;
	if (on && i == cfg->n_loopback_users) {
		cfg->loopback_users = xrealloc(cfg->loopback_users,
		    (cfg->n_loopback_users + 1) * sizeof(char *));
		cfg->loopback_users[cfg->n_loopback_users++] = xstrdup(user);
	} else if (!on && i < cfg->n_loopback_users) {
		free(cfg->loopback_users[i]);
		cfg->loopback_users[i] =
		    cfg->loopback_users[--cfg->n_loopback_users];
		if (cfg->n_loopback_users == 0) {
			free(cfg->loopback_users);
			cfg->loopback_users = NULL;
		}
	}
	return true;
}

static bool set_bool(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	return parse_bool(val, field(ld, k), msg, msglen);
}

static bool set_verify(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	if (strcmp(val, "verify_peer") == 0)
		ld->cfg->ssl_verify_peer = true;
	else if (strcmp(val, "verify_none") == 0)
		ld->cfg->ssl_verify_peer = false;
	else {
		snprintf(msg, msglen, "\"%s\" is not verify_peer or "
		    "verify_none", val);
		return false;
	}
	return true;
}

static bool set_mechanism(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	static const struct { const char *name; unsigned bit; } known[] = {
		{ "PLAIN", AUTH_PLAIN }, { "AMQPLAIN", AUTH_AMQPLAIN },
		{ "EXTERNAL", AUTH_EXTERNAL },
	};

	if (!ld->cfg->auth_mechanisms_listed) {
		ld->cfg->auth_mechanisms = 0;
		ld->cfg->auth_mechanisms_listed = true;
	}
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(val, known[i].name) == 0) {
			ld->cfg->auth_mechanisms |= known[i].bit;
			return true;
		}
	snprintf(msg, msglen, "\"%s\" is not PLAIN, AMQPLAIN or EXTERNAL",
	    val);
	return false;
}

static bool set_cert_login_from(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	if (strcmp(val, "common_name") == 0)
		ld->cfg->cert_login_common_name = true;
	else if (strcmp(val, "distinguished_name") == 0)
		ld->cfg->cert_login_common_name = false;
	else {
		snprintf(msg, msglen, "\"%s\" is not distinguished_name or "
		    "common_name", val);
		return false;
	}
	return true;
}

static bool set_tls_version(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	if (strcmp(val, "tlsv1.2") == 0)
		ld->cfg->ssl_versions |= TLS_VERSION_1_2;
	else if (strcmp(val, "tlsv1.3") == 0)
		ld->cfg->ssl_versions |= TLS_VERSION_1_3;
	else {
		snprintf(msg, msglen, "\"%s\" is not tlsv1.2 or tlsv1.3 "
		    "(older versions are not offered)", val);
		return false;
	}
	return true;
}

/* Ciphers join one OpenSSL list, in the order of the file. */
static bool set_cipher(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	char *old = ld->cfg->ssl_ciphers;
	size_t n = (old ? strlen(old) + 1 : 0) + strlen(val) + 1;

	if (*val == '\0' || strchr(val, ':') != NULL) {
		snprintf(msg, msglen, "\"%s\" is not one cipher name", val);
		return false;
	}
	ld->cfg->ssl_ciphers = xmalloc(n);
	snprintf(ld->cfg->ssl_ciphers, n, "%s%s%s", old ? old : "",
	    old ? ":" : "", val);
	free(old);
	return true;
}

static bool set_log_level(struct load *ld, const struct config_key *k,
    const char *key, const char *val, char *msg, size_t msglen)
{
	int lvl = log_level_parse(val);

	if (lvl < 0) {
		snprintf(msg, msglen, "\"%s\" is not debug, info, warning "
		    "or error", val);
		return false;
	}
	*(int *)field(ld, k) = lvl;
	return true;
}

/* RabbitMQ's rabbit@HOST, as warren@HOST. */
static char *default_node_name(void)
{
	char host[256], name[300];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(name, sizeof(name), "warren@%s", host);
	return xstrdup(name);
}

void config_defaults(struct warren_config *cfg)
{
	struct load ld = { cfg, NULL, NULL, NULL, 0 };
	char msg[256];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &keys[i];
		const char *key = k->dflt_key != NULL ? k->dflt_key : k->name;

		if (k->dflt != NULL && !k->set(&ld, k, key, k->dflt, msg,
		    sizeof(msg)))
			fatalx("config: bad default %s = %s: %s", key,
			    k->dflt, msg);
	}
	cfg->auth_mechanisms = AUTH_PLAIN | AUTH_AMQPLAIN;
	cfg->node_name = default_node_name();
	/* The defaults' listener must not count against the file's one. */
	free(ld.listener_key);
	free(ld.ssl_listener_key);
}

/* Strip a comment: '#' at the start or after whitespace, then blanks. */
static char *trim(char *s)
{
	char *e;

	for (e = s; *e != '\0'; e++)
		if (*e == '#' && (e == s || isspace((unsigned char)e[-1]))) {
			*e = '\0';
			break;
		}
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Parse one line; false with msg set on error. */
static bool config_line(struct load *ld, char *line, char *msg,
    size_t msglen)
{
	const struct config_key *k;
	char *key, *val, *eq, sub[256];
	void *first;

	line = trim(line);
	if (*line == '\0')
		return true;
	if ((eq = strchr(line, '=')) == NULL) {
		snprintf(msg, msglen, "missing \"=\" in \"%s\"", line);
		return false;
	}
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	if (*key == '\0') {
		snprintf(msg, msglen, "missing key before \"=\"");
		return false;
	}
	if ((k = key_find(key)) == NULL) {
		snprintf(msg, msglen, "unknown key \"%s\"", key);
		return false;
	}
	if ((first = strmap_get(ld->seen, bytes_str(key))) != NULL) {
		snprintf(msg, msglen, "%s is set twice (first on line %zu)",
		    key, (size_t)(uintptr_t)first);
		return false;
	}
	strmap_put(ld->seen, bytes_str(key), (void *)(uintptr_t)ld->lineno);
	if (*val == '\0') {
		snprintf(msg, msglen, "%s: empty value", key);
		return false;
	}
	if (!k->set(ld, k, key, val, sub, sizeof(sub))) {
		snprintf(msg, msglen, "%s: %s", key, sub);
		return false;
	}
	return true;
}

bool config_load(struct warren_config *cfg, const char *path,
    char *err, size_t errlen)
{
	struct load ld = { cfg, NULL, NULL, NULL, 0 };
	char *line = NULL, msg[512];
	size_t cap = 0;
	void *abs_line, *rel_line;
	bool ok = true;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	ld.seen = strmap_new();
	while (getline(&line, &cap, fp) != -1) {
		ld.lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		/* Keep going after an error so the whole file is checked. */
		if (!config_line(&ld, line, msg, sizeof(msg)) && ok) {
			snprintf(err, errlen, "%s:%zu: %s", path, ld.lineno,
			    msg);
			ok = false;
		}
	}
	abs_line = strmap_get(ld.seen,
	    bytes_str("vm_memory_high_watermark.absolute"));
	rel_line = strmap_get(ld.seen,
	    bytes_str("vm_memory_high_watermark.relative"));
	/* absolute = 0 means "not set": the shipped file lists relative. */
	if (ok && abs_line && rel_line && cfg->memory_high_watermark) {
		snprintf(err, errlen, "%s:%zu: vm_memory_high_watermark: "
		    ".absolute (line %zu) and .relative (line %zu) are both "
		    "set; set one", path, (size_t)((uintptr_t)abs_line >
		    (uintptr_t)rel_line ? (uintptr_t)abs_line :
		    (uintptr_t)rel_line), (size_t)(uintptr_t)abs_line,
		    (size_t)(uintptr_t)rel_line);
		ok = false;
	}
	strmap_free(ld.seen);
	if (ferror(fp) && ok) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		ok = false;
	}
	free(line);
	free(ld.listener_key);
	free(ld.ssl_listener_key);
	fclose(fp);
	/* Keys that only make sense together. */
	if (ok && cfg->ssl_port &&
	    (cfg->ssl_certfile == NULL || cfg->ssl_keyfile == NULL)) {
		snprintf(err, errlen, "%s: a TLS listener (listeners.ssl.*) "
		    "needs ssl_options.certfile and ssl_options.keyfile", path);
		ok = false;
	}
	if (ok && cfg->ssl_port && cfg->ssl_verify_peer &&
	    cfg->ssl_cacertfile == NULL) {
		snprintf(err, errlen, "%s: ssl_options.verify = verify_peer "
		    "needs ssl_options.cacertfile", path);
		ok = false;
	}
	return ok;
}

const char *config_key_name(size_t i)
{
	return i < NKEYS ? keys[i].name : NULL;
}

bool config_is_loopback_user(const struct warren_config *cfg,
    const char *user)
{
	for (size_t i = 0; i < cfg->n_loopback_users; i++)
		if (strcmp(cfg->loopback_users[i], user) == 0)
			return true;
	return false;
}

void config_free(struct warren_config *cfg)
{
	/* Free every string field the table knows about. */
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].set == set_string)
			free(*(char **)((char *)cfg + keys[i].off));
	free(cfg->tcp_addr);
	free(cfg->ssl_addr);
	free(cfg->log_file);
	free(cfg->node_name);
	free(cfg->ssl_ciphers);
	loopback_clear(cfg);
	memset(cfg, 0, sizeof(*cfg));
}
