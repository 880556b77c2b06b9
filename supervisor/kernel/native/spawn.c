/* The launcher's child (supervisor/target/launch.py): fork, filter, wait for the parent, exec. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"

/* ---- launcher child ----
   The child runs only async-signal-safe C between fork and exec: once its filter is installed,
   any syscall it makes may be notified, and Python would make many. It waits on go_fd until the
   parent has taken the listener with pidfd_getfd (read must not be notified by the filter), then
   execs. Failures are reported on err_fd (close-on-exec) as a struct sv_spawn_error. */
static void report(int err_fd, int stage, int err) {
    struct sv_spawn_error e = {stage, err};
    ssize_t w = write(err_fd, &e, sizeof(e));
    (void)w;
}

/* Drop the capabilities in creds->cap_drop from every set (the bounding set first: an exec as
   root gives the new program its bounding set; then the ambient set; then the inheritable,
   permitted and effective sets, after the user change, which clears P and E but keeps I), and
   become creds->uid. The bounding set needs CAP_SETPCAP: a launcher without it has nothing in
   P to lose and, with no_new_privs set, gains nothing at exec, so EPERM there is no failure. */
static int drop_privileges(const struct sv_spawn_creds *creds, int *stage) {
    *stage = SV_STAGE_CAPS;
    for (int cap = 0; cap < 64; cap++) {
        if (!(creds->cap_drop & (1ULL << cap))) continue;
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
            errno != EPERM)
            return -1;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap, 0, 0) < 0 && errno != EINVAL)
            return -1;
    }
    if (creds->set_user) {
        *stage = SV_STAGE_USER;
        /* Raw syscalls: glibc's setuid() and friends signal every thread of the process. */
        if (syscall(SYS_setgroups, creds->ngroups, creds->groups) < 0) return -1;
        if (syscall(SYS_setresgid, creds->gid, creds->gid, creds->gid) < 0) return -1;
        if (syscall(SYS_setresuid, creds->uid, creds->uid, creds->uid) < 0) return -1;
    }
    *stage = SV_STAGE_CAPS;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) < 0) return -1;
    for (int i = 0; i < 2; i++) {
        uint32_t keep = ~(uint32_t)(creds->cap_drop >> (32 * i));
        data[i].effective &= keep;
        data[i].permitted &= keep;
        data[i].inheritable &= keep;
    }
    if (syscall(SYS_capset, &hdr, data) < 0) return -1;
    return 0;
}

int sv_spawn(const char *file, char *const argv[], char *const envp[],
             const struct sock_filter *filter, unsigned short filter_len,
             const struct sock_filter *guard, unsigned short guard_len, unsigned int seccomp_flags,
             const struct sv_spawn_creds *creds, int go_fd, int err_fd) {
    pid_t pid = fork();
    if (pid != 0) return pid; /* parent, or -1 */

    /* Python ignores SIGPIPE and SIGXFSZ; a program expects the defaults. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction old;
        if (sigaction(sig, NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(sig, &sa, NULL);
    }
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGXFSZ, &sa, NULL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        report(err_fd, SV_STAGE_NNP, errno);
        _exit(125);
    }
    int stage;
    if (drop_privileges(creds, &stage) < 0) {
        report(err_fd, stage, errno);
        _exit(125);
    }
    /* The tamper guard first: it notifies nothing, so installing the main filter after it
       cannot wait on a supervisor that does not hold the listener yet. */
    if (guard_len) {
        struct sock_fprog g = {guard_len, (struct sock_filter *)guard};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &g) < 0) {
            report(err_fd, SV_STAGE_GUARD, errno);
            _exit(125);
        }
    }
    struct sock_fprog prog = {filter_len, (struct sock_filter *)filter};
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, seccomp_flags, &prog);
    if (fd < 0 && errno == EINVAL && (seccomp_flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV))
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                     seccomp_flags & ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
    if (fd < 0) {
        report(err_fd, SV_STAGE_SECCOMP, errno);
        _exit(125);
    }

    char go;
    ssize_t r;
    do {
        r = read(go_fd, &go, 1);
    } while (r < 0 && errno == EINTR);
    if (r != 1) _exit(125); /* the parent died or gave up: never run unsupervised */
    /* The parent holds its copy now. Ours would keep our own notified syscalls (the execve)
       waiting for ever if the parent died before serving them: without it they fail with
       ENOSYS, and so does the exec. (It would go at the exec anyway: close-on-exec.) */
    close((int)fd);

    execvpe(file, argv, envp);
    int e = errno;
    report(err_fd, SV_STAGE_EXEC, e);
    _exit(e == ENOENT ? 127 : 126);
}
