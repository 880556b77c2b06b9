"""The syscall handlers: where a new one goes.

The loop routes every (arch, syscall) once per policy (``Supervisor._route``), in this order:

1. the first handler of ``table`` below whose ``wants(name)`` is true gets every notification of
   that syscall, whole: it reads what it needs from the target (``supervise.requests`` for path
   arguments, its own readers for other structures), asks ``ctx.engine``, and answers: through
   ``supervise.act`` for a decision it does not perform itself, through ``supervise.reply`` for
   what it performs (its result) or refuses before deciding;
2. otherwise a syscall the engine needs paths for is a *path* route, handled inline by the loop
   (the hot path: the C lane reads and resolves the path with the receive);
3. otherwise a *plain* route: decided by argument values, inline.

A handler is made once per Supervisor with its ``Context`` and must never let an exception
out for a notification it cannot answer: the loop answers EPERM for it (an internal error is
never an allow). A syscall performed by the supervisor (an emulated filesystem call, say)
becomes a new class here with ``wants``/``handle``, added to ``table``; its filter side (that
the syscall is notified) is the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from supervisor.kernel.seccomp import Notification
from supervisor.supervise.answers import AnswerCalls
from supervisor.supervise.context import Context
from supervisor.supervise.exec.calls import ExecCalls
from supervisor.supervise.fsops import FsCalls
from supervisor.supervise.net.calls import NetCalls


class Handler(Protocol):
    def wants(self, name: str) -> bool:
        """Whether this handler takes every notification of syscall ``name`` under the
        current ``ctx.engine`` (asked again after a policy reload)."""
        ...

    def handle(self, n: Notification, name: str) -> None:
        """Answer ``n`` (through supervise.act or supervise.reply), or raise TargetGone when
        the thread went away; any other exception is answered EPERM by the loop."""
        ...


@dataclass(frozen=True, slots=True)
class Handlers:
    table: tuple[Handler, ...]  # in the order the loop asks them


def make_handlers(ctx: Context) -> Handlers:
    table: tuple[Handler, ...] = (
        ExecCalls(ctx),  # execve, execveat under exec rules (supervise/exec/)
        NetCalls(ctx),  # connect, bind, sends, i386 socketcall under address rules (net/)
        AnswerCalls(ctx),  # stat, access, readlink, getxattr under path rules (answers.py)
        FsCalls(ctx),  # rename, unlink, mkdir, chmod, ... performed after a path check (fsops)
    )
    return Handlers(table)
