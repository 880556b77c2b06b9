"""The supervisor daemon: many targets in one trio process, served through a control socket.

Each target (one listener fd: one filter, a process tree) gets its own ``Supervisor`` — policy,
engine state, counters, worker-thread limiter — and its own task. Each target's loop hands the
CPU back after every notification (``DaemonConfig.batch``), so a target flooding notified
syscalls shares the event loop round-robin with the others instead of starving them; blocking
opens (FIFOs, devices) go to at most ``max_blocking_opens`` worker threads *per target*, so one
target cannot take the threads another needs.

The control socket speaks the protocol of ``daemon.protocol`` (docs/control-protocol.md). Each
connection is its own task; whatever a client sends, the worst it can do is have its own
connection closed: lines are capped at ``control.MAX_LINE``, fds that are not a single seccomp
listener on an ``attach`` line are closed, a peer that stalls mid-line (or stays idle without a
target or a subscription) is timed out, and a subscriber that does not read its events is dropped
rather than waited for.

Seams for the systemd integration (``supervisor/systemd.py``): ``open_control_socket`` /
``adopt_control_socket`` (socket activation), ``DaemonHooks`` (ready, target count, attach and
detach with the listener fd and its JSON metadata for the fd store, stopping), and
``Daemon(recovered=[(fd, metadata), ...])`` for listeners recovered at start-up.
"""

from __future__ import annotations

import array
import contextlib
import grp
import itertools
import os
import pwd
import re
import resource
import signal
import socket
import stat
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import trio

from supervisor import __version__
from supervisor.daemon import protocol as control
from supervisor.daemon.protocol import MAX_LINE, ProtocolError, RequestError
from supervisor.kernel import proc
from supervisor.kernel.kcmp import same_file
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal
from supervisor.kernel.seccomp import ListenerFd
from supervisor.policy import Policy, PolicyError, parse_policy, plan_filter
from supervisor.supervise.loop import Supervisor

SYSTEM_POLICY_DIR = Path("/etc/seccomp-supervisor/policies")
# Overrides SYSTEM_POLICY_DIR (tests; a system that keeps its policies elsewhere).
SYSTEM_POLICY_DIR_ENV = "SECCOMP_SUPERVISOR_SYSTEM_POLICY_DIR"
LISTENER_LINK = "anon_inode:seccomp notify"
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
PID_MAX_LIMIT = 1 << 22  # the kernel's ceiling for /proc/sys/kernel/pid_max (64-bit)
MAX_FDS_PER_MESSAGE = 8  # room for this many; more are dropped (closed) by the kernel
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PEERCRED = struct.Struct("3i")


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


def _noop(*_: Any) -> None:
    return None


@dataclass
class DaemonHooks:
    """Called from the event loop; they must not block. ``attached`` gets the target while its
    listener is open (``target.listener.fileno()``) and ``target.metadata`` (JSON-able), e.g. to
    hand both to systemd's fd store; ``detached`` only when the target is *gone* (every process
    of its filter exited), never at shutdown, so a stored fd outlives a daemon restart."""

    ready: Callable[[Daemon], None] = _noop
    targets_changed: Callable[[int], None] = _noop
    attached: Callable[[Target], None] = _noop
    detached: Callable[[Target], None] = _noop
    stopping: Callable[[], None] = _noop


# -- the control socket --------------------------------------------------------------------------
def group_id(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise ValueError(f"no group named {name!r}") from None


def open_control_socket(path: str, group: str | None = None) -> socket.socket:
    """Create, bind and listen on the control socket at ``path``: its directory created 0755,
    the socket 0660, owned by ``group`` when given. A stale socket file (no daemon answers) is
    replaced; a live one is an error (another daemon runs)."""
    gid = group_id(group)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
        else:
            raise OSError(f"a daemon already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o660)
        if gid is not None:
            os.chown(path, -1, gid)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


def adopt_control_socket(fd: int) -> socket.socket:
    """A listening AF_UNIX stream socket inherited (socket activation: LISTEN_FDS)."""
    sock = socket.socket(fileno=fd)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise OSError(f"fd {fd} is not an AF_UNIX stream socket")
    os.set_inheritable(fd, False)
    return sock


def peer_credentials(sock: Any) -> tuple[int, int, int, tuple[int, ...]]:
    """(pid, uid, gid, supplementary gids) of the peer, as the kernel recorded them at
    connect(2) (SO_PEERCRED, SO_PEERGROUPS): no /proc race."""
    pid, uid, gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    groups: tuple[int, ...] = ()
    with contextlib.suppress(OSError):
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * 1024)
        groups = tuple(array.array("I", raw[: len(raw) // 4 * 4]))
    return pid, uid, gid, groups


def authorised(uid: int, gid: int, groups: Iterable[int], group: int | None) -> bool:
    """Root, or a member of ``group``: primary gid, supplementary groups of the peer, or the
    group's member list naming the peer's user."""
    if uid == 0:
        return True
    if group is None:
        return False
    if gid == group or group in groups:
        return True
    try:
        user = pwd.getpwuid(uid).pw_name
        return user in grp.getgrgid(group).gr_mem
    except KeyError:
        return False


def is_listener(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == LISTENER_LINK
    except OSError:
        return False


# -- policies -------------------------------------------------------------------------------------
@dataclass
class LoadedPolicy:
    policy: Policy
    path: Path
    text: str


def system_policy_dir() -> Path:
    """/etc/seccomp-supervisor/policies, or ``$SECCOMP_SUPERVISOR_SYSTEM_POLICY_DIR``."""
    return Path(os.environ.get(SYSTEM_POLICY_DIR_ENV) or SYSTEM_POLICY_DIR)


class PolicyStore:
    """Policies by name: the --policy-dir directories, /etc/seccomp-supervisor/policies (see
    ``system_policy_dir``), then the shipped ones. Loaded on first use; ``reload`` re-reads
    those in use."""

    def __init__(self, dirs: list[Path], log: Any) -> None:
        from supervisor.cli.main import policy_dirs

        self.dirs = [*dirs, system_policy_dir(), *policy_dirs()]
        self.loaded: dict[str, LoadedPolicy] = {}
        self.log = log

    def find(self, name: str) -> Path:
        if not _NAME.match(name) or name in (".", ".."):
            raise RequestError("bad_policy_name", f"not a policy name: {name!r}")
        for d in self.dirs:
            candidate = d / f"{name}.toml"
            if candidate.is_file():
                return candidate
        raise RequestError("policy_not_found", f"no policy named {name!r}")

    def _read(self, name: str) -> LoadedPolicy:
        path = self.find(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RequestError("policy_error", f"{path}: cannot read: {e}") from None
        try:
            policy = parse_policy(text, source=str(path), name=name)
        except PolicyError as e:
            raise RequestError("policy_error", str(e)) from None
        except Exception as e:  # a parser bug is this file's failure, never the daemon's
            self.log.error("policy.parser_failed", policy=name, path=str(path), exc_info=e)
            raise RequestError(
                "policy_error", f"{path}: cannot be parsed: {type(e).__name__}: {e}"
            ) from None
        return LoadedPolicy(policy, path, text)

    def get(self, name: str) -> LoadedPolicy:
        loaded = self.loaded.get(name)
        if loaded is None:
            loaded = self.loaded[name] = self._read(name)
        return loaded

    def reload(self) -> tuple[list[str], dict[str, str]]:
        """(names whose policy changed, {name: error} of those that kept the old one)."""
        changed: list[str] = []
        failed: dict[str, str] = {}
        for name, old in list(self.loaded.items()):
            try:
                new = self._read(name)
                if new.text == old.text and new.path == old.path:
                    continue
                kernel_part_changed = plan_filter(new.policy) != plan_filter(old.policy)
            except Exception as e:  # RequestError, or a bug: the old policy stays in force
                failed[name] = str(e)
                self.log.error("policy.reload_failed", policy=name, error=str(e))
                continue
            if kernel_part_changed:
                self.log.warning(
                    "policy.reload_kernel_part_changed",
                    policy=name,
                    detail="rules decided in the kernel filter apply to targets started from now "
                    "on; running targets keep the filter they were started with",
                )
            self.loaded[name] = new
            changed.append(name)
        return changed, failed


# -- targets ------------------------------------------------------------------------------------
def validate_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """The target metadata of an ``attach`` (or a recovered fd): policy, pid, argv, uid, an
    optional session token and an optional ``exited`` (the client has reaped the pid). Raises
    ProtocolError."""
    policy, pid, argv, uid = obj.get("policy"), obj.get("pid"), obj.get("argv"), obj.get("uid")
    session, exited = obj.get("session"), obj.get("exited", False)
    if not isinstance(policy, str):
        raise ProtocolError("bad_request", 'attach: "policy" must be a string')
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= PID_MAX_LIMIT:
        raise ProtocolError("bad_request", f'attach: "pid" must be a pid (1-{PID_MAX_LIMIT})')
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ProtocolError("bad_request", 'attach: "argv" must be a list of strings')
    if not isinstance(uid, int) or isinstance(uid, bool) or uid < 0:
        raise ProtocolError("bad_request", 'attach: "uid" must be a non-negative integer')
    if session is not None and (not isinstance(session, str) or len(session) > 128):
        raise ProtocolError("bad_request", 'attach: "session" must be a short string')
    if not isinstance(exited, bool):
        raise ProtocolError("bad_request", 'attach: "exited" must be a boolean')
    meta: dict[str, Any] = {"policy": policy, "pid": pid, "argv": argv, "uid": uid}
    if session is not None:
        meta["session"] = session
    if exited:
        meta["exited"] = True
    return meta


@dataclass(frozen=True)
class ProcessFacts:
    ppid: int
    start_time: int  # field 22 of /proc/PID/stat: with the pid, names one process
    uids: tuple[int, int, int]  # real, effective, saved


def process_facts(pid: int) -> ProcessFacts | None:
    """What /proc says of ``pid``, or None when there is no such process. A pidfd taken first
    and still live after the reads (``pidfd_send_signal`` 0 fails once the process is reaped)
    makes sure both files described one process, not a successor that reused the pid."""
    try:
        pidfd = pidfd_open(pid)
    except OSError:
        return None
    try:
        parent, start, uids = proc.ppid(pid), proc.start_time(pid), proc.uids(pid)
        pidfd_send_signal(pidfd, 0)
        if start is None:
            return None
        return ProcessFacts(parent, start, uids)
    except (OSError, IndexError, ValueError):
        return None
    finally:
        os.close(pidfd)


def check_target_pid(meta: dict[str, Any], peer_pid: int, peer_uid: int) -> dict[str, Any]:
    """The metadata of an ``attach`` with the pid checked against the peer and ``uid`` and
    ``start_time`` taken from /proc. The daemon may signal that pid later (the kick of a target
    recovered from systemd's fd store), so a client may only name a process it could signal
    itself: root any live process; anyone else only its own child (``run --daemon`` is its
    target's parent) whose real or saved uid is the peer's (the kill(2) rule). With
    ``exited`` (the client reaped its child and re-attaches for the rest of the tree) the pid is
    recorded for ``ps`` and never acted on (``start_time`` None). Raises RequestError."""
    pid = meta["pid"]
    if meta.get("exited"):
        uid = meta["uid"] if peer_uid == 0 else peer_uid
        return {**meta, "uid": uid, "start_time": None}
    facts = process_facts(pid)
    if facts is None:
        raise RequestError("bad_pid", f"attach: no process {pid}")
    if peer_uid != 0:
        if facts.ppid != peer_pid:
            raise RequestError(
                "bad_pid", f"attach: process {pid} is not a child of the client (pid {peer_pid})"
            )
        if peer_uid not in (facts.uids[0], facts.uids[2]):
            raise RequestError(
                "bad_pid", f"attach: process {pid} does not belong to the client's user"
            )
    return {**meta, "uid": facts.uids[0], "start_time": facts.start_time}


class _TargetLog:
    """The logger a target's Supervisor writes to: the daemon's log, bound to the target, and
    every event published to subscribers."""

    def __init__(self, daemon: Daemon, target_id: int, log: Any) -> None:
        self._daemon = daemon
        self._id = target_id
        self._log = log

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        getattr(self._log, level)(event, **fields)
        self._daemon.publish({"event": event, "target": self._id, "level": level, **fields})

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
        if detail:
            info["peer"] = self.peer
            info["policy_description"] = self.supervisor.policy.description
        return info


# -- connections ----------------------------------------------------------------------------------
class _Drop(Exception):
    """Close this connection (after a message, if one could be written)."""


@dataclass(eq=False)
class _Connection:
    sock: trio.socket.SocketType
    pid: int
    uid: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    lock: trio.Lock = field(default_factory=trio.Lock)
    held: bool = False  # attached a target or subscribed: no idle timeout
    events: trio.MemorySendChannel[dict[str, Any]] | None = None
    dropped: str | None = None


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
        self._ids = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._subscribers: set[_Connection] = set()
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
                top.start_soon(self._signals)
                self.log.info(
                    "daemon.ready",
                    control=self.config.control,
                    pid=os.getpid(),
                    version=__version__,
                )
                self.hooks.ready(self)
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
        log = self.log.bind(target=tid, target_pid=metadata["pid"], policy=metadata["policy"])
        sup = Supervisor(
            listener,
            loaded.policy,
            log=_TargetLog(self, tid, log),
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
            self.add_target(fd, validate_metadata(metadata), recovered=True)
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
            self.publish({"event": "target.detached", "target": target.id, **summary})
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
                _send_now(sock, control.error(None, "busy", "too many clients"))
                sock.close()
                continue
            conns.start_soon(self._serve_connection, sock)

    async def _serve_connection(self, sock: trio.socket.SocketType) -> None:
        with sock:
            try:
                pid, uid, gid, groups = peer_credentials(sock)
            except OSError:
                return
            conn = _Connection(sock, pid, uid)
            if not authorised(uid, gid, groups, self._gid):
                self.log.warning("control.refused", peer_pid=pid, peer_uid=uid, peer_gid=gid)
                with trio.move_on_after(self.config.write_timeout):
                    await self._send(
                        conn,
                        control.error(
                            None, "not_authorised", "only root or the daemon's group may connect"
                        ),
                    )
                return
            self._connections.add(conn)
            pending: list[int] = []
            try:
                with conn.scope:
                    async with trio.open_nursery() as nursery:
                        # Handled here, inside the nursery: it would wrap them in a group.
                        try:
                            await self._read_requests(conn, nursery, pending)
                        except _Drop as e:
                            self.log.info("control.closed", peer_pid=pid, reason=str(e))
                        except ProtocolError as e:
                            self.log.info("control.bad_input", peer_pid=pid, error=str(e))
                            control.close_fds(pending)
                            pending.clear()
                            with contextlib.suppress(_Drop):
                                await self._send(conn, control.error(None, e.code, str(e)))
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
                _send_now(sock, control.error(None, "dropped", conn.dropped))

    def _internal_error(self, conn: _Connection, exc: Exception) -> None:
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
        _send_now(conn.sock, control.error(None, "internal_error", "internal error; see the log"))

    async def _read_requests(
        self, conn: _Connection, nursery: trio.Nursery, pending: list[int]
    ) -> None:
        """Read lines; ``pending`` holds the fds received with the line being read."""
        buf = bytearray()
        anc_size = socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * 4)
        while True:
            timeout = self.config.client_timeout if (buf or not conn.held) else float("inf")
            with trio.move_on_after(timeout) as scope:
                try:
                    data, ancdata, flags, _ = await conn.sock.recvmsg(65536, anc_size)
                except OSError as e:
                    raise _Drop(f"read failed: {e}") from None
            if scope.cancelled_caught:
                raise ProtocolError("timeout", "no complete request in time")
            fds: list[int] = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", payload[: len(payload) // 4 * 4]))
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.set_inheritable(fd, False)
            pending.extend(fds)
            if flags & socket.MSG_CTRUNC or len(pending) > MAX_FDS_PER_MESSAGE:
                raise ProtocolError("bad_fds", "too many fds for one request")
            if not data:
                return  # EOF (a partial line is simply dropped)
            buf += data
            while True:
                end = buf.find(b"\n")
                if end < 0:
                    break
                if end > MAX_LINE:
                    raise ProtocolError("line_too_long", f"request lines are at most {MAX_LINE}")
                line = bytes(buf[:end])
                del buf[: end + 1]
                line_fds, pending[:] = list(pending), []
                await self._handle_line(conn, nursery, line, line_fds)
            if len(buf) > MAX_LINE:
                raise ProtocolError("line_too_long", f"request lines are at most {MAX_LINE}")

    async def _handle_line(
        self, conn: _Connection, nursery: trio.Nursery, line: bytes, fds: list[int]
    ) -> None:
        try:
            req = control.parse_request(line)
            op = req["op"]
            if fds and op != "attach":
                raise ProtocolError("bad_fds", f"{op}: no fds expected")
            handed, fds = fds, []  # from here _dispatch owns them (attach closes what it rejects)
            try:
                result = self._dispatch(conn, nursery, req, handed)
            except RequestError as e:
                await self._send(conn, control.error(req["id"], e.code, str(e)))
                return
        finally:
            control.close_fds(fds)
        await self._send(conn, control.ok(req["id"], result))

    def _dispatch(
        self, conn: _Connection, nursery: trio.Nursery, req: dict[str, Any], fds: list[int]
    ) -> dict[str, Any]:
        op = req["op"]
        if op == "status":
            return self.status()
        if op in ("list", "ps"):
            return {"targets": [t.describe() for t in self.targets.values()]}
        if op == "show":
            tid = req.get("target")
            target = self.targets.get(tid) if isinstance(tid, int) else None
            if target is None:
                raise RequestError("not_found", f"no target {tid!r}")
            return target.describe(detail=True)
        if op == "reload":
            return self.reload()
        if op == "policy":
            name = req.get("name")
            if not isinstance(name, str):
                raise RequestError("bad_request", 'policy: "name" must be a string')
            loaded = self.policies.get(name)
            return {"name": name, "path": str(loaded.path), "source": loaded.text}
        if op == "attach":
            return self._attach(conn, req, fds)
        if op == "subscribe":
            if conn.events is None:
                send, receive = trio.open_memory_channel[dict[str, Any]](
                    self.config.subscriber_queue
                )
                conn.events = send
                conn.held = True
                self._subscribers.add(conn)
                nursery.start_soon(self._write_events, conn, receive)
            return {"subscribed": True, "queue": self.config.subscriber_queue}
        raise RequestError("unknown_op", f"unknown op {op!r} (known: {', '.join(control.OPS)})")

    def _attach(self, conn: _Connection, req: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        if len(fds) != 1:
            control.close_fds(fds)
            raise ProtocolError("bad_fds", f"attach takes exactly one fd, got {len(fds)}")
        fd = fds[0]
        try:
            if not is_listener(fd):
                raise ProtocolError("not_a_listener", "the fd is not a seccomp listener")
            meta = validate_metadata(req)
            try:
                meta = check_target_pid(meta, conn.pid, conn.uid)
            except RequestError as e:
                self.log.warning(
                    "control.attach_refused", peer_pid=conn.pid, peer_uid=conn.uid, error=str(e)
                )
                raise
            served = self._served_as(conn, fd, meta)
            if served is not None:
                control.close_fds([fd])  # a re-attach of a target we still serve
                conn.held = True
                return {"target": served.id, "existing": True}
            target = self.add_target(fd, meta, peer={"pid": conn.pid, "uid": conn.uid})
        except BaseException:
            control.close_fds([fd])
            raise
        conn.held = True
        return {"target": target.id, "existing": False}

    def _served_as(self, conn: _Connection, fd: int, meta: dict[str, Any]) -> Target | None:
        """The target already supervising the listener ``fd``, if any. Two supervisors on one
        filter would split its notifications (each RECV goes to one of them), so the weaker
        policy would decide part of them: the same listener (kcmp: one open file) under the same
        policy is that target again (``run`` re-attaching), under another policy refused, as is
        a session token that names another target's listener. Raises RequestError."""
        log = self.log.bind(peer_pid=conn.pid, peer_uid=conn.uid, policy=meta["policy"])
        session = meta.get("session")
        for target in list(self.targets.values()):
            if target.listener.closed:
                continue
            try:
                same = same_file(fd, target.listener.fileno())
            except OSError as e:  # no CONFIG_KCMP: refuse rather than risk a second supervisor
                log.error("control.attach_uncomparable", error=str(e))
                raise RequestError(
                    "cannot_compare",
                    f"attach: cannot tell whether this listener is already supervised (kcmp: "
                    f"{e.strerror or e})",
                ) from None
            if not same:
                if session is not None and target.metadata.get("session") == session:
                    log.warning("control.attach_refused", error="session of another listener")
                    raise RequestError(
                        "bad_session", f"attach: session of target {target.id}, another listener"
                    )
                continue
            if target.metadata["policy"] == meta["policy"]:
                log.info("control.attach_existing", target=target.id)
                return target
            message = (
                f"attach: this listener is already supervised as target {target.id} under "
                f"policy {target.metadata['policy']!r}; a second supervisor under "
                f"{meta['policy']!r} would decide part of its notifications"
            )
            log.warning("control.attach_refused", target=target.id, error=message)
            raise RequestError("already_attached", message)
        return None

    async def _write_events(
        self, conn: _Connection, receive: trio.MemoryReceiveChannel[dict[str, Any]]
    ) -> None:
        async with receive:
            try:
                async for event in receive:
                    await self._send(conn, event)
            except _Drop:
                conn.scope.cancel()

    async def _send(self, conn: _Connection, message: dict[str, Any]) -> None:
        data = memoryview(control.encode(message))
        async with conn.lock:
            with trio.move_on_after(self.config.write_timeout) as scope:
                try:
                    while data:
                        sent = await conn.sock.send(data)
                        data = data[sent:]
                except OSError as e:
                    raise _Drop(f"write failed: {e}") from None
            if scope.cancelled_caught:
                conn.dropped = "peer does not read"
                raise _Drop("peer does not read")


def _send_now(sock: trio.socket.SocketType, message: dict[str, Any]) -> None:
    """Best effort, never waits (the socket is non-blocking): a last word before closing."""
    with contextlib.suppress(OSError):
        os.write(sock.fileno(), control.encode(message))


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
) -> None:
    """Run the daemon in this process until SIGTERM/SIGINT: on ``control_socket`` (inherited,
    e.g. socket activation) or a socket created at ``config.control``."""
    owns = control_socket is None
    # Each target costs fds (its listener, pidfds, resolver handles): take what we may.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sock = control_socket or open_control_socket(config.control, config.group)
    daemon = Daemon(config, sock, hooks=hooks, recovered=recovered, owns_path=owns)
    trio.run(daemon.run)
