/*
 * warrend: the Warren AMQP 0-9-1 broker.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "log.h"
#include "tls.h"

static void usage(void)
{
	fprintf(stderr, "usage: warrend [-n] [-c config-file]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	struct warren_config cfg;
	struct broker b;
	char err[512];
	bool check_only = false;
	int ch;

	while ((ch = getopt(argc, argv, "c:nh")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check_only = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	config_defaults(&cfg);
	if (path && !config_load(&cfg, path, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		config_free(&cfg);
		return 1;
	}
	if (check_only) {
		/* The certificates too: a bad one would stop the real start. */
		SSL_CTX *tls = cfg.ssl_port ?
		    tls_server_context(&cfg, err, sizeof(err)) : NULL;

		if (cfg.ssl_port && tls == NULL) {
			fprintf(stderr, "%s\n", err);
			config_free(&cfg);
			return 1;
		}
		SSL_CTX_free(tls);
		printf("configuration OK\n");
		config_free(&cfg);
		return 0;
	}
	log_set_level((enum log_level)cfg.log_level);
	/* Nothing is persisted yet, but the directory is ours from day one. */
	if (mkdir(cfg.data_dir, 0750) != 0 && errno != EEXIST) {
		log_error("warren.data_dir: cannot create %s: %s", cfg.data_dir,
		    strerror(errno));
		config_free(&cfg);
		return 1;
	}
	/* A peer that vanishes must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	if (!broker_init(&b, &cfg)) {
		broker_free(&b);
		config_free(&cfg);
		return 1;
	}
	log_info("warrend %s started (pid %d)", PACKAGE_VERSION, (int)getpid());
	broker_run(&b);
	broker_free(&b);
	config_free(&cfg);
	log_info("warrend stopped");
	return 0;
}
