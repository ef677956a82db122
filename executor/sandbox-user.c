/*
 * The user a job's child runs as. assay-sandbox, started by the executor
 * as root (or with CAP_SETUID and CAP_SETGID), becomes sandbox_user, a
 * dedicated unprivileged user, before it prepares anything, and gives up
 * every capability; then it checks that it cannot become root again. Its
 * children are that user on the host: never root, never the executor's or
 * the API's user. Without the privilege to switch, it stays who it is and
 * says so (sbx_user returns false): the executor then refuses runtime
 * "node". Never called in a child, never after a job was read.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "extern.h"
#include "log.h"

bool
sbx_drop_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {{0, 0, 0}, {0, 0, 0}};
	int cap;

	/* The bounding set needs CAP_SETPCAP; without it there is nothing
	 * in it that no_new_privs would let us use anyway. */
	for (cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL &&
		    errno != EPERM)
			return false;
	return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0 &&
	       syscall(SYS_capset, &h, d) == 0;
}

bool
sbx_user(const char *name)
{
	uid_t before = getuid();
	struct passwd *pw;

	if (name == NULL || name[0] == '\0') {
		log_msg(LOG_WARN, "no sandbox_user: children run as uid %d", (int)before);
		return false;
	}
	if ((pw = getpwnam(name)) == NULL) {
		log_msg(LOG_ERROR, "sandbox_user %s does not exist", name);
		return false;
	}
	if (pw->pw_uid == 0 || pw->pw_uid == before) {
		log_msg(LOG_ERROR,
		        "sandbox_user %s is uid %d: it must be an unprivileged user "
		        "of its own, not root or the executor's user",
		        name, (int)pw->pw_uid);
		return false;
	}
	if (setgroups(0, NULL) != 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0) {
		log_msg(LOG_ERROR,
		        "cannot become sandbox_user %s (%s): run assay-executor as "
		        "root or with CAP_SETUID and CAP_SETGID",
		        name, strerror(errno));
		return false;
	}
	if (!sbx_drop_caps() || setuid(0) == 0 || setgid(0) == 0) {
		log_msg(LOG_ERROR, "privileges remain after becoming %s", name);
		_exit(1); /* never go on half-privileged */
	}
	/* Changing users made us undumpable, which would give our children's
	 * /proc files (their uid_map among them) to root. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* cleared by the switch */
	return true;
}
