/* target_open PATH N [ok|ERRNO-NAME|any]
 *
 * Opens PATH (O_RDONLY|O_CLOEXEC, through glibc open(), i.e. the openat syscall) N times in a
 * loop, closing each fd that was returned, and prints the mean cost of one open measured with
 * clock_gettime(CLOCK_MONOTONIC) around the whole loop:
 *
 *     target_open ns_per_op=1234.5 n=20000 ok=0 fail=20000 errno=EACCES
 *
 * The optional third argument is what every open must give: "ok", an errno name ("EACCES",
 * "EPERM", ...) or "any" (default). Any other outcome makes the exit status 2, so a benchmark
 * that silently measured the wrong path (allowed instead of denied) fails loudly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PATH N [ok|ERRNO|any]\n", argv[0]);
        return 64;
    }
    const char *path = argv[1];
    long n = strtol(argv[2], NULL, 10);
    const char *expect = argc > 3 ? argv[3] : "any";
    long ok = 0, fail = 0;
    int last_errno = 0, unexpected = 0;

    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ok++;
            close(fd);
        } else {
            fail++;
            if (last_errno && errno != last_errno) unexpected = 1;
            last_errno = errno;
        }
    }
    double t1 = now_ns();

    const char *ename = last_errno ? strerrorname_np(last_errno) : "0";
    printf("target_open ns_per_op=%.1f n=%ld ok=%ld fail=%ld errno=%s\n", (t1 - t0) / (double)n, n,
           ok, fail, ename ? ename : "?");
    fflush(stdout);
    if (strcmp(expect, "any") == 0) return 0;
    if (strcmp(expect, "ok") == 0) return (fail == 0) ? 0 : 2;
    return (ok == 0 && !unexpected && ename && strcmp(ename, expect) == 0) ? 0 : 2;
}
