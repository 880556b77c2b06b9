"""Decision → answer: how the engine's verdict on a notification becomes its reply.

* deny → the syscall fails with the rule's errno; kill → SIGKILL to the target process through a
  pidfd, then an error reply (which the dying target never sees).
* allow or log, decided by argument *values* only → ``CONTINUE``: nothing the target can still
  change was looked at.
* allow or log after *inspecting* pointer arguments (``Decision.inspected``) → never CONTINUE
  (the target could rewrite the path between our check and the kernel's read). For the open
  family the supervisor opens the file itself (``supervise.opens``). Other syscalls cannot be
  performed that way here; for them such an allow is *advisory*, said when the policy is loaded
  and by ``policy check``, and ``act`` resumes them with CONTINUE. Handlers that perform their
  allowed calls themselves (net/, exec/) give ``act`` only the rest, and call ``allowed`` for
  the counting and the log of an allow they answer.

Every answer goes out through ``supervise.reply``.
"""

from __future__ import annotations

import errno
import os
import signal

from supervisor.kernel import proc
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal
from supervisor.kernel.seccomp import Notification
from supervisor.policy import OPEN_SYSCALLS, Action, Decision, Request
from supervisor.supervise import reply
from supervisor.supervise.context import Context
from supervisor.supervise.opens import emulate_open
from supervisor.supervise.records import phase_entered, record


def act(
    ctx: Context, n: Notification, request: Request, decision: Decision, defer: bool = False
) -> None:
    """Turn a decision into the answer. ``defer``: the loop's own final call for a
    notification: a denial may then be left in ``ctx.denial`` for the loop to send with its
    next receive (sv_lane_answer_next)."""
    if decision.enters is not None:
        phase_entered(ctx, n, request, decision)
    action = decision.action
    if action is Action.DENY:
        ctx.counters.denied += 1
        record(ctx, "syscall.denied", n, request, decision)
        err = decision.errno or errno.EPERM
        if defer and ctx.defer:
            # The last thing the loop's handle() does: the loop sends it with its next receive.
            ctx.denial = (n.id, err)
        else:
            reply.error(ctx, n, err)
    elif action is Action.FAIL:
        # Fault injection: an error the call could have had, chosen by the policy.
        ctx.counters.denied += 1
        record(ctx, "syscall.failed", n, request, decision, level="info")
        reply.error(ctx, n, decision.errno or errno.EIO)
    elif action is Action.VALUE:
        # Answered without running the syscall: nothing the target holds is used.
        ctx.counters.allowed += 1
        record(ctx, "syscall.answered", n, request, decision, level="info")
        reply.value(ctx, n, decision.value)
    elif action is Action.KILL:
        ctx.counters.killed += 1
        record(ctx, "syscall.killed", n, request, decision, level="error")
        kill(ctx, n)
        reply.error(ctx, n, errno.EPERM)
    else:
        ctx.counters.allowed += 1
        if action is Action.LOG:
            record(ctx, "syscall.logged", n, request, decision, level="info")
        if decision.inspected and request.syscall in OPEN_SYSCALLS:
            emulate_open(ctx, n, request)
        else:
            # Decided by values, or advisory (said when the policy was loaded).
            reply.resume(ctx, n)


def allowed(ctx: Context, n: Notification, request: Request, decision: Decision) -> None:
    """The bookkeeping of an allow a handler answers itself (performed, or resumed after a
    check of its own): the phase it enters, the count, the ``syscall.logged`` event."""
    if decision.enters is not None:  # a phase change (docs/policy.md "Phases")
        phase_entered(ctx, n, request, decision)
    ctx.counters.allowed += 1
    if decision.action is Action.LOG:
        record(ctx, "syscall.logged", n, request, decision, level="info")


def kill(ctx: Context, n: Notification) -> None:
    """SIGKILL the process of thread ``n.pid``, through a pidfd checked to be its."""
    try:
        tgid = proc.tgid(n.pid)
        pidfd = pidfd_open(tgid)
    except OSError:
        return  # already gone
    try:
        # Valid after pidfd_open: the thread (so its process) was alive when we took the pidfd.
        if ctx.listener.id_valid(n.id):
            pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)
