"""ptrace(2) for the exec gate: seize one thread around its exec, see its stops, let it go.

What the gate relies on (ptrace(2), kernel/ptrace.c, kernel/exit.c, fs/exec.c; Linux 6.18):

* A ptrace request is accepted only from the tracer THREAD (``current`` must be the tracee's
  ``parent``), not from any thread of the tracer's process. So every call for one tracee, the
  waits included (``__WNOTHREAD``: only this thread's tracees), is made on one OS thread.
* ``PTRACE_SEIZE`` attaches without stopping the tracee and without the SIGSTOP of ATTACH. With
  ``PTRACE_O_TRACEEXEC`` a successful execve stops the tracee in PTRACE_EVENT_EXEC *inside* the
  syscall, after the new program is mapped and /proc/PID/exe names it, before its first
  instruction. ``PTRACE_O_EXITKILL``: if the tracer thread exits while seized, the tracee is
  SIGKILLed, never left running unverified. Seizing needs PTRACE_MODE_ATTACH (root with
  CAP_SYS_PTRACE here; YAMA ``ptrace_scope`` 3 refuses everyone) and fails with EPERM when the
  thread already has a tracer.
* An exec that fails before its point of no return returns to user space with no event. The gate
  sends ``PTRACE_INTERRUPT`` right after resuming the exec: the tracee then stops
  (PTRACE_EVENT_STOP) on its way back to user space, before running another instruction of the
  old program; after a successful exec the EXEC stop comes first (it is inside the syscall) and
  DETACH clears the pending interrupt. (TIF_SIGPENDING set by the interrupt can make an
  interruptible sleep of the exec, a contended cred_guard_mutex, fail with ERESTARTNOINTR: the
  execve is then restarted and notified afresh, like any syscall a signal restarts.)
* Signals arriving while seized stop the tracee in signal-delivery-stop; ``detach(tid, sig)``
  re-injects the signal (its siginfo kept), so nothing is swallowed. A group stop under SEIZE is
  PTRACE_EVENT_STOP with the stop signal; DETACH from it leaves the process group-stopped.
* The multithreaded exec (de_thread): when a thread that is not the leader execs, the kernel
  kills the other threads, and the exec-ing thread takes the leader's pid (the tgid) before the
  EXEC stop is reported, under that pid. A ``waitid(P_PID, old tid)`` asleep then is never woken
  (its wake-up filter compares pids), so the tracer waits with P_ALL and ``__WNOTHREAD``: a
  thread of its own with no child and no other tracee (``next_stop``). And until that EXEC stop
  is consumed by a wait (not merely seen with WNOWAIT), every other request on the tracee fails
  with ESRCH (``looks_like_a_spurious_pid``): stops are consumed as they are seen.
* Waits: the tracer thread sees its tracee's stops and its exit. A tracee whose
  tracer is in its real parent's thread group (the embedded ``run`` is the target's parent and
  hosts the tracer thread) is *not* reparented: the parent's own waits then report its ptrace
  stops too (so ``run`` waits for its child only once its pidfd says it exited), and a tracer's
  wait that reaps it takes the exit status from the parent. So an exit is seen with WNOWAIT,
  and only a tracee that is not our own child is reaped: a thread (nobody else waits for it,
  and a zombie thread left unreaped would keep its process from being reaped, and a
  multithreaded exec from completing), or a process whose parent is elsewhere (the daemon's
  case: reaping it as tracer hands it back to its parent). Our own child's zombie is left to
  our wait; when the tracer thread exits the kernel detaches it and leaves it to the parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from enum import Enum

from supervisor._native import lib
from supervisor.kernel._errors import check

# Not in Python's os module (linux/wait.h).
WNOTHREAD = 0x20000000
WALL = 0x40000000
_PEEK = os.WEXITED | os.WSTOPPED | os.WNOWAIT | WALL | WNOTHREAD
_CONSUME = os.WSTOPPED | os.WNOHANG | WALL | WNOTHREAD
_REAP = os.WEXITED | WALL | WNOTHREAD
_EXEC_STATUS = (lib.SV_PTRACE_EVENT_EXEC << 8) | signal.SIGTRAP
_EVENT_STOP = lib.SV_PTRACE_EVENT_STOP


class StopKind(Enum):
    EXEC = "exec"  # PTRACE_EVENT_EXEC: the new program is mapped, none of it has run
    STOP = "stop"  # PTRACE_EVENT_STOP: our interrupt, or a group stop
    SIGNAL = "signal"  # signal-delivery-stop: ``sig`` is to be re-injected
    EVENT = "event"  # another ptrace event (none is asked for)
    EXITED = "exited"  # exited or killed: a zombie still ours to reap (or not)


@dataclass(frozen=True, slots=True)
class Stop:
    pid: int
    kind: StopKind
    sig: int = 0


def seize(tid: int) -> None:
    """Trace thread ``tid`` (PTRACE_SEIZE with TRACEEXEC and EXITKILL) without stopping it."""
    check(lib.sv_ptrace_seize(tid))


def interrupt(tid: int) -> None:
    """Stop the tracee at its next way to user space (PTRACE_EVENT_STOP)."""
    check(lib.sv_ptrace_interrupt(tid))


def detach(tid: int, sig: int = 0) -> None:
    """Let the stopped tracee go, delivering ``sig`` (a signal-delivery-stop's) if not 0."""
    check(lib.sv_ptrace_detach(tid, sig))


def next_stop() -> Stop | None:
    """Block until the tracee of this thread stops or exits; a stop is consumed, an exit is not
    (WNOWAIT). None when this thread has no tracee left (ECHILD). The calling thread must have
    no other tracee and no child (see the module docstring)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, _PEEK)
        except ChildProcessError:
            return None
        assert info is not None  # no WNOHANG
        pid = info.si_pid
        if info.si_code in (os.CLD_EXITED, os.CLD_KILLED, os.CLD_DUMPED):
            return Stop(pid, StopKind.EXITED)
        if os.waitid(os.P_PID, pid, _CONSUME) is None:
            continue  # killed in between: its exit comes next
        status = info.si_status
        if status == _EXEC_STATUS:
            return Stop(pid, StopKind.EXEC)
        event = status >> 8
        if event == _EVENT_STOP:
            return Stop(pid, StopKind.STOP, status & 0x7F)
        if event:
            return Stop(pid, StopKind.EVENT)
        return Stop(pid, StopKind.SIGNAL, status & 0x7F)


def reap(pid: int) -> None:
    """Reap the exited tracee ``pid`` as its tracer (see the module docstring for when)."""
    with contextlib.suppress(ChildProcessError):  # reaped already (by its parent)
        os.waitid(os.P_PID, pid, _REAP)
