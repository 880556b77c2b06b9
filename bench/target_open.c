/* target_open PATH N [ok|ERRNO-NAME|any]
 *
 * Opens PATH (O_RDONLY|O_CLOEXEC, through glibc open(), i.e. the openat syscall) N times in a
 * loop, closing each fd that was returned, and prints the mean cost of one open measured with
 * clock_gettime(CLOCK_MONOTONIC) around the whole loop:
 *
 *     target_open ns_per_op=1234.5 n=20000 ok=0 fail=20000 errno=EACCES
 *
 * The optional third argument is what every open must give: "ok", an errno name ("EACCES",
 * "EPERM", ...) or "any" (default). Any other outcome makes the exit status 2, so a benchmark
 * that silently measured the wrong path (allowed instead of denied) fails loudly.
 */
#include "target_loop.h"
#include <fcntl.h>
#include <unistd.h>

static int one(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

int main(int argc, char **argv) { return bench_loop(argc, argv, "target_open", one); }
