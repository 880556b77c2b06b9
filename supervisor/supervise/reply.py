"""THE one place that answers the kernel: every SEND and ADDFD of supervise/ goes through here.

A notified thread waits until it is answered, so every notification gets exactly one answer
(or none when its thread is gone: ``ListenerFd`` then reports ENOENT as False, not an error):

* ``error`` — the syscall fails with an errno without running; ``refuse`` is an error given
  before any decision (a bad pointer, an unknown syscall, an internal error): counted as a
  denial and logged as ``syscall.refused``;
* ``value`` — it returns a number without running (a VALUE rule, a call performed by us:
  ``count`` and ``status`` turn our -errno/0/byte-count results into one or the other);
* ``resume`` — CONTINUE: the kernel runs the syscall as issued. Only for decisions that looked
  at nothing the target can still change, or advisory allows (see supervise.act);
* ``install`` — ADDFD then SEND: an fd we opened (an emulated open, a socket) becomes the
  target's, and the syscall returns its number. Our copy is closed here.

The hot path's denial does not come through a function call: ``act`` leaves it in
``ctx.denial`` and the loop sends it with its next receive, in the same C call
(``sv_lane_answer_next``), through the bound methods ``receivers`` gives it once per run;
``flush_denial`` sends it when the loop yields or stops instead.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from supervisor.kernel.seccomp import ListenerFd, Notification, Readiness
from supervisor.supervise import records
from supervisor.supervise.context import Context

Receive = Callable[[Any], Notification | Readiness]
DenyThenReceive = Callable[[int, int, Any], Notification | Readiness]


def error(ctx: Context, n: Notification, err: int) -> None:
    """The syscall fails with errno ``err``."""
    ctx.listener.send_error(n.id, err)


def refuse(ctx: Context, n: Notification, name: str, err: int, *, reason: str) -> None:
    """Fail the syscall before any decision, counted as a denial and logged with ``reason``."""
    ctx.counters.denied += 1
    records.refused(ctx, n, name, err, reason)
    ctx.listener.send_error(n.id, err)


def value(ctx: Context, n: Notification, result: int) -> None:
    """The syscall returns ``result`` without running."""
    ctx.listener.send_value(n.id, result)


def resume(ctx: Context, n: Notification) -> None:
    """CONTINUE: the kernel runs the syscall as the target issued it."""
    ctx.listener.send_continue(n.id)


def count(ctx: Context, n: Notification, ret: int) -> None:
    """The result of a call we performed: -errno, or a count (bytes sent)."""
    if ret < 0:
        ctx.listener.send_error(n.id, -ret)
    else:
        ctx.listener.send_value(n.id, ret)


def status(ctx: Context, n: Notification, err: int) -> None:
    """The result of a call we performed that returns 0 or fails: ``err`` 0 or an errno."""
    if err:
        ctx.listener.send_error(n.id, err)
    else:
        ctx.listener.send_value(n.id, 0)


def install(ctx: Context, n: Notification, fd: int, *, cloexec: bool) -> None:
    """Answer with our ``fd`` installed in the target (closed here), or with -``fd`` as the
    errno when it is negative. An ADDFD that fails (EMFILE in the target ...) answers with
    its errno: what the target would have got from the call."""
    listener = ctx.listener
    if fd < 0:
        listener.send_error(n.id, -fd)
        return
    try:
        listener.send_fd(n.id, fd, cloexec=cloexec)
    except OSError as e:
        listener.send_error(n.id, e.errno or errno.EMFILE)
    finally:
        os.close(fd)


def flush_denial(ctx: Context) -> None:
    """Send the denial act() left in ``ctx.denial`` (before the loop yields or stops: nobody
    is left waiting for a receive that does not come)."""
    denial, ctx.denial = ctx.denial, None
    if denial is not None:
        ctx.listener.send_error(denial[0], denial[1])


def receivers(listener: ListenerFd) -> tuple[Receive, DenyThenReceive]:
    """The loop's two receive calls, bound once: ``next_notification(lane)``, and
    ``deny_then_next(id, errno, lane)``, which sends the denial in ``ctx.denial`` and receives
    the next notification in one C call."""
    return listener.next_notification, listener.deny_then_next
