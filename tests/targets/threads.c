/* threads: many threads open an allowed and a denied file in turn and check every answer.
 *
 * Usage: threads ALLOWED ALLOWED_CONTENT DENIED N_THREADS N_OPENS_PER_THREAD
 * Allowed opens must give an fd that reads ALLOWED_CONTENT; denied ones must fail with EACCES.
 * Prints "allowed_ok=A denied_ok=D wrong=W"; the first wrong answers go to stderr.
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
#include <unistd.h>

static const char *allowed, *content, *denied;
static long per_thread;
static atomic_long allowed_ok, denied_ok, wrong;

static void report(const char *what, int err, const char *got) {
    if (atomic_fetch_add(&wrong, 1) < 10)
        fprintf(stderr, "threads: %s: errno %s, read %s\n", what, strerrorname_np(err) ?: "0", got);
}

static void *worker(void *arg) {
    long id = (long)arg;
    char buf[256];
    for (long i = 0; i < per_thread; i++) {
        int want_allowed = ((i + id) & 1) == 0;
        const char *p = want_allowed ? allowed : denied;
        int fd = (i & 2) ? (int)syscall(SYS_open, p, O_RDONLY)
                         : (int)syscall(SYS_openat, AT_FDCWD, p, O_RDONLY);
        int err = fd < 0 ? errno : 0;
        buf[0] = '\0';
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            buf[n > 0 ? n : 0] = '\0';
            buf[strcspn(buf, "\n")] = '\0';
            close(fd);
        }
        if (want_allowed) {
            if (fd >= 0 && !strcmp(buf, content))
                atomic_fetch_add(&allowed_ok, 1);
            else
                report("allowed open", err, buf);
        } else {
            if (fd < 0 && err == EACCES)
                atomic_fetch_add(&denied_ok, 1);
            else
                report("denied open", err, buf);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: threads ALLOWED CONTENT DENIED N_THREADS N_OPENS\n");
        return 2;
    }
    allowed = argv[1];
    content = argv[2];
    denied = argv[3];
    int n = atoi(argv[4]);
    per_thread = atol(argv[5]);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    for (long i = 0; i < n; i++) {
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    printf("allowed_ok=%ld denied_ok=%ld wrong=%ld\n", atomic_load(&allowed_ok),
           atomic_load(&denied_ok), atomic_load(&wrong));
    return 0;
}
