/*
 * The cost of assay-api's request instrumentation, measured directly: what
 * a worker does per request for metrics (two clock reads, the in-flight
 * mark, the histogram update), repeated by WORKERS processes at once on
 * the same shared counters (so cache-line contention is included), in CPU
 * time per request.
 *   bench/metrics-cost [WORKERS] [ITERATIONS] -> the slowest worker's ns
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"
#include "util.h"

/* CPU time of this process: descheduled time is not the instrumentation's. */
static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Where each process leaves its result. */
static uint64_t *
mmap_shared_ns(int workers)
{
	void *p = mmap(NULL, (size_t)workers * sizeof(uint64_t), PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

int
main(int argc, char *argv[])
{
	int workers = argc > 1 ? atoi(argv[1]) : 4, i, status;
	long n = argc > 2 ? atol(argv[2]) : 5000000, k;
	uint64_t *ns, t0;
	struct app app;
	struct req r;

	shm_init();
	ns = mmap_shared_ns(workers);
	for (i = 0; i < workers; i++) {
		if (fork() != 0)
			continue;
		memset(&app, 0, sizeof app);
		memset(&r, 0, sizeof r);
		r.app = &app;
		r.status = 200;
		r.match.route = &api_routes[0];
		metrics_worker_start();
		t0 = cpu_ns();
		for (k = 0; k < n; k++) {
			uint64_t start = util_now_us();

			metrics_request_start();
			metrics_request_end(&r, util_now_us() - start);
		}
		ns[i] = (cpu_ns() - t0) / (uint64_t)n;
		_exit(0);
	}
	while (wait(&status) > 0)
		;
	for (i = 1; i < workers; i++)
		ns[0] = ns[i] > ns[0] ? ns[i] : ns[0];
	printf("%llu\n", (unsigned long long)ns[0]);
	return 0;
}
