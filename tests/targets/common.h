/* common.h: the helpers the C test programs share. The Python tests parse the lines these
 * print, so their formats are fixed:
 *
 *   print_errno(e)      the errno's name on a line ("EACCES"), or "E<n>" for a number glibc
 *                       has no name for
 *   print_status(ret)   "OK" for ret >= 0, else print_errno(errno)
 *   print_open(fd)      "OK:<first line read from fd>" (fd closed), else print_errno(errno)
 *   need(argc, i, n, op)  exit 2 with "<program>: <op> needs <n> argument(s)" on stderr unless
 *                       argv has n arguments after argv[i]; returns n
 *   int80(nr, a, b, c), int80_5(nr, a, b, c, d)
 *                       a raw i386 syscall through int 0x80 (the 32-bit ABI of an x86_64
 *                       process; the kernel clears r8-r11 on the way back), its return value
 *                       truncated to 32 bits as the ABI's eax (x86_64 only)
 *
 * Static inline: a program that uses only some of them compiles without warnings. Include it
 * after the system headers, with _GNU_SOURCE defined (strerrorname_np,
 * program_invocation_short_name).
 */
#ifndef SV_TEST_TARGETS_COMMON_H
#define SV_TEST_TARGETS_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void print_errno(int e) {
    const char *name = strerrorname_np(e);
    if (name)
        printf("%s\n", name);
    else
        printf("E%d\n", e);
}

static inline void print_status(long ret) {
    if (ret < 0)
        print_errno(errno);
    else
        printf("OK\n");
}

static inline void print_open(int fd) {
    if (fd < 0) {
        print_errno(errno);
        return;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) n = 0; /* a directory, mem at address 0: still an open that worked */
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    close(fd);
    printf("OK:%s\n", buf);
}

static inline int need(int argc, int i, int n, const char *op) {
    if (i + n >= argc) {
        fprintf(stderr, "%s: %s needs %d argument(s)\n", program_invocation_short_name, op, n);
        exit(2);
    }
    return n;
}

#if defined(__x86_64__)
static inline long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static inline long int80_5(long nr, long a, long b, long c, long d) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}
#endif

#endif
