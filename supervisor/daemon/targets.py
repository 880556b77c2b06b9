"""A target as the daemon holds it, and the hooks through which the daemon tells its host about
targets: the types that the server, the op table and an integration (``daemon.systemd``) share,
so that none of them imports another's.

A target is one listener fd (one filter, a process tree) with its own ``Supervisor``; its
``metadata`` is what its client said at ``attach`` as checked by ``daemon.admission`` (policy,
pid, argv, uid, session, start time), JSON-able so that an integration can store it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from supervisor.kernel.seccomp import ListenerFd
from supervisor.supervise.loop import Supervisor


def _noop(*_: Any) -> None:
    return None


@dataclass
class Target:
    id: int
    listener: ListenerFd
    metadata: dict[str, Any]
    supervisor: Supervisor
    attached_at: float
    recovered: bool = False
    peer: dict[str, int] = field(default_factory=dict)

    def describe(self, *, detail: bool = False) -> dict[str, Any]:
        c = self.supervisor.counters
        info: dict[str, Any] = {
            "target": self.id,
            "pid": self.metadata["pid"],
            "argv": self.metadata["argv"],
            "uid": self.metadata["uid"],
            "policy": self.metadata["policy"],
            "attached_at": self.attached_at,
            "recovered": self.recovered,
            "counters": {
                "notifications": c.notifications,
                "allowed": c.allowed,
                "denied": c.denied,
                "killed": c.killed,
                "by_syscall": dict(c.by_syscall.most_common()),
            },
        }
        container = self.metadata.get("container")
        if container is not None:
            info["container"] = container if detail else container_brief(container)
        if detail:
            info["peer"] = self.peer
            info["policy_description"] = self.supervisor.policy.description
        return info


def container_brief(container: dict[str, Any]) -> dict[str, Any]:
    """What ``ps`` and each event say of a target's container: its id, status and bundle."""
    return {k: container[k] for k in ("id", "status", "bundle") if k in container}


def log_tags(metadata: dict[str, Any]) -> dict[str, Any]:
    """The fields bound to every log event and published event of a target: the container id
    of a container's process (``daemon.oci``), nothing for others."""
    container = metadata.get("container")
    return {"container": container["id"]} if container is not None else {}


@dataclass
class DaemonHooks:
    """Called from the event loop; they must not block. ``ready`` gets the number of targets
    (those recovered at start-up) once the control socket accepts. ``attached`` gets the target
    while its listener is open (``target.listener.fileno()``) and ``target.metadata``
    (JSON-able), e.g. to hand both to systemd's fd store; ``detached`` only when the target is
    *gone* (every process of its filter exited), never at shutdown, so a stored fd outlives a
    daemon restart."""

    ready: Callable[[int], None] = _noop
    targets_changed: Callable[[int], None] = _noop
    attached: Callable[[Target], None] = _noop
    detached: Callable[[Target], None] = _noop
    stopping: Callable[[], None] = _noop


class TargetLog:
    """The logger a target's Supervisor writes to: the daemon's log, bound to the target, and
    every event handed to ``publish`` (for the subscribers)."""

    def __init__(
        self,
        publish: Callable[[dict[str, Any]], None],
        target_id: int,
        log: Any,
        tags: dict[str, Any] | None = None,
    ) -> None:
        self._publish = publish
        self._id = target_id
        self._log = log
        self._tags = tags or {}

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        getattr(self._log, level)(event, **fields)
        self._publish({"event": event, "target": self._id, **self._tags, "level": level, **fields})

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, **fields)

    def critical(self, event: str, **fields: Any) -> None:
        self._emit("critical", event, **fields)
