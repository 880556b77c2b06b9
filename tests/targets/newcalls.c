/* newcalls: syscalls newer than libseccomp 2.5.4 (Linux 6.8-6.17), by number, and raw numbers
 * the kernel does not know; one result line per op: "OK", "OK:<data>" or the errno name.
 *
 * Usage: newcalls OP ARGS... [OP ARGS...]...
 * x86_64 (syscall(2)):
 *   nr N                          syscall N with zero arguments
 *   x32 N                         syscall N | __X32_SYSCALL_BIT (the filter kills x32)
 *   tree_read DIR NAME            open_tree_attr(AT_FDCWD, DIR, OPEN_TREE_CLONE|AT_RECURSIVE),
 *                                 then openat(treefd, NAME) and read: "OK:<content>"
 *   setacl PATH                   setxattrat(AT_FDCWD, PATH, 0, system.posix_acl_access,
 *                                 u::rw- g::r-- o::r--): the ACL sets the mode to 0644
 *   getx PATH NAME                getxattrat(AT_FDCWD, PATH, 0, NAME): "OK:<value>"
 *   getx_empty PATH NAME          the same through open(PATH, O_RDONLY) and "" + AT_EMPTY_PATH
 *   getx_fd FD NAME               the same on an inherited fd FD with "" + AT_EMPTY_PATH
 *   getx_dirfd DIR LEAF NAME      the same relative to open(DIR, O_PATH|O_DIRECTORY)
 *   getx_nofollow PATH NAME       with AT_SYMLINK_NOFOLLOW
 *   listx PATH                    listxattrat(AT_FDCWD, PATH, 0): "OK:<names, comma-separated>"
 *   removex PATH NAME             removexattrat(AT_FDCWD, PATH, 0, NAME)
 *   fgetattr PATH                 file_getattr(AT_FDCWD, PATH, &attr, 24, 0)
 *   fsetattr PATH                 file_setattr(AT_FDCWD, PATH, &attr (zeroed), 24, 0)
 * i386 (int $0x80; same numbers as x86_64 for these):
 *   i386_nr N, i386_tree_read DIR NAME, i386_setacl PATH, i386_getx PATH NAME,
 *   i386_listx PATH, i386_removex PATH NAME
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_setxattrat 463
#define NR_getxattrat 464
#define NR_listxattrat 465
#define NR_removexattrat 466
#define NR_open_tree_attr 467
#define NR_file_getattr 468
#define NR_file_setattr 469
#define X32_BIT 0x40000000L
#define OPEN_TREE_CLONE 1
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct xattr_args {
    uint64_t value;
    uint32_t size;
    uint32_t flags;
};

/* The kernel clears r8-r11 on the way back from int $0x80; ebp carries the sixth argument. */
static long int80(long nr, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long rdi __asm__("rdi") = e;
    register long r12 __asm__("r12") = f;
    __asm__ volatile("push %%rbp\n\tmov %%r12, %%rbp\n\tint $0x80\n\tpop %%rbp"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "r"(rdi), "r"(r12)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static long sys64(long nr, long a, long b, long c, long d, long e, long f) {
    long r = syscall(nr, a, b, c, d, e, f);
    return r < 0 ? -errno : r;
}

/* Memory below 4 GiB, where an i386 pointer can reach it. */
static char *low(size_t size) {
    char *p =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p == MAP_FAILED) {
        perror("newcalls: mmap MAP_32BIT");
        exit(2);
    }
    return p;
}

static void put_errno(long r) {
    const char *name = strerrorname_np((int)-r);
    printf("%s\n", name ? name : "E?");
}

static char *str(const char *s) {
    char *p = low(4096);
    snprintf(p, 4096, "%s", s);
    return p;
}

#define L(p) ((long)(uintptr_t)(p))

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *buf = low(65536);
    struct xattr_args *args = (struct xattr_args *)low(4096);
    for (int i = 1; i < argc;) {
        const char *op = argv[i++];
        int i386 = strncmp(op, "i386_", 5) == 0;
        if (i386) op += 5;
        long (*call)(long, long, long, long, long, long, long) = i386 ? int80 : sys64;
        const char *a1 = i < argc ? argv[i] : "";
        const char *a2 = i + 1 < argc ? argv[i + 1] : "";
        long r;
        memset(buf, 0, 65536);
        memset(args, 0, sizeof(*args));
        if (!strcmp(op, "nr")) {
            r = call(atol(a1), 0, 0, 0, 0, 0, 0);
            i += 1;
        } else if (!strcmp(op, "x32")) {
            r = call(atol(a1) | X32_BIT, 0, 0, 0, 0, 0, 0);
            i += 1;
        } else if (!strcmp(op, "tree_read")) {
            r = call(NR_open_tree_attr, AT_FDCWD, L(str(a1)), OPEN_TREE_CLONE | AT_RECURSIVE, 0, 0,
                     0);
            i += 2;
            if (r >= 0) {
                int fd = openat((int)r, a2, O_RDONLY);
                if (fd < 0) {
                    r = -errno;
                } else {
                    ssize_t n = read(fd, buf, 4095);
                    printf("OK:%.*s\n", n > 0 ? (int)n : 0, buf);
                    close(fd);
                    continue;
                }
            }
        } else if (!strcmp(op, "setacl")) {
            /* struct posix_acl_xattr_header + 3 entries {u16 tag, u16 perm, u32 id} */
            uint32_t *h = (uint32_t *)buf;
            h[0] = 2; /* POSIX_ACL_XATTR_VERSION */
            uint16_t *e = (uint16_t *)(buf + 4);
            e[0] = 0x01;
            e[1] = 6;
            *(uint32_t *)(e + 2) = 0xffffffff; /* ACL_USER_OBJ rw- */
            e[4] = 0x04;
            e[5] = 4;
            *(uint32_t *)(e + 6) = 0xffffffff; /* ACL_GROUP_OBJ r-- */
            e[8] = 0x20;
            e[9] = 4;
            *(uint32_t *)(e + 10) = 0xffffffff; /* ACL_OTHER r-- */
            args->value = L(buf);
            args->size = 4 + 3 * 8;
            r = call(NR_setxattrat, AT_FDCWD, L(str(a1)), 0, L(str("system.posix_acl_access")),
                     L(args), sizeof(*args));
            i += 1;
        } else if (!strcmp(op, "getx") || !strcmp(op, "getx_nofollow") ||
                   !strcmp(op, "getx_empty")) {
            args->value = L(buf);
            args->size = 4096;
            long dirfd = AT_FDCWD, flags = !strcmp(op, "getx_nofollow") ? AT_SYMLINK_NOFOLLOW : 0;
            char *path = str(a1);
            if (!strcmp(op, "getx_empty")) {
                dirfd = open(a1, O_RDONLY | O_CLOEXEC);
                path = str("");
                flags = AT_EMPTY_PATH;
            }
            r = call(NR_getxattrat, dirfd, L(path), flags, L(str(a2)), L(args), sizeof(*args));
            if (dirfd >= 0) close((int)dirfd);
            i += 2;
            if (r >= 0) {
                printf("OK:%.*s\n", (int)r, buf);
                continue;
            }
        } else if (!strcmp(op, "getx_fd")) {
            args->value = L(buf);
            args->size = 4096;
            r = call(NR_getxattrat, atol(a1), L(str("")), AT_EMPTY_PATH, L(str(a2)), L(args),
                     sizeof(*args));
            i += 2;
            if (r >= 0) {
                printf("OK:%.*s\n", (int)r, buf);
                continue;
            }
        } else if (!strcmp(op, "getx_dirfd")) {
            const char *a3 = i + 2 < argc ? argv[i + 2] : "";
            args->value = L(buf);
            args->size = 4096;
            int dirfd = open(a1, O_PATH | O_DIRECTORY | O_CLOEXEC);
            r = call(NR_getxattrat, dirfd, L(str(a2)), 0, L(str(a3)), L(args), sizeof(*args));
            close(dirfd);
            i += 3;
            if (r >= 0) {
                printf("OK:%.*s\n", (int)r, buf);
                continue;
            }
        } else if (!strcmp(op, "listx")) {
            r = call(NR_listxattrat, AT_FDCWD, L(str(a1)), 0, L(buf), 4096, 0);
            i += 1;
            if (r >= 0) {
                for (long k = 0; k + 1 < r; k++)
                    if (buf[k] == 0) buf[k] = ',';
                printf("OK:%.*s\n", r > 0 ? (int)r - 1 : 0, buf);
                continue;
            }
        } else if (!strcmp(op, "removex")) {
            r = call(NR_removexattrat, AT_FDCWD, L(str(a1)), 0, L(str(a2)), 0, 0);
            i += 2;
        } else if (!strcmp(op, "fgetattr") || !strcmp(op, "fsetattr")) {
            long nr = !strcmp(op, "fgetattr") ? NR_file_getattr : NR_file_setattr;
            r = call(nr, AT_FDCWD, L(str(a1)), L(buf), 24, 0, 0);
            i += 1;
        } else {
            fprintf(stderr, "newcalls: unknown op %s\n", argv[i - 1]);
            return 2;
        }
        if (r < 0)
            put_errno(r);
        else
            printf("OK\n");
    }
    return 0;
}
