/* reopen: open PATH N times (O_RDONLY), read it whole each time and check it is SIZE bytes:
 * the fd an emulated open gives must be the file that was asked for. Prints "OK n=N" or, at
 * the first mismatch, "BAD i=I fd=FD read=R errno=E link=WHAT-THE-FD-IS" and exits 1.
 *
 * Usage: reopen PATH N SIZE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: reopen PATH N SIZE\n");
        return 2;
    }
    long n = atol(argv[2]), size = atol(argv[3]);
    static char buf[1 << 16];
    for (long i = 0; i < n; i++) {
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            printf("BAD i=%ld fd=%d read=-1 errno=%d link=-\n", i, fd, errno);
            return 1;
        }
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r != size) {
            int e = errno;
            char link[256] = "?", where[64];
            snprintf(where, sizeof(where), "/proc/self/fd/%d", fd);
            ssize_t l = readlink(where, link, sizeof(link) - 1);
            link[l > 0 ? l : 1] = 0;
            printf("BAD i=%ld fd=%d read=%zd errno=%d link=%s\n", i, fd, r, e, link);
            return 1;
        }
        close(fd);
    }
    printf("OK n=%ld\n", n);
    return 0;
}
