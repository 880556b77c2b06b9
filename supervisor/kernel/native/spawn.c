/* The launcher's child (supervisor/target/launch.py): fork, filter, wait for the parent, exec. */
#define _GNU_SOURCE
#include <errno.h>
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

int sv_spawn(const char *file, char *const argv[], char *const envp[],
             const struct sock_filter *filter, unsigned short filter_len,
             unsigned int seccomp_flags, int go_fd, int err_fd) {
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
