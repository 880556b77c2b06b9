/* c_supervisor: the C reference supervisor the benchmarks compare the project against.
 *
 *     c_supervisor [--mode deny|emulate] [--no-sync] DENIED_PATH -- CMD [ARGS...]
 *
 * It does what the project's hot path has to do for a path-inspected open, with nothing else:
 *   - fork; the child sets no_new_privs and installs a raw BPF filter (x86_64 only: any other
 *     arch is killed) that sends open, openat and chmod to user notification (NEW_LISTENER), tells the
 *     parent the listener's fd number over a pipe and waits on another pipe (read and write are not
 *     notified) until the parent has taken the fd with pidfd_getfd, then execs CMD;
 *   - the parent sets SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (SET_FLAGS takes the flag BY VALUE), then
 *     loops: poll, RECV (zeroed struct), open /proc/PID/mem, ID_VALID, pread the path page by page
 *     up to PATH_MAX (stopping at the NUL), ID_VALID, compare with DENIED_PATH, and answers:
 *       deny mode:    EACCES for DENIED_PATH, CONTINUE otherwise. CONTINUE after looking at a
 *                     pointer argument is NOT a safe allow (another thread can change the bytes
 *                     before the kernel reads them); it is here as a lower bound only.
 *       emulate mode: EACCES for DENIED_PATH; otherwise, for an absolute path with dirfd
 *                     AT_FDCWD, the supervisor opens the path itself with the target's flags and
 *                     injects the fd with ADDFD (SEND flag: install and answer in one step), the
 *                     safe allow the project performs (without the project's credential switch
 *                     and in-root resolution). Relative paths get CONTINUE. A chmod is
 *                     performed with chmod(path, mode) and its result is the answer (the
 *                     reference for bench/run's fsop case: no parent fd, no credential switch).
 * On exit it prints counters to stderr and exits with the target's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The system headers are from Linux 6.1 (see kernel-facts.md): define the 6.6 additions here. */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS 0x40082104
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif

static void die(const char *what) {
    perror(what);
    exit(111);
}

static int install_filter(void) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1), /* x32 numbers */
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_open, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_chmod, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("prctl(NO_NEW_PRIVS)");
    int fd =
        (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd < 0) die("seccomp(SET_MODE_FILTER, NEW_LISTENER)");
    return fd;
}

/* Read a NUL-terminated string at addr from the target, page by page so an unmapped page after
 * the string does not fail the whole read. Returns the length, or -1 (errno set). */
static ssize_t read_target_string(int memfd, uint64_t addr, char *buf, size_t cap) {
    size_t got = 0;
    while (got < cap - 1) {
        uint64_t at = addr + got;
        size_t chunk = 4096 - (size_t)(at & 4095);
        if (chunk > cap - 1 - got) chunk = cap - 1 - got;
        ssize_t r = pread(memfd, buf + got, chunk, (off_t)at);
        if (r <= 0) {
            if (r == 0) errno = EIO;
            return -1;
        }
        char *nul = memchr(buf + got, '\0', (size_t)r);
        if (nul) return nul - buf;
        got += (size_t)r;
    }
    errno = ENAMETOOLONG;
    return -1;
}

struct counters {
    unsigned long notifications, denied, continued, emulated, failed_reads, send_enoent;
};

int main(int argc, char **argv) {
    int emulate = 0, sync_wake = 1, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]; i++) {
        if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "emulate") == 0)
                emulate = 1;
            else if (strcmp(argv[i], "deny") != 0)
                goto usage;
        } else if (strcmp(argv[i], "--no-sync") == 0) {
            sync_wake = 0;
        } else {
            goto usage;
        }
    }
    if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0) goto usage;
    const char *denied = argv[i];
    char **cmd = &argv[i + 2];

    int to_parent[2], to_child[2];
    if (pipe2(to_parent, O_CLOEXEC) < 0 || pipe2(to_child, O_CLOEXEC) < 0) die("pipe2");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(to_parent[0]);
        close(to_child[1]);
        int lfd = install_filter();
        if (write(to_parent[1], &lfd, sizeof lfd) != sizeof lfd) _exit(111);
        char go;
        /* The listener is close-on-exec: exec only once the parent holds its own copy. */
        if (read(to_child[0], &go, 1) != 1) _exit(111);
        execvp(cmd[0], cmd);
        perror("execvp");
        _exit(127);
    }
    close(to_parent[1]);
    close(to_child[0]);
    int child_lfd;
    if (read(to_parent[0], &child_lfd, sizeof child_lfd) != sizeof child_lfd) {
        fprintf(stderr, "c_supervisor: child failed before handing over the listener\n");
        return 111;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) die("pidfd_open");
    int lfd = (int)syscall(SYS_pidfd_getfd, pidfd, child_lfd, 0);
    if (lfd < 0) die("pidfd_getfd");
    if (sync_wake &&
        ioctl(lfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0)
        die("ioctl(SET_FLAGS, SYNC_WAKE_UP)");
    if (write(to_child[1], "g", 1) != 1) die("write(go)");
    close(to_child[1]);
    close(to_parent[0]);

    struct counters c = {0};
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    static char path[PATH_MAX];
    char mempath[64];
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    for (;;) {
        int pr = poll(&pfd, 1, -1);
        if (pr < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (!(pfd.revents & POLLIN)) {
            if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) break; /* every target is gone */
            continue;
        }
        memset(&req, 0, sizeof req); /* RECV wants a zeroed struct, else EINVAL */
        if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
            if (errno == EINTR || errno == ENOENT) continue;
            die("ioctl(RECV)");
        }
        c.notifications++;
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;

        int is_openat = req.data.nr == __NR_openat;
        int is_chmod = req.data.nr == __NR_chmod;
        uint64_t addr = is_openat ? req.data.args[1] : req.data.args[0];
        int dirfd = is_openat ? (int)req.data.args[0] : AT_FDCWD;
        int flags = (int)(is_openat ? req.data.args[2] : req.data.args[1]);
        mode_t mode = (mode_t)(is_openat ? req.data.args[3] : req.data.args[2]);

        snprintf(mempath, sizeof mempath, "/proc/%u/mem", req.pid);
        int memfd = open(mempath, O_RDONLY | O_CLOEXEC);
        ssize_t len = -1;
        int read_errno = 0;
        if (memfd >= 0) {
            if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) == 0) {
                len = read_target_string(memfd, addr, path, sizeof path);
                read_errno = errno;
                if (len >= 0 && ioctl(lfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) < 0)
                    len = -1, read_errno = ENOENT;
            } else {
                read_errno = ENOENT;
            }
            close(memfd);
        } else {
            read_errno = errno;
        }

        int added = 0;
        if (len < 0) {
            c.failed_reads++;
            if (read_errno == ENOENT)
                continue; /* the target is gone or the syscall was interrupted */
            resp.error = -(read_errno == ENAMETOOLONG ? ENAMETOOLONG : EFAULT);
        } else if (strcmp(path, denied) == 0) {
            c.denied++;
            resp.error = -EACCES;
        } else if (is_chmod && emulate) {
            /* the performed chmod, as cheap as it gets (no parent fd, no credential switch) */
            resp.error = chmod(path, (mode_t)req.data.args[1]) < 0 ? -errno : 0;
            c.emulated++;
        } else if (emulate && !is_chmod && path[0] == '/' && dirfd == AT_FDCWD) {
            int fd = openat(AT_FDCWD, path, flags | O_CLOEXEC, mode);
            if (fd < 0) {
                resp.error = -errno;
            } else {
                struct seccomp_notif_addfd addfd = {
                    .id = req.id,
                    .flags = SECCOMP_ADDFD_FLAG_SEND,
                    .srcfd = (uint32_t)fd,
                    .newfd = 0,
                    .newfd_flags = (uint32_t)(flags & O_CLOEXEC),
                };
                if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) < 0 && errno != ENOENT)
                    resp.error = -errno; /* not answered yet: report the failure */
                else
                    added = 1;
                close(fd);
                c.emulated++;
            }
        } else {
            c.continued++;
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        }
        if (added) continue;
        if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0) {
            if (errno == ENOENT)
                c.send_enoent++; /* target killed or syscall interrupted: not our error */
            else
                die("ioctl(SEND)");
        }
    }

    int status = 0;
    if (waitpid(pid, &status, 0) < 0) die("waitpid");
    fprintf(stderr,
            "c_supervisor: notifications=%lu denied=%lu continued=%lu emulated=%lu "
            "failed_reads=%lu send_enoent=%lu\n",
            c.notifications, c.denied, c.continued, c.emulated, c.failed_reads, c.send_enoent);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);

usage:
    fprintf(stderr, "usage: %s [--mode deny|emulate] [--no-sync] DENIED_PATH -- CMD [ARGS...]\n",
            argv[0]);
    return 64;
}
