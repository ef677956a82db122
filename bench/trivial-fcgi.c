/*
 * The baseline responder for benchmarks: libfcgi, N prefork processes
 * sharing one socket, a fixed 200 answer. It does the least work any
 * FastCGI application can do, so a benchmark's ratio against it is the
 * cost of everything Assay adds. Never used in production.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

int
main(int argc, char *argv[])
{
	static const char body[] = "{\"status\":\"pass\"}";
	FCGX_Request req;
	int fd, procs, i;

	if (argc != 3) {
		fprintf(stderr, "usage: trivial-fcgi SOCKET PROCESSES\n");
		return 2;
	}
	procs = atoi(argv[2]);
	unlink(argv[1]);
	fd = FCGX_OpenSocket(argv[1], 1024);
	if (fd < 0 || procs < 1) {
		perror(argv[1]);
		return 1;
	}
	for (i = 1; i < procs; i++)
		if (fork() == 0)
			break;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	FCGX_Init();
	FCGX_InitRequest(&req, fd, 0);
	while (FCGX_Accept_r(&req) >= 0) {
		FCGX_FPrintF(req.out,
		             "Status: 200 OK\r\nContent-Type: application/health+json\r\n"
		             "Content-Length: %d\r\n\r\n%s",
		             (int)sizeof body - 1, body);
		FCGX_Finish_r(&req);
	}
	return 0;
}
