/*
 * The seccomp allowlist of a job's child (libseccomp): writing to and
 * reading from descriptors it already has (only the bridge pipe), memory
 * management, clocks, signal return and exit. Anything else kills the
 * process. Installed last before the script runs, with no_new_privs.
 */
#include "config.h"

#include <errno.h>
#include <sys/prctl.h>

#include <seccomp.h>

#include "extern.h"

bool
sbx_seccomp(void)
{
	static const int allowed[] = {
		SCMP_SYS(read),          SCMP_SYS(write),        SCMP_SYS(brk),
		SCMP_SYS(mmap),          SCMP_SYS(munmap),       SCMP_SYS(mremap),
		SCMP_SYS(madvise),       SCMP_SYS(rt_sigreturn), SCMP_SYS(clock_gettime),
		SCMP_SYS(gettimeofday),  SCMP_SYS(exit),         SCMP_SYS(exit_group),
		SCMP_SYS(futex),
	};
	scmp_filter_ctx ctx;
	size_t i;
	int rc = 0;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return false;
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL)
		return false;
	for (i = 0; rc == 0 && i < sizeof allowed / sizeof allowed[0]; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	return rc == 0;
}
