/*
 * Unit tests for warren.conf parsing (config.c).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* Write text to a fresh temp file; path receives its name. */
static void write_tmp(char *path, size_t len, const char *text)
{
	FILE *fp;
	int fd;

	snprintf(path, len, "/tmp/warren-check-config-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fp = fdopen(fd, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fputs(text, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
}

/* Load text over the defaults; err gets the message on failure. */
static bool load_text(struct warren_config *cfg, const char *text,
    char *path, size_t pathlen, char *err, size_t errlen)
{
	bool ok;

	write_tmp(path, pathlen, text);
	config_defaults(cfg);
	err[0] = '\0';
	ok = config_load(cfg, path, err, errlen);
	unlink(path);
	return ok;
}

static void load_ok(struct warren_config *cfg, const char *text)
{
	char path[64], err[512];

	/* Free first: with CK_FORK=no a failed test must not also leak. */
	if (!load_text(cfg, text, path, sizeof(path), err, sizeof(err))) {
		config_free(cfg);
		ck_abort_msg("unexpected error: %s", err);
	}
}

START_TEST(test_defaults)
{
	struct warren_config cfg;

	config_defaults(&cfg);
	ck_assert_str_eq(cfg.tcp_addr, "127.0.0.1");
	ck_assert_uint_eq(cfg.tcp_port, 5672);
	ck_assert_str_eq(cfg.default_user, "guest");
	ck_assert_str_eq(cfg.default_pass, "guest");
	ck_assert_str_eq(cfg.default_vhost, "/");
	ck_assert_uint_eq(cfg.n_loopback_users, 1);
	ck_assert_str_eq(cfg.loopback_users[0], "guest");
	ck_assert(config_is_loopback_user(&cfg, "guest"));
	ck_assert(!config_is_loopback_user(&cfg, "admin"));
	ck_assert_uint_eq(cfg.heartbeat, 60);
	ck_assert_uint_eq(cfg.frame_max, 131072);
	ck_assert_uint_eq(cfg.channel_max, 2047);
	ck_assert_uint_eq(cfg.max_message_size, 134217728);
	ck_assert_uint_eq(cfg.handshake_timeout, 10000);
	ck_assert_uint_eq(cfg.consumer_timeout, 1800000);
	ck_assert(cfg.memory_high_watermark == 0);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_INFO);
	ck_assert_str_eq(cfg.data_dir, "data");
	ck_assert_ptr_null(cfg.ssl_addr);
	ck_assert_uint_eq(cfg.ssl_port, 0);
	ck_assert_ptr_null(cfg.ssl_certfile);
	ck_assert_ptr_null(cfg.ssl_keyfile);
	ck_assert_ptr_null(cfg.ssl_cacertfile);
	config_free(&cfg);
	/* config_free leaves a zeroed struct: freeing twice is harmless. */
	ck_assert_ptr_null(cfg.tcp_addr);
	ck_assert_uint_eq(cfg.n_loopback_users, 0);
	config_free(&cfg);
}
END_TEST

START_TEST(test_empty_file)
{
	struct warren_config cfg;

	load_ok(&cfg, "");
	ck_assert_uint_eq(cfg.tcp_port, 5672);
	ck_assert_str_eq(cfg.default_user, "guest");
	config_free(&cfg);
}
END_TEST

START_TEST(test_full_file)
{
	struct warren_config cfg;

	load_ok(&cfg,
	    "# Warren test config\n"
	    "\n"
	    "   \t\n"
	    "listeners.tcp.default = 0.0.0.0:5673\n"
	    "\tdefault_user=admin   # trailing comment\n"
	    "default_pass =  s3cr#t  \n"
	    "   default_vhost\t=\t/prod\t\n"
	    "  # indented comment\n"
	    "loopback_users = none\n"
	    "loopback_users.admin = true\n"
	    "heartbeat = 0\n"
	    "frame_max = 0\n"
	    "channel_max = 65535\n"
	    "max_message_size = 536870912\n"
	    "handshake_timeout = 1\n"
	    "log.console.level = debug\n"
	    "warren.data_dir = /var/lib/warren # the state\r\n");
	ck_assert_str_eq(cfg.tcp_addr, "0.0.0.0");
	ck_assert_uint_eq(cfg.tcp_port, 5673);
	ck_assert_str_eq(cfg.default_user, "admin");
	/* '#' inside a value, not after whitespace, is not a comment. */
	ck_assert_str_eq(cfg.default_pass, "s3cr#t");
	ck_assert_str_eq(cfg.default_vhost, "/prod");
	ck_assert_uint_eq(cfg.n_loopback_users, 1);
	ck_assert(config_is_loopback_user(&cfg, "admin"));
	ck_assert(!config_is_loopback_user(&cfg, "guest"));
	ck_assert_uint_eq(cfg.heartbeat, 0);
	ck_assert_uint_eq(cfg.frame_max, 0);
	ck_assert_uint_eq(cfg.channel_max, 65535);
	ck_assert_uint_eq(cfg.max_message_size, 536870912);
	ck_assert_uint_eq(cfg.handshake_timeout, 1);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_DEBUG);
	ck_assert_str_eq(cfg.data_dir, "/var/lib/warren");
	config_free(&cfg);
}
END_TEST

START_TEST(test_range_edges)
{
	struct warren_config cfg;

	load_ok(&cfg,
	    "heartbeat = 65535\n"
	    "frame_max = 4096\n"
	    "channel_max = 0\n"
	    "max_message_size = 1\n"
	    "handshake_timeout = 4294967295\n"
	    "log.console.level = warning\n");
	ck_assert_uint_eq(cfg.heartbeat, 65535);
	ck_assert_uint_eq(cfg.frame_max, 4096);
	ck_assert_uint_eq(cfg.channel_max, 0);
	ck_assert_uint_eq(cfg.max_message_size, 1);
	ck_assert_uint_eq(cfg.handshake_timeout, 4294967295u);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_WARNING);
	config_free(&cfg);

	load_ok(&cfg, "frame_max = 2147483647\nlog.console.level = error\n");
	ck_assert_uint_eq(cfg.frame_max, 2147483647u);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_ERROR);
	config_free(&cfg);

	/* consumer_timeout: 1..2^32-1 (a u32 field: no wrap-around). */
	load_ok(&cfg, "consumer_timeout = 1\n");
	ck_assert_uint_eq(cfg.consumer_timeout, 1);
	config_free(&cfg);
	load_ok(&cfg, "consumer_timeout = 4294967295\n");
	ck_assert_uint_eq(cfg.consumer_timeout, 4294967295u);
	config_free(&cfg);

	/* The memory watermark: 0 (40% of RAM) or at least 1 MiB, u64. */
	load_ok(&cfg, "vm_memory_high_watermark.absolute = 1048576\n");
	ck_assert(cfg.memory_high_watermark == 1048576);
	config_free(&cfg);
	load_ok(&cfg, "vm_memory_high_watermark.absolute = "
	    "18446744073709551615\n");
	ck_assert(cfg.memory_high_watermark == UINT64_MAX);
	config_free(&cfg);
	load_ok(&cfg, "vm_memory_high_watermark.absolute = 0\n");
	ck_assert(cfg.memory_high_watermark == 0);
	config_free(&cfg);
	/* A u64 field takes values past 2^32 whole. */
	load_ok(&cfg, "vm_memory_high_watermark.absolute = 4294967297\n");
	ck_assert(cfg.memory_high_watermark == UINT64_C(4294967297));
	config_free(&cfg);
}
END_TEST

/* Sizes as RabbitMQ writes them: bytes, or with a unit. */
START_TEST(test_sizes_with_units)
{
	static const struct {
		const char *value;
		uint64_t bytes;
	} sizes[] = {
		{ "0", 0 }, { "123", 123 }, { "2k", 2048 }, { "2K", 2048 },
		{ "2kiB", 2048 }, { "2KiB", 2048 }, { "2kB", 2000 },
		{ "2KB", 2000 }, { "50MB", 50000000 }, { "50M", 50u << 20 },
		{ "50MiB", 50u << 20 }, { "3GB", 3000000000u },
		{ "3G", UINT64_C(3) << 30 }, { "3GiB", UINT64_C(3) << 30 },
	};
	struct warren_config cfg;
	char line[128];

	config_defaults(&cfg);
	ck_assert(cfg.disk_free_limit == 50000000);	/* RabbitMQ's default */
	config_free(&cfg);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(line, sizeof(line), "disk_free_limit.absolute = %s\n",
		    sizes[i].value);
		load_ok(&cfg, line);
		ck_assert_msg(cfg.disk_free_limit == sizes[i].bytes, "%s",
		    sizes[i].value);
		config_free(&cfg);
	}
	load_ok(&cfg, "vm_memory_high_watermark.absolute = 2GiB\n");
	ck_assert(cfg.memory_high_watermark == UINT64_C(2) << 30);
	config_free(&cfg);
}
END_TEST

START_TEST(test_durations_fractions_and_logs)
{
	struct warren_config cfg;

	/* Milliseconds as RabbitMQ writes them, or with a unit. */
	load_ok(&cfg,
	    "consumer_timeout = 30min\n"
	    "handshake_timeout = 10s\n"
	    "warren.blocked_content_timeout = 250ms\n"
	    "warren.shutdown_timeout = 0\n");
	ck_assert_uint_eq(cfg.consumer_timeout, 1800000);
	ck_assert_uint_eq(cfg.handshake_timeout, 10000);
	ck_assert_uint_eq(cfg.blocked_content_timeout, 250);
	ck_assert_uint_eq(cfg.shutdown_timeout, 0);
	config_free(&cfg);
	load_ok(&cfg, "consumer_timeout = 1h\nhandshake_timeout = 5000\n");
	ck_assert_uint_eq(cfg.consumer_timeout, 3600000);
	ck_assert_uint_eq(cfg.handshake_timeout, 5000);
	ck_assert(cfg.memory_high_watermark_relative == 0.4);	/* default */
	config_free(&cfg);

	load_ok(&cfg, "vm_memory_high_watermark.relative = 0.6\n");
	ck_assert(cfg.memory_high_watermark_relative == 0.6);
	ck_assert_uint_eq(cfg.memory_high_watermark, 0);
	config_free(&cfg);
	load_ok(&cfg, "vm_memory_high_watermark.relative = 1\n");
	ck_assert(cfg.memory_high_watermark_relative == 1.0);
	config_free(&cfg);
	/* The example: RabbitMQ's form with a unit. */
	load_ok(&cfg, "vm_memory_high_watermark.absolute = 1GB\n");
	ck_assert_uint_eq(cfg.memory_high_watermark, 1000000000);
	config_free(&cfg);

	/* Defaults: the console at info, plain; no file; no syslog. */
	load_ok(&cfg, "");
	ck_assert(cfg.log_console);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_INFO);
	ck_assert(!cfg.log_console_json);
	ck_assert_ptr_null(cfg.log_file);
	ck_assert(!cfg.log_syslog);
	ck_assert_str_eq(cfg.log_syslog_identity, "warrend");
	config_free(&cfg);
	load_ok(&cfg,
	    "log.console = false\n"
	    "log.console.formatter = json\n"
	    "log.file = /var/log/warren/warren.log\n"
	    "log.file.level = debug\n"
	    "log.file.formatter = json\n"
	    "log.syslog = true\n"
	    "log.syslog.level = warning\n"
	    "log.syslog.identity = broker\n");
	ck_assert(!cfg.log_console);
	ck_assert(cfg.log_console_json);
	ck_assert_str_eq(cfg.log_file, "/var/log/warren/warren.log");
	ck_assert_int_eq(cfg.log_file_level, LOG_LVL_DEBUG);
	ck_assert(cfg.log_file_json);
	ck_assert(cfg.log_syslog);
	ck_assert_int_eq(cfg.log_syslog_level, LOG_LVL_WARNING);
	ck_assert_str_eq(cfg.log_syslog_identity, "broker");
	config_free(&cfg);
	load_ok(&cfg, "log.file = false\n");
	ck_assert_ptr_null(cfg.log_file);
	config_free(&cfg);
}
END_TEST

START_TEST(test_load_twice)
{
	struct warren_config cfg;
	char path[64], err[512];

	/* A second file loads over the first, freeing what it replaces. */
	load_ok(&cfg, "default_user = a\nlisteners.tcp.1 = 5001\n");
	write_tmp(path, sizeof(path),
	    "default_user = b\nlisteners.tcp.2 = 5002\n");
	ck_assert(config_load(&cfg, path, err, sizeof(err)));
	unlink(path);
	ck_assert_str_eq(cfg.default_user, "b");
	ck_assert_uint_eq(cfg.tcp_port, 5002);
	config_free(&cfg);
}
END_TEST

START_TEST(test_listener_port)
{
	struct warren_config cfg;

	/* A bare port means every IPv4 interface, as in RabbitMQ. */
	load_ok(&cfg, "listeners.tcp.default = 5673\n");
	ck_assert_str_eq(cfg.tcp_addr, "0.0.0.0");
	ck_assert_uint_eq(cfg.tcp_port, 5673);
	config_free(&cfg);
}
END_TEST

START_TEST(test_listener_ipv4)
{
	struct warren_config cfg;

	load_ok(&cfg, "listeners.tcp.1 = 10.1.2.3:65535\n");
	ck_assert_str_eq(cfg.tcp_addr, "10.1.2.3");
	ck_assert_uint_eq(cfg.tcp_port, 65535);
	config_free(&cfg);
}
END_TEST

START_TEST(test_listener_ipv6)
{
	struct warren_config cfg;

	load_ok(&cfg, "listeners.tcp.default = [::1]:1\n");
	ck_assert_str_eq(cfg.tcp_addr, "::1");
	ck_assert_uint_eq(cfg.tcp_port, 1);
	config_free(&cfg);

	/* RabbitMQ's unbracketed form: the last colon starts the port. */
	load_ok(&cfg, "listeners.tcp.default = :::5672\n");
	ck_assert_str_eq(cfg.tcp_addr, "::");
	ck_assert_uint_eq(cfg.tcp_port, 5672);
	config_free(&cfg);
}
END_TEST

START_TEST(test_listener_same_twice)
{
	struct warren_config cfg;

	/* Two keys naming the same address are one listener. */
	load_ok(&cfg,
	    "listeners.tcp.1 = 127.0.0.1:5680\n"
	    "listeners.tcp.2 = 127.0.0.1:5680\n");
	ck_assert_str_eq(cfg.tcp_addr, "127.0.0.1");
	ck_assert_uint_eq(cfg.tcp_port, 5680);
	config_free(&cfg);

	/* Another key than the default's may replace the default. */
	load_ok(&cfg, "listeners.tcp.other = 5681\n");
	ck_assert_uint_eq(cfg.tcp_port, 5681);
	config_free(&cfg);
}
END_TEST

START_TEST(test_tls_keys)
{
	struct warren_config cfg;

	/* No TLS listener unless asked for. */
	config_defaults(&cfg);
	ck_assert_uint_eq(cfg.ssl_port, 0);
	ck_assert(!cfg.ssl_verify_peer);
	ck_assert(!cfg.ssl_fail_if_no_peer_cert);
	config_free(&cfg);

	load_ok(&cfg,
	    "listeners.ssl.default = [::1]:5671\n"
	    "ssl_options.certfile = /etc/warren/server.pem\n"
	    "ssl_options.keyfile = /etc/warren/server.key\n"
	    "ssl_options.cacertfile = /etc/warren/ca.pem\n"
	    "ssl_options.verify = verify_peer\n"
	    "ssl_options.fail_if_no_peer_cert = true\n");
	ck_assert_str_eq(cfg.ssl_addr, "::1");
	ck_assert_uint_eq(cfg.ssl_port, 5671);
	ck_assert_str_eq(cfg.ssl_certfile, "/etc/warren/server.pem");
	ck_assert_str_eq(cfg.ssl_keyfile, "/etc/warren/server.key");
	ck_assert_str_eq(cfg.ssl_cacertfile, "/etc/warren/ca.pem");
	ck_assert(cfg.ssl_verify_peer);
	ck_assert(cfg.ssl_fail_if_no_peer_cert);
	/* The TCP listener is untouched. */
	ck_assert_uint_eq(cfg.tcp_port, 5672);
	config_free(&cfg);

	/* Certificates without a listener are fine (kept for later). */
	load_ok(&cfg, "ssl_options.certfile = a.pem\n"
	    "ssl_options.verify = verify_none\n");
	ck_assert_uint_eq(cfg.ssl_port, 0);
	ck_assert(!cfg.ssl_verify_peer);
	config_free(&cfg);
}
END_TEST

START_TEST(test_loopback_none)
{
	struct warren_config cfg;

	load_ok(&cfg, "loopback_users = none\n");
	ck_assert_uint_eq(cfg.n_loopback_users, 0);
	ck_assert(!config_is_loopback_user(&cfg, "guest"));
	config_free(&cfg);
}
END_TEST

START_TEST(test_loopback_add)
{
	struct warren_config cfg;

	load_ok(&cfg, "loopback_users.x = true\n");
	ck_assert_uint_eq(cfg.n_loopback_users, 2);
	ck_assert(config_is_loopback_user(&cfg, "guest"));
	ck_assert(config_is_loopback_user(&cfg, "x"));
	ck_assert(!config_is_loopback_user(&cfg, "y"));
	config_free(&cfg);
}
END_TEST

START_TEST(test_loopback_remove)
{
	struct warren_config cfg;

	load_ok(&cfg, "loopback_users.guest = false\n");
	ck_assert_uint_eq(cfg.n_loopback_users, 0);
	ck_assert(!config_is_loopback_user(&cfg, "guest"));
	config_free(&cfg);

	/* Removing one of several keeps the rest; removing a stranger is a no-op. */
	load_ok(&cfg,
	    "loopback_users.a = true\n"
	    "loopback_users.b = true\n"
	    "loopback_users.guest = false\n"
	    "loopback_users.nobody = false\n");
	ck_assert_uint_eq(cfg.n_loopback_users, 2);
	ck_assert(config_is_loopback_user(&cfg, "b"));
	ck_assert(config_is_loopback_user(&cfg, "a"));
	ck_assert(!config_is_loopback_user(&cfg, "guest"));
	config_free(&cfg);

	/* none, then add back. */
	load_ok(&cfg, "loopback_users = none\nloopback_users.guest = true\n");
	ck_assert_uint_eq(cfg.n_loopback_users, 1);
	ck_assert(config_is_loopback_user(&cfg, "guest"));
	config_free(&cfg);
}
END_TEST

/* Each bad file and the error after "PATH:". */
static const struct {
	const char *text;
	const char *err;
} bad[] = {
	{ "heartbeat = 60\nbogus = 1\n", "2: unknown key \"bogus\"" },
	{ "listeners.tcp. = 5672\n", "1: unknown key \"listeners.tcp.\"" },
	{ "Heartbeat = 1\n", "1: unknown key \"Heartbeat\"" },
	{ "\n\nheartbeat 60\n", "3: missing \"=\" in \"heartbeat 60\"" },
	{ "# x\n  = 5\n", "2: missing key before \"=\"" },
	{ "# c\ndefault_user =\n", "2: default_user: empty value" },
	{ "default_pass =   # only a comment\n",
	    "1: default_pass: empty value" },
	{ "warren.data_dir = \t\n", "1: warren.data_dir: empty value" },
	{ "heartbeat = abc\n",
	    "1: heartbeat: \"abc\" is not an integer in 0..65535" },
	{ "heartbeat = -1\n",
	    "1: heartbeat: \"-1\" is not an integer in 0..65535" },
	{ "heartbeat = +1\n",
	    "1: heartbeat: \"+1\" is not an integer in 0..65535" },
	{ "channel_max = 12x\n",
	    "1: channel_max: \"12x\" is not an integer in 0..65535" },
	{ "handshake_timeout = 1.5\n", "1: handshake_timeout: \"1.5\" is "
	    "not a duration: milliseconds, or a number with ms, s, min or h" },
	{ "consumer_timeout = 30 s\n", "1: consumer_timeout: \"30 s\" is "
	    "not a duration: milliseconds, or a number with ms, s, min or h" },
	{ "consumer_timeout = 2000000h\n",
	    "1: consumer_timeout: 7200000000000 is out of range "
	    "1..4294967295" },
	{ "warren.shutdown_timeout = 5d\n", "1: warren.shutdown_timeout: "
	    "\"5d\" is not a duration: milliseconds, or a number with ms, s, "
	    "min or h" },
	{ "vm_memory_high_watermark.relative = 0\n",
	    "1: vm_memory_high_watermark.relative: \"0\" is not a fraction "
	    "above 0 and at most 1" },
	{ "vm_memory_high_watermark.relative = 1.5\n",
	    "1: vm_memory_high_watermark.relative: \"1.5\" is not a fraction "
	    "above 0 and at most 1" },
	{ "vm_memory_high_watermark.relative = 40%\n",
	    "1: vm_memory_high_watermark.relative: \"40%\" is not a fraction "
	    "above 0 and at most 1" },
	{ "vm_memory_high_watermark.relative = .4\n",
	    "1: vm_memory_high_watermark.relative: \".4\" is not a fraction "
	    "above 0 and at most 1" },
	{ "vm_memory_high_watermark.absolute = 1GB\n"
	    "vm_memory_high_watermark.relative = 0.5\n",
	    "2: vm_memory_high_watermark: .absolute (line 1) and .relative "
	    "(line 2) are both set; set one" },
	{ "log.console.formatter = xml\n", "1: log.console.formatter: \"xml\" "
	    "is not plaintext or json" },
	{ "log.file.level = chatty\n", "1: log.file.level: \"chatty\" is "
	    "not debug, info, warning or error" },
	{ "log.syslog = on\n", "1: log.syslog: \"on\" is not true or false" },
	{ "log.console = 1\n", "1: log.console: \"1\" is not true or false" },
	/* A key set twice is a mistake: which one did the operator mean? */
	{ "heartbeat = 10\n# again\nheartbeat = 20\n",
	    "3: heartbeat is set twice (first on line 1)" },
	{ "default_user = a\ndefault_user = a\n",
	    "2: default_user is set twice (first on line 1)" },
	{ "listeners.tcp.default = 5001\nlisteners.tcp.default = 5002\n",
	    "2: listeners.tcp.default is set twice (first on line 1)" },
	{ "loopback_users.x = true\nloopback_users.x = false\n",
	    "2: loopback_users.x is set twice (first on line 1)" },
	{ "\n\n\n\n\n\nheartbeat = 70000\n",
	    "7: heartbeat: 70000 is out of range 0..65535" },
	{ "heartbeat = 99999999999999999999999\n", "1: heartbeat: "
	    "99999999999999999999999 is out of range 0..65535" },
	{ "frame_max = 4095\n",
	    "1: frame_max: 4095 is out of range 0 or 4096..2147483647" },
	{ "frame_max = 2147483648\n",
	    "1: frame_max: 2147483648 is out of range 0 or 4096..2147483647" },
	{ "channel_max = 65536\n",
	    "1: channel_max: 65536 is out of range 0..65535" },
	{ "max_message_size = 0\n",
	    "1: max_message_size: 0 is out of range 1..536870912" },
	{ "max_message_size = 536870913\n",
	    "1: max_message_size: 536870913 is out of range 1..536870912" },
	{ "handshake_timeout = 0\n",
	    "1: handshake_timeout: 0 is out of range 1..4294967295" },
	{ "handshake_timeout = 4294967296\n",
	    "1: handshake_timeout: 4294967296 is out of range 1..4294967295" },
	{ "consumer_timeout = 0\n",
	    "1: consumer_timeout: 0 is out of range 1..4294967295" },
	{ "consumer_timeout = 4294967296\n",
	    "1: consumer_timeout: 4294967296 is out of range 1..4294967295" },
	{ "vm_memory_high_watermark.absolute = 1048575\n",
	    "1: vm_memory_high_watermark.absolute: 1048575 is out of range "
	    "0 or 1048576..18446744073709551615" },
	{ "vm_memory_high_watermark.absolute = 1\n",
	    "1: vm_memory_high_watermark.absolute: 1 is out of range "
	    "0 or 1048576..18446744073709551615" },
	{ "vm_memory_high_watermark.absolute = 18446744073709551616\n",
	    "1: vm_memory_high_watermark.absolute: 18446744073709551616 is out "
	    "of range 0 or 1048576..18446744073709551615" },
	{ "vm_memory_high_watermark.absolute = 0.4\n",
	    "1: vm_memory_high_watermark.absolute: \"0.4\" is not a size: "
	    "bytes, or a number with kB, MB, GB (powers of 1000) or k, M, G, "
	    "KiB, MiB, GiB (powers of 1024)" },
	{ "disk_free_limit.absolute = 50 MB\n",
	    "1: disk_free_limit.absolute: \"50 MB\" is not a size: bytes, or a "
	    "number with kB, MB, GB (powers of 1000) or k, M, G, KiB, MiB, GiB "
	    "(powers of 1024)" },
	{ "disk_free_limit.absolute = 50mb\n",
	    "1: disk_free_limit.absolute: \"50mb\" is not a size: bytes, or a "
	    "number with kB, MB, GB (powers of 1000) or k, M, G, KiB, MiB, GiB "
	    "(powers of 1024)" },
	{ "disk_free_limit.absolute = 17179869184GiB\n",
	    "1: disk_free_limit.absolute: 17179869184GiB is too large" },
	{ "vm_memory_high_watermark.absolute = 1023KiB\n",
	    "1: vm_memory_high_watermark.absolute: 1047552 is out of range "
	    "0 or 1048576..18446744073709551615" },
	{ "heartbeat = 1 0\n",
	    "1: heartbeat: \"1 0\" is not an integer in 0..65535" },
	{ "heartbeat = 65536\n",
	    "1: heartbeat: 65536 is out of range 0..65535" },
	{ "loopback_users.guest = yes\n",
	    "1: loopback_users.guest: \"yes\" is not true or false" },
	{ "loopback_users.guest = TRUE\n",
	    "1: loopback_users.guest: \"TRUE\" is not true or false" },
	{ "loopback_users = guest\n", "1: loopback_users: \"guest\" is not "
	    "none (use loopback_users.NAME = true)" },
	{ "listeners.tcp.default = 0\n", "1: listeners.tcp.default: "
	    "bad port \"0\" in \"0\" (expected 1..65535)" },
	{ "listeners.tcp.default = 65536\n", "1: listeners.tcp.default: "
	    "bad port \"65536\" in \"65536\" (expected 1..65535)" },
	{ "listeners.tcp.default = amqp\n", "1: listeners.tcp.default: "
	    "bad port \"amqp\" in \"amqp\" (expected 1..65535)" },
	{ "listeners.tcp.default = 127.0.0.1:\n",
	    "1: listeners.tcp.default: "
	    "bad port \"\" in \"127.0.0.1:\" (expected 1..65535)" },
	{ "listeners.tcp.default = localhost:5672\n",
	    "1: listeners.tcp.default: bad address \"localhost\" in "
	    "\"localhost:5672\" (expected an IPv4 or IPv6 address)" },
	{ "listeners.tcp.default = 999.0.0.1:5672\n",
	    "1: listeners.tcp.default: bad address \"999.0.0.1\" in "
	    "\"999.0.0.1:5672\" (expected an IPv4 or IPv6 address)" },
	{ "listeners.tcp.default = [127.0.0.1]:5672\n",
	    "1: listeners.tcp.default: bad address \"127.0.0.1\" in "
	    "\"[127.0.0.1]:5672\" (expected an IPv4 or IPv6 address)" },
	{ "listeners.tcp.default = [::1]5672\n",
	    "1: listeners.tcp.default: bad listener \"[::1]5672\" "
	    "(expected PORT, IPv4:PORT or [IPv6]:PORT)" },
	{ "listeners.tcp.default = [::1\n",
	    "1: listeners.tcp.default: bad listener \"[::1\" "
	    "(expected PORT, IPv4:PORT or [IPv6]:PORT)" },
	{ "listeners.tcp.default = 5672\nlisteners.tcp.2 = 5673\n",
	    "2: listeners.tcp.2: only one TCP listener is supported "
	    "(already have listeners.tcp.default)" },
	{ "listeners.tcp.1 = 127.0.0.1:5672\nlisteners.tcp.2 = [::1]:5672\n",
	    "2: listeners.tcp.2: only one TCP listener is supported "
	    "(already have listeners.tcp.1)" },
	{ "log.console.level = loud\n", "1: log.console.level: \"loud\" is "
	    "not debug, info, warning or error" },
	{ "ssl_options.verify = maybe\n", "1: ssl_options.verify: \"maybe\" "
	    "is not verify_peer or verify_none" },
	{ "ssl_options.fail_if_no_peer_cert = yes\n",
	    "1: ssl_options.fail_if_no_peer_cert: \"yes\" is not true or "
	    "false" },
	{ "listeners.ssl.a = 5671\nlisteners.ssl.b = 5672\n",
	    "2: listeners.ssl.b: only one TLS listener is supported "
	    "(already have listeners.ssl.a)" },
	{ "listeners.ssl.default = 70000\n", "1: listeners.ssl.default: "
	    "bad port \"70000\" in \"70000\" (expected 1..65535)" },
	/* Keys that need each other: "PATH: message", no line. */
	{ "listeners.ssl.default = 5671\nssl_options.certfile = c.pem\n",
	    " a TLS listener (listeners.ssl.*) needs ssl_options.certfile "
	    "and ssl_options.keyfile" },
	{ "listeners.ssl.default = 5671\nssl_options.certfile = c.pem\n"
	    "ssl_options.keyfile = k.pem\nssl_options.verify = verify_peer\n",
	    " ssl_options.verify = verify_peer needs ssl_options.cacertfile" },
	/* Every line is parsed, the first error is the one reported. */
	{ "heartbeat = 1\nchannel_max = x\nbogus\nframe_max = 1\n",
	    "2: channel_max: \"x\" is not an integer in 0..65535" },
};

START_TEST(test_errors)
{
	struct warren_config cfg;
	char path[64], err[512], want[640];

	ck_assert(!load_text(&cfg, bad[_i].text, path, sizeof(path), err,
	    sizeof(err)));
	snprintf(want, sizeof(want), "%s:%s", path, bad[_i].err);
	ck_assert_str_eq(err, want);
	config_free(&cfg);
}
END_TEST

START_TEST(test_missing_file)
{
	struct warren_config cfg;
	const char *path = "/tmp/warren-check-config-does-not-exist.conf";
	char err[512], want[640];

	unlink(path);
	config_defaults(&cfg);
	ck_assert(!config_load(&cfg, path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);
	/* A failed load leaves the defaults usable. */
	ck_assert_uint_eq(cfg.tcp_port, 5672);
	config_free(&cfg);
}
END_TEST

START_TEST(test_sample_conf)
{
	struct warren_config cfg;
	const char *srcdir = getenv("WARREN_SRCDIR");
	char path[4096], err[512];

	if (srcdir != NULL && *srcdir != '\0')
		snprintf(path, sizeof(path), "%s/conf/warren.conf", srcdir);
	else
		snprintf(path, sizeof(path), "conf/warren.conf");
	config_defaults(&cfg);
	if (!config_load(&cfg, path, err, sizeof(err))) {
		config_free(&cfg);
		ck_abort_msg("%s", err);
	}
	/* The sample shows the defaults. */
	ck_assert_str_eq(cfg.tcp_addr, "127.0.0.1");
	ck_assert_uint_eq(cfg.tcp_port, 5672);
	ck_assert_str_eq(cfg.default_user, "guest");
	ck_assert_str_eq(cfg.default_pass, "guest");
	ck_assert_str_eq(cfg.default_vhost, "/");
	ck_assert_uint_eq(cfg.n_loopback_users, 1);
	ck_assert(config_is_loopback_user(&cfg, "guest"));
	ck_assert_uint_eq(cfg.heartbeat, 60);
	ck_assert_uint_eq(cfg.frame_max, 131072);
	ck_assert_uint_eq(cfg.channel_max, 2047);
	ck_assert_uint_eq(cfg.max_message_size, 134217728);
	ck_assert_uint_eq(cfg.handshake_timeout, 10000);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_INFO);
	ck_assert_str_eq(cfg.data_dir, "data");
	ck_assert(cfg.disk_free_limit == 50000000);
	ck_assert(cfg.store_segment_size == 16777216);
	ck_assert_uint_eq(cfg.store_sync_delay_us, 0);
	ck_assert_ptr_null(cfg.load_definitions);
	ck_assert_uint_eq(cfg.queue_memory_messages, 1024);
	ck_assert(cfg.paging_watermark == 0);
	ck_assert(cfg.store_max_pending == 64u << 20);
	ck_assert(cfg.memory_high_watermark_relative == 0.4);
	ck_assert_uint_eq(cfg.shutdown_timeout, 10000);
	ck_assert(cfg.log_console);
	ck_assert_ptr_null(cfg.log_file);
	ck_assert(!cfg.log_syslog);
	config_free(&cfg);
}
END_TEST

/* Text of the file at srcdir-relative path (the caller frees it). */
static char *source_file(const char *rel)
{
	const char *srcdir = getenv("WARREN_SRCDIR");
	char path[4096], *text;
	FILE *fp;
	long n;

	snprintf(path, sizeof(path), "%s/%s", srcdir && *srcdir ? srcdir :
	    ".", rel);
	fp = fopen(path, "r");
	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	text = malloc((size_t)n + 1);
	ck_assert(text != NULL && fread(text, 1, (size_t)n, fp) == (size_t)n);
	text[n] = '\0';
	fclose(fp);
	return text;
}

/* Every key is shown in the shipped config and described in
 * warren.conf(5) (a family "prefix.*" by its prefix). */
START_TEST(test_every_key_documented)
{
	char *conf = source_file("conf/warren.conf");
	char *man = source_file("man/warren.conf.5");
	const char *name;

	for (size_t i = 0; (name = config_key_name(i)) != NULL; i++) {
		char key[128], roff[256], *o = roff;
		size_t n = strlen(name);

		snprintf(key, sizeof(key), "%.*s", (int)(name[n - 1] == '*' ?
		    n - 1 : n), name);
		ck_assert_msg(strstr(conf, key) != NULL,
		    "conf/warren.conf does not show %s", key);
		/* The man page writes a family as "prefix . Ns Ar n". */
		if (name[n - 1] == '*')
			key[n - 2] = '\0';
		/* In roff a '.' that starts a word is fine; '-' is \-. */
		for (const char *p = key; *p && o < roff + sizeof(roff) - 3;
		    p++) {
			if (*p == '-')
				*o++ = '\\';
			*o++ = *p;
		}
		*o = '\0';
		ck_assert_msg(strstr(man, roff) != NULL,
		    "man/warren.conf.5 does not describe %s", key);
	}
	free(conf);
	free(man);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_range_edges);
	tcase_add_test(tc, test_sizes_with_units);
	tcase_add_test(tc, test_durations_fractions_and_logs);
	tcase_add_test(tc, test_every_key_documented);
	tcase_add_test(tc, test_load_twice);
	tcase_add_test(tc, test_listener_port);
	tcase_add_test(tc, test_listener_ipv4);
	tcase_add_test(tc, test_listener_ipv6);
	tcase_add_test(tc, test_listener_same_twice);
	tcase_add_test(tc, test_tls_keys);
	tcase_add_test(tc, test_loopback_none);
	tcase_add_test(tc, test_loopback_add);
	tcase_add_test(tc, test_loopback_remove);
	tcase_add_loop_test(tc, test_errors, 0,
	    (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_sample_conf);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
