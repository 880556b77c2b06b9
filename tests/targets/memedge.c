#define _GNU_SOURCE
/* Passes mkdir() path pointers that sit at the edge of mapped memory:
 *   memedge ok     - a string whose NUL is the last byte of a page followed by an unmapped page
 *   memedge cross  - a string that runs off the end of a page into an unmapped one (no NUL)
 *   memedge null   - a NULL pointer
 *   memedge long   - a 5000-byte string (longer than PATH_MAX)
 * Prints the errno name mkdir() got, or "ok". */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long page = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return 2;
    munmap(mem + page, page);
    const char *mode = argc > 1 ? argv[1] : "ok";
    const char *path;
    static char longpath[5001];
    if (!strcmp(mode, "ok")) {
        const char *s = "/nonexistent-dir/x";
        size_t n = strlen(s) + 1;
        memcpy(mem + page - n, s, n);
        path = mem + page - n;
    } else if (!strcmp(mode, "cross")) {
        memset(mem + page - 16, 'a', 16);
        path = mem + page - 16;
    } else if (!strcmp(mode, "null")) {
        path = NULL;
    } else {
        memset(longpath, 'a', 5000);
        longpath[0] = '/';
        path = longpath;
    }
    int r = mkdir(path, 0700);
    if (r == 0) {
        puts("ok");
        return 0;
    }
    printf("%s\n", strerrorname_np(errno));
    return 0;
}
