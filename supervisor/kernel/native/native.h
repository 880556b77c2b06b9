/* Everything supervisor._native declares: the project's C helpers, their structs and constants.

   The part between the cffi markers below is read by build.py into the cffi cdef as it is, so
   the structs, constants and signatures are written once for the compiler and for cffi alike and
   cannot drift. That part must stay plain declarations that both understand: no macros (integer
   constants are enum members, array sizes literals or those members), no #if, no includes.

   The cffi module itself includes only this file, so it also includes the system headers whose
   names kernel.cdef declares (seccomp, libseccomp, openat2, kcmp, free). */
#ifndef SV_NATIVE_H
#define SV_NATIVE_H

#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h> /* the _IOC macros behind SECCOMP_IOCTL_NOTIF_* */

/* Newer than Debian 12's Linux 6.1 headers (values from include/uapi/linux/seccomp.h). */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

/* cffi:begin */

/* ---- seccomp.c: the listener ioctls, one C call each ---- */
uint32_t sv_act_errno(int err);
int sv_seccomp(unsigned int op, unsigned int flags, void *args);
int sv_notif_recv(int fd, struct seccomp_notif *n);
int sv_notif_send(int fd, uint64_t id, int64_t val, int32_t error, uint32_t flags);
int sv_notif_id_valid(int fd, uint64_t id);
int sv_notif_addfd(int fd, uint64_t id, uint32_t flags, uint32_t srcfd, uint32_t newfd,
                   uint32_t newfd_flags);
int sv_notif_set_flags(int fd, uint64_t flags);
/* The loop's receive: poll and RECV in one call (supervisor/kernel/seccomp.py). */
int sv_notif_poll_recv(int fd, struct seccomp_notif *n);

/* ---- pidfd.c: another process's fds (pidfd, kcmp) ---- */
int sv_pidfd_open(int pid, unsigned int flags);
int sv_pidfd_getfd(int pidfd, int targetfd, unsigned int flags);
int sv_pidfd_send_signal(int pidfd, int sig, unsigned int flags);
int sv_kcmp(int pid1, int pid2, int type, unsigned long idx1, unsigned long idx2);

/* ---- ptrace.c: the exec gate's tracer (supervisor/kernel/ptrace.py) ---- */
enum { SV_PTRACE_EVENT_EXEC = 4, SV_PTRACE_EVENT_STOP = 128 };
int sv_ptrace_seize(int tid);
int sv_ptrace_interrupt(int tid);
int sv_ptrace_detach(int tid, int sig);

/* ---- memory.c: target memory, bracketed by ID_VALID ---- */
long sv_read_checked(int listener, uint64_t id, int pid, uint64_t addr, void *buf, size_t len);
long sv_read_string_checked(int listener, uint64_t id, int pid, uint64_t addr, char *buf,
                            size_t maxlen);
/* Writes (an answered stat, readlink, getxattr: supervisor/kernel/memory.py). */
enum { SV_WRITE_MAX_SPANS = 8 };
long sv_write_spans_checked(int listener, uint64_t id, int pid, uint64_t addr, const void *buf,
                            const uint32_t *spans, int nspans);
long sv_write_checked(int listener, uint64_t id, int pid, uint64_t addr, const void *buf,
                      size_t len);

/* ---- answer.c: what an answered stat, access, readlink performs (supervisor/kernel/answer.py) */
enum {
    SV_STAT_X86_64 = 0,   /* fstat: x86_64 struct stat, 144 bytes */
    SV_STAT_I386 = 1,     /* i386 fstat: struct stat, 64 bytes */
    SV_STAT64_I386 = 2,   /* i386 fstat64: struct stat64, 96 bytes (packed) */
    SV_OLDSTAT_I386 = 3,  /* i386 oldfstat: struct __old_kernel_stat, 32 bytes */
    SV_STATFS_X86_64 = 4, /* fstatfs: x86_64 struct statfs, 120 bytes */
    SV_STATFS_I386 = 5,   /* i386 fstatfs: struct statfs, 64 bytes */
    SV_STATFS64_I386 = 6, /* i386 fstatfs64: struct statfs64, 84 bytes (packed) */
    SV_STAT_SIZE_MAX = 144,
    SV_STATX_SIZE = 256,
};
long sv_fstat_abi(int fd, int kind, void *out, size_t outlen);
long sv_fstatfs_abi(int fd, int kind, unsigned int sz, void *out, size_t outlen);
long sv_statx_fd(int fd, int flags, unsigned int mask, void *out);
long sv_faccess_fd(int fd, int mode);
long sv_readlink_fd(int fd, char *out, size_t outlen);

/* ---- creds.c: per-thread credentials ---- */
enum { SV_MAX_GROUPS = 256 };
struct sv_creds {
    uint32_t fsuid;
    uint32_t fsgid;
    int ngroups;
    uint32_t groups[SV_MAX_GROUPS];
    uint32_t cap_effective[2];
    uint32_t cap_permitted[2];
    uint32_t cap_inheritable[2];
};
/* The credentials in /proc/TID/status (supervisor/kernel/creds.py, parse_status). */
struct sv_status_creds {
    uint32_t fsuid;
    uint32_t fsgid;
    int ngroups;
    uint32_t groups[SV_MAX_GROUPS];
    uint64_t cap_effective;
    int32_t umask;
};
int sv_creds_get(struct sv_creds *out);
int sv_parse_status(const char *text, size_t len, struct sv_status_creds *out);
int sv_creds_enter(const struct sv_creds *want, struct sv_creds *saved);
void sv_creds_leave(const struct sv_creds *saved);

/* ---- spawn.c: the launcher ---- */
struct sv_spawn_error {
    int stage;
    int err;
};
enum {
    SV_STAGE_NNP = 1,
    SV_STAGE_SECCOMP = 2,
    SV_STAGE_EXEC = 3,
    SV_STAGE_GO = 4,
    SV_STAGE_CAPS = 5,
    SV_STAGE_USER = 6,
    SV_STAGE_GUARD = 7
};
/* What the child drops before it installs its filters (supervisor/target/launch.py). */
struct sv_spawn_creds {
    uint64_t cap_drop; /* capability bits to drop: bounding, ambient, inheritable, P, E */
    int set_user;      /* 1: setgroups(groups), setresgid(gid), setresuid(uid) */
    uint32_t uid;
    uint32_t gid;
    int ngroups;
    const uint32_t *groups;
};
int sv_spawn(const char *file, char *const argv[], char *const envp[],
             const struct sock_filter *filter, unsigned short filter_len,
             const struct sock_filter *guard, unsigned short guard_len, unsigned int seccomp_flags,
             const struct sv_spawn_creds *creds, int go_fd, int err_fd);

/* ---- resolve.c: path resolution and emulated opens (supervisor/target/resolve.py, emulate.py) */
int sv_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
struct sv_stat {
    uint32_t mode;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint64_t ino;
    uint64_t dev;
    uint64_t mnt_id;
    int64_t fstype;
};
enum { SV_PROC_SUPER_MAGIC = 0x9fa0 };
int sv_stat(int dirfd, const char *path, int flags, struct sv_stat *out);
int sv_fd_stat(int fd, struct sv_stat *out);
int sv_unshare_fs(void);
/* The resolver's common case in one call (PathResolver.resolve). */
enum {
    SV_START_NONE = 0,  /* absolute path, not scoped: no start fd */
    SV_START_CWD = 1,   /* from /proc/TID/cwd */
    SV_START_DIRFD = 2, /* from /proc/TID/fd/DIRFD */
    SV_RESOLVE_SLOW = -1,
    SV_RESOLVED_CLOSED = -2,
};
int sv_resolve_fast(int tid, int start_kind, int dirfd, const char *path, uint64_t oflags,
                    uint64_t resolve, const struct sv_stat *own_root, int self_fds, char *out,
                    size_t outlen, struct sv_stat *st_out);
long sv_read_resolve_fast(int listener, uint64_t id, int tid, uint64_t addr, char *buf,
                          size_t maxlen, int dirfd, uint64_t oflags, uint64_t resolve,
                          const struct sv_stat *own_root, int self_fds, char *out, size_t outlen,
                          struct sv_stat *st_out, int keep_fd, int *fd_out);

/* ---- lane.c: receive and, for a path syscall, read and resolve its path (supervise/loop.py) */
enum {
    SV_LANE_MAX_NR = 512,
    SV_LANE_NOT_TRIED = -3,
    SV_FOLLOW_ALWAYS = 0,
    SV_FOLLOW_NEVER = 1,
    SV_FOLLOW_UNLESS_FLAG = 2,
    SV_FOLLOW_IF_FLAG = 3,
};
struct sv_path_route {
    int32_t path_arg;
    int32_t dirfd_arg;
    int32_t flags_arg;
    int32_t follow;
    uint64_t flag;
};
struct sv_lane {
    struct sv_path_route routes[2][SV_LANE_MAX_NR];
    struct sv_stat own_root;
    int self_fds;
    long len;
    int fd;
    char buf[4096];
    char out[4097];
    struct sv_stat st;
};
int sv_lane_next(int listener, struct seccomp_notif *n, struct sv_lane *lane);
int sv_lane_answer_next(int listener, uint64_t id, int32_t error, struct seccomp_notif *n,
                        struct sv_lane *lane);

/* ---- fsops.c: filesystem calls performed for a target (supervisor/kernel/fsops.py); 0 or
   -errno. ``times`` of sv_fs_utimensat: {atime sec, nsec, mtime sec, nsec}, or NULL ---- */
int sv_fs_renameat2(int olddir, const char *oldname, int newdir, const char *newname,
                    unsigned int flags);
int sv_fs_linkat(int olddir, const char *oldname, int newdir, const char *newname, int flags);
int sv_fs_symlinkat(const char *target, int newdir, const char *newname);
int sv_fs_unlinkat(int dir, const char *name, int flags);
int sv_fs_mkdirat(int dir, const char *name, unsigned int mode);
int sv_fs_mknodat(int dir, const char *name, unsigned int mode, unsigned int dev);
int sv_fs_fchmodat2(int dir, const char *name, unsigned int mode, unsigned int flags);
int sv_fs_fchownat(int dir, const char *name, uint32_t uid, uint32_t gid, int flags);
int sv_fs_utimensat(int dir, const char *name, const int64_t *times, int flags);
int sv_fs_truncate(const char *path, int64_t length);
int sv_fs_setxattrat(int dir, const char *name, unsigned int at_flags, const char *attr,
                     const void *value, uint32_t size, uint32_t flags);
int sv_fs_removexattrat(int dir, const char *name, unsigned int at_flags, const char *attr);

/* cffi:end */

#endif
