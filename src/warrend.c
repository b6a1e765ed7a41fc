/*
 * warrend: the Warren AMQP 0-9-1 broker.
 *
 * In the foreground by default (for systemd and containers); -d detaches
 * once the broker is listening, so the exit status of `warrend -d` says
 * whether it started.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "log.h"
#include "service_notify.h"
#include "tls.h"

/* Default config file when neither -c nor WARREN_CONFIG_FILE names one
 * and it exists. */
#ifndef WARREN_SYSCONFDIR
#define WARREN_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG WARREN_SYSCONFDIR "/warren/warren.conf"

struct options {
	const char *config;	/* NULL: none */
	const char *pid_file;	/* NULL: none */
	bool check_only;
	bool daemonize;
};

static void usage(FILE *to, int status)
{
	fprintf(to, "usage: warrend [-d] [-n | --check-config] "
	    "[-c config-file] [-p pid-file]\n"
	    "  -c, --config FILE     read FILE (default: $WARREN_CONFIG_FILE, "
	    "else %s if it exists)\n"
	    "  -n, --check-config    check the configuration and exit\n"
	    "  -d, --daemon          detach once listening\n"
	    "  -p, --pid-file FILE   write the pid to FILE (default with -d: "
	    "DATA_DIR/warrend.pid)\n"
	    "  -V, --version         print the version and exit\n"
	    "  -h, --help            this text\n", DEFAULT_CONFIG);
	exit(status);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "c:ndp:Vh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'n':
			o->check_only = true;
			break;
		case 'd':
			o->daemonize = true;
			break;
		case 'p':
			o->pid_file = optarg;
			break;
		case 'V':
			printf("warrend %s\n", PACKAGE_VERSION);
			exit(0);
		case 'h':
			usage(stdout, 0);
			break;
		default:
			usage(stderr, 2);
		}
	}
	if (optind != argc)
		usage(stderr, 2);
	if (o->config == NULL)
		o->config = getenv("WARREN_CONFIG_FILE");
	if (o->config == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
		o->config = DEFAULT_CONFIG;
	if (o->pid_file == NULL)
		o->pid_file = getenv("WARREN_PID_FILE");
}

/* The config file, then the environment's overrides (as RabbitMQ's
 * RABBITMQ_MNESIA_BASE and RABBITMQ_NODENAME: what containers set). */
static bool load_config(const struct options *o, struct warren_config *cfg,
    char *err, size_t errlen)
{
	const char *env;

	config_defaults(cfg);
	if (o->config && !config_load(cfg, o->config, err, errlen))
		return false;
	if ((env = getenv("WARREN_DATA_DIR")) != NULL && *env) {
		free(cfg->data_dir);
		cfg->data_dir = xstrdup(env);
	}
	if ((env = getenv("WARREN_NODENAME")) != NULL && *env) {
		free(cfg->node_name);
		cfg->node_name = xstrdup(env);
	}
	return true;
}

/* -n: everything a start would refuse that can be known without one. */
static int check_config(struct warren_config *cfg)
{
	char err[512];
	SSL_CTX *tls = cfg->ssl_port ?
	    tls_server_context(cfg, err, sizeof(err)) : NULL;

	if (cfg->ssl_port && tls == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	SSL_CTX_free(tls);
	printf("configuration OK\n");
	return 0;
}

static bool configure_logging(const struct warren_config *cfg,
    bool daemonized, char *err, size_t errlen)
{
	struct log_settings s = {
		.console = { cfg->log_console && !daemonized,
		    (enum log_level)cfg->log_level, cfg->log_console_json },
		.file = { cfg->log_file != NULL,
		    (enum log_level)cfg->log_file_level, cfg->log_file_json },
		.syslog = { cfg->log_syslog,
		    (enum log_level)cfg->log_syslog_level, false },
		.file_path = cfg->log_file,
		.syslog_ident = cfg->log_syslog_identity,
	};
	return log_configure(&s, err, errlen);
}

/*
 * SIGHUP: the config file is read again and the log outputs are set up
 * from it (so a rotated log file is reopened and levels can change);
 * other keys wait for a restart.  A file with an error changes nothing.
 */
static void reload(struct broker *b, void *arg)
{
	const struct options *o = arg;
	struct warren_config fresh;
	char err[600];

	if (!load_config(o, &fresh, err, sizeof(err)))
		log_error("config not reloaded: %s", err);
	else if (!configure_logging(&fresh, o->daemonize, err, sizeof(err)))
		log_error("log outputs not changed: %s", err);
	else
		log_info("log outputs reopened from %s", o->config ?
		    o->config : "the defaults");
	config_free(&fresh);
}

/*
 * -d: fork; the parent waits on a pipe for the child's word that it
 * listens (exit 0) or failed (exit 1).  The child leaves the terminal.
 */
static int detach(void)
{
	int fds[2], devnull;
	char status = 1;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
		log_error("cannot detach: %s", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		close(fds[1]);
		if (read(fds[0], &status, 1) != 1)
			status = 1;	/* it died before saying */
		exit(status);
	}
	close(fds[0]);
	setsid();
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	return fds[1];
}

static void tell_parent(int fd, char status)
{
	if (fd >= 0) {
		if (write(fd, &status, 1) != 1)
			log_warning("cannot report the start: %s",
			    strerror(errno));
		close(fd);
	}
}

/* What an operator checks first, in one line at start. */
static void log_config_summary(const struct options *o,
    const struct warren_config *cfg, const struct broker *b)
{
	static const char *const levels[] = { "error", "warning", "info",
	    "debug" };
	char amqps[300] = "off", mgmt[300] = "off", prom[300] = "off";

	if (cfg->ssl_port)
		snprintf(amqps, sizeof(amqps), "%s:%u", cfg->ssl_addr,
		    cfg->ssl_port);
	if (cfg->mgmt_port)
		snprintf(mgmt, sizeof(mgmt), "%s:%u", cfg->mgmt_ip,
		    cfg->mgmt_port);
	if (cfg->prometheus_port)
		snprintf(prom, sizeof(prom), "%s:%u", cfg->prometheus_ip,
		    cfg->prometheus_port);
	log_info("config %s: node %s, amqp %s:%u, amqps %s, management %s, "
	    "prometheus %s, data_dir %s, memory high watermark %llu bytes, "
	    "disk_free_limit %llu bytes, log console %s file %s syslog %s",
	    o->config ? o->config : "(none: defaults)", cfg->node_name,
	    cfg->tcp_addr, cfg->tcp_port, amqps, mgmt, prom, cfg->data_dir,
	    (unsigned long long)b->memory_limit,
	    (unsigned long long)cfg->disk_free_limit,
	    cfg->log_console && !o->daemonize ? levels[cfg->log_level] :
	    "off", cfg->log_file ? cfg->log_file : "off",
	    cfg->log_syslog ? levels[cfg->log_syslog_level] : "off");
}

static bool write_pid_file(const char *path)
{
	FILE *fp = fopen(path, "we");

	if (fp == NULL || fprintf(fp, "%ld\n", (long)getpid()) < 0 ||
	    fclose(fp) != 0) {
		log_error("pid file %s: %s", path, strerror(errno));
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct options o;
	struct warren_config cfg;
	struct broker b;
	char pid_path[4200], err[600];
	int parent = -1, status = 1;

	parse_options(argc, argv, &o);
	if (!load_config(&o, &cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		config_free(&cfg);
		return 1;
	}
	if (o.check_only) {
		status = check_config(&cfg);
		config_free(&cfg);
		return status;
	}
	if (o.daemonize && !cfg.log_file && !cfg.log_syslog)
		fprintf(stderr, "warrend: with -d and neither log.file nor "
		    "log.syslog set, nothing will be logged\n");
	if (!configure_logging(&cfg, o.daemonize, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		config_free(&cfg);
		return 1;
	}
	if (mkdir(cfg.data_dir, 0750) != 0 && errno != EEXIST) {
		log_error("warren.data_dir: cannot create %s: %s", cfg.data_dir,
		    strerror(errno));
		config_free(&cfg);
		return 1;
	}
	if (o.daemonize) {
		parent = detach();
		if (o.pid_file == NULL) {
			snprintf(pid_path, sizeof(pid_path), "%s/warrend.pid",
			    cfg.data_dir);
			o.pid_file = pid_path;
		}
	}
	/* A peer that vanishes must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	if (broker_init(&b, &cfg) &&
	    (o.pid_file == NULL || write_pid_file(o.pid_file))) {
		log_info("warrend %s started (pid %d)", PACKAGE_VERSION,
		    (int)getpid());
		log_config_summary(&o, &cfg, &b);
		tell_parent(parent, 0);
		service_notify("READY=1");
		b.on_reload = reload;
		b.on_reload_arg = &o;
		broker_run(&b);
		status = 0;
		log_info("warrend stopped");
	} else {
		tell_parent(parent, 1);
	}
	if (o.pid_file && status == 0)
		unlink(o.pid_file);
	broker_free(&b);
	config_free(&cfg);
	log_close();
	return status;
}
