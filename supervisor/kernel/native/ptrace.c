/* The exec gate's tracer calls (supervisor/kernel/ptrace.py): seize one thread with
   PTRACE_O_TRACEEXEC, interrupt it, detach it (re-injecting a signal). Each returns 0 or -1 with
   errno. A ptrace request is only valid from the tracer THREAD: the caller makes all of one
   tracee's calls on one OS thread. */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/ptrace.h>

#include "native.h"

int sv_ptrace_seize(int tid) {
    /* EXITKILL: if the tracer goes away while the tracee is seized (the supervisor crashed
       mid-exec) the tracee is killed, never left to run an unverified program. */
    long options = PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
    return (int)ptrace(PTRACE_SEIZE, tid, NULL, (void *)options);
}

int sv_ptrace_interrupt(int tid) { return (int)ptrace(PTRACE_INTERRUPT, tid, NULL, NULL); }

int sv_ptrace_detach(int tid, int sig) {
    return (int)ptrace(PTRACE_DETACH, tid, NULL, (void *)(intptr_t)sig);
}
