/* Another process's fds: the pidfd syscalls (supervisor/kernel/pidfd.py) and kcmp(2)
   (supervisor/kernel/kcmp.py), none of which glibc wraps on Debian 12. */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

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
