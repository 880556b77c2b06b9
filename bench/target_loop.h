/* The loop every bench/target_*.c shares: call ONE(PATH) N times, time the loop with
   CLOCK_MONOTONIC, and print one line that bench/run parses:

       NAME ns_per_op=123.4 n=200000 ok=200000 fail=0 errno=0

   The exit status checks the outcome of every call against EXPECT (ok, an errno's name, or any):
   2 if one differs, so a case that silently took the wrong path fails instead of reporting a fast
   number. ONE returns 0 on success, -1 with errno set on failure; it is a static function of the
   including file, so the compiler inlines it into the loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline int bench_loop(int argc, char **argv, const char *name, int (*one)(const char *)) {
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
        if (one(path) == 0) {
            ok++;
        } else {
            fail++;
            if (last_errno && errno != last_errno) unexpected = 1;
            last_errno = errno;
        }
    }
    double t1 = now_ns();

    const char *ename = last_errno ? strerrorname_np(last_errno) : "0";
    printf("%s ns_per_op=%.1f n=%ld ok=%ld fail=%ld errno=%s\n", name, (t1 - t0) / (double)n, n, ok,
           fail, ename ? ename : "?");
    fflush(stdout);
    if (strcmp(expect, "any") == 0) return 0;
    if (strcmp(expect, "ok") == 0) return (fail == 0) ? 0 : 2;
    return (ok == 0 && !unexpected && ename && strcmp(ename, expect) == 0) ? 0 : 2;
}
