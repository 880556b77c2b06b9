/* The seccomp listener: seccomp(2) itself and the notification ioctls, one C call each
   (supervisor/kernel/seccomp.py), and libseccomp's SCMP_ACT_ERRNO, a macro cffi cannot call. */
#define _GNU_SOURCE
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"

uint32_t sv_act_errno(int err) { return SCMP_ACT_ERRNO(err); }

int sv_seccomp(unsigned int op, unsigned int flags, void *args) {
    return syscall(SYS_seccomp, op, flags, args);
}

/* RECV needs a zeroed struct every time, or the kernel answers EINVAL. */
int sv_notif_recv(int fd, struct seccomp_notif *n) {
    memset(n, 0, sizeof(*n));
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, n);
}

int sv_notif_send(int fd, uint64_t id, int64_t val, int32_t error, uint32_t flags) {
    struct seccomp_notif_resp r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    r.val = val;
    r.error = error;
    r.flags = flags;
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

int sv_notif_id_valid(int fd, uint64_t id) { return ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id); }

int sv_notif_addfd(int fd, uint64_t id, uint32_t flags, uint32_t srcfd, uint32_t newfd,
                   uint32_t newfd_flags) {
    struct seccomp_notif_addfd a;
    memset(&a, 0, sizeof(a));
    a.id = id;
    a.flags = flags;
    a.srcfd = srcfd;
    a.newfd = newfd;
    a.newfd_flags = newfd_flags;
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
}

/* SET_FLAGS takes the flags by value, not through a pointer. */
int sv_notif_set_flags(int fd, uint64_t flags) {
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags);
}

/* poll(2) with no timeout, then RECV if something is pending: 1 = received into *n, 0 = nothing
   pending, 2 = POLLHUP without POLLIN (every task using the filter is gone), -1 = error in errno
   (ENOENT: the notification vanished between poll and RECV, its target killed). */
int sv_notif_poll_recv(int fd, struct seccomp_notif *n) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, 0);
    if (r < 0) return -1;
    if (r == 0) return 0;
    if (!(p.revents & POLLIN)) return 2;
    return sv_notif_recv(fd, n) < 0 ? -1 : 1;
}
