/* Filesystem calls performed for a target (supervisor/kernel/fsops.py, target/fsops.py): the raw
   syscalls, each on a directory fd and one name, or on an O_PATH fd with AT_EMPTY_PATH. Every
   function returns 0 or -errno (the answer the target gets); none follows a path the caller did
   not hand it, and none decides anything. Raw syscalls, not glibc's wrappers: glibc may emulate
   (fchmodat's AT_SYMLINK_NOFOLLOW through /proc) or refuse flags the kernel knows. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "native.h"

/* Newer than Debian 12's headers (values from arch/x86/entry/syscalls/syscall_64.tbl). */
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_removexattrat
#define SYS_removexattrat 466
#endif

/* struct xattr_args of include/uapi/linux/xattr.h (Linux 6.13). */
struct sv_xattr_args {
    uint64_t value;
    uint32_t size;
    uint32_t flags;
};

static int result(long ret) { return ret < 0 ? -errno : 0; }

int sv_fs_renameat2(int olddir, const char *oldname, int newdir, const char *newname,
                    unsigned int flags) {
    return result(syscall(SYS_renameat2, olddir, oldname, newdir, newname, flags));
}

int sv_fs_linkat(int olddir, const char *oldname, int newdir, const char *newname, int flags) {
    return result(syscall(SYS_linkat, olddir, oldname, newdir, newname, flags));
}

int sv_fs_symlinkat(const char *target, int newdir, const char *newname) {
    return result(syscall(SYS_symlinkat, target, newdir, newname));
}

int sv_fs_unlinkat(int dir, const char *name, int flags) {
    return result(syscall(SYS_unlinkat, dir, name, flags));
}

int sv_fs_mkdirat(int dir, const char *name, unsigned int mode) {
    return result(syscall(SYS_mkdirat, dir, name, mode));
}

int sv_fs_mknodat(int dir, const char *name, unsigned int mode, unsigned int dev) {
    return result(syscall(SYS_mknodat, dir, name, mode, dev));
}

int sv_fs_fchmodat2(int dir, const char *name, unsigned int mode, unsigned int flags) {
    return result(syscall(SYS_fchmodat2, dir, name, mode, flags));
}

int sv_fs_fchownat(int dir, const char *name, uint32_t uid, uint32_t gid, int flags) {
    return result(syscall(SYS_fchownat, dir, name, uid, gid, flags));
}

int sv_fs_utimensat(int dir, const char *name, const int64_t *times, int flags) {
    struct timespec ts[2];
    if (times == NULL) return result(syscall(SYS_utimensat, dir, name, NULL, flags));
    for (int i = 0; i < 2; i++) {
        ts[i].tv_sec = times[2 * i];
        ts[i].tv_nsec = times[2 * i + 1];
    }
    return result(syscall(SYS_utimensat, dir, name, ts, flags));
}

int sv_fs_truncate(const char *path, int64_t length) {
    return result(syscall(SYS_truncate, path, length));
}

int sv_fs_setxattrat(int dir, const char *name, unsigned int at_flags, const char *attr,
                     const void *value, uint32_t size, uint32_t flags) {
    struct sv_xattr_args args;
    memset(&args, 0, sizeof(args));
    args.value = (uint64_t)(uintptr_t)value;
    args.size = size;
    args.flags = flags;
    return result(syscall(SYS_setxattrat, dir, name, at_flags, attr, &args, sizeof(args)));
}

int sv_fs_removexattrat(int dir, const char *name, unsigned int at_flags, const char *attr) {
    return result(syscall(SYS_removexattrat, dir, name, at_flags, attr));
}
