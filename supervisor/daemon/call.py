"""One request being served, as an op handler sees it: the ``Call``, the ``Host`` (what a
handler may use of the daemon) and ``Op`` (an entry of ``ops.OPS``). A module of its own so
that modules of handlers import it, and the table (``daemon.ops``) imports them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from supervisor.daemon.connection import Connection
from supervisor.daemon.policies import PolicyStore
from supervisor.daemon.targets import Target


class Host(Protocol):
    """What the ops use of the daemon (``daemon.server.Daemon``)."""

    policies: PolicyStore
    targets: dict[int, Target]
    log: Any

    def status(self) -> dict[str, Any]: ...

    def reload(self) -> dict[str, Any]: ...

    def add_target(
        self,
        fd: int,
        metadata: dict[str, Any],
        *,
        recovered: bool = False,
        peer: dict[str, int] | None = None,
    ) -> Target: ...

    def subscribe(self, conn: Connection, nursery: trio.Nursery) -> dict[str, Any]: ...

    def publish(self, event: dict[str, Any]) -> None: ...


@dataclass
class Call:
    conn: Connection
    nursery: trio.Nursery  # the connection's: tasks started here end with it
    request: dict[str, Any]
    fds: list[int]


@dataclass(frozen=True)
class Op:
    handler: Callable[[Host, Call], dict[str, Any]]
    takes_fd: bool = False


# A front end with a socket of its own (``daemon.oci``): run by the daemon beside its control
# socket, in its top nursery, until the daemon stops (cancelled).
Service = Callable[[Host], Awaitable[None]]
