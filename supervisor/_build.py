"""cffi build script for ``supervisor._native``: every kernel and libseccomp call the project makes.

Constants come from the C compiler (``#define NAME ...`` in the cdef) so nothing is hand-typed,
except where Debian 12's Linux 6.1 headers are older than the kernel we run on (marked below).
The few C helpers in ``SOURCE`` exist where one C call is safer or much cheaper than several
Python-level calls: the per-thread credential switch, the ID_VALID-bracketed memory read and the
fork/exec of a target that must not run any Python after its filter is installed.
"""

from cffi import FFI

# Structs declared to cffi (CDEF) and defined for the compiler (SOURCE) alike: one text for both,
# put in at the /*@NAME@*/ markers, so the two cannot drift (array sizes are literal: cffi's cdef
# takes no macros there; SOURCE asserts they match its macros).
LANE_STRUCTS = """
struct sv_path_route { int32_t path_arg; int32_t dirfd_arg; int32_t flags_arg; int32_t follow;
                       uint64_t flag; };
struct sv_lane {
    struct sv_path_route routes[2][512];
    struct sv_stat own_root;
    int self_fds;
    long len;
    int fd;
    char buf[4096];
    char out[4097];
    struct sv_stat st;
};
"""
STATUS_STRUCT = """
struct sv_status_creds {
    uint32_t fsuid;
    uint32_t fsgid;
    int ngroups;
    uint32_t groups[256];
    uint64_t cap_effective;
    int32_t umask;
};
"""

CDEF = r"""
/* ---- seccomp(2) and the notification structs (linux/seccomp.h) ---- */
#define SECCOMP_SET_MODE_FILTER ...
#define SECCOMP_GET_ACTION_AVAIL ...
#define SECCOMP_GET_NOTIF_SIZES ...
#define SECCOMP_FILTER_FLAG_TSYNC ...
#define SECCOMP_FILTER_FLAG_NEW_LISTENER ...
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH ...
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ...
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE ...
#define SECCOMP_ADDFD_FLAG_SETFD ...
#define SECCOMP_ADDFD_FLAG_SEND ...
#define SECCOMP_IOCTL_NOTIF_RECV ...
#define SECCOMP_IOCTL_NOTIF_SEND ...
#define SECCOMP_IOCTL_NOTIF_ID_VALID ...
#define SECCOMP_IOCTL_NOTIF_ADDFD ...
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS ...
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP ...

struct seccomp_data {
    int nr;
    uint32_t arch;
    uint64_t instruction_pointer;
    uint64_t args[6];
};
struct seccomp_notif_sizes {
    uint16_t seccomp_notif;
    uint16_t seccomp_notif_resp;
    uint16_t seccomp_data;
};
struct seccomp_notif {
    uint64_t id;
    uint32_t pid;
    uint32_t flags;
    struct seccomp_data data;
};

struct sock_filter { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; };

/* ---- open_how (linux/openat2.h) ---- */
struct open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
#define RESOLVE_NO_XDEV ...
#define RESOLVE_NO_MAGICLINKS ...
#define RESOLVE_NO_SYMLINKS ...
#define RESOLVE_BENEATH ...
#define RESOLVE_IN_ROOT ...
#define RESOLVE_CACHED ...

/* ---- libseccomp (seccomp.h) ---- */
typedef void *scmp_filter_ctx;
enum scmp_compare { SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE,
                    SCMP_CMP_GT, SCMP_CMP_MASKED_EQ, ... };
enum scmp_filter_attr { SCMP_FLTATR_ACT_DEFAULT, SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP,
                        SCMP_FLTATR_CTL_TSYNC, SCMP_FLTATR_API_SYSRAWRC, ... };
struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op; uint64_t datum_a; uint64_t datum_b; };
#define SCMP_ARCH_NATIVE ...
#define SCMP_ARCH_X86_64 ...
#define SCMP_ARCH_X86 ...
#define SCMP_ACT_KILL_PROCESS ...
#define SCMP_ACT_ALLOW ...
#define SCMP_ACT_NOTIFY ...
#define SCMP_ACT_LOG ...
#define __NR_SCMP_ERROR ...

scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_exist(const scmp_filter_ctx ctx, uint32_t arch_token);
uint32_t seccomp_arch_native(void);
int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
char *seccomp_syscall_resolve_num_arch(uint32_t arch_token, int num);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
uint32_t sv_act_errno(int err);
void free(void *ptr);

/* ---- the listener ioctls, one C call each (helpers below) ---- */
int sv_notif_recv(int fd, struct seccomp_notif *n);
int sv_notif_send(int fd, uint64_t id, int64_t val, int32_t error, uint32_t flags);
int sv_notif_id_valid(int fd, uint64_t id);
int sv_notif_addfd(int fd, uint64_t id, uint32_t flags, uint32_t srcfd, uint32_t newfd,
                   uint32_t newfd_flags);
int sv_notif_set_flags(int fd, uint64_t flags);
int sv_seccomp(unsigned int op, unsigned int flags, void *args);

/* ---- pidfd ---- */
int sv_pidfd_open(int pid, unsigned int flags);
int sv_pidfd_getfd(int pidfd, int targetfd, unsigned int flags);
int sv_pidfd_send_signal(int pidfd, int sig, unsigned int flags);

/* ---- kcmp(2) ---- */
#define KCMP_FILE ...
int sv_kcmp(int pid1, int pid2, int type, unsigned long idx1, unsigned long idx2);

/* ---- target memory, bracketed by ID_VALID ---- */
long sv_read_checked(int listener, uint64_t id, int pid, uint64_t addr, void *buf, size_t len);
long sv_read_string_checked(int listener, uint64_t id, int pid, uint64_t addr, char *buf,
                            size_t maxlen);

/* ---- openat2 ---- */
int sv_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/* ---- per-thread credentials ---- */
struct sv_creds {
    uint32_t fsuid;
    uint32_t fsgid;
    int ngroups;
    uint32_t groups[256];
    uint32_t cap_effective[2];
    uint32_t cap_permitted[2];
    uint32_t cap_inheritable[2];
};
#define SV_MAX_GROUPS ...
int sv_creds_get(struct sv_creds *out);
/*@STATUS_STRUCT@*/
int sv_parse_status(const char *text, size_t len, struct sv_status_creds *out);
int sv_creds_enter(const struct sv_creds *want, struct sv_creds *saved);
void sv_creds_leave(const struct sv_creds *saved);

/* ---- launcher ---- */
struct sv_spawn_error { int stage; int err; };
#define SV_STAGE_NNP ...
#define SV_STAGE_SECCOMP ...
#define SV_STAGE_EXEC ...
#define SV_STAGE_GO ...
int sv_spawn(const char *file, char *const argv[], char *const envp[],
             const struct sock_filter *filter, unsigned short filter_len,
             unsigned int seccomp_flags, int go_fd, int err_fd);

/* ---- path resolution and emulated opens (supervisor/resolve.py, supervisor/emulate.py) ---- */
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
#define SV_PROC_SUPER_MAGIC ...
int sv_stat(int dirfd, const char *path, int flags, struct sv_stat *out);
int sv_fd_stat(int fd, struct sv_stat *out);
int sv_unshare_fs(void);
/* ---- the resolver's common case in one call (supervisor/resolve.py, PathResolver.resolve) ---- */
#define SV_START_NONE ...
#define SV_START_CWD ...
#define SV_START_DIRFD ...
#define SV_RESOLVE_SLOW ...
int sv_resolve_fast(int tid, int start_kind, int dirfd, const char *path, uint64_t oflags,
                    uint64_t resolve, const struct sv_stat *own_root, int self_fds, char *out,
                    size_t outlen, struct sv_stat *st_out);
long sv_read_resolve_fast(int listener, uint64_t id, int tid, uint64_t addr, char *buf,
                          size_t maxlen, int dirfd, uint64_t oflags, uint64_t resolve,
                          const struct sv_stat *own_root, int self_fds, char *out,
                          size_t outlen, struct sv_stat *st_out, int keep_fd, int *fd_out);
#define SV_RESOLVED_CLOSED ...
/* ---- the loop's receive: poll and RECV in one call (supervisor/kernel/seccomp.py) ---- */
int sv_notif_poll_recv(int fd, struct seccomp_notif *n);
/* ---- the path lane: receive and, for a path syscall, read and resolve its path (loop.py) ---- */
#define SV_LANE_MAX_NR ...
#define SV_LANE_NOT_TRIED ...
#define SV_FOLLOW_ALWAYS ...
#define SV_FOLLOW_NEVER ...
#define SV_FOLLOW_UNLESS_FLAG ...
#define SV_FOLLOW_IF_FLAG ...
/*@LANE_STRUCTS@*/
int sv_lane_next(int listener, struct seccomp_notif *n, struct sv_lane *lane);
int sv_lane_answer_next(int listener, uint64_t id, int32_t error, struct seccomp_notif *n,
                        struct sv_lane *lane);
"""

SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/fsuid.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <seccomp.h>

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
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define SV_MAX_GROUPS 256
#define SV_STAGE_NNP 1
#define SV_STAGE_SECCOMP 2
#define SV_STAGE_EXEC 3
#define SV_STAGE_GO 4

struct sv_creds {
    uint32_t fsuid;
    uint32_t fsgid;
    int ngroups;
    uint32_t groups[SV_MAX_GROUPS];
    uint32_t cap_effective[2];
    uint32_t cap_permitted[2];
    uint32_t cap_inheritable[2];
};
struct sv_spawn_error { int stage; int err; };

uint32_t sv_act_errno(int err) { return SCMP_ACT_ERRNO(err); }

/* RECV needs a zeroed struct every time, or the kernel answers EINVAL. */
int sv_notif_recv(int fd, struct seccomp_notif *n) {
    memset(n, 0, sizeof(*n));
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, n);
}

int sv_notif_send(int fd, uint64_t id, int64_t val, int32_t error, uint32_t flags) {
    struct seccomp_notif_resp r;
    memset(&r, 0, sizeof(r));
    r.id = id; r.val = val; r.error = error; r.flags = flags;
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

int sv_notif_id_valid(int fd, uint64_t id) {
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id);
}

int sv_notif_addfd(int fd, uint64_t id, uint32_t flags, uint32_t srcfd, uint32_t newfd,
                   uint32_t newfd_flags) {
    struct seccomp_notif_addfd a;
    memset(&a, 0, sizeof(a));
    a.id = id; a.flags = flags; a.srcfd = srcfd; a.newfd = newfd; a.newfd_flags = newfd_flags;
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
}

/* SET_FLAGS takes the flags by value, not through a pointer. */
int sv_notif_set_flags(int fd, uint64_t flags) {
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags);
}

int sv_seccomp(unsigned int op, unsigned int flags, void *args) {
    return syscall(SYS_seccomp, op, flags, args);
}

int sv_pidfd_open(int pid, unsigned int flags) { return syscall(SYS_pidfd_open, pid, flags); }
int sv_pidfd_getfd(int pidfd, int targetfd, unsigned int flags) {
    return syscall(SYS_pidfd_getfd, pidfd, targetfd, flags);
}
int sv_pidfd_send_signal(int pidfd, int sig, unsigned int flags) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, flags);
}
/* glibc has no wrapper for kcmp(2). */
int sv_kcmp(int pid1, int pid2, int type, unsigned long idx1, unsigned long idx2) {
    return syscall(SYS_kcmp, pid1, pid2, type, idx1, idx2);
}

int sv_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = flags; how.mode = mode; how.resolve = resolve;
    return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Reads len bytes of the target's memory. The id is checked before and after the read: if it is
   still valid afterwards, the thread was alive all along, so its pid was not reused and the bytes
   are from the process that made the syscall. Returns the count, or -errno (ENOENT: the
   notification is gone; EFAULT: unmapped). */
long sv_read_checked(int listener, uint64_t id, int pid, uint64_t addr, void *buf, size_t len) {
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ENOENT;
    size_t done = 0;
    while (done < len) {
        struct iovec local = { (char *)buf + done, len - done };
        struct iovec remote = { (void *)(uintptr_t)(addr + done), len - done };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n < 0) return errno == ESRCH ? -ENOENT : -EFAULT;
        if (n == 0) return -EFAULT;
        done += (size_t)n;
    }
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ENOENT;
    return (long)done;
}

/* Reads a NUL-terminated string of at most maxlen-1 bytes, one page at a time so that a string
   ending just before an unmapped page is still read. Returns its length, or -errno: ENOENT (the
   notification is gone), EFAULT (unmapped), ENAMETOOLONG (no NUL within maxlen-1 bytes). */
long sv_read_string_checked(int listener, uint64_t id, int pid, uint64_t addr, char *buf,
                            size_t maxlen) {
    if (addr == 0) return -EFAULT;
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ENOENT;
    size_t done = 0;
    long result = -ENAMETOOLONG;
    while (done < maxlen) {
        uint64_t here = addr + done;
        size_t chunk = 4096 - (here & 4095);
        if (chunk > maxlen - done) chunk = maxlen - done;
        struct iovec local = { buf + done, chunk };
        struct iovec remote = { (void *)(uintptr_t)here, chunk };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n < 0) { result = errno == ESRCH ? -ENOENT : -EFAULT; break; }
        if (n == 0) { result = -EFAULT; break; }
        char *nul = memchr(buf + done, 0, (size_t)n);
        if (nul) { result = nul - buf; break; }
        done += (size_t)n;
    }
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ENOENT;
    return result;
}

/* ---- credentials of the calling thread only ----
   glibc's setgroups()/setuid() change every thread of the process; the raw syscalls change only
   the caller, which is what an emulated operation needs. */
static int raw_capget(uint32_t eff[2], uint32_t prm[2], uint32_t inh[2]) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) return -1;
    for (int i = 0; i < 2; i++) { eff[i] = d[i].effective; prm[i] = d[i].permitted;
                                  inh[i] = d[i].inheritable; }
    return 0;
}

static int raw_capset(const uint32_t eff[2], const uint32_t prm[2], const uint32_t inh[2]) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    for (int i = 0; i < 2; i++) { d[i].effective = eff[i]; d[i].permitted = prm[i];
                                  d[i].inheritable = inh[i]; }
    return syscall(SYS_capset, &h, d);
}

/* ---- the credentials in /proc/TID/status (supervisor/kernel/creds.py, parse_status) ----
   Kernel text, parsed strictly all the same: Uid:/Gid: with exactly four decimal ids (the
   fourth is the fs id), Groups: decimal ids, CapEff: 1 to 16 hex digits, Umask: octal
   (optional; -1 when absent). A missing, repeated or malformed line is -1; more than
   SV_MAX_GROUPS groups is -2. In C because it runs for every emulated operation: the Python
   parser cost ~12 us of the ~100 of an emulated open. */
/*@STATUS_STRUCT@*/
/* The value of the one line "KEY:" (tag = "\nKEY:"), its end in *end; NULL if absent, and
   *dup set when the line appears twice. text[0] is treated as following a newline. */
static const char *sv_status_line(const char *text, size_t len, const char *tag, const char **end,
                                  int *dup) {
    size_t tl = strlen(tag);
    const char *hit = NULL, *p = text, *stop = text + len;
    if (len >= tl - 1 && memcmp(text, tag + 1, tl - 1) == 0) hit = text + tl - 1;
    while ((p = memmem(p, (size_t)(stop - p), tag, tl)) != NULL) {
        if (hit) { *dup = 1; return NULL; }
        hit = p + tl;
        p += tl;
    }
    if (!hit) return NULL;
    const char *e = memchr(hit, '\n', (size_t)(stop - hit));
    *end = e ? e : stop;
    return hit;
}

/* Decimal ids separated by blanks from p to end: at most max of them into ids; the count, or -1
   (not a decimal, above 0xffffffff), or -2 (more than max). */
static int sv_ids(const char *p, const char *end, uint32_t *ids, int max) {
    int n = 0;
    while (p < end) {
        if (*p == ' ' || *p == '\t') { p++; continue; }
        uint64_t v = 0;
        int digits = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > 0xffffffffULL) return -1;
            p++;
            digits++;
        }
        if (!digits || (p < end && *p != ' ' && *p != '\t')) return -1;
        if (n >= max) return -2;
        ids[n++] = (uint32_t)v;
    }
    return n;
}

int sv_parse_status(const char *text, size_t len, struct sv_status_creds *out) {
    const char *end = NULL, *v;
    int dup = 0;
    uint32_t four[4];
    memset(out, 0, sizeof(*out));
    if (!(v = sv_status_line(text, len, "\nUid:", &end, &dup))) return -1;
    if (sv_ids(v, end, four, 4) != 4) return -1;
    out->fsuid = four[3];
    if (!(v = sv_status_line(text, len, "\nGid:", &end, &dup))) return -1;
    if (sv_ids(v, end, four, 4) != 4) return -1;
    out->fsgid = four[3];
    if (!(v = sv_status_line(text, len, "\nGroups:", &end, &dup))) return -1;
    int n = sv_ids(v, end, out->groups, SV_MAX_GROUPS);
    if (n < 0) return n;
    out->ngroups = n;
    if (!(v = sv_status_line(text, len, "\nCapEff:", &end, &dup))) return -1;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
    if (end - v < 1 || end - v > 16) return -1;
    uint64_t cap = 0;
    for (const char *c = v; c < end; c++) {
        int d = (*c >= '0' && *c <= '9') ? *c - '0'
              : (*c >= 'a' && *c <= 'f') ? *c - 'a' + 10
              : (*c >= 'A' && *c <= 'F') ? *c - 'A' + 10 : -1;
        if (d < 0) return -1;
        cap = (cap << 4) | (uint64_t)d;
    }
    out->cap_effective = cap;
    out->umask = -1;
    v = sv_status_line(text, len, "\nUmask:", &end, &dup);
    if (dup) return -1;
    if (v) {
        while (v < end && (*v == ' ' || *v == '\t')) v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
        if (end - v < 1 || end - v > 11) return -1;
        uint32_t m = 0;
        for (const char *c = v; c < end; c++) {
            if (*c < '0' || *c > '7') return -1;
            m = (m << 3) | (uint32_t)(*c - '0');
        }
        out->umask = (int32_t)(m & 0777);
    }
    return 0;
}

int sv_creds_get(struct sv_creds *out) {
    memset(out, 0, sizeof(*out));
    out->fsuid = (uint32_t)syscall(SYS_setfsuid, -1);
    out->fsgid = (uint32_t)syscall(SYS_setfsgid, -1);
    gid_t groups[SV_MAX_GROUPS];
    long n = syscall(SYS_getgroups, SV_MAX_GROUPS, groups);
    if (n < 0) return -1;
    out->ngroups = (int)n;
    for (long i = 0; i < n; i++) out->groups[i] = groups[i];
    return raw_capget(out->cap_effective, out->cap_permitted, out->cap_inheritable);
}

/* Restores what sv_creds_enter saved. A thread that cannot get its own credentials back must not
   go on serving other targets with someone else's: abort, so that the supervisor dies and every
   notified syscall fails closed (ENOSYS). */
void sv_creds_leave(const struct sv_creds *saved) {
    gid_t groups[SV_MAX_GROUPS];
    for (int i = 0; i < saved->ngroups; i++) groups[i] = saved->groups[i];
    if (raw_capset(saved->cap_permitted, saved->cap_permitted, saved->cap_inheritable) < 0)
        abort();
    syscall(SYS_setfsuid, saved->fsuid);
    syscall(SYS_setfsgid, saved->fsgid);
    if (syscall(SYS_setgroups, saved->ngroups, groups) < 0) abort();
    if (raw_capset(saved->cap_effective, saved->cap_permitted, saved->cap_inheritable) < 0)
        abort();
    if ((uint32_t)syscall(SYS_setfsuid, -1) != saved->fsuid) abort();
    if ((uint32_t)syscall(SYS_setfsgid, -1) != saved->fsgid) abort();
}

/* Takes the target's fsuid, fsgid, supplementary groups and effective capabilities (never more
   than this thread is permitted) on the calling thread. On failure everything is restored and -1
   is returned with errno set. */
int sv_creds_enter(const struct sv_creds *want, struct sv_creds *saved) {
    if (want->ngroups < 0 || want->ngroups > SV_MAX_GROUPS) { errno = EINVAL; return -1; }
    if (sv_creds_get(saved) < 0) return -1;
    gid_t groups[SV_MAX_GROUPS];
    for (int i = 0; i < want->ngroups; i++) groups[i] = want->groups[i];
    if (syscall(SYS_setgroups, want->ngroups, groups) < 0) {
        int e = errno;
        /* Without CAP_SETGID we can only go on if the groups already match. */
        int same = saved->ngroups == want->ngroups;
        for (int i = 0; same && i < want->ngroups; i++) same = saved->groups[i] == want->groups[i];
        if (!same) { errno = e; return -1; }
    }
    syscall(SYS_setfsgid, want->fsgid);
    syscall(SYS_setfsuid, want->fsuid);
    if ((uint32_t)syscall(SYS_setfsuid, -1) != want->fsuid ||
        (uint32_t)syscall(SYS_setfsgid, -1) != want->fsgid) {
        sv_creds_leave(saved); errno = EPERM; return -1;
    }
    uint32_t eff[2];
    for (int i = 0; i < 2; i++) eff[i] = want->cap_effective[i] & saved->cap_permitted[i];
    if (raw_capset(eff, saved->cap_permitted, saved->cap_inheritable) < 0) {
        int e = errno; sv_creds_leave(saved); errno = e; return -1;
    }
    return 0;
}

/* ---- launcher child ----
   The child runs only async-signal-safe C between fork and exec: once its filter is installed,
   any syscall it makes may be notified, and Python would make many. It waits on go_fd until the
   parent has taken the listener with pidfd_getfd (read must not be notified by the filter), then
   execs. Failures are reported on err_fd (close-on-exec) as a struct sv_spawn_error. */
static void report(int err_fd, int stage, int err) {
    struct sv_spawn_error e = { stage, err };
    ssize_t w = write(err_fd, &e, sizeof(e));
    (void)w;
}

int sv_spawn(const char *file, char *const argv[], char *const envp[],
             const struct sock_filter *filter, unsigned short filter_len,
             unsigned int seccomp_flags, int go_fd, int err_fd) {
    pid_t pid = fork();
    if (pid != 0) return pid;  /* parent, or -1 */

    /* Python ignores SIGPIPE and SIGXFSZ; a program expects the defaults. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction old;
        if (sigaction(sig, NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(sig, &sa, NULL);
    }
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGXFSZ, &sa, NULL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        report(err_fd, SV_STAGE_NNP, errno);
        _exit(125);
    }
    struct sock_fprog prog = { filter_len, (struct sock_filter *)filter };
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, seccomp_flags, &prog);
    if (fd < 0 && errno == EINVAL && (seccomp_flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV))
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                     seccomp_flags & ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
    if (fd < 0) { report(err_fd, SV_STAGE_SECCOMP, errno); _exit(125); }

    char go;
    ssize_t r;
    do { r = read(go_fd, &go, 1); } while (r < 0 && errno == EINTR);
    if (r != 1) _exit(125);  /* the parent died or gave up: never run unsupervised */
    /* The parent holds its copy now. Ours would keep our own notified syscalls (the execve)
       waiting for ever if the parent died before serving them: without it they fail with
       ENOSYS, and so does the exec. (It would go at the exec anyway: close-on-exec.) */
    close((int)fd);

    execvpe(file, argv, envp);
    int e = errno;
    report(err_fd, SV_STAGE_EXEC, e);
    _exit(e == ENOENT ? 127 : 126);
}

/* ---- path resolution and emulated opens ----
   statx with the mount id: (mnt_id, dev, ino) names one directory in one mount, which is how the
   resolver compares roots (st_dev/st_ino alone cannot tell a bind mount from its source). */
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sched.h>
#include <fcntl.h>
#define SV_PROC_SUPER_MAGIC 0x9fa0

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

int sv_stat(int dirfd, const char *path, int flags, struct sv_stat *out) {
    struct statx s;
    memset(out, 0, sizeof(*out));
    if (statx(dirfd, path, flags, STATX_BASIC_STATS | STATX_MNT_ID, &s) < 0) return -1;
    out->mode = s.stx_mode; out->nlink = s.stx_nlink; out->uid = s.stx_uid; out->gid = s.stx_gid;
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

/* ---- issue 14, target/ (placement by identity; added by the target/ engineer) ----
   A lookup from a start fd (the target's cwd or a dirfd) may start on a detached mount (an
   open_tree clone, an fsmount) or on a mount of another namespace (an fd received over
   SCM_RIGHTS): the kernel then names the result relative to a tree the target's root does not
   hold (a clone of /d names /d/secret "/secret"). The name counts only if it leads, walked again
   from the root without any symlink, to the very object: same (mount id, dev, inode). Both fds
   are open during the comparison, so the 32-bit mount ids cannot have been reused. */
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
/* ---- end of issue 14's block ---- */

/* ---- the resolver's fast path in one call ----
   PathResolver.resolve's common case: the target's root is ours, one openat2(O_PATH,
   RESOLVE_NO_MAGICLINKS) from the start fd finds an object that is not on procfs, and the
   kernel's name for it (readlink of our fd) is an ordinary absolute path. Returns our O_PATH fd
   on the object, its canonical path in `out` (NUL-terminated) and its statx+fstatfs in `st_out`
   (readlink of our fd in our /proc/self/fd, `self_fds` when >= 0).
   Anything else (errors included, ENOENT of a final component too) returns SV_RESOLVE_SLOW with
   nothing left open, and the caller runs the Python resolver from the start, which decides what
   the target gets. The same syscalls as the Python fast path, in the same order. */
#include <stdio.h>
#define SV_FSTYPE_BLOCKDEV (-1)  /* sv_resolve_fast: on a block device, so not procfs */
#define SV_START_NONE 0   /* absolute path, not scoped: no start fd */
#define SV_START_CWD 1    /* from /proc/TID/cwd */
#define SV_START_DIRFD 2  /* from /proc/TID/fd/DIRFD */
#define SV_RESOLVE_SLOW (-1)

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
    if (start_kind != SV_START_NONE && !sv_placed(out, st_out)) goto slow;  /* issue 14 */
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
#define SV_RESOLVED_CLOSED (-2)
long sv_read_resolve_fast(int listener, uint64_t id, int tid, uint64_t addr, char *buf,
                          size_t maxlen, int dirfd, uint64_t oflags, uint64_t resolve,
                          const struct sv_stat *own_root, int self_fds, char *out,
                          size_t outlen, struct sv_stat *st_out, int keep_fd, int *fd_out) {
    *fd_out = SV_RESOLVE_SLOW;
    long len = sv_read_string_checked(listener, id, tid, addr, buf, maxlen);
    if (len <= 0) return len;
    if (memmem(buf, (size_t)len, "self", 4) != NULL) return len;
    int kind, start = -1;
    if (buf[0] == '/' && !(resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT))) kind = SV_START_NONE;
    else if (dirfd == AT_FDCWD) kind = SV_START_CWD;
    else if (dirfd >= 0) { kind = SV_START_DIRFD; start = dirfd; }
    else return len;
    int fd = sv_resolve_fast(tid, kind, start, buf, oflags, resolve, own_root, self_fds, out,
                             outlen, st_out);
    if (fd >= 0 && !keep_fd) {  /* only the path was wanted (a decision): no fd to hand back */
        close(fd);
        fd = SV_RESOLVED_CLOSED;
    }
    *fd_out = fd;
    return len;
}

/* poll(2) with no timeout, then RECV if something is pending: 1 = received into *n, 0 = nothing
   pending, 2 = POLLHUP without POLLIN (every task using the filter is gone), -1 = error in errno
   (ENOENT: the notification vanished between poll and RECV, its target killed). */
#include <poll.h>
int sv_notif_poll_recv(int fd, struct seccomp_notif *n) {
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    int r = poll(&p, 1, 0);
    if (r < 0) return -1;
    if (r == 0) return 0;
    if (!(p.revents & POLLIN)) return 2;
    return sv_notif_recv(fd, n) < 0 ? -1 : 1;
}

/* The path lane: sv_notif_poll_recv, then, when the syscall's (arch, nr) has a route (a syscall
   with one path argument, registered by the loop for its policy), the read and the fast
   resolution of that path (sv_read_resolve_fast, fd closed: a decision needs only the path)
   in the same call, so that the loop crosses into C once per notification on its hot path.
   Returns what sv_notif_poll_recv returns; for a notification with a route, 3 instead of 1,
   with lane->len (the length read, or -errno of the read) and lane->fd (SV_RESOLVED_CLOSED:
   the canonical path is in lane->out; SV_RESOLVE_SLOW: the loop resolves lane->buf itself).
   lane->fd is SV_LANE_NOT_TRIED otherwise. The route mirrors loop.Supervisor._resolve_arg. */
#include <linux/audit.h>
#define SV_LANE_MAX_NR 512
#define SV_LANE_NOT_TRIED (-3)
#define SV_FOLLOW_ALWAYS 0
#define SV_FOLLOW_NEVER 1
#define SV_FOLLOW_UNLESS_FLAG 2
#define SV_FOLLOW_IF_FLAG 3
_Static_assert(SV_LANE_MAX_NR == 512, "LANE_STRUCTS: routes[2][512]");
_Static_assert(SV_MAX_GROUPS == 256, "STATUS_STRUCT: groups[256]");
/*@LANE_STRUCTS@*/
int sv_lane_next(int listener, struct seccomp_notif *n, struct sv_lane *l) {
    l->fd = SV_LANE_NOT_TRIED;
    int r = sv_notif_poll_recv(listener, n);
    if (r != 1) return r;
    int a = n->data.arch == AUDIT_ARCH_X86_64 ? 0 : n->data.arch == AUDIT_ARCH_I386 ? 1 : -1;
    if (a < 0 || n->data.nr < 0 || n->data.nr >= SV_LANE_MAX_NR || n->pid > 0x7fffffffu)
        return 1;
    const struct sv_path_route *rt = &l->routes[a][n->data.nr];
    if (rt->path_arg < 0 || rt->path_arg > 5) return 1;
    const uint64_t *args = n->data.args;
    uint64_t flags = (rt->flags_arg >= 0 && rt->flags_arg <= 5) ? args[rt->flags_arg] : 0;
    int follow;
    switch (rt->follow) {
    case SV_FOLLOW_ALWAYS: follow = 1; break;
    case SV_FOLLOW_NEVER: follow = 0; break;
    case SV_FOLLOW_UNLESS_FLAG: follow = !(flags & rt->flag); break;
    case SV_FOLLOW_IF_FLAG: follow = (flags & rt->flag) != 0; break;
    default: return 1;
    }
    int dirfd = AT_FDCWD;  /* an int argument: its low 32 bits, sign-extended */
    if (rt->dirfd_arg >= 0 && rt->dirfd_arg <= 5)
        dirfd = (int)(int32_t)(uint32_t)args[rt->dirfd_arg];
    l->len = sv_read_resolve_fast(listener, n->id, (int)n->pid, args[rt->path_arg], l->buf,
                                  sizeof(l->buf), dirfd,
                                  O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW),
                                  RESOLVE_NO_MAGICLINKS, &l->own_root, l->self_fds, l->out,
                                  sizeof(l->out), &l->st, 0, &l->fd);
    return 3;
}

/* A denial (SEND with -error) and sv_lane_next in one call: the loop's commonest answer and its
   next receive cross into C once. -4: the SEND failed with errno other than ENOENT (a target
   gone or interrupted is not a failure); nothing was received then. */
int sv_lane_answer_next(int listener, uint64_t id, int32_t error, struct seccomp_notif *n,
                        struct sv_lane *l) {
    if (sv_notif_send(listener, id, 0, -error, 0) < 0 && errno != ENOENT) {
        l->fd = SV_LANE_NOT_TRIED;
        return -4;
    }
    return sv_lane_next(listener, n, l);
}
"""

ffibuilder = FFI()


def _with_structs(text: str) -> str:
    return text.replace("/*@LANE_STRUCTS@*/", LANE_STRUCTS).replace(
        "/*@STATUS_STRUCT@*/", STATUS_STRUCT
    )


ffibuilder.cdef(_with_structs(CDEF))
ffibuilder.set_source("supervisor._native", _with_structs(SOURCE), libraries=["seccomp"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=False)
