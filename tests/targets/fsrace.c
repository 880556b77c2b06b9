/* fsrace: filesystem-changing syscalls against a thread that flips their path buffer.
 *
 * Usage: fsrace race OP ROOT N [i386]     N calls of OP (for rename-dir: N seconds)
 *        fsrace call OP PATH [ARG]...      one call, prints "OK" or the errno name
 *
 * race: ROOT holds the directories "a" (allowed) and "d" (denied), whose names differ in one
 * byte, so the flipping thread's buffer always reads ROOT/a/... or ROOT/d/... in full. Each
 * call's effect on the allowed side is undone at once with another buffer (no race there). The
 * last line is "OK:ok=N,denied=D,other=O,escaped=E": E counts calls whose effect reached the
 * denied side as far as the target can see (a renamed directory holding the secret marker, a
 * hard link to d/f, whose dev and ino the test writes into a/d-ino). The test then checks the denied side from outside. With "i386" the raced
 * call is made with int $0x80 (the i386 twins), its strings below 4 GiB.
 *
 * OPs: rename-dir, rename, unlink, mkdir, chmod, link, symlink, utimensat, setxattr, truncate,
 *      mknod, chown.
 * call OPs (see call() for the full list): unlink PATH, chmod PATH MODE(octal), mkdir PATH MODE, mknod-fifo PATH MODE,
 *      rename A B, chown PATH UID GID, i386-unlink PATH, i386-chmod PATH MODE, i386-mkdir PATH
 *      MODE, i386-chown16 PATH UID GID, i386-truncate64 PATH LEN, i386-utimes PATH SEC,
 *      i386-setxattr PATH NAME VALUE, i386-rename A B, i386-link A B, i386-symlink T P.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static char *buf; /* the raced path, flipped between ROOT/a/... and ROOT/d/... */
static size_t flip_at;
static atomic_int stop;

static void *flipper(void *arg) {
    (void)arg;
    volatile char *p = buf;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        p[flip_at] = 'd';
        p[flip_at] = 'a';
    }
    return NULL;
}

/* The kernel clears r8-r11 on the way back from int $0x80. */
static long int80(long nr, long a, long b, long c, long d, long e) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static char *low_page(void) {
    char *p =
        mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p == MAP_FAILED) {
        perror("fsrace: mmap");
        exit(2);
    }
    return p;
}

static long ret_of(long r) { return r < 0 ? -errno : 0; }
static long r80(long r) { return r < 0 ? r : 0; }
#define L(p) ((long)(unsigned long)(p))

static const char *errname(int e) {
    switch (e) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EBUSY: return "EBUSY";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EXDEV: return "EXDEV";
    case EFAULT: return "EFAULT";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENODATA: return "ENODATA";
    case E2BIG: return "E2BIG";
    case ENOSPC: return "ENOSPC";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    default: return "EOTHER";
    }
}

static int race(const char *op, const char *root, long n, int i386) {
    char *low = low_page(); /* every string an i386 call takes, below 4 GiB */
    buf = low;
    char *other = low + 4096;
    char a_path[4096], secret_marker[] = "TOPSECRET-e2e";
    int rename_dir = !strcmp(op, "rename-dir");
    const char *leaf = rename_dir               ? "sub"
                       : !strcmp(op, "mkdir")   ? "n"
                       : !strcmp(op, "symlink") ? "s"
                       : !strcmp(op, "mknod")   ? "p"
                                                : "f";
    snprintf(buf, 4096, "%s/a/%s", root, leaf);
    snprintf(a_path, sizeof a_path, "%s/a/%s", root, leaf);
    flip_at = strlen(root) + 1;
    /* d/f's (dev, ino), which the target may not stat, written by the test into a/d-ino */
    char ino_file[4096];
    snprintf(ino_file, sizeof ino_file, "%s/a/d-ino", root);
    FILE *inof = fopen(ino_file, "r");
    unsigned long long dev = 0, ino = 0;
    if (inof) {
        if (fscanf(inof, "%llu %llu", &dev, &ino) != 2) dev = ino = 0;
        fclose(inof);
    }
    if (!strcmp(op, "link") && ino == 0) return 2;
    /* the other buffer: where renames go, the new name of a link, a symlink's target ... */
    if (rename_dir || !strcmp(op, "rename"))
        snprintf(other, 4096, "%s/moved", root);
    else if (!strcmp(op, "link"))
        snprintf(other, 4096, "%s/a/l", root);
    else if (!strcmp(op, "setxattr"))
        snprintf(other, 4096, "user.race");
    else
        snprintf(other, 4096, "target");
    char *times = other + 2048; /* utimensat: 2 x {sec, nsec}, 64- or 32-bit */
    char *one = other + 3072;   /* setxattr's value */
    one[0] = '1';
    if (i386) {
        int32_t *t = (int32_t *)times;
        t[0] = t[2] = 1000000000;
        t[1] = t[3] = 0;
    } else {
        int64_t *t = (int64_t *)times;
        t[0] = t[2] = 1000000000;
        t[1] = t[3] = 0;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, flipper, NULL) != 0) return 2;
    long ok = 0, denied = 0, oth = 0, escaped = 0, calls = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (rename_dir) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec >= n) break;
        } else if (calls >= n) {
            break;
        }
        calls++;
        long r;
        if (rename_dir || !strcmp(op, "rename"))
            r = i386 ? r80(int80(38, L(buf), L(other), 0, 0, 0)) : ret_of(rename(buf, other));
        else if (!strcmp(op, "unlink"))
            r = i386 ? r80(int80(10, L(buf), 0, 0, 0, 0)) : ret_of(unlink(buf));
        else if (!strcmp(op, "mkdir"))
            r = i386 ? r80(int80(39, L(buf), 0755, 0, 0, 0)) : ret_of(mkdir(buf, 0755));
        else if (!strcmp(op, "chmod"))
            r = i386 ? r80(int80(15, L(buf), 0606, 0, 0, 0)) : ret_of(chmod(buf, 0606));
        else if (!strcmp(op, "link"))
            r = i386 ? r80(int80(9, L(buf), L(other), 0, 0, 0)) : ret_of(link(buf, other));
        else if (!strcmp(op, "symlink"))
            r = i386 ? r80(int80(83, L(other), L(buf), 0, 0, 0)) : ret_of(symlink(other, buf));
        else if (!strcmp(op, "utimensat"))
            r = i386 ? r80(int80(320, AT_FDCWD, L(buf), L(times), 0, 0))
                     : ret_of(syscall(SYS_utimensat, AT_FDCWD, buf, times, 0));
        else if (!strcmp(op, "setxattr"))
            r = i386 ? r80(int80(226, L(buf), L(other), L(one), 1, 0))
                     : ret_of(setxattr(buf, other, one, 1, 0));
        else if (!strcmp(op, "truncate"))
            r = i386 ? r80(int80(92, L(buf), 0, 0, 0, 0)) : ret_of(truncate(buf, 0));
        else if (!strcmp(op, "mknod"))
            r = i386 ? r80(int80(14, L(buf), S_IFIFO | 0644, 0, 0, 0))
                     : ret_of(mknod(buf, S_IFIFO | 0644, 0));
        else if (!strcmp(op, "chown"))
            r = i386 ? r80(int80(212, L(buf), 65534, 65534, 0, 0))
                     : ret_of(chown(buf, 65534, 65534));
        else
            return 2;
        if (r == -EACCES) {
            denied++;
            continue;
        }
        if (r != 0) {
            oth++;
            continue;
        }
        ok++;
        /* undo on the allowed side, with fixed buffers */
        if (rename_dir || !strcmp(op, "rename")) {
            char m[4200];
            snprintf(m, sizeof m, "%s/marker", other);
            int fd = open(rename_dir ? m : other, O_RDONLY);
            char got[64] = {0};
            if (fd >= 0) {
                if (read(fd, got, sizeof got - 1) < 0) got[0] = 0;
                close(fd);
            }
            if (strstr(got, secret_marker)) escaped++;
            if (rename(other, a_path) != 0) return 3;
        } else if (!strcmp(op, "unlink")) {
            int fd = open(a_path, O_CREAT | O_WRONLY, 0644);
            if (fd < 0) return 3;
            close(fd);
        } else if (!strcmp(op, "mkdir")) {
            if (rmdir(a_path) != 0) return 3;
        } else if (!strcmp(op, "chmod")) {
            if (chmod(a_path, 0644) != 0) return 3;
        } else if (!strcmp(op, "link")) {
            struct stat st;
            if (stat(other, &st) == 0 && st.st_ino == ino && st.st_dev == dev) escaped++;
            if (unlink(other) != 0) return 3;
        } else if (!strcmp(op, "symlink") || !strcmp(op, "mknod")) {
            if (unlink(a_path) != 0) return 3;
        } else if (!strcmp(op, "setxattr")) {
            if (removexattr(a_path, other) != 0) return 3;
        }
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("OK:ok=%ld,denied=%ld,other=%ld,escaped=%ld\n", ok, denied, oth, escaped);
    return 0;
}

static int call(int argc, char **argv) {
    const char *op = argv[2];
    char *low = low_page();
    char *p = low, *q = low + 2048, *v = low + 4096;
    snprintf(p, 2048, "%s", argv[3]);
    if (argc > 4) snprintf(q, 2048, "%s", argv[4]);
    if (argc > 5) snprintf(v, 2048, "%s", argv[5]);
    long r;
    if (!strcmp(op, "unlink"))
        r = ret_of(unlink(p));
    else if (!strcmp(op, "chmod"))
        r = ret_of(chmod(p, strtol(q, NULL, 8)));
    else if (!strcmp(op, "mkdir"))
        r = ret_of(mkdir(p, strtol(q, NULL, 8)));
    else if (!strcmp(op, "mknod-fifo"))
        r = ret_of(mknod(p, S_IFIFO | strtol(q, NULL, 8), 0));
    else if (!strcmp(op, "rename"))
        r = ret_of(rename(p, q));
    else if (!strcmp(op, "chown"))
        r = ret_of(chown(p, atoi(q), atoi(v)));
    else if (!strcmp(op, "renameat2"))
        r = ret_of(syscall(SYS_renameat2, AT_FDCWD, p, AT_FDCWD, q, atoi(v)));
    else if (!strcmp(op, "link"))
        r = ret_of(link(p, q));
    else if (!strcmp(op, "linkat-follow"))
        r = ret_of(linkat(AT_FDCWD, p, AT_FDCWD, q, AT_SYMLINK_FOLLOW));
    else if (!strcmp(op, "linkat-empty")) {
        int fd = open(p, O_PATH | O_CLOEXEC);
        r = fd < 0 ? -errno : ret_of(linkat(fd, "", AT_FDCWD, q, AT_EMPTY_PATH));
    } else if (!strcmp(op, "linkat-badflag"))
        r = ret_of(syscall(SYS_linkat, AT_FDCWD, p, AT_FDCWD, q, 0x8000));
    else if (!strcmp(op, "symlink"))
        r = ret_of(symlink(p, q));
    else if (!strcmp(op, "unlinkat"))
        r = ret_of(syscall(SYS_unlinkat, AT_FDCWD, p, atoi(q)));
    else if (!strcmp(op, "fchmodat2-nofollow"))
        r = ret_of(syscall(452, AT_FDCWD, p, strtol(q, NULL, 8), AT_SYMLINK_NOFOLLOW));
    else if (!strcmp(op, "fchmodat2-empty")) {
        int fd = open(p, O_PATH | O_CLOEXEC);
        r = fd < 0 ? -errno : ret_of(syscall(452, fd, "", strtol(q, NULL, 8), AT_EMPTY_PATH));
    } else if (!strcmp(op, "lchown"))
        r = ret_of(lchown(p, atoi(q), atoi(v)));
    else if (!strcmp(op, "fchownat-badflag"))
        r = ret_of(syscall(SYS_fchownat, AT_FDCWD, p, 0, 0, 0x8000));
    else if (!strcmp(op, "utimensat-omit")) {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {atol(q), 0}};
        r = ret_of(syscall(SYS_utimensat, AT_FDCWD, p, ts, 0));
    } else if (!strcmp(op, "utimensat-badnsec")) {
        struct timespec ts[2] = {{0, 1000000000}, {0, 0}};
        r = ret_of(syscall(SYS_utimensat, AT_FDCWD, p, ts, 0));
    } else if (!strcmp(op, "utimensat-nofollow")) {
        struct timespec ts[2] = {{atol(q), 0}, {atol(q), 0}};
        r = ret_of(syscall(SYS_utimensat, AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW));
    } else if (!strcmp(op, "utimensat-fd")) {
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        struct timespec ts[2] = {{atol(q), 0}, {atol(q), 0}};
        r = fd < 0 ? -errno : ret_of(syscall(SYS_utimensat, fd, NULL, ts, 0));
    } else if (!strcmp(op, "utimensat-cwd-null"))
        r = ret_of(syscall(SYS_utimensat, AT_FDCWD, NULL, NULL, 0));
    else if (!strcmp(op, "utimes")) {
        struct timeval tv[2] = {{atol(q), 500000}, {atol(q), 250000}};
        r = ret_of(syscall(SYS_utimes, p, tv));
    } else if (!strcmp(op, "utimes-badusec")) {
        struct timeval tv[2] = {{0, 1000000}, {0, 0}};
        r = ret_of(syscall(SYS_utimes, p, tv));
    } else if (!strcmp(op, "truncate"))
        r = ret_of(truncate(p, atol(q)));
    else if (!strcmp(op, "setxattr-size")) {
        static char big[70000];
        memset(big, 'x', sizeof big);
        r = ret_of(syscall(SYS_setxattr, p, q, big, (size_t)atol(v), 0));
    } else if (!strcmp(op, "setxattr"))
        r = ret_of(setxattr(p, q, v, strlen(v), 0));
    else if (!strcmp(op, "setxattr-create"))
        r = ret_of(setxattr(p, q, v, strlen(v), XATTR_CREATE));
    else if (!strcmp(op, "lsetxattr"))
        r = ret_of(lsetxattr(p, q, v, strlen(v), 0));
    else if (!strcmp(op, "setxattrat")) {
        struct {
            uint64_t value;
            uint32_t size, flags;
            uint64_t extra;
        } args = {(uint64_t)(uintptr_t)v, (uint32_t)strlen(v), 0, 0};
        r = ret_of(syscall(463, AT_FDCWD, p, 0, q, &args, 16));
    } else if (!strcmp(op, "setxattrat-small")) {
        uint64_t args[2] = {0, 0};
        r = ret_of(syscall(463, AT_FDCWD, p, 0, q, args, 8));
    } else if (!strcmp(op, "setxattrat-extra")) {
        struct {
            uint64_t value;
            uint32_t size, flags;
            uint64_t extra;
        } args = {(uint64_t)(uintptr_t)v, (uint32_t)strlen(v), 0, 1};
        r = ret_of(syscall(463, AT_FDCWD, p, 0, q, &args, 24));
    } else if (!strcmp(op, "removexattr"))
        r = ret_of(removexattr(p, q));
    else if (!strcmp(op, "removexattrat"))
        r = ret_of(syscall(466, AT_FDCWD, p, 0, q));
    else if (!strcmp(op, "mknodat-fifo"))
        r = ret_of(mknodat(AT_FDCWD, p, S_IFIFO | strtol(q, NULL, 8), 0));
    else if (!strcmp(op, "i386-unlink"))
        r = r80(int80(10, L(p), 0, 0, 0, 0));
    else if (!strcmp(op, "i386-chmod"))
        r = r80(int80(15, L(p), strtol(q, NULL, 8), 0, 0, 0));
    else if (!strcmp(op, "i386-mkdir"))
        r = r80(int80(39, L(p), strtol(q, NULL, 8), 0, 0, 0));
    else if (!strcmp(op, "i386-chown16"))
        r = r80(int80(182, L(p), atoi(q) & 0xffff, atoi(v) & 0xffff, 0, 0));
    else if (!strcmp(op, "i386-truncate64")) {
        long long len = atoll(q);
        r = r80(int80(193, L(p), (long)(len & 0xffffffff), (long)(len >> 32), 0, 0));
    } else if (!strcmp(op, "i386-utimes")) {
        int32_t *tv = (int32_t *)(low + 6000);
        tv[0] = tv[2] = atoi(q);
        tv[1] = tv[3] = 0;
        r = r80(int80(271, L(p), L(tv), 0, 0, 0));
    } else if (!strcmp(op, "i386-utime")) {
        int32_t *tb = (int32_t *)(low + 6000); /* struct old_utimbuf32 */
        tb[0] = atoi(q);
        tb[1] = atoi(q) + 1;
        r = r80(int80(30, L(p), L(tb), 0, 0, 0));
    } else if (!strcmp(op, "i386-utimensat64")) {
        int64_t *ts = (int64_t *)(low + 6000); /* struct __kernel_timespec[2] */
        ts[0] = atoll(q);
        ts[1] = 7;
        ts[2] = atoll(q) + 2;
        ts[3] = (int64_t)0xffffffff00000009LL; /* compat: only the low 32 bits of tv_nsec count */
        r = r80(int80(412, AT_FDCWD, L(p), L(ts), 0, 0));
    } else if (!strcmp(op, "i386-setxattr"))
        r = r80(int80(226, L(p), L(q), L(v), (long)strlen(v), 0));
    else if (!strcmp(op, "i386-rename"))
        r = r80(int80(38, L(p), L(q), 0, 0, 0));
    else if (!strcmp(op, "i386-link"))
        r = r80(int80(9, L(p), L(q), 0, 0, 0));
    else if (!strcmp(op, "i386-symlink"))
        r = r80(int80(83, L(p), L(q), 0, 0, 0));
    else
        return 2;
    printf("%s\n", r == 0 ? "OK" : errname((int)-r));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 5 && !strcmp(argv[1], "race"))
        return race(argv[2], argv[3], atol(argv[4]), argc > 5 && !strcmp(argv[5], "i386"));
    if (argc >= 4 && !strcmp(argv[1], "call")) return call(argc, argv);
    fprintf(stderr, "usage: fsrace race OP ROOT N [i386] | fsrace call OP PATH [ARG]...\n");
    return 2;
}
