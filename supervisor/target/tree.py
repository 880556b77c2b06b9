"""Killing a process tree: a process and every process it forked, none able to fork again
while the tree is walked, none of them a reused pid.

Acting on the target, deciding nothing: the exec check (supervisor/supervise/exec/) calls
``kill_tree`` when a resumed exec ran something else than what was checked. The tree is read
from /proc (``kernel.proc``): ``children``, ``ppid``, the state and wchan of every thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from supervisor.kernel import proc
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal

STOP_WAIT = 0.05  # seconds: how long wait_stopped waits for a SIGSTOP to take effect


def wait_stopped(pid: int) -> None:
    """Wait (at most STOP_WAIT) until every thread of ``pid`` has stopped, died, or sits in a
    notified syscall (which waits for us). A SIGSTOP only takes effect when a thread next passes
    through the kernel's signal path; until then it runs on (on another CPU) and can fork a child
    that the walk below would not see, and that outlives the kill."""
    deadline = time.monotonic() + STOP_WAIT
    while True:
        tids = proc.threads(pid)
        running = any(
            (state := proc.thread_state(pid, tid)) is not None
            and state not in proc.STOPPED_STATES
            and not proc.waits_in_seccomp(pid, tid)
            for tid in tids
        )
        if not running or time.monotonic() >= deadline:
            return
        time.sleep(0.00005)


def kill_tree(pidfd: int, tgid: int) -> None:
    """SIGKILL the process of ``pidfd`` and every process it forked since the exec (a raced
    program may fork at once, and its children would outlive it). Each is stopped first, so
    none can fork again while the tree is walked; a pid is only signalled through a pidfd taken
    while its parent (stopped) is still its parent, so a reused pid is never hit."""
    with contextlib.suppress(OSError):
        pidfd_send_signal(pidfd, signal.SIGSTOP)
    wait_stopped(tgid)
    held: dict[int, int] = {}
    try:
        for _ in range(3):  # a child forked while its parent was being stopped: look again
            for parent in [tgid, *held]:
                for child in proc.children(parent):
                    if child in held:
                        continue
                    try:
                        fd = pidfd_open(child)
                    except OSError:
                        continue
                    try:
                        if proc.ppid(child) != parent:
                            raise ProcessLookupError(child)
                        pidfd_send_signal(fd, signal.SIGSTOP)
                    except (OSError, ValueError, IndexError):
                        os.close(fd)
                        continue
                    held[child] = fd
                    wait_stopped(child)
        with contextlib.suppress(OSError):  # already gone
            pidfd_send_signal(pidfd, signal.SIGKILL)
        for fd in held.values():
            with contextlib.suppress(OSError):
                pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        for fd in held.values():
            os.close(fd)
