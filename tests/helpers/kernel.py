"""Helpers for tests that drive the kernel layer directly (no trio loop)."""

from __future__ import annotations

import os
import select

from supervisor.kernel.filter import build_filter
from supervisor.kernel.seccomp import ListenerFd, Notification, Readiness
from supervisor.policy import FilterPlan, KernelAction, KernelRule
from supervisor.target.launch import Launched, launch

ALLOW = KernelAction("allow")
NOTIFY = KernelAction("notify")


def notify_plan(*syscalls: str, default: KernelAction = ALLOW) -> FilterPlan:
    rules = tuple(KernelRule(s, NOTIFY) for s in syscalls)
    return FilterPlan(
        default=default, rules=rules, notified=frozenset(syscalls), kernel_decided=frozenset()
    )


def start(plan: FilterPlan, argv: list[str]) -> Launched:
    return launch(argv, build_filter(plan))


def next_notification(listener: ListenerFd, timeout: float = 10.0) -> Notification | None:
    """The next notification, or None once every target is gone."""
    while True:
        r, _, _ = select.select([listener.fileno()], [], [], timeout)
        assert r, "no notification within the timeout"
        state = listener.readiness()
        if state is Readiness.GONE:
            return None
        if state is Readiness.PENDING:
            n = listener.recv()
            if n is not None:
                return n


def finish(launched: Launched) -> int:
    """Wait for the target; its raw wait status. Closes our fds."""
    _, status = os.waitpid(launched.pid, 0)
    launched.listener.close()
    os.close(launched.pidfd)
    os.close(launched.exec_status_fd)
    return status
