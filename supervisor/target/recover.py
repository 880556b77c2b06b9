"""Recovering notifications a dead supervisor had received but not answered.

The kernel hazard (kernel/seccomp.c, ``seccomp_do_user_notification``): a notified syscall is
queued as a ``seccomp_knotif`` in state INIT; NOTIF_RECV moves it to SENT and no RECV ever returns
it again. When the supervisor dies with a SENT notification unanswered while another copy of the
listener keeps the filter's notifier alive (``run --daemon`` holds one), the target thread waits
for a reply no one will send: a restarted daemon never sees that notification.

The way out: that thread waits with ``wait_for_completion_interruptible()`` unless the filter was
installed with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (then, once SENT, only a fatal signal wakes
it). An interrupted wait removes the notification and returns -ERESTARTSYS; with no handler run
(a stop signal), the syscall is restarted and notified afresh, as a new INIT notification the new
daemon receives. So `run --daemon` installs its filter *without* WAIT_KILLABLE_RECV and, after
re-attaching, sends SIGSTOP then SIGCONT to every process of the target's tree (``kick``).

What it costs: the stop and continue are visible to the target's parents (SIGCHLD with
CLD_STOPPED/CLD_CONTINUED, waitpid with WUNTRACED) and to a handler the target installed for
SIGCONT; a syscall the target was in *without* SA_RESTART semantics returns EINTR only when such
a handler runs. A syscall that was partly performed by the dead daemon (an emulated open with
O_CREAT that created the file) is performed again: O_CREAT|O_EXCL then fails with EEXIST.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from supervisor.kernel import proc


def kick(pid: int, *, settle: float = 1.0) -> list[int]:
    """SIGSTOP the tree of ``pid``, wait (at most ``settle`` seconds) until its threads have
    stopped, then SIGCONT it: every thread waiting interruptibly in a notified syscall has its
    syscall restarted and notified again. Returns the pids signalled."""
    pids = proc.process_tree(pid)
    stopped = []
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGSTOP)
            stopped.append(p)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and not proc.all_stopped(stopped):
        time.sleep(0.005)
    for p in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGCONT)
    return stopped
