/* target_chmod PATH N [ok|ERRNO-NAME|any]
 *
 * Calls chmod(PATH, 0644) N times and prints the mean cost of one call, like target_open:
 *
 *     target_chmod ns_per_op=123.4 n=200000 ok=200000 fail=0 errno=0
 *
 * Used for a path syscall the supervisor performs after an allow that depended on the path
 * (bench/run's fsop case: supervise/fsops.py), against the same chmod natively. PATH must exist.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
        if (chmod(path, 0644) == 0) {
            ok++;
        } else {
            fail++;
            if (last_errno && errno != last_errno) unexpected = 1;
            last_errno = errno;
        }
    }
    double t1 = now_ns();

    const char *ename = last_errno ? strerrorname_np(last_errno) : "0";
    printf("target_chmod ns_per_op=%.1f n=%ld ok=%ld fail=%ld errno=%s\n", (t1 - t0) / (double)n, n,
           ok, fail, ename ? ename : "?");
    fflush(stdout);
    if (strcmp(expect, "any") == 0) return 0;
    if (strcmp(expect, "ok") == 0) return (fail == 0) ? 0 : 2;
    return (ok == 0 && !unexpected && ename && strcmp(ename, expect) == 0) ? 0 : 2;
}
