/* target_exec PROG N [ok|any]: fork, execv(PROG) in the child, wait, N times; prints
 * ns_per_op= for one fork + exec + exit + wait. PROG is this program (statically linked, so the
 * exec maps one file and runs no loader): "target_exec exit" exits 0 at once. Every child must
 * exit 0 ("ok", the default), else exit status 2. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "exit")) return 0;
    if (argc < 3) {
        fprintf(stderr, "usage: target_exec PROG N [ok|any]\n");
        return 2;
    }
    const char *prog = argv[1];
    long n = atol(argv[2]);
    int any = argc > 3 && !strcmp(argv[3], "any");
    long ok = 0, fail = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("target_exec: fork");
            return 2;
        }
        if (pid == 0) {
            char *args[] = {(char *)prog, "exit", NULL};
            execv(prog, args);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
        else
            fail++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("target_exec ns_per_op=%.1f n=%ld ok=%ld fail=%ld errno=-\n", ns / (double)n, n, ok,
           fail);
    return fail && !any ? 2 : 0;
}
