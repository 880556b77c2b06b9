/* execs: exec in the ways exec rules must see.
 *
 * Usage:
 *   execs argv PATH ARG0 [ARGS...]   execv(PATH, [ARG0, ARGS...]); prints the errno name if it fails
 *   execs nullargv PATH              execve(PATH, NULL, environ)
 *   execs badargv PATH               execve(PATH, (char **)1, environ): EFAULT expected
 *   execs i386 PATH ARG0 [ARGS...]   the same through int $0x80 (i386 execve, 32-bit pointers)
 *   execs race ALLOWED DENIED N      N attempts, each a child whose second thread flips the path
 *                                    buffer between ALLOWED and DENIED (same length, one byte
 *                                    apart) while the child retries execve(buffer) until one
 *                                    succeeds. Prints "ran=R killed=K refused=F other=O": R
 *                                    children whose exec'd program exited 0, K killed by SIGKILL,
 *                                    F whose every attempt was refused (1000 tries).
 *   execs                            (no arguments, $MARKER set: the DENIED program of `race`)
 *                                    sleeps 200 ms, then creates $MARKER.PID, so a run of it
 *                                    that lasted 200 ms is visible; with $MARKER_FORK it forks
 *                                    first, and both write a marker
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

extern char **environ;

static void fail_line(void) {
    print_errno(errno);
    fflush(stdout);
}

static char *low_area(void) {
    char *low =
        mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) {
        perror("execs: mmap MAP_32BIT");
        exit(2);
    }
    return low;
}

/* execve through the i386 entry: the path, argv strings and the pointer array below 4 GiB. */
static int exec_i386(const char *path, int argc, char **args) {
    char *low = low_area();
    unsigned int *ptrs = (unsigned int *)low;
    char *strings = low + 4096;
    size_t used = 0;
    char *lpath = strings;
    used += (size_t)snprintf(lpath, 4096, "%s", path) + 1;
    for (int i = 0; i < argc; i++) {
        char *s = strings + used;
        used += (size_t)snprintf(s, 4096, "%s", args[i]) + 1;
        ptrs[i] = (unsigned int)(unsigned long)s;
    }
    ptrs[argc] = 0;
    unsigned int *envp = ptrs + argc + 1;
    envp[0] = 0;
    long ret =
        int80(11, (long)(unsigned long)lpath, (long)(unsigned long)ptrs, (long)(unsigned long)envp);
    errno = (int)-ret;
    fail_line();
    return 1;
}

static volatile char *flip_buf;
static size_t flip_at;
static char flip_a, flip_b;

static void *flipper(void *arg) {
    (void)arg;
    for (;;) {
        flip_buf[flip_at] = flip_a;
        flip_buf[flip_at] = flip_b;
    }
    return NULL;
}

static int race(const char *allowed, const char *denied, long n) {
    size_t len = strlen(allowed);
    if (strlen(denied) != len) {
        fprintf(stderr, "execs: race paths must have the same length\n");
        return 2;
    }
    size_t at = 0;
    while (at < len && allowed[at] == denied[at]) at++;
    long ran = 0, killed = 0, refused = 0, other = 0;
    for (long i = 0; i < n; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("execs: fork");
            return 2;
        }
        if (pid == 0) {
            static char buf[4096];
            memcpy(buf, allowed, len + 1);
            flip_buf = buf;
            flip_at = at;
            flip_a = allowed[at];
            flip_b = denied[at];
            pthread_t t;
            pthread_create(&t, NULL, flipper, NULL);
            char *argv[] = {buf, NULL};
            for (int tries = 0; tries < 1000; tries++) execve(buf, argv, environ);
            _exit(3);
        }
        int status;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ran++;
        else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            killed++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
            refused++;
        else
            other++;
    }
    printf("ran=%ld killed=%ld refused=%ld other=%ld\n", ran, killed, refused, other);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "argv")) {
        fflush(stdout);
        execv(argv[2], argv + 3);
        fail_line();
        return 1;
    }
    if (argc >= 3 && !strcmp(argv[1], "nullargv")) {
        syscall(SYS_execve, argv[2], (char **)0, environ);
        fail_line();
        return 1;
    }
    if (argc >= 3 && !strcmp(argv[1], "badargv")) {
        syscall(SYS_execve, argv[2], (char **)1, environ);
        fail_line();
        return 1;
    }
    if (argc >= 4 && !strcmp(argv[1], "i386")) return exec_i386(argv[2], argc - 3, argv + 3);
    if (argc >= 5 && !strcmp(argv[1], "race")) return race(argv[2], argv[3], atol(argv[4]));
    if (argc == 1 && getenv("MARKER")) {
        if (getenv("MARKER_FORK")) /* at once: the child must be killed with its parent */
            fork();
        const char *ms = getenv("MARKER_MS"); /* 200 unless told: to measure the window */
        long delay = ms ? atol(ms) : 200;
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        const char *marker = getenv("MARKER");
        if (marker) {
            char path[4096];
            snprintf(path, sizeof(path), "%s.%d", marker, (int)getpid());
            int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0) close(fd);
        }
        return 0;
    }
    fprintf(stderr, "execs: bad usage\n");
    return 2;
}
