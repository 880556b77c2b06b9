/* For the daemon restart tests: THREADS threads each loop ITERS times opening ALLOWED (must
   succeed) and DENIED (must fail), appending one line per iteration to OUT:
   "<thread> <iter> allowed=<ok|errno> denied=<errno|LEAK>". With FIFO given, thread 0 first
   opens it for reading (blocks until a writer comes: a notification the supervisor serves on a
   worker thread) and writes "fifo opened". Exits 0 when every result was as expected, 1 if not,
   and 3 if anything was read from DENIED. Usage:
   daemon_opener OUT ALLOWED DENIED THREADS ITERS DELAY_US [FIFO] */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *allowed, *denied, *fifo;
static int out, iters, delay_us;
static volatile int bad, leaked;

static void line(const char *s) {
    size_t n = strlen(s);
    if (write(out, s, n) != (ssize_t)n) bad = 1;
}

static void *worker(void *arg) {
    long t = (long)arg;
    char buf[256], data[128];
    if (t == 0 && fifo) {
        int f = open(fifo, O_RDONLY);
        snprintf(buf, sizeof buf, "fifo %s\n", f >= 0 ? "opened" : strerror(errno));
        if (f < 0)
            bad = 1;
        else
            close(f);
        line(buf);
    }
    for (int i = 0; i < iters; i++) {
        const char *a = "ok", *d;
        int fd = open(allowed, O_RDONLY);
        if (fd < 0) {
            a = strerror(errno);
            bad = 1;
        } else
            close(fd);
        fd = open(denied, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, data, sizeof data);
            close(fd);
            d = "LEAK";
            leaked = 1;
            (void)n;
        } else {
            d = errno == EACCES ? "EACCES" : strerror(errno);
            if (errno != EACCES) bad = 1;
        }
        snprintf(buf, sizeof buf, "%ld %d allowed=%s denied=%s\n", t, i, a, d);
        line(buf);
        if (delay_us) usleep(delay_us);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage\n");
        return 2;
    }
    out = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) {
        perror(argv[1]);
        return 2;
    }
    allowed = argv[2];
    denied = argv[3];
    int threads = atoi(argv[4]);
    iters = atoi(argv[5]);
    delay_us = atoi(argv[6]);
    fifo = argc > 7 ? argv[7] : NULL;
    pthread_t tids[64];
    if (threads > 64) threads = 64;
    for (long t = 0; t < threads; t++) pthread_create(&tids[t], NULL, worker, (void *)t);
    for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    line("done\n");
    return leaked ? 3 : bad ? 1 : 0;
}
