/*
 * assay-api: command line, configuration, and the listening socket; then
 * hands over to the prefork master. The socket is either inherited on fd 0
 * (lighttpd bin-path, spawn-fcgi) or bound here from `listen`.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "cfg.h"
#include "extern.h"
#include "log.h"
#include "xalloc.h"

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: assay-api [-t] [-c FILE]\n"
	        "       assay-api --sample-config | --config-doc | --config-man | "
	        "--routes | --version\n"
	        "  -c, --config FILE  configuration file (default " API_CONF_FILE ")\n"
	        "  -t, --test         check the configuration, print it, and exit\n");
}

/* Is fd a listening socket (what a web server hands a FastCGI app on fd 0)? */
static bool
is_listening_socket(int fd)
{
	int listening = 0;
	socklen_t len = sizeof listening;

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
	       listening;
}

static int
open_listener(const struct cfg *cfg)
{
	const char *addr = cfg_str(cfg, API_LISTEN);
	struct stat st;
	int fd;

	if (addr[0] == '\0') {
		if (!is_listening_socket(0)) {
			log_msg(LOG_ERROR,
			        "no 'listen' address configured and fd 0 is not a "
			        "listening socket");
			return -1;
		}
		log_msg(LOG_INFO, "serving FastCGI on the socket inherited as fd 0");
		return 0;
	}
	if (strchr(addr, '/') != NULL && lstat(addr, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(addr); /* stale socket from a previous run */
	fd = FCGX_OpenSocket(addr, 1024);
	if (fd < 0) {
		log_msg(LOG_ERROR, "cannot listen on %s: %s", addr, strerror(errno));
		return -1;
	}
	if (strchr(addr, '/') != NULL &&
	    chmod(addr, (mode_t)cfg_int(cfg, API_SOCKET_MODE)) != 0) {
		log_msg(LOG_ERROR, "chmod %s: %s", addr, strerror(errno));
		return -1;
	}
	log_msg(LOG_INFO, "serving FastCGI on %s", addr);
	return fd;
}

static void
print_routes(void)
{
	char allow[128];
	size_t i;

	for (i = 0; i < api_nroutes; i++) {
		route_allow(api_routes[i].methods, allow, sizeof allow);
		printf("%s %s\n", allow, api_routes[i].pattern);
	}
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"test", no_argument, NULL, 't'},
	    CFG_LONG_OPTIONS,
	    {"routes", no_argument, NULL, 'R'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = API_CONF_FILE;
	bool test = false, required = false;
	struct cfg *cfg;
	char *unix_path = NULL;
	int c, fd, rc;

	log_init("assay-api");
	while ((c = getopt_long(argc, argv, "c:thV", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			test = true;
			break;
		case 'c':
			path = optarg;
			required = true;
			break;
		case 'S':
		case 'D':
		case 'M':
			cfg_write_option(c, api_cfg_keys, API__MAX, "assay.conf", stdout);
			return 0;
		case 'R':
			print_routes();
			return 0;
		case 'V':
			printf("assay-api %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	if ((cfg = cfg_startup(api_cfg_keys, API__MAX, path, required, test, &rc)) ==
	    NULL)
		return rc;
	log_set_level((enum log_level)cfg_int(cfg, API_LOG_LEVEL));
	if (cfg_path(cfg) == NULL)
		log_msg(LOG_INFO, "%s not found; using defaults and environment", path);

	fd = open_listener(cfg);
	if (fd < 0) {
		cfg_free(cfg);
		return 1;
	}
	if (strchr(cfg_str(cfg, API_LISTEN), '/') != NULL)
		unix_path = xstrdup(cfg_str(cfg, API_LISTEN));
	master_block_signals();
	rc = master_run(cfg, path, cfg_path(cfg) != NULL || required, fd);
	if (unix_path != NULL)
		unlink(unix_path);
	free(unix_path);
	return rc;
}
