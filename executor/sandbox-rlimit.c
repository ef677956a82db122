/*
 * Resource limits of a worker: CPU seconds (a job's timeout, rounded up,
 * plus one, times the jobs it may run: a backstop, the wall clock is the
 * executor's), no core dumps, no file writes; then by runtime. "js":
 * address space = the analysis' memory_limit_mb (each job's heap has that
 * budget, js.c) plus JS_BASE_MB for the worker itself, no new processes,
 * no new descriptors. "node": V8 reserves far more address space than it uses,
 * so the memory bound is on data (memory_limit_mb plus node's own
 * NODE_BASE_MB) besides each job's heap limit (its Worker's, node.c); its
 * threads count as processes, so new processes are refused by its seccomp
 * filter, and its tasks are capped at NODE_TASKS (counted per user
 * namespace, so per job: sandbox-ns.c); it may open a few descriptors.
 * Applied after fork, before the script; never in the executor itself.
 */
#include "config.h"

#include <sys/resource.h>

#include "extern.h"

#define JS_BASE_MB   32
#define NODE_BASE_MB 96
#define NODE_FILES   64
#define NODE_TASKS   32 /* node's own threads need about a dozen */

static bool
limit(int resource, rlim_t value)
{
	struct rlimit rl = {value, value};

	return setrlimit(resource, &rl) == 0;
}

bool
sbx_rlimits(const struct job_spec *spec)
{
	rlim_t mb = (rlim_t)spec->memory_mb * 1024 * 1024;
	rlim_t cpu =
	    ((rlim_t)(spec->timeout_ms + 999) / 1000 + 1) * (rlim_t)spec->max_jobs;

	if (!limit(RLIMIT_CPU, cpu) || !limit(RLIMIT_CORE, 0) || !limit(RLIMIT_FSIZE, 0))
		return false;
	if (spec->runtime == RT_NODE)
		return limit(RLIMIT_DATA, mb + (rlim_t)NODE_BASE_MB * 1024 * 1024) &&
		       limit(RLIMIT_NOFILE, NODE_FILES) &&
		       limit(RLIMIT_NPROC, NODE_TASKS);
	return limit(RLIMIT_AS, mb + (rlim_t)JS_BASE_MB * 1024 * 1024) &&
	       limit(RLIMIT_NPROC, 0) && limit(RLIMIT_NOFILE, 4);
}
