/*
 * The seccomp filters of a job's child, built once with libseccomp when
 * assay-sandbox starts (sbx_seccomp_prepare) and only loaded by each child
 * (sbx_seccomp), last before the script runs.
 *
 * Runtime "js" (Duktape, in the child itself): an allowlist. Reading and
 * writing descriptors it already has (only the bridge pipe), memory
 * management, clocks, signal return and exit; anything else kills it.
 *
 * Runtime "node" (a node process exec'd by the child): node needs threads,
 * files of its own and an event loop, so the filter is a denylist of what a
 * script must never do: new processes (fork, vfork, clone without
 * CLONE_THREAD; clone3 answers ENOSYS so that threads fall back to clone),
 * sockets of any family (EACCES: node needs none of its own), io_uring
 * (ENOSYS: libuv falls back to its thread pool), tracing other processes,
 * namespaces, mounts, kernel modules, BPF, perf events, keyrings, the
 * clock, the kernel log. The namespaces (sandbox-ns.c) are the layer
 * below, node's permission model (no file access, no child_process, no
 * addons, Workers for the runtime's own jobs only) the layer above.
 */
#include "config.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <seccomp.h>

#include "extern.h"
#include "xalloc.h"

static struct sock_fprog filters[RT__MAX];

/* The BPF program of ctx, into *out; false on failure. */
static bool
export_filter(scmp_filter_ctx ctx, struct sock_fprog *out)
{
	int fd = memfd_create("assay-seccomp", MFD_CLOEXEC);
	off_t len;

	if (fd < 0 || seccomp_export_bpf(ctx, fd) != 0 ||
	    (len = lseek(fd, 0, SEEK_END)) <= 0 ||
	    len % (off_t)sizeof(struct sock_filter) != 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	out->filter = xmalloc((size_t)len);
	out->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	if (pread(fd, out->filter, (size_t)len, 0) != len)
		out->len = 0;
	close(fd);
	return out->len > 0;
}

/* "node" only: threads but no processes, no sockets, no io_uring. */
static int
node_rules(scmp_filter_ctx ctx)
{
	int rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
	                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));

	if (rc == 0) /* its flags are out of reach: make glibc use clone */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc == 0) /* libuv falls back to threads */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
		                      SCMP_SYS(io_uring_setup), 0);
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 0);
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socketpair),
		                      0);
	return rc;
}

/* The filter of rt: every call does what dflt says, the listed ones what
 * listed says. */
static bool
prepare(enum runtime rt, uint32_t dflt, uint32_t listed, const int *calls, size_t n)
{
	scmp_filter_ctx ctx = seccomp_init(dflt);
	int rc = ctx == NULL;
	bool ok;
	size_t i;

	for (i = 0; rc == 0 && i < n; i++)
		rc = seccomp_rule_add(ctx, listed, calls[i], 0);
	if (rc == 0 && rt == RT_NODE)
		rc = node_rules(ctx);
	ok = rc == 0 && export_filter(ctx, &filters[rt]);
	if (ctx != NULL)
		seccomp_release(ctx);
	return ok;
}

bool
sbx_seccomp_prepare(void)
{
	static const int js_allowed[] = {
	    SCMP_SYS(read),         SCMP_SYS(write),        SCMP_SYS(brk),
	    SCMP_SYS(mmap),         SCMP_SYS(munmap),       SCMP_SYS(mremap),
	    SCMP_SYS(madvise),      SCMP_SYS(rt_sigreturn), SCMP_SYS(clock_gettime),
	    SCMP_SYS(gettimeofday), SCMP_SYS(exit),         SCMP_SYS(exit_group),
	    SCMP_SYS(futex),
	};
	static const int node_denied[] = {
	    SCMP_SYS(fork),
	    SCMP_SYS(vfork),
	    SCMP_SYS(execveat),
	    SCMP_SYS(ptrace),
	    SCMP_SYS(process_vm_readv),
	    SCMP_SYS(process_vm_writev),
	    SCMP_SYS(mount),
	    SCMP_SYS(umount2),
	    SCMP_SYS(pivot_root),
	    SCMP_SYS(chroot),
	    SCMP_SYS(setns),
	    SCMP_SYS(unshare),
	    SCMP_SYS(init_module),
	    SCMP_SYS(finit_module),
	    SCMP_SYS(delete_module),
	    SCMP_SYS(kexec_load),
	    SCMP_SYS(bpf),
	    SCMP_SYS(perf_event_open),
	    SCMP_SYS(keyctl),
	    SCMP_SYS(add_key),
	    SCMP_SYS(request_key),
	    SCMP_SYS(reboot),
	    SCMP_SYS(swapon),
	    SCMP_SYS(swapoff),
	    SCMP_SYS(userfaultfd),
	    SCMP_SYS(open_by_handle_at),
	    SCMP_SYS(name_to_handle_at),
	    SCMP_SYS(iopl),
	    SCMP_SYS(ioperm),
	    SCMP_SYS(syslog),
	    SCMP_SYS(acct),
	    SCMP_SYS(settimeofday),
	    SCMP_SYS(clock_settime),
	    SCMP_SYS(clock_adjtime),
	    SCMP_SYS(adjtimex),
	    SCMP_SYS(sethostname),
	    SCMP_SYS(setdomainname),
	    SCMP_SYS(fanotify_init),
	    SCMP_SYS(lookup_dcookie),
	    SCMP_SYS(kexec_file_load),
	    SCMP_SYS(fsopen),
	    SCMP_SYS(fsmount),
	    SCMP_SYS(move_mount),
	    SCMP_SYS(open_tree),
	};

	return prepare(RT_JS, SCMP_ACT_KILL_PROCESS, SCMP_ACT_ALLOW, js_allowed,
	               sizeof js_allowed / sizeof js_allowed[0]) &&
	       prepare(RT_NODE, SCMP_ACT_ALLOW, SCMP_ACT_KILL_PROCESS, node_denied,
	               sizeof node_denied / sizeof node_denied[0]);
}

bool
sbx_seccomp(enum runtime rt)
{
	return filters[rt].len > 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filters[rt]) == 0;
}
