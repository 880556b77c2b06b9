/* netops: run a sequence of socket operations given on the command line, one result line each.
 *
 * Usage: netops OP [ARGS...] [OP [ARGS...]]...
 * Every op prints "OK", "OK:<detail>" or the errno name ("ECONNREFUSED", "EACCES", ...).
 * A socket made by an op is closed at the end of the op.
 *
 * Ops (ADDR is IPv4 dotted, IPv6 without brackets, or a path/name for unix ops):
 *   connect4 ADDR PORT    connect6 ADDR PORT (AF_INET6 socket; ::ffff:a.b.c.d is v4-mapped)
 *   nbconnect4 ADDR PORT  (O_NONBLOCK: EINPROGRESS expected, then waits for the result)
 *   bind4 ADDR PORT       bind6 ADDR PORT
 *   unix_connect PATH     unix_bind PATH       (SOCK_STREAM; PATH may be relative)
 *   abstract_connect NAME abstract_bind NAME
 *   udp_sendto ADDR PORT  udp_sendmsg ADDR PORT  udp_sendto_null (connected UDP to 127.0.0.1:9)
 *   connect_len FAMILY LEN   (AF_INET socket, a sockaddr of that family and length, 127.0.0.1:9)
 *   connect_badptr        (an unmapped sockaddr pointer)
 *   i386_connect ADDR PORT        (int $0x80, connect = 362)
 *   i386_socketcall ADDR PORT     (int $0x80, socketcall = 102, SYS_CONNECT = 3)
 *   i386_socketcall_bind ADDR PORT (socketcall SYS_BIND = 2)
 *   i386_sendmsg ADDR PORT        (UDP, int $0x80 sendmsg = 370, a 28-byte i386 msghdr)
 *   i386_socketcall_sendto ADDR PORT (UDP, socketcall SYS_SENDTO = 11, six 32-bit arguments)
 *   race ALLOWED_ADDR ALLOWED_PORT DENIED_ADDR DENIED_PORT N
 *        a thread flips one sockaddr between the two addresses while the main thread connects N
 *        times; prints OK:ok=<connects that succeeded>,denied=<that failed>
 *   race_unix_inet UNIX_PATH DENIED_ADDR DENIED_PORT N
 *        the same on an AF_INET socket, the sockaddr flipping between an AF_UNIX address and an
 *        AF_INET one; prints OK:ok=<connects that succeeded>,denied=<that failed>
 *   race_sendto ALLOWED_ADDR ALLOWED_PORT DENIED_ADDR DENIED_PORT N
 *        UDP: a thread flips the destination while the main thread sends N datagrams; prints
 *        OK:ok=<sends that succeeded>,denied=<that failed>
 *   udp_sendmsg_ttl ADDR PORT   (sendmsg with an IP_TTL control message)
 *   udp_sendto_len ADDR PORT LEN   (a datagram of LEN bytes)
 *   tcp_sendmsg ADDR PORT LEN   (connect, then one sendmsg of LEN bytes, no address; OK:<sent>)
 *   race_fdswap TCP_ADDR TCP_PORT DENIED_ADDR DENIED_PORT N
 *        connects a TCP socket, then sends N small messages with sendmsg on fd 100 while one
 *        thread swaps fd 100 between the TCP socket and an unconnected UDP socket (dup2) and
 *        another flips msg_name between NULL and the denied address; prints OK:ok=..,denied=..
 *   race_fdswap_unix TCP_ADDR TCP_PORT UNIX_PATH LEN N
 *        the same with an unbound AF_UNIX SOCK_DGRAM socket swapped in, msg_name flipping
 *        between TCP_ADDR:TCP_PORT and UNIX_PATH, and sends of LEN bytes; ok counts sends that
 *        returned a count
 *   i386_socket FAMILY TYPE   (socketcall SYS_SOCKET = 1; TYPE a number, flags included;
 *        OK:domain=<SO_DOMAIN>,type=<SO_TYPE>,cloexec=<0|1>,nonblock=<0|1>)
 *   i386_socket_bind PORT     (an AF_INET SOCK_DGRAM socket from socketcall, bound to
 *        127.0.0.1:PORT with the x86_64 bind: shows which network namespace it is in)
 *   race_i386_socket ALLOWED_FAMILY DENIED_FAMILY N
 *        a thread flips the family in socketcall's argument array while the main thread makes
 *        N sockets; prints OK:ok=<made>,denied=<refused>,wrong=<made with DENIED_FAMILY>
 *   race_i386_send_null ALLOWED_ADDR ALLOWED_PORT DENIED_ADDR DENIED_PORT N
 *        UDP connected to ALLOWED: socketcall SYS_SENDTO with a NULL address while a thread
 *        writes the denied address and its length into the argument array; OK:ok=..,denied=..
 *   unshare_net               (unshare(CLONE_NEWNET))
 *   udp_sendmmsg ADDR1 PORT1 ADDR2 PORT2   (one sendmmsg of two datagrams; OK:<messages sent>)
 *   udp_sendmmsg_connected ADDR PORT       (connect, then sendmmsg of two with no msg_name)
 *   sleep_ms N
 *   chdir DIR
 *   dropuid N   (setgroups([]), setresgid(N), setresuid(N): no capabilities left)
 *   bench_connect4 ADDR PORT N   (N connects of fresh sockets; prints OK:<ns per connect>,failed=<N>)
 *   bench_sendto4 ADDR PORT N    (N UDP sendto of 64 bytes on one socket; OK:<ns per send>,failed=<N>)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static socklen_t inet_addr_of(const char *addr, const char *port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(atoi(port));
        return sizeof *in;
    }
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(atoi(port));
        return sizeof *in6;
    }
    fprintf(stderr, "netops: bad address %s\n", addr);
    exit(2);
}

static socklen_t unix_addr_of(const char *name, int abstract, struct sockaddr_un *un) {
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    size_t len = strlen(name);
    if (abstract) {
        memcpy(un->sun_path + 1, name, len);
        return offsetof(struct sockaddr_un, sun_path) + 1 + len;
    }
    memcpy(un->sun_path, name, len);
    return offsetof(struct sockaddr_un, sun_path) + len + 1;
}

static void *low_page(void) {
    void *low =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) {
        perror("netops: mmap MAP_32BIT");
        exit(2);
    }
    return low;
}

static void print_i386(long ret) {
    if (ret < 0 && ret > -4096)
        print_errno((int)-ret);
    else
        printf("OK\n");
}

static struct sockaddr_un race_addr;
static struct sockaddr_un race_a, race_b;
static atomic_int race_stop;

static struct msghdr swap_msg;
static struct sockaddr_in swap_denied;
static int swap_tcp, swap_udp;

static void *fd_swapper(void *arg) {
    (void)arg;
    while (!atomic_load(&race_stop)) {
        dup2(swap_udp, 100);
        for (volatile int i = 0; i < 200; i++)
            ;
        dup2(swap_tcp, 100);
        for (volatile int i = 0; i < 200; i++)
            ;
    }
    return NULL;
}

static void *name_flipper(void *arg) {
    (void)arg;
    while (!atomic_load(&race_stop)) {
        swap_msg.msg_name = &swap_denied;
        swap_msg.msg_namelen = sizeof swap_denied;
        __asm__ volatile("" ::: "memory");
        for (volatile int i = 0; i < 50; i++)
            ;
        swap_msg.msg_name = NULL;
        swap_msg.msg_namelen = 0;
        __asm__ volatile("" ::: "memory");
        for (volatile int i = 0; i < 50; i++)
            ;
    }
    return NULL;
}

static volatile unsigned int *flip_word;
static unsigned int flip_a, flip_b;
static volatile unsigned int *flip_word2;
static unsigned int flip_a2, flip_b2;

/* Flips one (or two) 32-bit words of an i386 socketcall argument array. */
static void *word_flipper(void *arg) {
    (void)arg;
    while (!atomic_load(&race_stop)) {
        *flip_word = flip_b;
        if (flip_word2) *flip_word2 = flip_b2;
        for (volatile int i = 0; i < 50; i++)
            ;
        *flip_word = flip_a;
        if (flip_word2) *flip_word2 = flip_a2;
        for (volatile int i = 0; i < 50; i++)
            ;
    }
    return NULL;
}

static struct sockaddr_in swap_allowed;
static struct sockaddr_un swap_unix;

static void *name_flipper_unix(void *arg) {
    (void)arg;
    while (!atomic_load(&race_stop)) {
        swap_msg.msg_name = &swap_unix;
        swap_msg.msg_namelen = sizeof swap_unix;
        __asm__ volatile("" ::: "memory");
        for (volatile int i = 0; i < 50; i++)
            ;
        swap_msg.msg_name = &swap_allowed;
        swap_msg.msg_namelen = sizeof swap_allowed;
        __asm__ volatile("" ::: "memory");
        for (volatile int i = 0; i < 50; i++)
            ;
    }
    return NULL;
}

static void *flipper(void *arg) {
    (void)arg;
    while (!atomic_load(&race_stop)) {
        /* the barriers keep the compiler from dropping the first copy as a dead store */
        memcpy(&race_addr, &race_a, sizeof race_addr);
        __asm__ volatile("" ::: "memory");
        for (volatile int i = 0; i < 50; i++)
            ;
        memcpy(&race_addr, &race_b, sizeof race_addr);
        __asm__ volatile("" ::: "memory");
        for (volatile int i = 0; i < 50; i++)
            ;
    }
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *op = argv[i];
        struct sockaddr_storage ss;
        struct sockaddr_un un;
        if (!strcmp(op, "connect4") || !strcmp(op, "connect6") || !strcmp(op, "bind4") ||
            !strcmp(op, "bind6")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            int v6 = op[strlen(op) - 1] == '6';
            int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
            if (op[0] == 'c')
                print_status(connect(fd, (struct sockaddr *)&ss, len));
            else
                print_status(bind(fd, (struct sockaddr *)&ss, len));
            close(fd);
            i += 2;
        } else if (!strcmp(op, "nbconnect4")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            int r = connect(fd, (struct sockaddr *)&ss, len);
            if (r == 0) {
                printf("OK:immediate\n");
            } else if (errno != EINPROGRESS) {
                print_errno(errno);
            } else {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                poll(&p, 1, 5000);
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err)
                    printf("EINPROGRESS:%s\n", strerrorname_np(err));
                else
                    printf("EINPROGRESS:OK\n");
            }
            close(fd);
            i += 2;
        } else if (!strcmp(op, "unix_connect") || !strcmp(op, "unix_bind") ||
                   !strcmp(op, "abstract_connect") || !strcmp(op, "abstract_bind")) {
            socklen_t len = unix_addr_of(argv[i + 1], op[0] == 'a', &un);
            int fd = socket(AF_UNIX, SOCK_STREAM, 0);
            if (strstr(op, "connect"))
                print_status(connect(fd, (struct sockaddr *)&un, len));
            else
                print_status(bind(fd, (struct sockaddr *)&un, len));
            close(fd);
            i += 1;
        } else if (!strcmp(op, "udp_sendto") || !strcmp(op, "udp_sendmsg")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
            char data[] = "ping";
            if (!strcmp(op, "udp_sendto")) {
                print_status(sendto(fd, data, 4, 0, (struct sockaddr *)&ss, len));
            } else {
                struct iovec iov = {.iov_base = data, .iov_len = 4};
                struct msghdr msg = {
                    .msg_name = &ss, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};
                print_status(sendmsg(fd, &msg, 0));
            }
            close(fd);
            i += 2;
        } else if (!strcmp(op, "udp_sendto_null")) {
            socklen_t len = inet_addr_of("127.0.0.1", "9", &ss);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
                print_errno(errno);
            } else {
                print_status(sendto(fd, "ping", 4, 0, NULL, 0));
            }
            close(fd);
        } else if (!strcmp(op, "connect_len")) {
            inet_addr_of("127.0.0.1", "9", &ss);
            ss.ss_family = atoi(argv[i + 1]);
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            print_status(connect(fd, (struct sockaddr *)&ss, atoi(argv[i + 2])));
            close(fd);
            i += 2;
        } else if (!strcmp(op, "connect_badptr")) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            print_status(connect(fd, (struct sockaddr *)(uintptr_t)16, 16));
            close(fd);
        } else if (!strcmp(op, "i386_connect") || !strcmp(op, "i386_socketcall") ||
                   !strcmp(op, "i386_socketcall_bind")) {
            char *low = low_page();
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], (struct sockaddr_storage *)low);
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (!strcmp(op, "i386_connect")) {
                print_i386(int80(362, fd, (long)(uintptr_t)low, len));
            } else {
                unsigned int *args = (unsigned int *)(low + 256);
                args[0] = fd;
                args[1] = (unsigned int)(uintptr_t)low;
                args[2] = len;
                long call = strstr(op, "bind") ? 2 : 3;
                print_i386(int80(102, call, (long)(uintptr_t)args, 0));
            }
            close(fd);
            munmap(low, 4096);
            i += 2;
        } else if (!strcmp(op, "i386_sendmsg") || !strcmp(op, "i386_socketcall_sendto")) {
            char *low = low_page();
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], (struct sockaddr_storage *)low);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            char *data = low + 512;
            memcpy(data, "i386", 4);
            unsigned int *words = (unsigned int *)(low + 256);
            if (!strcmp(op, "i386_sendmsg")) {
                unsigned int *iov = (unsigned int *)(low + 384);
                iov[0] = (unsigned int)(uintptr_t)data; /* struct iovec (i386) */
                iov[1] = 4;
                words[0] = (unsigned int)(uintptr_t)low; /* msg_name */
                words[1] = len;                          /* msg_namelen */
                words[2] = (unsigned int)(uintptr_t)iov; /* msg_iov */
                words[3] = 1;                            /* msg_iovlen */
                words[4] = 0;                            /* msg_control */
                words[5] = 0;                            /* msg_controllen */
                words[6] = 0;                            /* msg_flags */
                long r = int80(370, fd, (long)(uintptr_t)words, 0);
                if (r < 0 && r > -4096)
                    print_errno((int)-r);
                else
                    printf("OK:%ld\n", r);
            } else {
                words[0] = fd;
                words[1] = (unsigned int)(uintptr_t)data;
                words[2] = 4;
                words[3] = 0;
                words[4] = (unsigned int)(uintptr_t)low;
                words[5] = len;
                long r = int80(102, 11, (long)(uintptr_t)words, 0);
                if (r < 0 && r > -4096)
                    print_errno((int)-r);
                else
                    printf("OK:%ld\n", r);
            }
            close(fd);
            munmap(low, 4096);
            i += 2;
        } else if (!strcmp(op, "race") || !strcmp(op, "race_unix_inet")) {
            int mixed = !strcmp(op, "race_unix_inet");
            socklen_t addrlen = sizeof(struct sockaddr_in);
            memset(&race_a, 0, sizeof race_a);
            memset(&race_b, 0, sizeof race_b);
            if (mixed) {
                unix_addr_of(argv[i + 1], 0, &race_a);
                addrlen = sizeof(struct sockaddr_un);
                i -= 1;
            } else {
                inet_addr_of(argv[i + 1], argv[i + 2], &ss);
                memcpy(&race_a, &ss, sizeof(struct sockaddr_in));
            }
            inet_addr_of(argv[i + 3], argv[i + 4], &ss);
            memcpy(&race_b, &ss, sizeof(struct sockaddr_in));
            memcpy(&race_addr, &race_a, sizeof race_addr);
            int n = atoi(argv[i + 5]);
            pthread_t t;
            atomic_store(&race_stop, 0);
            pthread_create(&t, NULL, flipper, NULL);
            int ok = 0, denied = 0;
            for (int k = 0; k < n; k++) {
                int fd = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(fd, (struct sockaddr *)&race_addr, addrlen) == 0)
                    ok++;
                else
                    denied++;
                close(fd);
            }
            atomic_store(&race_stop, 1);
            pthread_join(t, NULL);
            printf("OK:ok=%d,denied=%d\n", ok, denied);
            i += 5;
        } else if (!strcmp(op, "dropuid")) {
            int id = atoi(argv[i + 1]);
            if (setgroups(0, NULL) < 0 || setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0)
                print_errno(errno);
            else
                printf("OK\n");
            i += 1;
        } else if (!strcmp(op, "bench_connect4")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            int n = atoi(argv[i + 3]), failed = 0;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (int k = 0; k < n; k++) {
                int fd = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(fd, (struct sockaddr *)&ss, len) < 0) failed++;
                close(fd);
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
            printf("OK:%.0f,failed=%d\n", ns / n, failed);
            i += 3;
        } else if (!strcmp(op, "race_sendto")) {
            memset(&race_a, 0, sizeof race_a);
            memset(&race_b, 0, sizeof race_b);
            inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            memcpy(&race_a, &ss, sizeof(struct sockaddr_in));
            inet_addr_of(argv[i + 3], argv[i + 4], &ss);
            memcpy(&race_b, &ss, sizeof(struct sockaddr_in));
            memcpy(&race_addr, &race_a, sizeof race_addr);
            int n = atoi(argv[i + 5]);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            pthread_t t;
            atomic_store(&race_stop, 0);
            pthread_create(&t, NULL, flipper, NULL);
            int ok = 0, denied = 0;
            for (int k = 0; k < n; k++) {
                if (sendto(fd, "race", 4, 0, (struct sockaddr *)&race_addr,
                           sizeof(struct sockaddr_in)) == 4)
                    ok++;
                else
                    denied++;
            }
            atomic_store(&race_stop, 1);
            pthread_join(t, NULL);
            close(fd);
            printf("OK:ok=%d,denied=%d\n", ok, denied);
            i += 5;
        } else if (!strcmp(op, "udp_sendmsg_ttl")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            char data[] = "ttl";
            struct iovec iov = {.iov_base = data, .iov_len = 3};
            union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
            } u;
            memset(&u, 0, sizeof u);
            struct msghdr msg = {.msg_name = &ss,
                                 .msg_namelen = len,
                                 .msg_iov = &iov,
                                 .msg_iovlen = 1,
                                 .msg_control = u.buf,
                                 .msg_controllen = sizeof u.buf};
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_TTL;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            int ttl = 7;
            memcpy(CMSG_DATA(c), &ttl, sizeof ttl);
            long r = sendmsg(fd, &msg, 0);
            if (r < 0)
                print_errno(errno);
            else
                printf("OK:%ld\n", r);
            close(fd);
            i += 2;
        } else if (!strcmp(op, "udp_sendto_len")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            size_t n = strtoul(argv[i + 3], NULL, 10);
            char *buf = calloc(1, n + 1);
            long r = sendto(fd, buf, n, 0, (struct sockaddr *)&ss, len);
            if (r < 0)
                print_errno(errno);
            else
                printf("OK:%ld\n", r);
            free(buf);
            close(fd);
            i += 3;
        } else if (!strcmp(op, "bench_sendto4")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            int n = atoi(argv[i + 3]), failed = 0;
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            char buf[64] = {0};
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (int k = 0; k < n; k++)
                if (sendto(fd, buf, sizeof buf, 0, (struct sockaddr *)&ss, len) != sizeof buf)
                    failed++;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            close(fd);
            double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
            printf("OK:%.0f,failed=%d\n", ns / n, failed);
            i += 3;
        } else if (!strcmp(op, "tcp_sendmsg")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            size_t n = strtoul(argv[i + 3], NULL, 10);
            int fd = socket(ss.ss_family, SOCK_STREAM, 0);
            if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
                print_errno(errno);
            } else {
                char *buf = malloc(n);
                for (size_t k = 0; k < n; k++) buf[k] = (char)('a' + k % 26);
                struct iovec iov = {.iov_base = buf, .iov_len = n};
                struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
                long r = sendmsg(fd, &msg, 0);
                if (r < 0)
                    print_errno(errno);
                else
                    printf("OK:%ld\n", r);
                free(buf);
            }
            close(fd);
            i += 3;
        } else if (!strcmp(op, "race_fdswap")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            swap_tcp = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(swap_tcp, (struct sockaddr *)&ss, len) < 0) {
                print_errno(errno);
                i += 5;
                continue;
            }
            inet_addr_of(argv[i + 3], argv[i + 4], &ss);
            memcpy(&swap_denied, &ss, sizeof swap_denied);
            swap_udp = socket(AF_INET, SOCK_DGRAM, 0);
            dup2(swap_tcp, 100);
            int n = atoi(argv[i + 5]);
            static char data[] = "swap";
            struct iovec iov = {.iov_base = data, .iov_len = 4};
            memset(&swap_msg, 0, sizeof swap_msg);
            swap_msg.msg_iov = &iov;
            swap_msg.msg_iovlen = 1;
            pthread_t t1, t2;
            atomic_store(&race_stop, 0);
            pthread_create(&t1, NULL, fd_swapper, NULL);
            pthread_create(&t2, NULL, name_flipper, NULL);
            int ok = 0, denied = 0, first = 0;
            for (int k = 0; k < n; k++) {
                if (sendmsg(100, &swap_msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 4) {
                    ok++;
                } else {
                    denied++;
                    if (!first) first = errno;
                }
            }
            if (getenv("NETOPS_DEBUG")) fprintf(stderr, "first error %s\n", strerrorname_np(first));
            atomic_store(&race_stop, 1);
            pthread_join(t1, NULL);
            pthread_join(t2, NULL);
            printf("OK:ok=%d,denied=%d\n", ok, denied);
            close(swap_tcp);
            close(swap_udp);
            close(100);
            i += 5;
        } else if (!strcmp(op, "race_fdswap_unix")) {
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            swap_tcp = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(swap_tcp, (struct sockaddr *)&ss, len) < 0) {
                print_errno(errno);
                i += 5;
                continue;
            }
            memcpy(&swap_allowed, &ss, sizeof swap_allowed);
            unix_addr_of(argv[i + 3], 0, &swap_unix);
            swap_udp = socket(AF_UNIX, SOCK_DGRAM, 0);
            int sndbuf = 1 << 20;
            setsockopt(swap_udp, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
            dup2(swap_tcp, 100);
            size_t size = strtoul(argv[i + 4], NULL, 10);
            int n = atoi(argv[i + 5]);
            char *data = calloc(1, size);
            struct iovec iov = {.iov_base = data, .iov_len = size};
            memset(&swap_msg, 0, sizeof swap_msg);
            swap_msg.msg_iov = &iov;
            swap_msg.msg_iovlen = 1;
            swap_msg.msg_name = &swap_allowed;
            swap_msg.msg_namelen = sizeof swap_allowed;
            pthread_t t1, t2;
            atomic_store(&race_stop, 0);
            pthread_create(&t1, NULL, fd_swapper, NULL);
            pthread_create(&t2, NULL, name_flipper_unix, NULL);
            int ok = 0, denied = 0;
            for (int k = 0; k < n; k++) {
                if (sendmsg(100, &swap_msg, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
                    ok++;
                else
                    denied++;
            }
            atomic_store(&race_stop, 1);
            pthread_join(t1, NULL);
            pthread_join(t2, NULL);
            printf("OK:ok=%d,denied=%d\n", ok, denied);
            free(data);
            close(swap_tcp);
            close(swap_udp);
            close(100);
            i += 5;
        } else if (!strcmp(op, "i386_socket") || !strcmp(op, "i386_socket_bind")) {
            int bind_lo = !strcmp(op, "i386_socket_bind");
            unsigned int *args = low_page();
            args[0] = bind_lo ? AF_INET : (unsigned int)strtoul(argv[i + 1], NULL, 0);
            args[1] = bind_lo ? SOCK_DGRAM : (unsigned int)strtoul(argv[i + 2], NULL, 0);
            args[2] = 0;
            long fd = int80(102, 1, (long)(uintptr_t)args, 0);
            if (fd < 0 && fd > -4096) {
                print_errno((int)-fd);
            } else if (bind_lo) {
                inet_addr_of("127.0.0.1", argv[i + 1], &ss);
                print_status(bind(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)));
            } else {
                int domain = -1, type = -1;
                socklen_t l = sizeof domain;
                getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l);
                l = sizeof type;
                getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
                int fdflags = fcntl(fd, F_GETFD), flflags = fcntl(fd, F_GETFL);
                printf("OK:domain=%d,type=%d,cloexec=%d,nonblock=%d\n", domain, type,
                       !!(fdflags & FD_CLOEXEC), !!(flflags & O_NONBLOCK));
            }
            if (fd >= 0) close(fd);
            munmap(args, 4096);
            i += bind_lo ? 1 : 2;
        } else if (!strcmp(op, "race_i386_socket")) {
            unsigned int *args = low_page();
            int good = atoi(argv[i + 1]), bad = atoi(argv[i + 2]), n = atoi(argv[i + 3]);
            args[0] = good;
            args[1] = SOCK_DGRAM;
            args[2] = 0;
            flip_word = &args[0];
            flip_a = good;
            flip_b = bad;
            flip_word2 = NULL;
            pthread_t t;
            atomic_store(&race_stop, 0);
            pthread_create(&t, NULL, word_flipper, NULL);
            int ok = 0, denied = 0, wrong = 0;
            for (int k = 0; k < n; k++) {
                long fd = int80(102, 1, (long)(uintptr_t)args, 0);
                if (fd < 0 && fd > -4096) {
                    denied++;
                    continue;
                }
                ok++;
                int domain = -1;
                socklen_t l = sizeof domain;
                getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l);
                if (domain == bad) wrong++;
                close(fd);
            }
            atomic_store(&race_stop, 1);
            pthread_join(t, NULL);
            printf("OK:ok=%d,denied=%d,wrong=%d\n", ok, denied, wrong);
            munmap(args, 4096);
            i += 3;
        } else if (!strcmp(op, "race_i386_send_null")) {
            char *low = low_page();
            socklen_t len = inet_addr_of(argv[i + 1], argv[i + 2], (struct sockaddr_storage *)low);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            if (connect(fd, (struct sockaddr *)low, len) < 0) {
                print_errno(errno);
                i += 5;
                continue;
            }
            inet_addr_of(argv[i + 3], argv[i + 4], (struct sockaddr_storage *)(low + 128));
            int n = atoi(argv[i + 5]);
            char *data = low + 512;
            memcpy(data, "null", 4);
            unsigned int *words = (unsigned int *)(low + 256);
            words[0] = fd;
            words[1] = (unsigned int)(uintptr_t)data;
            words[2] = 4;
            words[3] = 0;
            words[4] = 0;
            words[5] = 0;
            flip_word = &words[4];
            flip_a = 0;
            flip_b = (unsigned int)(uintptr_t)(low + 128);
            flip_word2 = &words[5];
            flip_a2 = 0;
            flip_b2 = sizeof(struct sockaddr_in);
            pthread_t t;
            atomic_store(&race_stop, 0);
            pthread_create(&t, NULL, word_flipper, NULL);
            int ok = 0, denied = 0;
            for (int k = 0; k < n; k++) {
                if (int80(102, 11, (long)(uintptr_t)words, 0) == 4)
                    ok++;
                else
                    denied++;
            }
            atomic_store(&race_stop, 1);
            pthread_join(t, NULL);
            printf("OK:ok=%d,denied=%d\n", ok, denied);
            close(fd);
            munmap(low, 4096);
            i += 5;
        } else if (!strcmp(op, "unshare_net")) {
            print_status(unshare(CLONE_NEWNET));
        } else if (!strcmp(op, "udp_sendmmsg") || !strcmp(op, "udp_sendmmsg_connected")) {
            int connected = !strcmp(op, "udp_sendmmsg_connected");
            struct sockaddr_storage ss2;
            socklen_t len1 = inet_addr_of(argv[i + 1], argv[i + 2], &ss);
            socklen_t len2 = connected ? len1 : inet_addr_of(argv[i + 3], argv[i + 4], &ss2);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            if (connected && connect(fd, (struct sockaddr *)&ss, len1) < 0) {
                print_errno(errno);
            } else {
                char d1[] = "mm1", d2[] = "mm2";
                struct iovec v1 = {.iov_base = d1, .iov_len = 3},
                             v2 = {.iov_base = d2, .iov_len = 3};
                struct mmsghdr m[2];
                memset(m, 0, sizeof m);
                m[0].msg_hdr.msg_iov = &v1;
                m[0].msg_hdr.msg_iovlen = 1;
                m[1].msg_hdr.msg_iov = &v2;
                m[1].msg_hdr.msg_iovlen = 1;
                if (!connected) {
                    m[0].msg_hdr.msg_name = &ss;
                    m[0].msg_hdr.msg_namelen = len1;
                    m[1].msg_hdr.msg_name = &ss2;
                    m[1].msg_hdr.msg_namelen = len2;
                }
                int r = sendmmsg(fd, m, 2, 0);
                if (r < 0)
                    print_errno(errno);
                else
                    printf("OK:%d\n", r);
            }
            close(fd);
            i += connected ? 2 : 4;
        } else if (!strcmp(op, "sleep_ms")) {
            usleep(atoi(argv[i + 1]) * 1000);
            printf("OK\n");
            i += 1;
        } else if (!strcmp(op, "chdir")) {
            print_status(chdir(argv[i + 1]));
            i += 1;
        } else {
            fprintf(stderr, "netops: unknown op %s\n", op);
            return 2;
        }
    }
    return 0;
}
