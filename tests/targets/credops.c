/* credops: change credentials and namespaces, then open files; one result line per op.
 *
 * Usage: credops OP [ARGS...] [OP [ARGS...]]...
 * Every op prints one line: "OK", "OK:<detail>" or the errno name ("EACCES", "EPERM", ...).
 * In a path, "{ppid}" becomes getppid() (under `run`, the supervisor), "{child}" the pid of the
 * child started by `child`, "{self}" getpid(), "{fd}" the fd saved by the last `pathfd`.
 *
 * Ops:
 *   open PATH        O_RDONLY; prints OK:<first line read> (OK: when the read fails)
 *   openrw PATH      O_RDWR, the same
 *   write PATH TEXT  O_WRONLY, then write TEXT: OK, or the errno of the open or the write
 *   pathfd PATH      O_PATH open (resumed by the supervisor, checked by the kernel): OK:<fd>
 *   child            fork a child that waits (killed when credops exits): OK:<pid>
 *   groups G[,G...]|none   setgroups (raw syscall: this thread only is fine, no threads here)
 *   setid N          setresgid(N) and setresuid(N), groups kept
 *   dropcaps NAME[,NAME...]  remove capabilities from the effective and permitted sets (the
 *                    process stays uid 0): dac_override, dac_read_search, fowner, sys_ptrace,
 *                    sys_admin
 *   dumpable         prctl(PR_SET_DUMPABLE, 1) (a uid change made the process non-dumpable,
 *                    which gives its /proc/self files to root)
 *   unshare_user     unshare(CLONE_NEWUSER)
 *   unshare_mount    unshare(CLONE_NEWNS) and make every mount private
 *   bind SRC DST     mount --bind SRC DST
 *   capeff           CapEff: line of /proc/self/status, read directly: OK:<hex>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static pid_t child_pid = -1;
static int saved_fd = -1;

static const char *subst(const char *path) {
    static char out[2][4096];
    static int which;
    char *dst = out[which ^= 1];
    size_t o = 0;
    for (const char *p = path; *p && o < 4000;) {
        long value = -1;
        size_t skip = 0;
        if (!strncmp(p, "{ppid}", 6))
            value = getppid(), skip = 6;
        else if (!strncmp(p, "{child}", 7))
            value = child_pid, skip = 7;
        else if (!strncmp(p, "{self}", 6))
            value = getpid(), skip = 6;
        else if (!strncmp(p, "{fd}", 4))
            value = saved_fd, skip = 4;
        if (skip) {
            o += (size_t)snprintf(dst + o, 4096 - o, "%ld", value);
            p += skip;
        } else {
            dst[o++] = *p++;
        }
    }
    dst[o] = '\0';
    return dst;
}

static int cap_number(const char *name) {
    static const struct {
        const char *name;
        int cap;
    } caps[] = {
        {"dac_override", CAP_DAC_OVERRIDE},
        {"dac_read_search", CAP_DAC_READ_SEARCH},
        {"fowner", CAP_FOWNER},
        {"sys_ptrace", CAP_SYS_PTRACE},
        {"sys_admin", CAP_SYS_ADMIN},
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if (!strcmp(caps[i].name, name)) return caps[i].cap;
    fprintf(stderr, "credops: unknown capability %s\n", name);
    exit(2);
}

static long drop_caps(const char *spec) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) return -1;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", spec);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        int cap = cap_number(tok);
        unsigned bit = 1u << (cap % 32);
        d[cap / 32].effective &= ~bit;
        d[cap / 32].permitted &= ~bit;
        d[cap / 32].inheritable &= ~bit;
    }
    return syscall(SYS_capset, &h, d);
}

static long set_groups(const char *spec) {
    gid_t groups[64];
    int n = 0;
    if (strcmp(spec, "none")) {
        char copy[256];
        snprintf(copy, sizeof copy, "%s", spec);
        for (char *tok = strtok(copy, ","); tok && n < 64; tok = strtok(NULL, ","))
            groups[n++] = (gid_t)atoi(tok);
    }
    return syscall(SYS_setgroups, n, groups);
}

static void cap_eff(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        print_errno(errno);
        return;
    }
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "CapEff:", 7)) {
            char *v = line + 7;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = '\0';
            printf("OK:%s\n", v);
            fclose(f);
            return;
        }
    }
    fclose(f);
    printf("ENOENT\n");
}

static void kill_child(void) {
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(kill_child);
    for (int i = 1; i < argc;) {
        const char *op = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : NULL;
        const char *b = i + 2 < argc ? argv[i + 2] : NULL;
        int used = 0;
        if (!strcmp(op, "open")) {
            used = need(argc, i, 1, op);
            print_open((int)syscall(SYS_openat, AT_FDCWD, subst(a), O_RDONLY));
        } else if (!strcmp(op, "openrw")) {
            used = need(argc, i, 1, op);
            print_open((int)syscall(SYS_openat, AT_FDCWD, subst(a), O_RDWR));
        } else if (!strcmp(op, "write")) {
            used = need(argc, i, 2, op);
            int fd = (int)syscall(SYS_openat, AT_FDCWD, subst(a), O_WRONLY);
            if (fd < 0) {
                print_errno(errno);
            } else {
                ssize_t w = write(fd, b, strlen(b));
                int e = errno;
                close(fd);
                if (w < 0)
                    print_errno(e);
                else
                    printf("OK\n");
            }
        } else if (!strcmp(op, "pathfd")) {
            used = need(argc, i, 1, op);
            int fd = (int)syscall(SYS_openat, AT_FDCWD, subst(a), O_PATH);
            if (fd < 0) {
                print_errno(errno);
            } else {
                saved_fd = fd;
                printf("OK:%d\n", fd);
            }
        } else if (!strcmp(op, "child")) {
            fflush(stdout);
            child_pid = fork();
            if (child_pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;) pause();
            }
            if (child_pid < 0)
                print_errno(errno);
            else
                printf("OK:%d\n", child_pid);
        } else if (!strcmp(op, "groups")) {
            used = need(argc, i, 1, op);
            print_status(set_groups(a));
        } else if (!strcmp(op, "setid")) {
            used = need(argc, i, 1, op);
            unsigned id = (unsigned)atoi(a);
            if (setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0)
                print_errno(errno);
            else
                printf("OK\n");
        } else if (!strcmp(op, "dropcaps")) {
            used = need(argc, i, 1, op);
            print_status(drop_caps(a));
        } else if (!strcmp(op, "dumpable")) {
            print_status(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
        } else if (!strcmp(op, "unshare_user")) {
            print_status(unshare(CLONE_NEWUSER));
        } else if (!strcmp(op, "unshare_mount")) {
            if (unshare(CLONE_NEWNS) < 0)
                print_errno(errno);
            else
                print_status(mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL));
        } else if (!strcmp(op, "bind")) {
            used = need(argc, i, 2, op);
            char src[4096];
            snprintf(src, sizeof src, "%s", subst(a));
            print_status(mount(src, subst(b), NULL, MS_BIND, NULL));
        } else if (!strcmp(op, "capeff")) {
            cap_eff();
        } else {
            fprintf(stderr, "credops: unknown op %s\n", op);
            return 2;
        }
        i += 1 + used;
    }
    return 0;
}
