/* mountfd: lookups relative to fds on detached and foreign mounts, one result line per op.
 *
 * Usage: mountfd OP [ARG] [OP [ARG]]...
 * Every op prints "OK", "OK:<detail>" or the errno name. One fd is "saved": the last one that
 * `tree`, `tmpfs`, `dirfd` or `recv` made. "{fd}" in a path argument is replaced by its number.
 *
 * Ops:
 *   tree DIR       open_tree(DIR, OPEN_TREE_CLONE): a detached copy of the mount at DIR
 *   rtree DIR      the same with AT_RECURSIVE
 *   tmpfs          fsopen("tmpfs") + fsconfig(CREATE) + fsmount: a new, detached tmpfs
 *   dirfd DIR      open(DIR, O_DIRECTORY): an ordinary dirfd
 *   recv SOCKET    connect to the unix socket SOCKET and take one fd (SCM_RIGHTS)
 *   openat PATH    openat(saved, PATH, O_RDONLY): OK:<first line of the file>
 *   creat PATH     openat(saved, PATH, O_CREAT|O_RDWR, 0600), writes "created"
 *   mkdirat PATH   mkdirat(saved, PATH, 0700)
 *   fchdir         fchdir(saved)
 *   open PATH      open(PATH, O_RDONLY) (relative to the cwd): OK:<first line>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static int saved = -1;

static void result(long r) {
    if (r < 0) {
        const char *name = strerrorname_np(errno);
        printf("%s\n", name ? name : "E?");
    } else {
        printf("OK\n");
    }
}

static void read_result(int fd) {
    if (fd < 0) {
        result(-1);
        return;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0) {
        result(-1);
        return;
    }
    buf[n] = 0;
    buf[strcspn(buf, "\n")] = 0;
    printf("OK:%s\n", buf);
}

static const char *fill(const char *path, char *out, size_t len) {
    const char *at = strstr(path, "{fd}");
    if (!at) return path;
    snprintf(out, len, "%.*s%d%s", (int)(at - path), path, saved, at + 4);
    return out;
}

static int recv_fd(const char *sock) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(s);
        return -1;
    }
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    ssize_t n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
    close(s);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (n != 1 || !c || c->cmsg_type != SCM_RIGHTS) {
        errno = EPROTO;
        return -1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    return fd;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char tmp[4096];
    for (int i = 1; i < argc; i++) {
        const char *op = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(op, "tree") || !strcmp(op, "rtree")) {
            unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
            if (!strcmp(op, "rtree")) flags |= AT_RECURSIVE;
            saved = syscall(SYS_open_tree, AT_FDCWD, arg, flags);
            result(saved);
            i++;
        } else if (!strcmp(op, "tmpfs")) {
            int fs = syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
            if (fs >= 0 && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
                close(fs);
                fs = -1;
            }
            saved = fs < 0 ? -1 : syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
            result(saved);
        } else if (!strcmp(op, "dirfd")) {
            saved = open(arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            result(saved);
            i++;
        } else if (!strcmp(op, "recv")) {
            saved = recv_fd(arg);
            result(saved);
            i++;
        } else if (!strcmp(op, "openat")) {
            read_result(openat(saved, fill(arg, tmp, sizeof(tmp)), O_RDONLY | O_CLOEXEC));
            i++;
        } else if (!strcmp(op, "open")) {
            read_result(open(fill(arg, tmp, sizeof(tmp)), O_RDONLY | O_CLOEXEC));
            i++;
        } else if (!strcmp(op, "creat")) {
            int fd = openat(saved, arg, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
            if (fd >= 0) {
                ssize_t w = write(fd, "created\n", 8);
                close(fd);
                if (w != 8) fd = -1;
            }
            result(fd);
            i++;
        } else if (!strcmp(op, "mkdirat")) {
            result(mkdirat(saved, arg, 0700));
            i++;
        } else if (!strcmp(op, "fchdir")) {
            result(fchdir(saved));
        } else {
            fprintf(stderr, "mountfd: unknown op %s\n", op);
            return 2;
        }
    }
    return 0;
}
