/* The syscalls an answered stat, access or readlink performs on the resolver's O_PATH fd
   (supervisor/kernel/answer.py), each giving the exact bytes the kernel gives the target.

   The i386 layouts (struct stat, stat64, __old_kernel_stat) are not rebuilt here: the same i386
   syscall is issued with int $0x80 on our fd (fstat, fstat64, oldfstat: they take O_PATH fds), so
   the kernel's own conversion (cp_compat_stat, cp_stat64, cp_old_stat, with their EOVERFLOW
   checks) produces them. An i386 pointer must be below 4 GiB: each thread gets one page mapped
   with MAP_32BIT. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"

static __thread char *low_page;

/* This thread's page below 4 GiB, zeroed where a struct goes; NULL when it cannot be mapped. */
static char *low_buffer(void) {
    if (!low_page) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
                       -1, 0);
        if (p == MAP_FAILED) return NULL;
        low_page = p;
    }
    memset(low_page, 0, SV_STAT_SIZE_MAX);
    return low_page;
}

/* The kernel clears r8-r11 on the way back from int $0x80. */
static long int80(long nr, long a, long b) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static long int80_3(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static const long i386_fstat_nr[] = {
    [SV_STAT_I386] = 108,   /* fstat: struct stat (compat) */
    [SV_STAT64_I386] = 197, /* fstat64: struct stat64 */
    [SV_OLDSTAT_I386] = 28, /* oldfstat: struct __old_kernel_stat */
};

long sv_fstat_abi(int fd, int kind, void *out, size_t outlen) {
    if (kind == SV_STAT_X86_64) {
        if (outlen < SV_STAT_SIZE_MAX) return -EINVAL;
        long r = syscall(SYS_fstat, fd, out);
        return r < 0 ? -errno : 0;
    }
    if (kind < SV_STAT_I386 || kind > SV_OLDSTAT_I386 || outlen < SV_STAT_SIZE_MAX) return -EINVAL;
    char *low = low_buffer();
    if (!low) return -ENOMEM;
    long r = int80(i386_fstat_nr[kind], fd, (long)(uintptr_t)low);
    if (r < 0) return r;
    memcpy(out, low, SV_STAT_SIZE_MAX);
    return 0;
}

long sv_statx_fd(int fd, int flags, unsigned int mask, void *out) {
    long r = syscall(SYS_statx, fd, "", flags | AT_EMPTY_PATH, mask, out);
    return r < 0 ? -errno : 0;
}

long sv_faccess_fd(int fd, int mode) {
    long r = syscall(SYS_faccessat2, fd, "", mode, AT_EMPTY_PATH | AT_EACCESS);
    return r < 0 ? -errno : 0;
}

long sv_readlink_fd(int fd, char *out, size_t outlen) {
    ssize_t r = readlinkat(fd, "", out, outlen);
    return r < 0 ? -errno : (long)r;
}

static const long i386_fstatfs_nr[] = {
    [SV_STATFS_I386] = 100,   /* fstatfs: struct statfs (compat) */
    [SV_STATFS64_I386] = 269, /* fstatfs64(fd, sz, buf): struct statfs64 (compat, packed) */
};

long sv_fstatfs_abi(int fd, int kind, unsigned int sz, void *out, size_t outlen) {
    if (outlen < SV_STAT_SIZE_MAX) return -EINVAL;
    if (kind == SV_STATFS_X86_64) {
        long r = syscall(SYS_fstatfs, fd, out);
        return r < 0 ? -errno : 0;
    }
    if (kind != SV_STATFS_I386 && kind != SV_STATFS64_I386) return -EINVAL;
    char *low = low_buffer();
    if (!low) return -ENOMEM;
    long r = kind == SV_STATFS_I386 ? int80(i386_fstatfs_nr[kind], fd, (long)(uintptr_t)low)
                                    : int80_3(i386_fstatfs_nr[kind], fd, sz, (long)(uintptr_t)low);
    if (r < 0) return r;
    memcpy(out, low, SV_STAT_SIZE_MAX);
    return 0;
}
