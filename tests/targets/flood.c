/* flood: several threads issue notified syscalls (opens of a denied file) as fast as they can
 * while the main thread does one allowed open in the middle of it.
 *
 * Usage: flood DENIED ALLOWED N_THREADS SECONDS
 * Prints "main_open=<OK:content|errno> main_ms=T" as soon as the main open is done, then
 * "flood_calls=N flood_eacces=E" when the flood is over.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *denied;
static atomic_int stop;
static atomic_long calls, eacces;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *flooder(void *arg) {
    (void)arg;
    long mine = 0, mine_eacces = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int fd = (int)syscall(SYS_openat, AT_FDCWD, denied, O_RDONLY);
        mine++;
        if (fd >= 0)
            close(fd);
        else if (errno == EACCES)
            mine_eacces++;
    }
    atomic_fetch_add(&calls, mine);
    atomic_fetch_add(&eacces, mine_eacces);
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 5) {
        fprintf(stderr, "usage: flood DENIED ALLOWED N_THREADS SECONDS\n");
        return 2;
    }
    denied = argv[1];
    const char *allowed = argv[2];
    int n = atoi(argv[3]);
    double seconds = atof(argv[4]);
    double start = now();
    pthread_t *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&t[i], NULL, flooder, NULL) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    usleep((useconds_t)(seconds * 250000)); /* a quarter of the flood first */
    double t0 = now();
    int fd = (int)syscall(SYS_openat, AT_FDCWD, allowed, O_RDONLY);
    char buf[256] = "";
    int err = errno;
    if (fd >= 0) {
        ssize_t got = read(fd, buf, sizeof buf - 1);
        buf[got > 0 ? got : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        close(fd);
    }
    double ms = (now() - t0) * 1000;
    if (fd >= 0)
        printf("main_open=OK:%s main_ms=%.1f\n", buf, ms);
    else
        printf("main_open=%s main_ms=%.1f\n", strerrorname_np(err), ms);
    double left = seconds - (now() - start);
    if (left > 0) usleep((useconds_t)(left * 1e6));
    atomic_store(&stop, 1);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    printf("flood_calls=%ld flood_eacces=%ld\n", atomic_load(&calls), atomic_load(&eacces));
    return 0;
}
