/* iouring: io_uring without liburing.
 *
 * Usage: iouring            io_uring_setup(4 entries): prints OK or the errno name
 *        iouring PATH       then IORING_OP_OPENAT of PATH through the ring (no openat syscall)
 *                           and a read of the fd: prints OK:<first line> or the errno name
 * A refused io_uring_setup prints its errno name (ENOSYS, EPERM, ...) and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

static void *map(int fd, size_t size, off_t offset) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
    if (p == MAP_FAILED) {
        perror("iouring: mmap");
        _exit(2);
    }
    return p;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    int ring = (int)syscall(SYS_io_uring_setup, 4, &params);
    if (ring < 0) {
        print_errno(errno);
        return 0;
    }
    if (argc < 2) {
        printf("OK\n");
        close(ring);
        return 0;
    }
    size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    if (params.features & IORING_FEAT_SINGLE_MMAP && cq_size > sq_size) sq_size = cq_size;
    char *sq = map(ring, sq_size, IORING_OFF_SQ_RING);
    char *cq =
        params.features & IORING_FEAT_SINGLE_MMAP ? sq : map(ring, cq_size, IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes =
        map(ring, params.sq_entries * sizeof(struct io_uring_sqe), IORING_OFF_SQES);

    unsigned *sq_tail = (unsigned *)(sq + params.sq_off.tail);
    unsigned sq_mask = *(unsigned *)(sq + params.sq_off.ring_mask);
    unsigned *sq_array = (unsigned *)(sq + params.sq_off.array);
    unsigned tail = *sq_tail;
    unsigned index = tail & sq_mask;
    struct io_uring_sqe *sqe = &sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_OPENAT;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)argv[1];
    sqe->open_flags = O_RDONLY;
    sq_array[index] = index;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);

    if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        print_errno(errno);
        return 0;
    }
    unsigned *cq_head = (unsigned *)(cq + params.cq_off.head);
    unsigned cq_mask = *(unsigned *)(cq + params.cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + params.cq_off.cqes);
    int fd = cqes[__atomic_load_n(cq_head, __ATOMIC_ACQUIRE) & cq_mask].res;
    if (fd < 0) {
        print_errno(-fd);
        return 0;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n < 0 ? 0 : n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    printf("OK:%s\n", buf);
    return 0;
}
