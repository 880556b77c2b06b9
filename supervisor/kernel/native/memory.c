/* The target's memory, every read bracketed by ID_VALID (supervisor/kernel/memory.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include "native.h"

/* Reads len bytes of the target's memory. The id is checked before and after the read: if it is
   still valid afterwards, the thread was alive all along, so its pid was not reused and the bytes
   are from the process that made the syscall. Returns the count, or -errno (ENOENT: the
   notification is gone; EFAULT: unmapped). */
long sv_read_checked(int listener, uint64_t id, int pid, uint64_t addr, void *buf, size_t len) {
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ENOENT;
    size_t done = 0;
    while (done < len) {
        struct iovec local = {(char *)buf + done, len - done};
        struct iovec remote = {(void *)(uintptr_t)(addr + done), len - done};
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
        struct iovec local = {buf + done, chunk};
        struct iovec remote = {(void *)(uintptr_t)here, chunk};
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n < 0) {
            result = errno == ESRCH ? -ENOENT : -EFAULT;
            break;
        }
        if (n == 0) {
            result = -EFAULT;
            break;
        }
        char *nul = memchr(buf + done, 0, (size_t)n);
        if (nul) {
            result = nul - buf;
            break;
        }
        done += (size_t)n;
    }
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ENOENT;
    return result;
}

/* Writes the spans of buf (nspans pairs of offset and length, in bytes from buf and from addr) to
   the target's memory in one process_vm_writev, between two ID_VALIDs. process_vm_writev honours
   the target's page protections (a read-only buffer is EFAULT, as the kernel's copy_to_user;
   /proc/TID/mem would write through them: FOLL_FORCE). The bytes between spans are left as they
   were: what the kernel's unsafe_put_user conversions (cp_stat64) do with padding. Returns the
   count written, or -errno: ENOENT (the notification is gone before or after the write), EFAULT
   (any byte unwritable, also after a partial write: the target gets EFAULT either way), E2BIG
   (more than SV_WRITE_MAX_SPANS spans). */
long sv_write_spans_checked(int listener, uint64_t id, int pid, uint64_t addr, const void *buf,
                            const uint32_t *spans, int nspans) {
    struct iovec local[SV_WRITE_MAX_SPANS], remote[SV_WRITE_MAX_SPANS];
    if (nspans < 1 || nspans > SV_WRITE_MAX_SPANS) return -E2BIG;
    size_t total = 0;
    for (int i = 0; i < nspans; i++) {
        uint32_t off = spans[2 * i], len = spans[2 * i + 1];
        local[i].iov_base = (char *)buf + off;
        local[i].iov_len = len;
        remote[i].iov_base = (void *)(uintptr_t)(addr + off);
        remote[i].iov_len = len;
        total += len;
    }
    if (addr == 0) return -EFAULT;
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ENOENT;
    ssize_t n =
        process_vm_writev(pid, local, (unsigned long)nspans, remote, (unsigned long)nspans, 0);
    long result = (long)n;
    if (n < 0)
        result = errno == ESRCH ? -ENOENT : -EFAULT;
    else if ((size_t)n != total)
        result = -EFAULT;
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ENOENT;
    return result;
}

long sv_write_checked(int listener, uint64_t id, int pid, uint64_t addr, const void *buf,
                      size_t len) {
    if (len == 0) return 0;
    if (len > UINT32_MAX) return -E2BIG;
    uint32_t span[2] = {0, (uint32_t)len};
    return sv_write_spans_checked(listener, id, pid, addr, buf, span, 1);
}
