/* sysops: run a sequence of syscalls given on the command line, one result line each.
 *
 * Usage: sysops OP [ARGS...] [OP [ARGS...]]...
 * Every op prints one line: "OK", "OK:<detail>" or the errno name ("EACCES", "ENOENT", ...).
 * Opens read the file and print "OK:<first line of its content>".
 * The string "{fd}" in a path argument is replaced by the number of the directory fd saved by
 * the last `dirfd` / `pathfd` op (for /proc/self/fd/N and /dev/fd/N tricks).
 *
 * Ops:
 *   chdir DIR                    open PATH (SYS_open)       openat PATH (AT_FDCWD)
 *   dirfd DIR (O_DIRECTORY)      pathfd DIR (O_PATH)        openat_fd PATH (relative to saved fd)
 *   openat2 cwd|fd PATH RESOLVE  RESOLVE: 0 or names joined by ',': beneath,in_root,
 *                                no_symlinks,no_magiclinks,no_xdev
 *   creat PATH (O_CREAT|O_WRONLY, writes "created")    stat PATH -> OK:uid:gid
 *   mkdir PATH   socket inet|inet6|unix   ptrace (PTRACE_TRACEME)
 *   link OLD NEW   linkat OLD NEW   linkat_follow OLD NEW   rename OLD NEW   renameat2 OLD NEW
 *   rename_exchange A B (renameat2 RENAME_EXCHANGE)
 *   symlink TARGET LINK   unlink PATH   chroot DIR
 *   open_badptr (SYS_open on an unmapped address)   open_long N (a path of N bytes: "/" + "a"s)
 *   dropuid N (setgroups([]), setresgid(N), setresuid(N))
 *   i386_open PATH (int $0x80, eax=5)   i386_mkdir PATH (int $0x80, eax=39)
 *   raise SIG   exit N   sleep_ms N
 *   spawn ARGV... (fork + execv of all remaining args; prints OK:exit=N or OK:signal=N)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static int saved_fd = -1;

static const char *subst(const char *path) {
    static char out[4096];
    const char *hit = strstr(path, "{fd}");
    if (!hit) return path;
    snprintf(out, sizeof out, "%.*s%d%s", (int)(hit - path), path, saved_fd, hit + 4);
    return out;
}

static unsigned long long resolve_flags(const char *spec) {
    unsigned long long flags = 0;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", spec);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        if (!strcmp(tok, "0"))
            continue;
        else if (!strcmp(tok, "beneath"))
            flags |= RESOLVE_BENEATH;
        else if (!strcmp(tok, "in_root"))
            flags |= RESOLVE_IN_ROOT;
        else if (!strcmp(tok, "no_symlinks"))
            flags |= RESOLVE_NO_SYMLINKS;
        else if (!strcmp(tok, "no_magiclinks"))
            flags |= RESOLVE_NO_MAGICLINKS;
        else if (!strcmp(tok, "no_xdev"))
            flags |= RESOLVE_NO_XDEV;
        else {
            fprintf(stderr, "sysops: unknown resolve flag %s\n", tok);
            exit(2);
        }
    }
    return flags;
}

/* A copy of s below 4 GiB, where an i386 pointer can reach it. */
static char *low_copy(const char *s) {
    char *low =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) {
        perror("sysops: mmap MAP_32BIT");
        exit(2);
    }
    snprintf(low, 4096, "%s", s);
    return low;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int i = 1;
    while (i < argc) {
        const char *op = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : NULL;
        const char *b = i + 2 < argc ? argv[i + 2] : NULL;
        int used = 0;
        if (!strcmp(op, "chdir")) {
            used = need(argc, i, 1, op);
            print_status(chdir(subst(a)));
        } else if (!strcmp(op, "open")) {
            used = need(argc, i, 1, op);
            print_open((int)syscall(SYS_open, subst(a), O_RDONLY));
        } else if (!strcmp(op, "openat")) {
            used = need(argc, i, 1, op);
            print_open((int)syscall(SYS_openat, AT_FDCWD, subst(a), O_RDONLY));
        } else if (!strcmp(op, "dirfd") || !strcmp(op, "pathfd")) {
            used = need(argc, i, 1, op);
            int flags = O_DIRECTORY | (op[0] == 'p' ? O_PATH : O_RDONLY);
            int fd = (int)syscall(SYS_openat, AT_FDCWD, subst(a), flags);
            if (fd < 0) {
                print_errno(errno);
            } else {
                if (saved_fd >= 0) close(saved_fd);
                saved_fd = fd;
                printf("OK:%d\n", fd);
            }
        } else if (!strcmp(op, "openat_fd")) {
            used = need(argc, i, 1, op);
            print_open((int)syscall(SYS_openat, saved_fd, subst(a), O_RDONLY));
        } else if (!strcmp(op, "openat2")) {
            used = need(argc, i, 3, op);
            struct open_how how = {.flags = O_RDONLY, .resolve = resolve_flags(argv[i + 3])};
            int dfd = !strcmp(a, "fd") ? saved_fd : AT_FDCWD;
            print_open((int)syscall(SYS_openat2, dfd, subst(b), &how, sizeof how));
        } else if (!strcmp(op, "creat")) {
            used = need(argc, i, 1, op);
            int fd = (int)syscall(SYS_openat, AT_FDCWD, subst(a), O_CREAT | O_WRONLY, 0644);
            if (fd < 0) {
                print_errno(errno);
            } else {
                ssize_t w = write(fd, "created\n", 8);
                close(fd);
                if (w != 8)
                    print_errno(errno);
                else
                    printf("OK\n");
            }
        } else if (!strcmp(op, "stat")) {
            used = need(argc, i, 1, op);
            struct stat st;
            if (stat(subst(a), &st) < 0)
                print_errno(errno);
            else
                printf("OK:%u:%u\n", st.st_uid, st.st_gid);
        } else if (!strcmp(op, "mkdir")) {
            used = need(argc, i, 1, op);
            print_status(syscall(SYS_mkdir, subst(a), 0755));
        } else if (!strcmp(op, "socket")) {
            used = need(argc, i, 1, op);
            int domain = !strcmp(a, "inet") ? AF_INET : !strcmp(a, "inet6") ? AF_INET6 : AF_UNIX;
            int fd = socket(domain, SOCK_STREAM, 0);
            print_status(fd);
            if (fd >= 0) close(fd);
        } else if (!strcmp(op, "ptrace")) {
            print_status(syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0));
        } else if (!strcmp(op, "link")) {
            used = need(argc, i, 2, op);
            char old[4096];
            snprintf(old, sizeof old, "%s", subst(a));
            print_status(syscall(SYS_link, old, subst(b)));
        } else if (!strcmp(op, "linkat") || !strcmp(op, "linkat_follow")) {
            used = need(argc, i, 2, op);
            char old[4096];
            snprintf(old, sizeof old, "%s", subst(a));
            int flags = strchr(op, '_') ? AT_SYMLINK_FOLLOW : 0;
            print_status(syscall(SYS_linkat, AT_FDCWD, old, AT_FDCWD, subst(b), flags));
        } else if (!strcmp(op, "rename")) {
            used = need(argc, i, 2, op);
            char old[4096];
            snprintf(old, sizeof old, "%s", subst(a));
            print_status(syscall(SYS_rename, old, subst(b)));
        } else if (!strcmp(op, "renameat2") || !strcmp(op, "rename_exchange")) {
            used = need(argc, i, 2, op);
            char old[4096];
            snprintf(old, sizeof old, "%s", subst(a));
            unsigned flags = op[6] == '_' ? RENAME_EXCHANGE : 0;
            print_status(syscall(SYS_renameat2, AT_FDCWD, old, AT_FDCWD, subst(b), flags));
        } else if (!strcmp(op, "symlink")) {
            used = need(argc, i, 2, op);
            print_status(symlink(a, b));
        } else if (!strcmp(op, "chroot")) {
            used = need(argc, i, 1, op);
            print_status(syscall(SYS_chroot, subst(a)));
        } else if (!strcmp(op, "open_badptr")) {
            print_open((int)syscall(SYS_open, (const char *)16, O_RDONLY));
        } else if (!strcmp(op, "open_long")) {
            used = need(argc, i, 1, op);
            size_t n = (size_t)atol(a);
            char *p = malloc(n + 1);
            memset(p, 'a', n);
            p[0] = '/';
            p[n] = '\0';
            print_open((int)syscall(SYS_open, p, O_RDONLY));
            free(p);
        } else if (!strcmp(op, "unlink")) {
            used = need(argc, i, 1, op);
            print_status(unlink(subst(a)));
        } else if (!strcmp(op, "dropuid")) {
            used = need(argc, i, 1, op);
            unsigned id = (unsigned)atoi(a);
            if (setgroups(0, NULL) < 0 || setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0)
                print_errno(errno);
            else
                printf("OK\n");
        } else if (!strcmp(op, "i386_open")) {
            used = need(argc, i, 1, op);
            long r = int80(5, (long)(unsigned long)low_copy(subst(a)), O_RDONLY, 0);
            if (r < 0) errno = (int)-r;
            print_open(r < 0 ? -1 : (int)r);
        } else if (!strcmp(op, "i386_mkdir")) {
            used = need(argc, i, 1, op);
            long r = int80(39, (long)(unsigned long)low_copy(subst(a)), 0755, 0);
            if (r < 0)
                print_errno((int)-r);
            else
                printf("OK\n");
        } else if (!strcmp(op, "raise")) {
            used = need(argc, i, 1, op);
            kill(getpid(), atoi(a));
            printf("survived\n");
        } else if (!strcmp(op, "exit")) {
            need(argc, i, 1, op);
            exit(atoi(a));
        } else if (!strcmp(op, "sleep_ms")) {
            used = need(argc, i, 1, op);
            usleep((useconds_t)atoi(a) * 1000);
        } else if (!strcmp(op, "spawn")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sysops: spawn needs a command\n");
                exit(2);
            }
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                execv(argv[i + 1], &argv[i + 1]);
                _exit(127);
            }
            int status;
            if (pid < 0 || waitpid(pid, &status, 0) < 0)
                print_errno(errno);
            else if (WIFSIGNALED(status))
                printf("OK:signal=%d\n", WTERMSIG(status));
            else
                printf("OK:exit=%d\n", WEXITSTATUS(status));
            return 0;
        } else {
            fprintf(stderr, "sysops: unknown op %s\n", op);
            return 2;
        }
        i += 1 + used;
    }
    return 0;
}
