"""What a syscall handler works with: the ``Context`` of one Supervisor.

The loop makes one Context when its Supervisor is made and hands it to every handler (paths,
opens, net/, exec/) instead of itself: the listener (answered only through ``supervise.reply``),
the target-memory reader, the path resolver, the engine (replaced by a policy reload), the
decision log, the counters, the worker-thread limiter and the nursery tasks may be spawned in.
Handlers hold no reference to the Supervisor, and the Supervisor's own state (routes, the lane)
is none of theirs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from supervisor.kernel.memory import MemoryReader
from supervisor.kernel.seccomp import ListenerFd
from supervisor.logs import DecisionLog
from supervisor.policy import Engine
from supervisor.target.resolve import PathResolver


@dataclass
class Counters:
    """What this supervisor did, for status reports."""

    notifications: int = 0
    allowed: int = 0
    denied: int = 0
    killed: int = 0
    by_syscall: Counter[str] = field(default_factory=Counter)


class Context:
    """The parts of one Supervisor a handler may use (one per Supervisor, made once)."""

    __slots__ = (
        "listener",
        "memory",
        "resolver",
        "engine",
        "log",
        "decisions",
        "counters",
        "threads",
        "nursery",
        "denial",
        "defer",
    )

    def __init__(
        self,
        listener: ListenerFd,
        engine: Engine,
        log: Any,
        *,
        max_blocking_opens: int,
    ) -> None:
        self.listener = listener
        self.memory = MemoryReader(listener.fileno())
        self.resolver = PathResolver()
        self.engine = engine
        self.log = log
        self.decisions = DecisionLog(log)
        self.counters = Counters()
        # Worker threads for calls that may block (FIFO opens, blocking connects and sends).
        self.threads = trio.CapacityLimiter(max_blocking_opens)
        # The Supervisor's nursery while it runs (None before and after: nothing is spawned).
        self.nursery: trio.Nursery | None = None
        # A denial act() leaves for the loop to send with its next receive (see reply), allowed
        # while ``defer`` is set: inside the loop's handle(), which sends it right after.
        self.denial: tuple[int, int] | None = None
        self.defer = False

    def spawn(self, task: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Run ``task(*args)`` in the Supervisor's nursery; False when it is not running (the
        caller then does the work inline or refuses)."""
        nursery = self.nursery
        if nursery is None:
            return False
        nursery.start_soon(task, *args)
        return True
