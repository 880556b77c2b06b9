/* oci_probe: the same probes inside a container and under `run`, one line each: "NAME OK" or
 * "NAME ERRNO" (the errno's name). Built static (the container's rootfs has no libc).
 *
 * Usage: oci_probe DIR   (DIR/secret is denied by path, DIR/ok allowed)
 * Probes: open-secret, open-ok (inspected: openat), socket-inet, socket-unix (kernel: socket's
 * argument), chroot (kernel: by number), and the same through i386 int $0x80: i386-open-secret
 * (open 5), i386-open-ok, i386-socket-inet (socket 359), i386-chroot (61). Then calls Podman's
 * default profile decides (for `policy import`'s round trip): setns, bpf, kexec_load,
 * personality(0), personality(0x1234), socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT), and i386
 * kexec_load (283), personality (136), io_pgetevents_time64 (416).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static const char *name(int e) {
    switch (e) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENOSYS: return "ENOSYS";
    case EXDEV: return "EXDEV";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    default: return "OTHER";
    }
}

static void report(const char *probe, long r) {
    if (r >= 0) {
        printf("%s OK\n", probe);
        if (strstr(probe, "open") || strstr(probe, "socket")) close((int)r);
    } else {
        printf("%s %s\n", probe, name((int)-r));
    }
}

static long sys(long r) { return r < 0 ? -errno : r; }

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *low =
        mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) return 2;
    char *secret = low, *ok = low + 4096;
    snprintf(secret, 4096, "%s/secret", argv[1]);
    snprintf(ok, 4096, "%s/ok", argv[1]);
    report("open-secret", sys(open(secret, O_RDONLY)));
    report("open-ok", sys(open(ok, O_RDONLY)));
    report("socket-inet", sys(socket(AF_INET, SOCK_STREAM, 0)));
    report("socket-unix", sys(socket(AF_UNIX, SOCK_STREAM, 0)));
    report("chroot", sys(chroot("/nonexistent-oci-probe")));
    report("i386-open-secret", int80(5, (long)secret, O_RDONLY, 0));
    report("i386-open-ok", int80(5, (long)ok, O_RDONLY, 0));
    report("i386-socket-inet", int80(359, AF_INET, SOCK_STREAM, 0));
    report("i386-chroot", int80(61, (long)secret, 0, 0));
    report("setns", sys(syscall(SYS_setns, -1, 0)));
    report("bpf", sys(syscall(SYS_bpf, -1, 0, 0)));
    report("kexec_load", sys(syscall(SYS_kexec_load, 0, 0, 0, 0)));
    report("personality-0", sys(syscall(SYS_personality, 0xffffffff)));
    report("socket-audit", sys(socket(AF_NETLINK, SOCK_RAW, 9)));
    report("i386-kexec_load", int80(283, 0, 0, 0));
    report("i386-io_pgetevents_time64", int80(416, 0, 0, 0));
    /* Last: where allowed, they change the personality. */
    report("personality-odd", sys(syscall(SYS_personality, 0x1234)));
    report("i386-personality-odd", int80(136, 0x1234, 0, 0));
    return 0;
}
