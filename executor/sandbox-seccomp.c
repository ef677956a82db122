/*
 * The seccomp allowlist of a job's child: reading and writing descriptors
 * it already has (only the bridge pipe), memory management, clocks, signal
 * return and exit. Anything else kills the process. The filter is built
 * once with libseccomp when the executor starts (sbx_seccomp_prepare) and
 * only loaded by each child (sbx_seccomp), last before the script runs.
 */
#include "config.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <seccomp.h>

#include "extern.h"
#include "xalloc.h"

static struct sock_fprog filter;

bool
sbx_seccomp_prepare(void)
{
	static const int allowed[] = {
	    SCMP_SYS(read),         SCMP_SYS(write),        SCMP_SYS(brk),
	    SCMP_SYS(mmap),         SCMP_SYS(munmap),       SCMP_SYS(mremap),
	    SCMP_SYS(madvise),      SCMP_SYS(rt_sigreturn), SCMP_SYS(clock_gettime),
	    SCMP_SYS(gettimeofday), SCMP_SYS(exit),         SCMP_SYS(exit_group),
	    SCMP_SYS(futex),
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int fd = memfd_create("assay-seccomp", MFD_CLOEXEC), rc = ctx == NULL || fd < 0;
	off_t len;
	size_t i;

	for (i = 0; rc == 0 && i < sizeof allowed / sizeof allowed[0]; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	if (rc == 0)
		rc = seccomp_export_bpf(ctx, fd);
	len = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
	if (len > 0 && len % (off_t)sizeof(struct sock_filter) == 0) {
		filter.filter = xmalloc((size_t)len);
		filter.len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
		if (pread(fd, filter.filter, (size_t)len, 0) != len)
			filter.len = 0;
	}
	if (ctx != NULL)
		seccomp_release(ctx);
	if (fd >= 0)
		close(fd);
	return filter.len > 0;
}

bool
sbx_seccomp(void)
{
	return filter.len > 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) == 0;
}
