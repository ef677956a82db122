/*
 * The namespaces of a job's child. Each child is cloned into new user,
 * PID, mount, network, IPC and UTS namespaces: the job is PID 2 of a
 * process table of its own, under a small init (PID 1, below), in a
 * session of its own, so kill(-1), a kill of its parent (that init, which
 * ignores it) or of any host pid reaches nothing outside; its
 * root is an empty read-only tmpfs (runtime "node" also gets /usr, the
 * host's /lib* links and node's own directory, bound read-only), so no
 * path leads to a socket or file of the stack; its network is a loopback
 * that is down and it shares no abstract socket or IPC object with the
 * host; it ends with no capability. Its host uid is assay-sandbox's own
 * (the sandbox user, sandbox-user.c), mapped to the same number inside,
 * and process counts (RLIMIT_NPROC) are kept per namespace, so per job.
 * sbx_ns_probe tries all of it once when assay-sandbox starts; where the
 * host refuses, children are plain forks (runtime "js" keeps its seccomp
 * allowlist; the executor refuses "node"). Runs nothing of the job.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "extern.h"
#include "log.h"

#define NS_FLAGS                                                                         \
	(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |      \
	 CLONE_NEWUTS)
#define NEW_ROOT "/tmp" /* where the child's root is built, in its own mounts */

static bool ns_ok;
static uid_t host_uid;
static gid_t host_gid;

static bool
put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(text);
}

/* mkdir -p of path (absolute, in the new root), which it may modify. */
static bool
mkdirs(char *path)
{
	char *p;

	for (p = path + 1;; p++)
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST)
				return false;
			if ((*p = c) == '\0')
				return true;
		}
}

/* Bind the host's directory dir read-only at the same place in the new
 * root, keeping the flags the host's mount locks (nosuid, noexec, atime). */
static bool
bind_ro(const char *dir)
{
	unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;
	char to[PATH_MAX];
	struct statvfs sv;

	if (snprintf(to, sizeof to, NEW_ROOT "%s", dir) >= (int)sizeof to ||
	    !mkdirs(to) || statvfs(dir, &sv) != 0 ||
	    mount(dir, to, NULL, MS_BIND | MS_REC, NULL) != 0)
		return false;
	if (sv.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		flags |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		flags |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		flags |= MS_RELATIME;
	return mount(NULL, to, NULL, flags, NULL) == 0;
}

/* /lib, /lib64, /bin as the host has them: the same symbolic link
 * (merged /usr) or the directory bound read-only. */
static bool
host_dir(const char *dir)
{
	char to[PATH_MAX], target[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (lstat(dir, &st) != 0)
		return errno == ENOENT;
	if (!S_ISLNK(st.st_mode))
		return !S_ISDIR(st.st_mode) || bind_ro(dir);
	if ((n = readlink(dir, target, sizeof target - 1)) < 0)
		return false;
	target[n] = '\0';
	snprintf(to, sizeof to, NEW_ROOT "%s", dir);
	return symlink(target, to) == 0;
}

/* What node needs to start: /usr, the loader's links, its own directory
 * (the one above its bin/) when it is installed outside /usr. */
static bool
node_files(const char *node)
{
	static const char *const dirs[] = {"/lib", "/lib64", "/lib32", "/bin"};
	char *real = realpath(node, NULL), *slash;
	bool ok = real != NULL && bind_ro("/usr");
	size_t i;

	for (i = 0; ok && i < sizeof dirs / sizeof dirs[0]; i++)
		ok = host_dir(dirs[i]);
	if (ok && strncmp(real, "/usr/", 5) != 0) {
		for (i = 0;
		     i < 2 && (slash = strrchr(real, '/')) != NULL && slash != real; i++)
			*slash = '\0';
		ok = bind_ro(real);
	}
	free(real);
	return ok;
}

static bool
enter(const char *node)
{
	char map[64];

	snprintf(map, sizeof map, "%d %d 1\n", (int)host_uid, (int)host_uid);
	if (!put("/proc/self/setgroups", "deny") || !put("/proc/self/uid_map", map))
		return false;
	snprintf(map, sizeof map, "%d %d 1\n", (int)host_gid, (int)host_gid);
	if (!put("/proc/self/gid_map", map) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("assay", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          "size=64k,nr_inodes=64,mode=0755") != 0 ||
	    (node != NULL && !node_files(node)) || chdir(NEW_ROOT) != 0 ||
	    syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 ||
	    chdir("/") != 0 ||
	    mount(NULL, "/", NULL,
	          MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          NULL) != 0)
		return false;
	return sethostname("sandbox", 7) == 0;
}

pid_t
sbx_ns_fork(void)
{
	if (!ns_ok)
		return fork();
	return (pid_t)syscall(SYS_clone, NS_FLAGS | SIGCHLD, NULL, NULL, NULL, NULL);
}

/*
 * PID 1 of the child's namespace: the kernel lets no signal with its
 * default action reach an init from inside its namespace, so the job
 * itself must not be PID 1 (node's abort() would end in SIGSEGV, TERM
 * would be ignored). This init forwards TERM, INT, HUP and QUIT sent from
 * outside (by assay-sandbox) to the job, ignores the job's own, and when
 * the job ends it exits as the job did: its exit status, or 128 + the
 * signal that killed it (sbx_ns_status reads that back). The job is alone
 * with it, so there is nothing else to reap.
 */
static void __attribute__((noreturn)) init(pid_t job, const sigset_t *set)
{
	siginfo_t si;
	int status;

	close_range(0, ~0u, 0);
	for (;;) {
		if (sigwaitinfo(set, &si) < 0)
			continue;
		if (si.si_signo != SIGCHLD) {
			if (si.si_pid == 0) /* from outside: from assay-sandbox */
				kill(job, si.si_signo);
			continue;
		}
		if (waitpid(job, &status, WNOHANG) != job)
			continue;
		_exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
	}
}

/* The signals the init takes: blocked from the child's first instruction
 * (sbx_ns_block), so that one sent while it is still being set up waits
 * for the init rather than being dropped (it is already PID 1 then). */
static void
watched(sigset_t *set)
{
	static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
	size_t i;

	sigemptyset(set);
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(set, sigs[i]);
}

void
sbx_ns_block(void)
{
	sigset_t set;

	watched(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
}

bool
sbx_ns_enter(const char *node)
{
	sigset_t set, none;
	pid_t job;

	sigemptyset(&none);
	if (!ns_ok) {
		sigprocmask(SIG_SETMASK, &none, NULL);
		return setsid() >= 0 && sbx_drop_caps();
	}
	if (!enter(node) || setsid() < 0 || !sbx_drop_caps())
		return false;
	watched(&set);
	sigprocmask(SIG_BLOCK, &set, NULL); /* (already, when sbx_ns_block ran) */
	if ((job = fork()) < 0)
		return false;
	if (job > 0)
		init(job, &set);
	sigprocmask(SIG_SETMASK, &none, NULL);
	return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0 && getppid() == 1;
}

int
sbx_ns_status(int status)
{
	if (ns_ok && WIFEXITED(status) && WEXITSTATUS(status) > 128)
		return WEXITSTATUS(status) - 128; /* the job's init says: by signal */
	return status;
}

bool
sbx_ns_probe(const char *node)
{
	int status = -1;
	pid_t pid;

	host_uid = getuid();
	host_gid = getgid();
	ns_ok = true;
	pid = sbx_ns_fork();
	if (pid == 0)
		_exit(enter(node) ? 0 : 1);
	ns_ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	        WEXITSTATUS(status) == 0;
	if (!ns_ok)
		log_msg(LOG_WARN,
		        "the host gives uid %d no user, PID and mount namespaces (%s): "
		        "children are plain processes; runtime \"node\" is refused",
		        (int)host_uid,
		        pid < 0 ? strerror(errno) : "setting them up failed");
	return ns_ok;
}
