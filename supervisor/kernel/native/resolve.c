/* Path resolution and emulated opens (supervisor/target/resolve.py, supervisor/target/emulate.py):
   openat2, statx with the mount id, and the resolver's common case in one call. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "native.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define SV_FSTYPE_BLOCKDEV (-1) /* sv_resolve_fast: on a block device, so not procfs */

int sv_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* statx with the mount id: (mnt_id, dev, ino) names one directory in one mount, which is how the
   resolver compares roots (st_dev/st_ino alone cannot tell a bind mount from its source). */
int sv_stat(int dirfd, const char *path, int flags, struct sv_stat *out) {
    struct statx s;
    memset(out, 0, sizeof(*out));
    if (statx(dirfd, path, flags, STATX_BASIC_STATS | STATX_MNT_ID, &s) < 0) return -1;
    out->mode = s.stx_mode;
    out->nlink = s.stx_nlink;
    out->uid = s.stx_uid;
    out->gid = s.stx_gid;
    out->ino = s.stx_ino;
    out->dev = ((uint64_t)s.stx_dev_major << 32) | s.stx_dev_minor;
    out->mnt_id = (s.stx_mask & STATX_MNT_ID) ? s.stx_mnt_id : 0;
    return 0;
}

/* statx and fstatfs of an fd in one call: the resolver needs both for every result. */
int sv_fd_stat(int fd, struct sv_stat *out) {
    if (sv_stat(fd, "", AT_EMPTY_PATH, out) < 0) return -1;
    struct statfs f;
    if (fstatfs(fd, &f) < 0) return -1;
    out->fstype = (int64_t)f.f_type;
    return 0;
}

/* Gives the calling thread its own umask/cwd/root (unshare(CLONE_FS) acts on the caller only), so
   an emulated creation can take the target's umask without touching other threads. */
int sv_unshare_fs(void) { return unshare(CLONE_FS); }

/* Placement by identity (issue 14). A lookup from a start fd (the target's cwd or a dirfd) may
   start on a detached mount (an open_tree clone, an fsmount) or on a mount of another namespace
   (an fd received over SCM_RIGHTS): the kernel then names the result relative to a tree the
   target's root does not hold (a clone of /d names /d/secret "/secret"). The name counts only if
   it leads, walked again from the root without any symlink, to the very object: same (mount id,
   dev, inode). Both fds are open during the comparison, so the 32-bit mount ids cannot have been
   reused. */
static int sv_placed(const char *name, const struct sv_stat *want) {
    int fd = sv_openat2(AT_FDCWD, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0,
                        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) return 0;
    struct sv_stat s;
    int same = sv_stat(fd, "", AT_EMPTY_PATH, &s) == 0 && s.mnt_id == want->mnt_id &&
               s.dev == want->dev && s.ino == want->ino;
    close(fd);
    return same;
}

/* ---- the resolver's fast path in one call ----
   PathResolver.resolve's common case: the target's root is ours, one openat2(O_PATH,
   RESOLVE_NO_MAGICLINKS) from the start fd finds an object that is not on procfs, and the
   kernel's name for it (readlink of our fd) is an ordinary absolute path. Returns our O_PATH fd
   on the object, its canonical path in `out` (NUL-terminated) and its statx+fstatfs in `st_out`
   (readlink of our fd in our /proc/self/fd, `self_fds` when >= 0).
   Anything else (errors included, ENOENT of a final component too) returns SV_RESOLVE_SLOW with
   nothing left open, and the caller runs the Python resolver from the start, which decides what
   the target gets. The same syscalls as the Python fast path, in the same order. */
int sv_resolve_fast(int tid, int start_kind, int dirfd, const char *path, uint64_t oflags,
                    uint64_t resolve, const struct sv_stat *own_root, int self_fds, char *out,
                    size_t outlen, struct sv_stat *st_out) {
    char where[64];
    struct sv_stat rst;
    int start = -1, fd = -1;
    if (tid <= 0 || outlen < 2 || path[0] == 0) return SV_RESOLVE_SLOW;
    snprintf(where, sizeof(where), "/proc/%d/root", tid);
    if (sv_stat(AT_FDCWD, where, 0, &rst) < 0) return SV_RESOLVE_SLOW;
    if (rst.mnt_id != own_root->mnt_id || rst.dev != own_root->dev || rst.ino != own_root->ino)
        return SV_RESOLVE_SLOW;
    if (start_kind == SV_START_CWD) {
        snprintf(where, sizeof(where), "/proc/%d/cwd", tid);
    } else if (start_kind == SV_START_DIRFD) {
        if (dirfd < 0) return SV_RESOLVE_SLOW;
        snprintf(where, sizeof(where), "/proc/%d/fd/%d", tid, dirfd);
    } else if (start_kind != SV_START_NONE) {
        return SV_RESOLVE_SLOW;
    }
    if (start_kind != SV_START_NONE) {
        start = open(where, O_PATH | O_CLOEXEC);
        if (start < 0) return SV_RESOLVE_SLOW;
    }
    fd = sv_openat2(start, path, oflags, 0, resolve);
    if (start >= 0) close(start);
    if (fd < 0) return SV_RESOLVE_SLOW;
    /* procfs always has an anonymous device (major 0): for a file system on a block device the
       fstatfs is skipped (one syscall of the hot path), and fstype says only "not procfs". */
    if (sv_stat(fd, "", AT_EMPTY_PATH, st_out) < 0) goto slow;
    if ((st_out->dev >> 32) != 0) {
        st_out->fstype = SV_FSTYPE_BLOCKDEV;
    } else {
        struct statfs f;
        if (fstatfs(fd, &f) < 0) goto slow;
        st_out->fstype = (int64_t)f.f_type;
        if (st_out->fstype == SV_PROC_SUPER_MAGIC) goto slow;
    }
    /* self_fds: the caller's fd on /proc/self/fd, opened once (a walk through the /proc/self
       symlink on every call costs about as much as the rest of the readlink); -1: the path. */
    ssize_t n;
    if (self_fds >= 0) {
        snprintf(where, sizeof(where), "%d", fd);
        n = readlinkat(self_fds, where, out, outlen - 1);
    } else {
        snprintf(where, sizeof(where), "/proc/self/fd/%d", fd);
        n = readlink(where, out, outlen - 1);
    }
    if (n <= 0 || (size_t)n >= outlen - 1 || out[0] != '/') goto slow;
    out[n] = 0;
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof(deleted) - 1;
    if ((size_t)n >= dl && memcmp(out + n - dl, deleted, dl) == 0) goto slow;
    if (start_kind != SV_START_NONE && !sv_placed(out, st_out)) goto slow; /* issue 14 */
    return fd;
slow:
    close(fd);
    return SV_RESOLVE_SLOW;
}

/* A path argument read from the target (sv_read_string_checked: between two ID_VALIDs) and, in
   the resolver's common case, resolved (sv_resolve_fast) in the same call: one crossing into C
   per path instead of two, on the hot path of every path-inspected syscall. Returns the length
   read or -errno from the read. *fd_out is sv_resolve_fast's result, or SV_RESOLVE_SLOW when it
   was not tried (an empty path, one naming "self", a dirfd that is neither AT_FDCWD nor an fd)
   or could not answer: the caller then resolves what is in buf the careful way;
   SV_RESOLVED_CLOSED when it answered but keep_fd is 0 (the fd is closed here). */
long sv_read_resolve_fast(int listener, uint64_t id, int tid, uint64_t addr, char *buf,
                          size_t maxlen, int dirfd, uint64_t oflags, uint64_t resolve,
                          const struct sv_stat *own_root, int self_fds, char *out, size_t outlen,
                          struct sv_stat *st_out, int keep_fd, int *fd_out) {
    *fd_out = SV_RESOLVE_SLOW;
    long len = sv_read_string_checked(listener, id, tid, addr, buf, maxlen);
    if (len <= 0) return len;
    if (memmem(buf, (size_t)len, "self", 4) != NULL) return len;
    int kind, start = -1;
    if (buf[0] == '/' && !(resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT))) {
        kind = SV_START_NONE;
    } else if (dirfd == AT_FDCWD) {
        kind = SV_START_CWD;
    } else if (dirfd >= 0) {
        kind = SV_START_DIRFD;
        start = dirfd;
    } else {
        return len;
    }
    int fd = sv_resolve_fast(tid, kind, start, buf, oflags, resolve, own_root, self_fds, out,
                             outlen, st_out);
    if (fd >= 0 && !keep_fd) { /* only the path was wanted (a decision): no fd to hand back */
        close(fd);
        fd = SV_RESOLVED_CLOSED;
    }
    *fd_out = fd;
    return len;
}
