/* target_load OUT GO DURATION_MS THREADS PERIOD_US ALLOWED DENIED DENY_EVERY LINGER_MS
 *
 * For bench/daemon_load: a target that times every notified open it makes.
 *
 * Opens OUT (its one open outside the measured loop), then waits until the file GO exists
 * (polled with stat(2) every 1 ms, which the bench policy does not notify; GO "-" starts at
 * once). Then THREADS threads each open ALLOWED (must succeed) or, every DENY_EVERY-th call,
 * DENIED (must fail with EACCES), for DURATION_MS. With PERIOD_US > 0 a thread makes one call
 * per period on an absolute schedule (a late call does not make the next ones burst); with 0 it
 * calls as fast as it can. Each call is timed with clock_gettime(CLOCK_MONOTONIC) around the
 * open, and OUT receives at exit:
 *
 *     target_load calls=N allowed=A denied=D bad=B start_ns=S end_ns=E samples=K
 *     <K little-endian uint32 latencies in ns; bit 31 set for a denied call>
 *
 * calls = A + D + B counts every notified call the loop made and whose answer came back; bad
 * counts the answers that were not the expected one. Then it sleeps until LINGER_MS after the
 * end of its loop before exiting, so that targets ending together do not exit (and their `run`
 * processes with them) while the others still make calls. Exit status 0 if bad is 0, else 2.
 * Statically linked by the bench so the dynamic loader's opens do not add notifications.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

struct worker {
    pthread_t tid;
    uint32_t *samples;
    size_t n, cap;
    long calls, allowed, denied, bad;
};

static const char *allowed_path, *denied_path;
static long period_ns, deny_every;
static int64_t end_at;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t t) {
    struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void *run(void *arg) {
    struct worker *w = arg;
    int64_t next = now_ns();
    for (long i = 0;; i++) {
        int64_t t0 = now_ns();
        if (t0 >= end_at) break;
        int deny = deny_every > 0 && i % deny_every == deny_every - 1;
        int fd = open(deny ? denied_path : allowed_path, O_RDONLY | O_CLOEXEC);
        int err = errno;
        int64_t dt = now_ns() - t0;
        w->calls++;
        if (deny) {
            if (fd < 0 && err == EACCES)
                w->denied++;
            else
                w->bad++;
        } else if (fd >= 0) {
            w->allowed++;
        } else {
            w->bad++;
        }
        if (fd >= 0) close(fd);
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 65536;
            w->samples = realloc(w->samples, w->cap * sizeof *w->samples);
            if (!w->samples) abort();
        }
        if (dt > 0x7fffffff) dt = 0x7fffffff;
        w->samples[w->n++] = (uint32_t)dt | (deny ? 0x80000000u : 0);
        if (period_ns > 0) {
            next += period_ns;
            int64_t now = now_ns();
            if (next < now)
                next = now; /* late: start afresh from now, no burst */
            else
                sleep_until(next);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr,
                "usage: %s OUT GO DURATION_MS THREADS PERIOD_US ALLOWED DENIED DENY_EVERY "
                "LINGER_MS\n",
                argv[0]);
        return 64;
    }
    FILE *out = fopen(argv[1], "we");
    if (!out) {
        perror(argv[1]);
        return 64;
    }
    const char *go = argv[2];
    long duration_ms = atol(argv[3]);
    int threads = atoi(argv[4]);
    period_ns = atol(argv[5]) * 1000;
    allowed_path = argv[6];
    denied_path = argv[7];
    deny_every = atol(argv[8]);
    long linger_ms = atol(argv[9]);
    if (threads < 1 || threads > MAX_THREADS) threads = 1;

    struct stat st;
    if (strcmp(go, "-") != 0)
        while (stat(go, &st) != 0) usleep(1000);

    static struct worker w[MAX_THREADS];
    int64_t start = now_ns();
    end_at = start + (int64_t)duration_ms * 1000000;
    for (int t = 0; t < threads; t++) pthread_create(&w[t].tid, NULL, run, &w[t]);
    long calls = 0, allowed = 0, denied = 0, bad = 0;
    size_t samples = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(w[t].tid, NULL);
        calls += w[t].calls;
        allowed += w[t].allowed;
        denied += w[t].denied;
        bad += w[t].bad;
        samples += w[t].n;
    }
    int64_t end = now_ns();

    fprintf(out,
            "target_load calls=%ld allowed=%ld denied=%ld bad=%ld start_ns=%lld end_ns=%lld "
            "samples=%zu\n",
            calls, allowed, denied, bad, (long long)start, (long long)end, samples);
    for (int t = 0; t < threads; t++) fwrite(w[t].samples, sizeof(uint32_t), w[t].n, out);
    if (fclose(out) != 0) return 64;
    sleep_until(end_at + (int64_t)linger_ms * 1000000);
    return bad ? 2 : 0;
}
