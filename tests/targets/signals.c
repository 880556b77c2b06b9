/* signals: print "ready" and wait for signals. SIGTERM: print "got SIGTERM" and exit 42.
 * SIGINT keeps its default action (the process dies of it). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_term(int sig) {
    (void)sig;
    static const char msg[] = "got SIGTERM\n";
    ssize_t w = write(1, msg, sizeof msg - 1);
    (void)w;
    _exit(42);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
}
