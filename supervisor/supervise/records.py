"""The decision events: what a handler logs about a notification it answered.

``record`` is the event of a decision (``syscall.denied``, ``.logged``, ``.killed`` ...), keyed
so that the DecisionLog folds repeats; ``refused`` the event of a call refused before any
decision (a bad pointer, an unknown syscall, an internal error); ``phase_entered`` the
``policy.phase`` event of a rule that moved the engine to another phase. Fields are built only
when an event is written (``proc.comm`` reads /proc).
"""

from __future__ import annotations

import errno
from typing import Any

from supervisor.kernel import proc
from supervisor.kernel.seccomp import Notification
from supervisor.logs import errno_name
from supervisor.policy import Action, Decision, Request
from supervisor.supervise.context import Context


def record(
    ctx: Context,
    event: str,
    n: Notification,
    request: Request,
    decision: Decision,
    level: str = "warning",
    **extra: Any,
) -> None:
    key = (
        n.pid,
        request.syscall,
        request.paths,
        request.address,
        decision.rule,
        decision.action,
    )

    def fields() -> dict[str, Any]:
        data: dict[str, Any] = {
            "pid": n.pid,
            "comm": proc.comm(n.pid),
            "syscall": request.syscall,
        }
        if request.arch != "x86_64":
            data["arch"] = request.arch
        if request.paths:
            data["path"] = request.paths[0] if len(request.paths) == 1 else list(request.paths)
        else:
            data["args"] = [hex(a) for a in request.args]
        if request.argv is not None:
            data["argv"] = loggable_argv(request.argv)
        if request.address is not None:
            data["address"] = request.address.describe()
        data["rule"] = decision.rule or "(default)"
        data["action"] = decision.action.value
        if decision.action is Action.DENY:
            data["errno"] = errno_name(decision.errno or errno.EPERM)
        elif decision.action is Action.FAIL:
            data["errno"] = errno_name(decision.errno or errno.EIO)
        elif decision.action is Action.VALUE:
            data["value"] = decision.value
        if decision.over_limit:
            data["over_limit"] = True
        data.update(extra)
        return data

    ctx.decisions.emit(event, key, fields, level=level)


def refused(ctx: Context, n: Notification, name: str, err: int, reason: str) -> None:
    ctx.decisions.emit(
        "syscall.refused",
        (n.pid, name, reason, err),
        lambda: {
            "pid": n.pid,
            "comm": proc.comm(n.pid),
            "syscall": name,
            "reason": reason,
            "errno": errno_name(err),
        },
    )


def phase_entered(ctx: Context, n: Notification, request: Request, decision: Decision) -> None:
    entered = ctx.engine.take_entered()
    if entered is not None:
        ctx.log.info(
            "policy.phase",
            phase=entered,
            pid=n.pid,
            comm=proc.comm(n.pid),
            syscall=request.syscall,
            rule=decision.rule,
        )


def loggable_argv(argv: tuple[str, ...]) -> list[str]:
    """The argv for a log event: at most 64 elements of at most 256 characters."""
    out = [a if len(a) <= 256 else a[:256] + "..." for a in argv[:64]]
    if len(argv) > 64:
        out.append(f"... ({len(argv) - 64} more)")
    return out
