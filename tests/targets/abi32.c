/* abi32: i386 syscalls (int $0x80) of a 64-bit process whose names differ from their x86_64
 * twins, one result line each: "OK" or the errno name.
 *
 * Usage: abi32 OP PATH [OP PATH]...
 * Ops: stat (i386 106)  stat64 (195)  lstat64 (196)  oldstat (18)
 *      fstatat64 (300, AT_FDCWD, flags AT_SYMLINK_NOFOLLOW)
 *      chown32 (212, to the file's own owner: -1, -1)
 *      shmget-ipc KEY (the ipc multiplexer, 117: ipc(SHMGET, KEY, 4096, IPC_CREAT|0600); a
 *      segment it makes is removed at once with ipc(SHMCTL, id, IPC_RMID))
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"

/* Memory below 4 GiB, where an i386 pointer can reach it. */
static char *low_page(void) {
    char *p =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p == MAP_FAILED) {
        perror("abi32: mmap MAP_32BIT");
        exit(2);
    }
    return p;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *path = low_page();
    char *buf = low_page();
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *op = argv[i];
        snprintf(path, 4096, "%s", argv[i + 1]);
        long p = (long)(unsigned long)path, b = (long)(unsigned long)buf, r;
        if (!strcmp(op, "stat"))
            r = int80_5(106, p, b, 0, 0);
        else if (!strcmp(op, "stat64"))
            r = int80_5(195, p, b, 0, 0);
        else if (!strcmp(op, "lstat64"))
            r = int80_5(196, p, b, 0, 0);
        else if (!strcmp(op, "oldstat"))
            r = int80_5(18, p, b, 0, 0);
        else if (!strcmp(op, "fstatat64"))
            r = int80_5(300, AT_FDCWD, p, b, AT_SYMLINK_NOFOLLOW);
        else if (!strcmp(op, "chown32"))
            r = int80_5(212, p, -1, -1, 0);
        else if (!strcmp(op, "shmget-ipc")) {
            r = int80_5(117, 23 /* SHMGET */, atol(argv[i + 1]), 4096,
                        01000 /* IPC_CREAT */ | 0600);
            if (r >= 0) int80_5(117, 24 /* SHMCTL */, r, 0 /* IPC_RMID */ | 0x100 /* IPC_64 */, 0);
        } else {
            fprintf(stderr, "abi32: unknown op %s\n", op);
            return 2;
        }
        if (r < 0) {
            const char *name = strerrorname_np((int)-r);
            printf("%s\n", name ? name : "E?");
        } else {
            printf("OK\n");
        }
    }
    return 0;
}
