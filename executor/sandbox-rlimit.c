/*
 * Resource limits of a job's child: address space (the analysis'
 * memory_limit_mb), CPU seconds (its timeout, rounded up, plus one), no
 * core dumps, no file writes, no new processes, no new descriptors.
 * Applied after fork, before the script; never in the executor itself.
 */
#include "config.h"

#include <sys/resource.h>

#include "extern.h"

static bool
limit(int resource, rlim_t value)
{
	struct rlimit rl = {value, value};

	return setrlimit(resource, &rl) == 0;
}

bool
sbx_rlimits(const struct job_spec *spec)
{
	return limit(RLIMIT_AS, (rlim_t)spec->memory_mb * 1024 * 1024) &&
	       limit(RLIMIT_CPU, (rlim_t)(spec->timeout_ms + 999) / 1000 + 1) &&
	       limit(RLIMIT_CORE, 0) && limit(RLIMIT_FSIZE, 0) &&
	       limit(RLIMIT_NPROC, 0) && limit(RLIMIT_NOFILE, 4);
}
