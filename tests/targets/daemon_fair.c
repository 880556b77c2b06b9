/* For the daemon fairness test: a flooder and a victim sharing a counter in a mapped file.
 *
 *   daemon_fair flood COUNTER ALLOWED THREADS
 *       THREADS threads open (and close) ALLOWED as fast as they can, for ever; after each
 *       answered open, the shared counter goes up by one (a wrong answer: exit 1).
 *   daemon_fair victim COUNTER ALLOWED N PERIOD_US
 *       waits until the flood has made 1000 calls (exit 4 after 30 s), then N times: reads the
 *       counter, opens ALLOWED (must succeed), reads the counter again, sleeps PERIOD_US. Prints
 *       "answered=N" and "flood_during=D1 D2 ...": how many of the flooder's calls were answered
 *       while each of its own calls was in the supervisor. With the daemon serving targets
 *       round-robin that is a few; a supervisor that served the flooder in long batches would
 *       show the batch length. Exit 0 when every open succeeded, 1 if not.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *allowed;
static _Atomic long *counter;

static void *flood(void *arg) {
    (void)arg;
    for (;;) {
        int fd = open(allowed, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "flood: open %s: %s\n", allowed, strerror(errno));
            exit(1);
        }
        close(fd);
        atomic_fetch_add(counter, 1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: daemon_fair flood|victim COUNTER ALLOWED ...\n");
        return 2;
    }
    int victim = strcmp(argv[1], "victim") == 0;
    allowed = argv[3];
    int fd = open(argv[2], victim ? O_RDWR : O_RDWR | O_CREAT, 0644);
    if (fd < 0 || (!victim && ftruncate(fd, 4096) < 0)) {
        perror(argv[2]);
        return 2;
    }
    counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (counter == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    close(fd);
    if (!victim) {
        int threads = atoi(argv[4]);
        if (threads < 1 || threads > 64) threads = 1;
        pthread_t t;
        for (int i = 0; i < threads; i++) pthread_create(&t, NULL, flood, NULL);
        for (;;) pause();
    }
    if (argc < 6) return 2;
    int n = atoi(argv[4]), period_us = atoi(argv[5]), bad = 0, answered = 0;
    for (int i = 0; atomic_load(counter) < 1000; i++) {
        if (i > 30000) {
            fprintf(stderr, "victim: the flood did not start\n");
            return 4;
        }
        usleep(1000);
    }
    long *during = calloc(n, sizeof *during);
    for (int i = 0; i < n; i++) {
        long c0 = atomic_load(counter);
        int f = open(allowed, O_RDONLY | O_CLOEXEC);
        long c1 = atomic_load(counter);
        if (f < 0)
            bad = 1;
        else {
            answered++;
            close(f);
        }
        during[i] = c1 - c0;
        if (period_us) usleep(period_us);
    }
    printf("answered=%d\nflood_during=", answered);
    for (int i = 0; i < n; i++) printf(i ? " %ld" : "%ld", during[i]);
    printf("\n");
    return bad;
}
