/* killme: get SIGKILLed while syscalls are waiting on the supervisor.
 *
 * Usage: killme MODE PATH
 *   fifo-self   a thread opens the FIFO PATH (no writer: the open blocks in the supervisor);
 *               the main thread SIGKILLs the process 300 ms later
 *   fifo-wait   the same, but prints "pid=N" and waits for someone else's SIGKILL
 *   loop-self   8 threads open PATH in a loop; SIGKILL from the main thread after 300 ms
 *   loop-wait   the same, prints "pid=N" and waits for someone else's SIGKILL
 *   fifo-read   open the FIFO PATH for reading, print "OK:<first line>" and exit 0
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *path;

static void *open_fifo(void *arg) {
    (void)arg;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
    printf("fifo open returned %d (%s)\n", fd, fd < 0 ? strerror(errno) : "ok");
    return NULL;
}

static void *open_loop(void *arg) {
    (void)arg;
    for (;;) {
        int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
        if (fd >= 0) close(fd);
    }
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3) {
        fprintf(stderr, "usage: killme MODE PATH\n");
        return 2;
    }
    const char *mode = argv[1];
    path = argv[2];
    pthread_t t;
    if (!strcmp(mode, "fifo-read")) {
        int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
        if (fd < 0) {
            printf("%s\n", strerrorname_np(errno));
            return 1;
        }
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        printf("OK:%s\n", buf);
        return 0;
    }
    int fifo = !strncmp(mode, "fifo", 4);
    int threads = fifo ? 1 : 8;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&t, NULL, fifo ? open_fifo : open_loop, NULL) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    if (strstr(mode, "-self")) {
        usleep(300000);
        kill(getpid(), SIGKILL);
    } else {
        usleep(200000);
        printf("pid=%d\n", getpid());
    }
    for (;;) pause();
}
