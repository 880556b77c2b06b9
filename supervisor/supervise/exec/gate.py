"""The exec gate: resume an inspected exec allow with the exec-ing thread seized, so that the new
program is stopped before its first instruction and checked there.

``gate_job`` runs one exec through it on a tracer thread (``tracers``), from the seize to the
detach (ptrace requests are only accepted from the tracer thread, and its waits must see no
other child or tracee; the kernel facts are in ``supervisor.kernel.ptrace``):

1. seize the thread (PTRACE_SEIZE, TRACEEXEC, EXITKILL); if it cannot be seized (another
   tracer: EPERM) the exec is NOT resumed: the caller refuses it;
2. answer the notification with CONTINUE, then PTRACE_INTERRUPT (so a failed exec stops on its
   way back instead of running on traced);
3. wait for the first stop (reported under the tgid when a thread that is not the leader
   exec'd: it took the leader's pid):

   - PTRACE_EVENT_EXEC: the new program is mapped and has run nothing. Its /proc/TGID/exe must
     be one of the checked files, or else be judged allowed by the caller (the checked path
     replaced, a file the policy allows): then DETACH; otherwise SIGKILL (through the pidfd
     taken before the CONTINUE) while it is still stopped;
   - any other stop (our interrupt, a group stop, a signal to deliver): there was no exec; the
     process goes on with its old program. DETACH, re-injecting the signal of a
     signal-delivery-stop;
   - an exit: nothing runs. Reaped when it is not our own child (``kernel.ptrace``).

Anything unexpected while the thread is seized kills the process (fail closed) before the error
goes up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from supervisor.kernel import proc, ptrace
from supervisor.kernel.pidfd import pidfd_send_signal
from supervisor.kernel.ptrace import StopKind
from supervisor.supervise.exec.tracers import Job
from supervisor.supervise.exec.verify import Ino


class Outcome(Enum):
    RAN = "ran"  # the exec ran a checked (or allowed) program, now let go
    NO_EXEC = "no-exec"  # the kernel refused the exec (or will restart it): let go
    KILLED = "killed"  # it ran something else: killed before its first instruction
    GONE = "gone"  # the thread or process went away
    UNTRACEABLE = "untraceable"  # could not be seized: not resumed, still to be answered


@dataclass(frozen=True, slots=True)
class Pass:
    """One exec let through a gate: its notification, the files it may run, and what the
    caller wants back with the result (its request and decision, for the log)."""

    resume: Callable[[], object]  # CONTINUE its notification (supervise.reply.resume)
    expected: frozenset[Ino]
    about: Any = None


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    last: Pass  # the exec the outcome is about (the last one the gate took: see Gate.adopt)
    err: int = 0  # UNTRACEABLE: why (errno of PTRACE_SEIZE)
    executed: str = ""  # KILLED: what it executed, for the log


# Called on the tracer thread at an EXEC stop whose executable is none of the checked files:
# None when it may run anyway, else the path it executed (for the log).
Judge = Callable[[Pass], str | None]
# Called on the tracer thread once the thread is seized, before the CONTINUE.
Seized = Callable[[Pass], None]


class Gate:
    """The gate of one thread: seized from the first exec until it stops (at the exec, or back
    from a failed one) and is let go."""

    def __init__(
        self,
        tid: int,
        tgid: int,
        pidfd: int,
        first: Pass,
        *,
        after: Gate | None = None,
    ) -> None:
        self.tid = tid
        self.tgid = tgid
        self.pidfd = pidfd  # of tgid, opened before the CONTINUE; run_gate closes it
        self.after = after  # a gate of this thread that is letting go: seize once it is done
        self.done = threading.Event()  # set once the thread is let go (or gone)
        self.first = first
        self._lock = threading.Lock()
        self._current = first
        self._stopped = False  # a stop was seen: no exec is taken any more
        self.left_zombie = False  # our own child exited: its zombie stays on our lists

    def adopt(self, p: Pass) -> Pass | None:
        """Take exec ``p`` of the same thread while this gate still traces it: its last exec
        failed so fast that the thread made its next syscall before our interrupt stopped it
        (the stop comes when that syscall returns). The caller then CONTINUEs ``p`` itself.
        Returns the exec ``p`` replaces (which failed: the caller logs it), or None when this
        gate has seen its stop and is letting go: the caller starts a new gate after it."""
        with self._lock:
            if self._stopped:
                return None
            previous, self._current = self._current, p
            return previous

    def _stop_seen(self) -> Pass:
        with self._lock:
            self._stopped = True
            return self._current


def gate_job(
    g: Gate, judge: Judge, seized: Seized, finished: Callable[[Result | BaseException], None]
) -> Job:
    """``g`` through the gate as a job for a tracer thread (``tracers.TracerPool``), then
    ``finished(result)`` on that thread. The thread may be reused unless the gate left our own
    child's zombie on its lists, or failed."""

    def job() -> bool:
        try:
            result = run_gate(g, judge, seized)
        except BaseException as e:  # reported, not raised on a thread nobody joins
            finished(e)
            return False
        finished(result)
        return not g.left_zombie

    return job


def run_gate(g: Gate, judge: Judge, seized: Seized) -> Result:
    """Resume the exec of ``g`` through the gate: all of it on the calling thread, which must
    have no child and no other tracee. Closes ``g.pidfd``."""
    try:
        if g.after is not None:
            g.after.done.wait()
        first = g.first
        try:
            ptrace.seize(g.tid)
        except OSError as e:
            return Result(Outcome.UNTRACEABLE, first, e.errno or 0)
        try:
            seized(first)
            return _traced(g, first, judge)
        except BaseException:
            with contextlib.suppress(OSError):
                pidfd_send_signal(g.pidfd, signal.SIGKILL)
            raise
    finally:
        os.close(g.pidfd)
        g.done.set()


def _traced(g: Gate, first: Pass, judge: Judge) -> Result:
    # False: the thread is gone or its syscall was interrupted (to be restarted and notified
    # again): then no exec runs now, and the stop below lets it go.
    first.resume()
    with contextlib.suppress(ProcessLookupError):  # dead, or already stopped at the exec
        ptrace.interrupt(g.tid)
    # Its pid is the tid until a multithreaded exec makes it the tgid: each stop says which.
    stop = ptrace.next_stop()
    last = g._stop_seen()
    if stop is None:
        return Result(Outcome.GONE, last)
    if stop.kind is StopKind.EXITED:
        _exited(g, stop.pid)
        return Result(Outcome.GONE, last)
    if stop.kind is StopKind.EXEC:
        return _at_exec(g, stop.pid, last, judge)
    sig = stop.sig if stop.kind is StopKind.SIGNAL else 0
    return _let_go(g, stop.pid, sig, Result(Outcome.NO_EXEC, last))


def _at_exec(g: Gate, pid: int, last: Pass, judge: Judge) -> Result:
    try:
        exe = proc.exe_identity(g.tgid)
    except OSError:
        exe = None
    ran = Result(Outcome.RAN, last)
    if exe is not None and exe in last.expected:
        return _let_go(g, pid, 0, ran)
    executed = judge(last) if exe is not None else "?"
    if executed is None:
        return _let_go(g, pid, 0, ran)
    with contextlib.suppress(OSError):  # gone already
        pidfd_send_signal(g.pidfd, signal.SIGKILL)
    _wait_exit(g)
    return Result(Outcome.KILLED, last, executed=executed)


def _let_go(g: Gate, pid: int, sig: int, result: Result) -> Result:
    try:
        ptrace.detach(pid, sig)
    except ProcessLookupError:  # killed meanwhile (no longer in its stop)
        _wait_exit(g)
        return Result(Outcome.GONE, result.last)
    return result


def _wait_exit(g: Gate) -> None:
    """Wait for the killed tracee's exit and reap it if that is ours to do."""
    while (stop := ptrace.next_stop()) is not None:
        if stop.kind is StopKind.EXITED:
            _exited(g, stop.pid)
            return


def _exited(g: Gate, pid: int) -> None:
    """An exited tracee: reaped here unless it is our own child, whose exit status is our
    wait's (see ``kernel.ptrace``)."""
    if pid == g.tgid:
        try:
            if proc.ppid(pid) == os.getpid():
                g.left_zombie = True
                return
        except (OSError, ValueError, IndexError):
            return  # reaped already
    ptrace.reap(pid)
