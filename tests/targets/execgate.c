/* execgate: execs the exec gate must stop, verify and let go of without changing what the
 * program sees (tests/run/test_run_exec_gate.py).
 *
 * Usage:
 *   execgate failexec PATH N    N execv(PATH) that fail (PATH allowed, not executable): prints
 *                               the errno name; then waits until /proc/self/status says
 *                               "TracerPid: 0" and prints "untraced"; then forks a child that
 *                               exits 7 and prints "child=7"
 *   execgate thread PATH ARGS   a second thread execv(PATH, ARGS) while the first one sleeps
 *                               (the exec of a thread that is not the leader: de_thread)
 *   execgate stopcont PATH N    N children, each execv(PATH); the parent sends it SIGSTOP at
 *                               once, waits for the stop (or the exit), SIGCONT: prints
 *                               "ok=O stopped=S" (O children that exited 0)
 *   execgate rtsig PATH K       a thread sends K SIGRTMIN to the main thread while that one
 *                               calls execv(PATH) (allowed, fails); prints "handled=H of K"
 *                               once the handler ran K times (or after 30 s)
 *   execgate traced PATH        a child that PTRACE_TRACEMEs, stops, and execv(PATH), traced by
 *                               this process: prints the child's lines and "child exit=N"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void errno_line(void) {
    const char *name = strerrorname_np(errno);
    if (name)
        printf("%s\n", name);
    else
        printf("E%d\n", errno);
    fflush(stdout);
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long tracer_pid(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long pid = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "TracerPid:", 10)) pid = atol(line + 10);
    if (f) fclose(f);
    return pid;
}

static int failexec(char *path, int n) {
    char *argv[] = {path, NULL};
    int err = 0;
    for (int i = 0; i < n; i++) {
        execv(path, argv);
        err = errno;
    }
    errno = err;
    errno_line();
    for (int i = 0; i < 30000 && tracer_pid() != 0; i++) nap_ms(1);
    printf(tracer_pid() == 0 ? "untraced\n" : "still traced\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(7);
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

static char **thread_argv;

static void *exec_thread(void *arg) {
    (void)arg;
    execv(thread_argv[0], thread_argv);
    errno_line();
    _exit(1);
}

static int stopcont(char *path, int n) {
    int ok = 0, stopped = 0;
    for (int i = 0; i < n; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char *argv[] = {path, NULL};
            execv(path, argv);
            _exit(99);
        }
        kill(pid, SIGSTOP);
        int status;
        if (waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status)) {
            stopped++;
            kill(pid, SIGCONT);
            waitpid(pid, &status, 0);
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ok++;
    }
    printf("ok=%d stopped=%d\n", ok, stopped);
    return 0;
}

static volatile sig_atomic_t handled;
static volatile int sending = 1;
static pid_t main_tid;
static int rt_count;

static void on_rt(int sig) {
    (void)sig;
    handled++;
}

static void *rt_sender(void *arg) {
    (void)arg;
    for (int i = 0; i < rt_count; i++) {
        while (syscall(SYS_tgkill, getpid(), main_tid, SIGRTMIN) != 0 && errno == EAGAIN) nap_ms(1);
        if (i % 8 == 0) nap_ms(1);
    }
    sending = 0;
    return NULL;
}

static int rtsig(char *path, int k) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_rt;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGRTMIN, &sa, NULL);
    main_tid = (pid_t)syscall(SYS_gettid);
    rt_count = k;
    pthread_t t;
    pthread_create(&t, NULL, rt_sender, NULL);
    char *argv[] = {path, NULL};
    int execs = 0;
    while (sending || execs < 10) {
        execv(path, argv);
        execs++;
    }
    pthread_join(t, NULL);
    for (int i = 0; i < 30000 && handled < k; i++) nap_ms(1);
    printf("handled=%d of %d\n", (int)handled, k);
    return 0;
}

static int traced(char *path) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        char *argv[] = {path, NULL};
        execv(path, argv);
        errno_line();
        _exit(1);
    }
    int status;
    while (waitpid(pid, &status, 0) == pid && WIFSTOPPED(status)) {
        int sig = WSTOPSIG(status);
        ptrace(PTRACE_CONT, pid, 0, (void *)(long)(sig == SIGSTOP || sig == SIGTRAP ? 0 : sig));
    }
    printf("child exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "failexec")) return failexec(argv[2], atoi(argv[3]));
    if (argc >= 3 && !strcmp(argv[1], "thread")) {
        thread_argv = argv + 2;
        pthread_t t;
        pthread_create(&t, NULL, exec_thread, NULL);
        for (;;) pause();
    }
    if (argc == 4 && !strcmp(argv[1], "stopcont")) return stopcont(argv[2], atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "rtsig")) return rtsig(argv[2], atoi(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "traced")) return traced(argv[2]);
    fprintf(stderr, "execgate: bad usage\n");
    return 2;
}
