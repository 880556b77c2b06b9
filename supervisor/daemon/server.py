"""The supervisor daemon: many targets in one trio process, served through a control socket.

Each target (one listener fd: one filter, a process tree) gets its own ``Supervisor`` — policy,
engine state, counters, worker-thread limiter — and its own task. Each target's loop hands the
CPU back after every notification (``DaemonConfig.batch``), so a target flooding notified
syscalls shares the event loop round-robin with the others instead of starving them; blocking
opens (FIFOs, devices) go to at most ``max_blocking_opens`` worker threads *per target*, so one
target cannot take the threads another needs.

This module is the daemon's life cycle: its nurseries (one holding the targets, one the
connections), the targets it supervises, reload, status, the events published to subscribers,
and accepting connections. The rest is in the rooms beside it: ``connection`` (one client:
credentials, lines in and out), ``ops`` (what each request does: the op table), ``admission``
(which listener and pid may become a target), ``policies`` (the policy store), ``targets``
(``Target`` and the ``DaemonHooks``). Whatever a client sends, the worst it can do is have its
own connection closed (docs/control-protocol.md).

The daemon knows no service manager. Its seams, used by ``daemon.systemd`` through
``cli.daemon``: ``open_control_socket`` / ``adopt_control_socket`` (socket activation),
``DaemonHooks`` (ready, target count, attach and detach with the listener fd and its JSON
metadata for the fd store, stopping), and ``Daemon(recovered=[(fd, metadata), ...])`` for
listeners recovered at start-up.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from supervisor import __version__
from supervisor.daemon import protocol as control
from supervisor.daemon.admission import is_listener, validate_metadata
from supervisor.daemon.call import Call, Service
from supervisor.daemon.connection import (
    Connection,
    Drop,
    authorised,
    group_id,
    peer_credentials,
    send_now,
)
from supervisor.daemon.listen import listen_unix
from supervisor.daemon.ops import op_for
from supervisor.daemon.policies import PolicyStore
from supervisor.daemon.protocol import ProtocolError, RequestError
from supervisor.daemon.targets import DaemonHooks, Target, TargetLog, log_tags
from supervisor.kernel.seccomp import ListenerFd
from supervisor.supervise.loop import Supervisor


@dataclass
class DaemonConfig:
    control: str = control.DEFAULT_CONTROL
    policy_dirs: list[Path] = field(default_factory=list)  # --policy-dir, searched first
    group: str | None = None  # members may use the control socket (root always may)
    client_timeout: float = 30.0  # idle (no target, no subscription) or mid-line stall
    write_timeout: float = 5.0  # a reply or event the peer does not take in this long
    max_clients: int = 256
    subscriber_queue: int = 1024  # events buffered per subscriber before it is dropped
    max_blocking_opens: int = 4  # worker threads per target
    # Notifications of one target handled before the others get a turn: 1 is round-robin per
    # notification. At 32 (``loop.BATCH``, the embedded `run`'s), a target flooding notified
    # syscalls made another wait for up to 32 of its decisions (~4 ms) at every call. The price
    # (bench/README.md): ~30-40% of the throughput when many targets saturate the daemon.
    batch: int = 1


def open_control_socket(path: str, group: str | None = None) -> socket.socket:
    """Create, bind and listen on the control socket at ``path``: its directory created 0755,
    the socket 0660, owned by ``group`` when given. A stale socket file (no daemon answers) is
    replaced; a live one is an error (another daemon runs)."""
    return listen_unix(path, 0o660, group_id(group))


def adopt_control_socket(fd: int) -> socket.socket:
    """A listening AF_UNIX stream socket inherited (socket activation: LISTEN_FDS)."""
    sock = socket.socket(fileno=fd)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise OSError(f"fd {fd} is not an AF_UNIX stream socket")
    os.set_inheritable(fd, False)
    return sock


# -- the daemon ------------------------------------------------------------------------------------
class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        control_socket: socket.socket,
        *,
        hooks: DaemonHooks | None = None,
        recovered: Iterable[tuple[int, dict[str, Any]]] = (),
        log: Any | None = None,
        owns_path: bool = True,
        services: Iterable[Service] = (),
    ) -> None:
        self.config = config
        self.hooks = hooks or DaemonHooks()
        self.log = log or structlog.get_logger("seccomp-supervisor.daemon.server")
        self.policies = PolicyStore(config.policy_dirs, self.log)
        self.targets: dict[int, Target] = {}
        self.started = time.time()
        self.reloads = 0
        self._gid = group_id(config.group)
        self._listen = control_socket
        self._owns_path = owns_path
        self._recovered = list(recovered)
        self._services = list(services)  # front ends with sockets of their own (daemon.oci)
        self._ids = itertools.count(1)
        self._connections: set[Connection] = set()
        self._subscribers: set[Connection] = set()
        self._stop = trio.Event()
        self._targets_nursery: trio.Nursery | None = None
        self._finished = {"notifications": 0, "allowed": 0, "denied": 0, "killed": 0, "targets": 0}

    # -- life cycle ---------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until SIGTERM/SIGINT (or ``stop()``); then close every connection and listener
        copy the daemon holds and return."""
        listen = trio.socket.from_stdlib_socket(self._listen)
        ident = self._socket_identity()
        try:
            async with trio.open_nursery() as top:
                self._targets_nursery = await top.start(_nursery_holder)
                conns: trio.Nursery = await top.start(_nursery_holder)
                for fd, meta in self._recovered:
                    self._adopt_recovered(fd, meta)
                self._recovered = []
                top.start_soon(self._accept, listen, conns)
                for service in self._services:
                    top.start_soon(service, self)
                top.start_soon(self._signals)
                self.log.info(
                    "daemon.ready",
                    control=self.config.control,
                    pid=os.getpid(),
                    version=__version__,
                )
                self.hooks.ready(len(self.targets))
                task_status.started(self)
                await self._stop.wait()
                self.log.info("daemon.stopping", targets=len(self.targets))
                self.hooks.stopping()
                top.cancel_scope.cancel()
        finally:
            for target in list(self.targets.values()):
                target.listener.close()
            self.targets.clear()
            listen.close()
            self._unlink_socket(ident)
            self.log.info("daemon.stopped")

    def stop(self) -> None:
        self._stop.set()

    def _socket_identity(self) -> tuple[int, int] | None:
        if not self._owns_path:
            return None
        try:
            st = os.stat(self.config.control)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _unlink_socket(self, ident: tuple[int, int] | None) -> None:
        if ident is None:
            return
        with contextlib.suppress(OSError):
            st = os.stat(self.config.control)
            if (st.st_dev, st.st_ino) == ident:  # still ours, not a successor's
                os.unlink(self.config.control)

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM, signal.SIGINT) as signals:
            async for sig in signals:
                if sig == signal.SIGHUP:
                    try:
                        self.reload()
                    except Exception as e:  # a reload that fails keeps what is in force
                        self.log.error("daemon.reload_failed", error=str(e), exc_info=e)
                else:
                    self.log.info("daemon.signal", signal=signal.Signals(sig).name)
                    self.stop()

    # -- targets --------------------------------------------------------------------------------
    def add_target(
        self,
        fd: int,
        metadata: dict[str, Any],
        *,
        recovered: bool = False,
        peer: dict[str, int] | None = None,
    ) -> Target:
        """Supervise the listener ``fd`` (the daemon owns it from here on). Raises RequestError
        when its policy cannot be loaded (``fd`` is then still the caller's)."""
        assert self._targets_nursery is not None
        loaded = self.policies.get(metadata["policy"])
        tid = next(self._ids)
        listener = ListenerFd(fd)
        tags = log_tags(metadata)
        log = self.log.bind(
            target=tid, target_pid=metadata["pid"], policy=metadata["policy"], **tags
        )
        sup = Supervisor(
            listener,
            loaded.policy,
            log=TargetLog(self.publish, tid, log, tags),
            max_blocking_opens=self.config.max_blocking_opens,
            batch=self.config.batch,
        )
        target = Target(tid, listener, metadata, sup, time.time(), recovered, peer or {})
        self.targets[tid] = target
        self._targets_nursery.start_soon(self._run_target, target, log)
        log.info("target.attached", argv=metadata["argv"], uid=metadata["uid"], recovered=recovered)
        self.publish({"event": "target.attached", **target.describe()})
        self._call_hook(self.hooks.attached, target)
        self._call_hook(self.hooks.targets_changed, len(self.targets))
        return target

    def _adopt_recovered(self, fd: int, metadata: dict[str, Any]) -> None:
        try:
            if not is_listener(fd):
                raise ProtocolError("not_a_listener", "not a seccomp listener")
            self.add_target(fd, validate_metadata(metadata, container=True), recovered=True)
        except (ProtocolError, RequestError) as e:
            self.log.error("target.recover_failed", fd=fd, metadata=metadata, error=str(e))
            control.close_fds([fd])

    async def _run_target(self, target: Target, log: Any) -> None:
        gone = False
        try:
            await target.supervisor.run()
            gone = True
        except Exception as e:  # one target's failure never takes the daemon down
            log.critical("target.failed", error=f"{type(e).__name__}: {e}")
        finally:
            self.targets.pop(target.id, None)
            target.listener.close()
            summary = target.supervisor.counters_summary()
            for key, value in summary.items():
                self._finished[key] += value
            self._finished["targets"] += 1
        if gone:
            log.info("target.detached", **summary)
            self.publish(
                {"event": "target.detached", "target": target.id, **log_tags(target.metadata)}
                | summary
            )
            self._call_hook(self.hooks.detached, target)
        self._call_hook(self.hooks.targets_changed, len(self.targets))

    def _call_hook(self, hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(*args)
        except Exception as e:
            self.log.error("daemon.hook_failed", hook=getattr(hook, "__name__", "?"), error=str(e))

    def reload(self) -> dict[str, Any]:
        """Re-read every policy in use; targets of a changed policy decide by the new one from
        their next notification. A policy that fails to load keeps the old one."""
        self.reloads += 1
        changed, failed = self.policies.reload()
        updated = 0
        for target in list(self.targets.values()):
            name = target.metadata["policy"]
            if name in changed:
                try:
                    target.supervisor.set_policy(self.policies.loaded[name].policy)
                except Exception as e:  # that target keeps deciding by its old policy
                    failed[name] = f"target {target.id}: {type(e).__name__}: {e}"
                    self.log.error("policy.set_failed", target=target.id, policy=name, exc_info=e)
                    continue
                updated += 1
        self.log.info("daemon.reloaded", changed=changed, failed=failed, targets_updated=updated)
        return {"changed": changed, "failed": failed, "targets_updated": updated}

    def status(self) -> dict[str, Any]:
        totals = dict(self._finished)
        for target in self.targets.values():
            for key, value in target.supervisor.counters_summary().items():
                totals[key] += value
        return {
            "version": __version__,
            "protocol": control.VERSION,
            "pid": os.getpid(),
            "uptime": round(time.time() - self.started, 3),
            "control": self.config.control,
            "targets": len(self.targets),
            "clients": len(self._connections),
            "subscribers": len(self._subscribers),
            "reloads": self.reloads,
            "policies": {n: str(p.path) for n, p in self.policies.loaded.items()},
            "policy_dirs": [str(d) for d in self.policies.dirs],
            "totals": totals,
        }

    # -- events -----------------------------------------------------------------------------------
    def publish(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for every subscriber; a subscriber whose queue is full is dropped."""
        if not self._subscribers:
            return
        message = {"v": control.VERSION, **event}
        for conn in list(self._subscribers):
            assert conn.events is not None
            try:
                conn.events.send_nowait(message)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(conn)
                conn.dropped = "subscriber too slow: event queue full"
                conn.scope.cancel()

    def subscribe(self, conn: Connection, nursery: trio.Nursery) -> dict[str, Any]:
        """Events for ``conn`` from now on, written by a task in its ``nursery``."""
        if conn.events is None:
            send, receive = trio.open_memory_channel[dict[str, Any]](self.config.subscriber_queue)
            conn.events = send
            conn.held = True
            self._subscribers.add(conn)
            nursery.start_soon(conn.write_events, receive, self.config.write_timeout)
        return {"subscribed": True, "queue": self.config.subscriber_queue}

    # -- the control socket ------------------------------------------------------------------
    async def _accept(self, listen: trio.socket.SocketType, conns: trio.Nursery) -> None:
        while True:
            try:
                sock, _ = await listen.accept()
            except OSError as e:  # EMFILE and the like: wait, never spin or die
                self.log.error("control.accept_failed", error=str(e))
                await trio.sleep(0.1)
                continue
            if len(self._connections) >= self.config.max_clients:
                send_now(sock, control.error(None, "busy", "too many clients"))
                sock.close()
                continue
            conns.start_soon(self._serve_connection, sock)

    async def _serve_connection(self, sock: trio.socket.SocketType) -> None:
        with sock:
            try:
                pid, uid, gid, groups = peer_credentials(sock)
            except OSError:
                return
            conn = Connection(sock, pid, uid)
            if not authorised(uid, gid, groups, self._gid):
                self.log.warning("control.refused", peer_pid=pid, peer_uid=uid, peer_gid=gid)
                with trio.move_on_after(self.config.write_timeout):
                    await conn.send(
                        control.error(
                            None, "not_authorised", "only root or the daemon's group may connect"
                        ),
                        self.config.write_timeout,
                    )
                return
            self._connections.add(conn)
            pending: list[int] = []
            try:
                with conn.scope:
                    async with trio.open_nursery() as nursery:
                        # Handled here, inside the nursery: it would wrap them in a group.
                        try:
                            await conn.read_requests(
                                partial(self._handle_line, conn, nursery),
                                self.config.client_timeout,
                                pending,
                            )
                        except Drop as e:
                            self.log.info("control.closed", peer_pid=pid, reason=str(e))
                        except ProtocolError as e:
                            self.log.info("control.bad_input", peer_pid=pid, error=str(e))
                            control.close_fds(pending)
                            pending.clear()
                            with contextlib.suppress(Drop):
                                await conn.send(
                                    control.error(None, e.code, str(e)), self.config.write_timeout
                                )
                        nursery.cancel_scope.cancel()
            except Exception as e:  # a bug closes this one connection, never the daemon
                self._internal_error(conn, e)
            finally:
                control.close_fds(pending)
                self._connections.discard(conn)
                self._subscribers.discard(conn)
                if conn.events is not None:
                    conn.events.close()
            if conn.dropped:
                self.log.warning("control.dropped", peer_pid=pid, reason=conn.dropped)
                send_now(sock, control.error(None, "dropped", conn.dropped))

    def _internal_error(self, conn: Connection, exc: Exception) -> None:
        """Last resort for an exception nothing else handled while serving ``conn``: log it
        with the peer, tell the peer (best effort) and let only this connection close."""
        inner: BaseException = exc
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        self.log.error(
            "control.internal_error",
            peer_pid=conn.pid,
            peer_uid=conn.uid,
            error=f"{type(inner).__name__}: {inner}"[:500],
            exc_info=inner,
        )
        send_now(conn.sock, control.error(None, "internal_error", "internal error; see the log"))

    async def _handle_line(
        self, conn: Connection, nursery: trio.Nursery, line: bytes, fds: list[int]
    ) -> None:
        """Answer one request line: its op from the table (``daemon.ops``), its result or its
        RequestError as the answer; a ProtocolError goes up (the connection closes)."""
        try:
            req = control.parse_request(line)
            try:
                op = op_for(req["op"], fds)
                handed, fds = fds, []  # from here the op owns them (attach closes what it rejects)
                result = op.handler(self, Call(conn, nursery, req, handed))
            except RequestError as e:
                await conn.send(control.error(req["id"], e.code, str(e)), self.config.write_timeout)
                return
        finally:
            control.close_fds(fds)
        await conn.send(control.ok(req["id"], result), self.config.write_timeout)


async def _nursery_holder(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


def serve(
    config: DaemonConfig,
    *,
    control_socket: socket.socket | None = None,
    hooks: DaemonHooks | None = None,
    recovered: Iterable[tuple[int, dict[str, Any]]] = (),
    services: Iterable[Service] = (),
) -> None:
    """Run the daemon in this process until SIGTERM/SIGINT: on ``control_socket`` (inherited,
    e.g. socket activation) or a socket created at ``config.control``; each of ``services``
    (a front end with a socket of its own: ``daemon.oci``) runs beside it."""
    owns = control_socket is None
    # Each target costs fds (its listener, pidfds, resolver handles): take what we may.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sock = control_socket or open_control_socket(config.control, config.group)
    daemon = Daemon(
        config, sock, hooks=hooks, recovered=recovered, owns_path=owns, services=services
    )
    trio.run(daemon.run)
