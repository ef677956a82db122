/*
 * bench/sandbox-start: what containment adds to a child's start-up, each
 * figure beside its baseline in the same run. As root it first becomes
 * the sandbox user, as assay-sandbox does. Rows, each the median of
 * rounds that start a child and wait for its end:
 *   js:   a plain fork (the child calls setsid and exits) beside
 *         sbx_ns_fork + sbx_ns_enter (namespaces, empty root, init);
 *   node: fork + exec of node on an empty script beside the same inside
 *         the namespaces with node's files.
 *
 *   bench/sandbox-start [NODE] [ROUNDS]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One child: contained or not, running node or nothing. */
static void
child(bool contained, const char *node)
{
	char *argv[] = {"node", "--experimental-permission", "--no-warnings", "-e", "0",
	                NULL};
	char *envp[] = {NULL};

	if (contained ? !sbx_ns_enter(node) : setsid() < 0)
		_exit(1);
	if (node != NULL)
		execve(node, argv, envp);
	_exit(node != NULL);
}

/* The median time, in microseconds, to start a child and see it end. */
static double
median(bool contained, const char *node, int rounds)
{
	double *t = calloc((size_t)rounds, sizeof *t), start, m;
	int i, status;
	pid_t pid;

	for (i = 0; i < rounds; i++) {
		start = now_us();
		pid = contained ? sbx_ns_fork() : fork();
		if (pid == 0)
			child(contained, node);
		if (pid < 0 || waitpid(pid, &status, 0) != pid ||
		    sbx_ns_status(status) != 0) {
			fprintf(stderr, "a child failed (status %#x)\n", status);
			exit(1);
		}
		t[i] = now_us() - start;
	}
	qsort(t, (size_t)rounds, sizeof *t, by_value);
	m = t[rounds / 2];
	free(t);
	return m;
}

static void
row(const char *what, const char *node, int rounds)
{
	double plain = median(false, node, rounds),
	       contained = median(true, node, rounds);

	printf("%-6s plain %8.0f us   contained %8.0f us   added %+7.0f us (%.2fx)\n",
	       what, plain, contained, contained - plain, contained / plain);
}

int
main(int argc, char *argv[])
{
	const char *node = argc > 1 && argv[1][0] != '\0' ? argv[1] : NULL;
	int rounds = argc > 2 ? atoi(argv[2]) : 200;

	if (getuid() == 0)
		sbx_user("assay-sandbox");
	if (!sbx_ns_probe(node)) {
		fprintf(stderr, "no namespaces on this host: nothing to compare\n");
		return 1;
	}
	printf("child start-up to its end, median of %d rounds\n", rounds);
	row("js", NULL, rounds);
	if (node != NULL)
		row("node", node, rounds / 4 > 10 ? rounds / 4 : 10);
	return 0;
}
