/* tamper32: i386 syscalls (int $0x80) that name the parent (the supervisor under `run`), one
 * result line each: "OK" or the errno name. Signal 0: nothing is delivered if one gets through.
 *
 * Usage: tamper32   (kill, kill(-1), tgkill, pidfd_open, prlimit64 of the parent; kill of self)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static long int80(long nr, long a, long b, long c, long d) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static void show(long r) {
    if (r < 0)
        printf("%s\n", strerrorname_np((int)-r));
    else
        printf("OK\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    long sup = getppid();
    show(int80(37, sup, 0, 0, 0));      /* kill */
    show(int80(37, -1, 0, 0, 0));       /* kill(-1) */
    show(int80(270, sup, sup, 0, 0));   /* tgkill */
    show(int80(434, sup, 0, 0, 0));     /* pidfd_open (the fd, if any, dies with us) */
    show(int80(340, sup, 7, 0, 0));     /* prlimit64, reading only */
    show(int80(37, getpid(), 0, 0, 0)); /* kill of self: allowed */
    return 0;
}
