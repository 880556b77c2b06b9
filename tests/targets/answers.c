/* answers: the stat, statx, statfs, access, readlink and getxattr families, x86_64 and i386
 * (int $0x80), for the answered-syscall tests (tests/run/test_run_answers.py). Commands, one
 * output line each:
 *
 *   dropuid UID            setresgid/setresuid to UID (raw syscalls): "OK" or the errno name
 *   realuid UID            the real uid and gid only (effective and saved stay 0): access(2)
 *                          then checks with UID, faccessat2(AT_EACCESS) with root
 *   dump OP PATH           OP once on PATH, its output buffer filled with 0xAA before:
 *                          "RET <ret or errno name> <hex of the buffer>"
 *   efault OP PATH         OP with a read-only output buffer: "OK" or the errno name
 *   race OP A D N KA KD    a thread flips the path buffer between A and D (same length) while
 *                          OP runs N times; each result's key (stat: the size; statfs: f_blocks;
 *                          readlink, getxattr: the bytes; listxattr: the names; access: "0"; an
 *                          error: E:NAME) is counted: "calls=N allowed=<key KA> leaked=<key KD>
 *                          refused=<other E:> other=<anything else>"
 *
 * OPs: stat lstat newfstatat newfstatat-nofollow statx statx-nofollow statfs readlink readlinkat
 * access faccessat faccessat2 getxattr lgetxattr getxattrat listxattr listxattrat, and the i386
 * ones stat32 lstat32 oldstat32 stat64-32 lstat64-32 fstatat64-32 statx32 statfs32 statfs64-32
 * readlink32 access32 getxattr32. Paths and buffers live below 4 GiB (MAP_32BIT) so that both
 * ABIs can use them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUF 512
#define XNAME "user.tag"

static char *path, *buf, *name;
static const char *flip_a, *flip_d;
static size_t flip_len;
static atomic_int stop;

static long int80(long nr, long a, long b, long c, long d) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static long int80_6(long nr, long a, long b, long c, long d, long e) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static char *low(size_t len, int prot) {
    char *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p == MAP_FAILED) {
        perror("answers: mmap");
        exit(2);
    }
    return p;
}

static long sys(long r) { return r < 0 ? -errno : r; }

/* What an op writes: 'S' a struct (key: the size at the ABI's offset), 'B' bytes (key: the
 * first ret bytes), 'N' nothing (access). */
struct op {
    const char *name;
    char out;
    int size_off, size_len; /* where st_size/stx_size is */
};

static const struct op OPS[] = {
    {"stat", 'S', 48, 8},       {"lstat", 'S', 48, 8},
    {"newfstatat", 'S', 48, 8}, {"newfstatat-nofollow", 'S', 48, 8},
    {"statx", 'S', 40, 8},      {"statx-nofollow", 'S', 40, 8},
    {"readlink", 'B', 0, 0},    {"readlinkat", 'B', 0, 0},
    {"access", 'N', 0, 0},      {"faccessat", 'N', 0, 0},
    {"faccessat2", 'N', 0, 0},  {"getxattr", 'B', 0, 0},
    {"lgetxattr", 'B', 0, 0},   {"getxattrat", 'B', 0, 0},
    {"listxattr", 'B', 0, 0},   {"listxattrat", 'B', 0, 0},
    {"stat32", 'S', 20, 4},     {"lstat32", 'S', 20, 4},
    {"oldstat32", 'S', 16, 4},  {"stat64-32", 'S', 44, 8},
    {"lstat64-32", 'S', 44, 8}, {"fstatat64-32", 'S', 44, 8},
    {"statx32", 'S', 40, 8},    {"readlink32", 'B', 0, 0},
    {"access32", 'N', 0, 0},    {"getxattr32", 'B', 0, 0},
    {"statfs", 'S', 16, 8},     {"statfs32", 'S', 8, 4},
    {"statfs64-32", 'S', 8, 8},
};

static const struct op *find(const char *op) {
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (!strcmp(OPS[i].name, op)) return &OPS[i];
    fprintf(stderr, "answers: unknown op %s\n", op);
    exit(2);
}

/* Runs op on the path buffer, output into out (BUF bytes): ret or -errno. */
static long run(const char *op, char *out) {
    long p = (long)(unsigned long)path, o = (long)(unsigned long)out;
    long n = (long)(unsigned long)name;
    struct {
        unsigned long long value;
        unsigned int size, flags;
    } xa = {(unsigned long)out, BUF, 0};
    if (!strcmp(op, "stat")) return sys(syscall(SYS_stat, path, out));
    if (!strcmp(op, "lstat")) return sys(syscall(SYS_lstat, path, out));
    if (!strcmp(op, "newfstatat")) return sys(syscall(SYS_newfstatat, AT_FDCWD, path, out, 0));
    if (!strcmp(op, "newfstatat-nofollow"))
        return sys(syscall(SYS_newfstatat, AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW));
    if (!strcmp(op, "statx"))
        return sys(syscall(SYS_statx, AT_FDCWD, path, 0, STATX_BASIC_STATS | STATX_BTIME, out));
    if (!strcmp(op, "statx-nofollow"))
        return sys(syscall(SYS_statx, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC,
                           0xffffffffu & ~0x80000000u, out));
    if (!strcmp(op, "readlink")) return sys(syscall(SYS_readlink, path, out, 5));
    if (!strcmp(op, "readlinkat")) return sys(syscall(SYS_readlinkat, AT_FDCWD, path, out, BUF));
    if (!strcmp(op, "access")) return sys(syscall(SYS_access, path, X_OK));
    if (!strcmp(op, "faccessat")) return sys(syscall(SYS_faccessat, AT_FDCWD, path, X_OK));
    if (!strcmp(op, "faccessat2"))
        return sys(syscall(SYS_faccessat2, AT_FDCWD, path, X_OK, AT_EACCESS));
    if (!strcmp(op, "getxattr")) return sys(syscall(SYS_getxattr, path, name, out, BUF));
    if (!strcmp(op, "lgetxattr")) return sys(syscall(SYS_lgetxattr, path, name, out, BUF));
    if (!strcmp(op, "getxattrat"))
        return sys(syscall(464, AT_FDCWD, path, 0, name, &xa, sizeof xa));
    if (!strcmp(op, "listxattr")) return sys(syscall(SYS_listxattr, path, out, BUF));
    if (!strcmp(op, "listxattrat")) return sys(syscall(465, AT_FDCWD, path, 0, out, BUF));
    if (!strcmp(op, "statfs")) return sys(syscall(SYS_statfs, path, out));
    if (!strcmp(op, "statfs32")) return int80(99, p, o, 0, 0);
    if (!strcmp(op, "statfs64-32")) return int80(268, p, 84, o, 0);
    if (!strcmp(op, "stat32")) return int80(106, p, o, 0, 0);
    if (!strcmp(op, "lstat32")) return int80(107, p, o, 0, 0);
    if (!strcmp(op, "oldstat32")) return int80(18, p, o, 0, 0);
    if (!strcmp(op, "stat64-32")) return int80(195, p, o, 0, 0);
    if (!strcmp(op, "lstat64-32")) return int80(196, p, o, 0, 0);
    if (!strcmp(op, "fstatat64-32")) return int80(300, AT_FDCWD, p, o, 0);
    if (!strcmp(op, "statx32"))
        return int80_6(383, AT_FDCWD, p, 0, STATX_BASIC_STATS | STATX_BTIME, o);
    if (!strcmp(op, "readlink32")) return int80(85, p, o, BUF, 0);
    if (!strcmp(op, "access32")) return int80(33, p, X_OK, 0, 0);
    if (!strcmp(op, "getxattr32")) return int80(229, p, n, o, BUF);
    fprintf(stderr, "answers: unknown op %s\n", op);
    exit(2);
}

static const char *errname(long err) {
    const char *s = strerrorname_np((int)err);
    return s ? s : "E?";
}

/* The key of one result (see the usage above), in key (256 bytes). */
static void key_of(const struct op *op, long ret, const char *out, char *key) {
    if (ret < 0) {
        snprintf(key, 256, "E:%s", errname(-ret));
    } else if (op->out == 'S') {
        long long size = 0;
        memcpy(&size, out + op->size_off, (size_t)op->size_len);
        snprintf(key, 256, "%lld", size);
    } else if (op->out == 'B') {
        size_t len = ret < 255 ? (size_t)ret : 255;
        memcpy(key, out, len);
        key[len] = 0;
        for (size_t i = 0; i < len; i++)
            if (!key[i]) key[i] = ','; /* listxattr's NULs */
    } else {
        snprintf(key, 256, "%ld", ret);
    }
}

static void *flipper(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        memcpy(path, flip_d, flip_len);
        __asm__ volatile("" ::: "memory");
        memcpy(path, flip_a, flip_len);
        __asm__ volatile("" ::: "memory");
    }
    return NULL;
}

static void race(const char *opname, const char *a, const char *d, long n, const char *ka,
                 const char *kd) {
    const struct op *op = find(opname);
    flip_a = a;
    flip_d = d;
    flip_len = strlen(a);
    if (strlen(d) != flip_len || flip_len >= 4096) {
        fprintf(stderr, "answers: the two paths must have the same length\n");
        exit(2);
    }
    memcpy(path, a, flip_len + 1);
    atomic_store(&stop, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, flipper, NULL) != 0) exit(2);
    long allowed = 0, leaked = 0, refused = 0, other = 0;
    char key[256];
    for (long i = 0; i < n; i++) {
        long ret = run(opname, buf);
        key_of(op, ret, buf, key);
        if (!strcmp(key, ka))
            allowed++;
        else if (!strcmp(key, kd))
            leaked++;
        else if (!strncmp(key, "E:", 2))
            refused++;
        else {
            if (other < 5) fprintf(stderr, "answers: other result %s\n", key);
            other++;
        }
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("calls=%ld allowed=%ld leaked=%ld refused=%ld other=%ld\n", n, allowed, leaked, refused,
           other);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    path = low(4096, PROT_READ | PROT_WRITE);
    buf = low(4096, PROT_READ | PROT_WRITE);
    name = low(4096, PROT_READ | PROT_WRITE);
    char *ro = low(4096, PROT_READ);
    strcpy(name, XNAME);
    for (int i = 1; i < argc;) {
        const char *cmd = argv[i];
        if (!strcmp(cmd, "dropuid") && i + 1 < argc) {
            long id = atol(argv[i + 1]);
            long r = syscall(SYS_setgroups, 0, NULL);
            if (r == 0) r = syscall(SYS_setresgid, id, id, id);
            if (r == 0) r = syscall(SYS_setresuid, id, id, id);
            puts(r == 0 ? "OK" : errname(errno));
            i += 2;
        } else if (!strcmp(cmd, "realuid") && i + 1 < argc) {
            long id = atol(argv[i + 1]);
            long r = syscall(SYS_setresgid, id, 0, 0);
            if (r == 0) r = syscall(SYS_setresuid, id, 0, 0);
            puts(r == 0 ? "OK" : errname(errno));
            i += 2;
        } else if (!strcmp(cmd, "dump") && i + 2 < argc) {
            snprintf(path, 4096, "%s", argv[i + 2]);
            memset(buf, 0xAA, BUF);
            long r = run(argv[i + 1], buf);
            printf("RET %s ", r < 0 ? errname(-r) : "");
            if (r >= 0) printf("%ld ", r);
            for (int j = 0; j < BUF; j++) printf("%02x", (unsigned char)buf[j]);
            printf("\n");
            i += 3;
        } else if (!strcmp(cmd, "efault") && i + 2 < argc) {
            snprintf(path, 4096, "%s", argv[i + 2]);
            long r = run(argv[i + 1], ro);
            puts(r < 0 ? errname(-r) : "OK");
            i += 3;
        } else if (!strcmp(cmd, "race") && i + 6 < argc) {
            race(argv[i + 1], argv[i + 2], argv[i + 3], atol(argv[i + 4]), argv[i + 5],
                 argv[i + 6]);
            i += 7;
        } else {
            fprintf(stderr, "answers: bad command at %s\n", cmd);
            return 2;
        }
    }
    return 0;
}
