/* calls: make the same syscall many times, one result line per call, for stateful rules
 * (limits, rates, fault injection, value answers).
 *
 * Usage: calls OP [ARGS...] [OP [ARGS...]]...
 * Each call prints "OK:<return value>" or the errno name ("EIO", "EPERM", ...).
 *
 * Ops:
 *   getppid N          N raw getppid() syscalls
 *   mkdir PATH         mkdir(PATH, 0755)
 *   rmdir PATH         rmdir(PATH)
 *   exists PATH        stat(PATH): "OK:0" or the errno name
 *   openat PATH N      N opens of PATH (O_RDONLY), each closed again
 *   fork N OP...       N child processes, one after the other, each running the remaining ops
 *                      (their lines first, then the parent's "OK:exit=N" per child)
 *   setuid N           setgroups([]), setresgid(N), setresuid(N): one line for the three
 *   sleep_ms N
 *   exec PATH ARGS...  execv(PATH, [PATH, ARGS...]) with all remaining args (the errno if it fails)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static void result(long ret) {
    if (ret < 0) {
        print_errno(errno);
    } else {
        printf("OK:%ld\n", ret);
    }
}

static int run(int argc, char **argv);

static int run_one(int argc, char **argv, int *used) {
    const char *op = argv[0];
    if (!strcmp(op, "getppid") && argc >= 2) {
        long n = atol(argv[1]);
        for (long i = 0; i < n; i++) result(syscall(SYS_getppid));
        *used = 2;
    } else if (!strcmp(op, "mkdir") && argc >= 2) {
        result(mkdir(argv[1], 0755));
        *used = 2;
    } else if (!strcmp(op, "rmdir") && argc >= 2) {
        result(rmdir(argv[1]));
        *used = 2;
    } else if (!strcmp(op, "exists") && argc >= 2) {
        struct stat st;
        result(stat(argv[1], &st));
        *used = 2;
    } else if (!strcmp(op, "openat") && argc >= 3) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) {
            int fd = openat(AT_FDCWD, argv[1], O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                close(fd);
                fd = 0;
            }
            result(fd);
        }
        *used = 3;
    } else if (!strcmp(op, "fork") && argc >= 2) {
        long n = atol(argv[1]);
        for (long i = 0; i < n; i++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid < 0) {
                result(-1);
                continue;
            }
            if (pid == 0) {
                int rc = run(argc - 2, argv + 2);
                fflush(stdout);
                _exit(rc);
            }
            int status;
            waitpid(pid, &status, 0);
            printf("OK:exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128);
        }
        *used = argc; /* the children ran the rest */
    } else if (!strcmp(op, "setuid") && argc >= 2) {
        uid_t id = (uid_t)atol(argv[1]);
        long ret = setgroups(0, NULL);
        if (ret == 0) ret = setresgid(id, id, id);
        if (ret == 0) ret = setresuid(id, id, id);
        result(ret);
        *used = 2;
    } else if (!strcmp(op, "exec") && argc >= 2) {
        fflush(stdout);
        execv(argv[1], argv + 1);
        result(-1);
        *used = argc;
    } else if (!strcmp(op, "sleep_ms") && argc >= 2) {
        struct timespec ts = {atol(argv[1]) / 1000, (atol(argv[1]) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        *used = 2;
    } else {
        fprintf(stderr, "calls: bad op %s\n", op);
        return 2;
    }
    return 0;
}

static int run(int argc, char **argv) {
    while (argc > 0) {
        int used = 0;
        int rc = run_one(argc, argv, &used);
        if (rc) return rc;
        argc -= used;
        argv += used;
    }
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run(argc - 1, argv + 1);
}
