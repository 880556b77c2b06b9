/* Credentials: the calling thread's own, switched for an emulated operation, and a target's,
   parsed from /proc/TID/status (supervisor/kernel/creds.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"

/* ---- credentials of the calling thread only ----
   glibc's setgroups()/setuid() change every thread of the process; the raw syscalls change only
   the caller, which is what an emulated operation needs. */
static int raw_capget(uint32_t eff[2], uint32_t prm[2], uint32_t inh[2]) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) return -1;
    for (int i = 0; i < 2; i++) {
        eff[i] = d[i].effective;
        prm[i] = d[i].permitted;
        inh[i] = d[i].inheritable;
    }
    return 0;
}

static int raw_capset(const uint32_t eff[2], const uint32_t prm[2], const uint32_t inh[2]) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    for (int i = 0; i < 2; i++) {
        d[i].effective = eff[i];
        d[i].permitted = prm[i];
        d[i].inheritable = inh[i];
    }
    return syscall(SYS_capset, &h, d);
}

/* ---- the credentials in /proc/TID/status (supervisor/kernel/creds.py, parse_status) ----
   Kernel text, parsed strictly all the same: Uid:/Gid: with exactly four decimal ids (the
   fourth is the fs id), Groups: decimal ids, CapEff: 1 to 16 hex digits, Umask: octal
   (optional; -1 when absent). A missing, repeated or malformed line is -1; more than
   SV_MAX_GROUPS groups is -2. In C because it runs for every emulated operation: the Python
   parser cost ~12 us of the ~100 of an emulated open. */

/* The value of the one line "KEY:" (tag = "\nKEY:"), its end in *end; NULL if absent, and NULL
   with *dup set when the line appears twice. text[0] is treated as following a newline. */
static const char *sv_status_line(const char *text, size_t len, const char *tag, const char **end,
                                  int *dup) {
    size_t tl = strlen(tag);
    const char *hit = NULL, *p = text, *stop = text + len;
    if (len >= tl - 1 && memcmp(text, tag + 1, tl - 1) == 0) hit = text + tl - 1;
    while ((p = memmem(p, (size_t)(stop - p), tag, tl)) != NULL) {
        if (hit) {
            *dup = 1;
            return NULL;
        }
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
        if (*p == ' ' || *p == '\t') {
            p++;
            continue;
        }
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
        int d = (*c >= '0' && *c <= '9')   ? *c - '0'
                : (*c >= 'a' && *c <= 'f') ? *c - 'a' + 10
                : (*c >= 'A' && *c <= 'F') ? *c - 'A' + 10
                                           : -1;
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
    if (raw_capset(saved->cap_permitted, saved->cap_permitted, saved->cap_inheritable) < 0) abort();
    syscall(SYS_setfsuid, saved->fsuid);
    syscall(SYS_setfsgid, saved->fsgid);
    if (syscall(SYS_setgroups, saved->ngroups, groups) < 0) abort();
    if (raw_capset(saved->cap_effective, saved->cap_permitted, saved->cap_inheritable) < 0) abort();
    if ((uint32_t)syscall(SYS_setfsuid, -1) != saved->fsuid) abort();
    if ((uint32_t)syscall(SYS_setfsgid, -1) != saved->fsgid) abort();
}

/* Takes the target's fsuid, fsgid, supplementary groups and effective capabilities (never more
   than this thread is permitted) on the calling thread. On failure everything is restored and -1
   is returned with errno set. */
int sv_creds_enter(const struct sv_creds *want, struct sv_creds *saved) {
    if (want->ngroups < 0 || want->ngroups > SV_MAX_GROUPS) {
        errno = EINVAL;
        return -1;
    }
    if (sv_creds_get(saved) < 0) return -1;
    /* Nested (as_supervisor inside as_creds), the thread may hold a target's empty effective
       set: raise it to the permitted one first, or setgroups lacks CAP_SETGID (a target with
       supplementary groups, e.g. under `run --user`, could then not open its own /proc/self). */
    if (raw_capset(saved->cap_permitted, saved->cap_permitted, saved->cap_inheritable) < 0)
        return -1;
    gid_t groups[SV_MAX_GROUPS];
    for (int i = 0; i < want->ngroups; i++) groups[i] = want->groups[i];
    if (syscall(SYS_setgroups, want->ngroups, groups) < 0) {
        int e = errno;
        /* Without CAP_SETGID we can only go on if the groups already match. */
        int same = saved->ngroups == want->ngroups;
        for (int i = 0; same && i < want->ngroups; i++) same = saved->groups[i] == want->groups[i];
        if (!same) {
            errno = e;
            return -1;
        }
    }
    syscall(SYS_setfsgid, want->fsgid);
    syscall(SYS_setfsuid, want->fsuid);
    if ((uint32_t)syscall(SYS_setfsuid, -1) != want->fsuid ||
        (uint32_t)syscall(SYS_setfsgid, -1) != want->fsgid) {
        sv_creds_leave(saved);
        errno = EPERM;
        return -1;
    }
    uint32_t eff[2];
    for (int i = 0; i < 2; i++) eff[i] = want->cap_effective[i] & saved->cap_permitted[i];
    if (raw_capset(eff, saved->cap_permitted, saved->cap_inheritable) < 0) {
        int e = errno;
        sv_creds_leave(saved);
        errno = e;
        return -1;
    }
    return 0;
}
