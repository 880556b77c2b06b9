"""systemd integration, spoken directly: sd_notify, the watchdog, the fd store, socket activation.

No libsystemd and no running systemd needed; every piece is a few lines of the documented wire
protocol (sd_notify(3), sd_listen_fds(3), systemd.service(5)):

* **sd_notify**: one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named by
  ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract address). systemd reads the sender's
  pid from SCM_CREDENTIALS itself (NotifyAccess=main: only the main pid is heard). Fds travel as
  SCM_RIGHTS on the same datagram (``FDSTORE=1``).
* **Watchdog**: ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``, when set, must be our pid). The
  ``WATCHDOG=1`` pings come from a trio task at half the interval: if the event loop hangs, the
  pings stop and systemd kills and restarts the service, which is the point.
* **Fd store**: each target's seccomp listener fd is stored under ``FDNAME=listener-KEY``, next
  to a sealed memfd holding the target's metadata as JSON (``FDNAME=meta-KEY``: policy, pid,
  argv, uid, id, session, the process's start time). A copy of a listener in the store keeps
  the target's notified syscalls *waiting* while the daemon is down (never allowed, never
  failed), and hands the target back at the next start. ``FDSTOREREMOVE=1`` drops both names
  when the target is gone. The names and the metadata memfd are ``daemon.fdstore``'s.
* **Socket activation and recovery**: systemd passes fds from 3 on with ``$LISTEN_FDS``,
  ``$LISTEN_PID`` and ``$LISTEN_FDNAMES`` — the control socket (``FileDescriptorName=control``),
  the OCI agent's socket (``FileDescriptorName=oci``, a second socket unit)
  and, after a restart, everything in the fd store with its FDNAME. ``fdstore.recover`` splits
  them.
  A recovered target's tree is kicked (``target.recover``) once its pid is checked against
  the stored start time: a notification the dead daemon had received is never delivered again.

Sending never raises: the daemon must not go down because its service manager went away.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from supervisor.daemon.fdstore import (
    LISTENER_PREFIX,
    META_PREFIX,
    Recovered,
    metadata_memfd,
    new_store_key,
    recover,
)
from supervisor.daemon.targets import DaemonHooks, Target
from supervisor.kernel import proc
from supervisor.target.recover import kick

SD_LISTEN_FDS_START = 3
# Fd names: at most 255 printable ASCII characters without ':' (systemd's fdname_is_valid).
_FDNAME_OK = re.compile(r"[A-Za-z0-9_.@+-]{1,200}")

log = structlog.get_logger("seccomp-supervisor.daemon.systemd")


def notify_address(value: str) -> str | bytes | None:
    """The sockaddr for a ``$NOTIFY_SOCKET`` value: a path, or an abstract name for ``@name``;
    None for what we do not speak (empty, relative, ``vsock:``)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """The sd_notify client. ``enabled`` is False (and every call a no-op) when the process was
    not started by a service manager that listens."""

    def __init__(self, address: str | bytes | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # A full receive queue must not stall the event loop for long.
            self._sock.settimeout(2.0)

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] | None = None, unset: bool = False
    ) -> Notifier:
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        if unset:
            env.pop("NOTIFY_SOCKET", None)  # children (targets) must not talk to systemd
        return cls(notify_address(value) if value else None)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def notify(self, *lines: str, fds: Sequence[int] = ()) -> bool:
        """Send one message (``KEY=VALUE`` lines) with ``fds`` attached; True when sent."""
        if self._sock is None or self.address is None:
            return False
        for line in lines:
            if "\n" in line or "=" not in line:
                raise ValueError(f"not a KEY=VALUE line: {line!r}")
        data = ("\n".join(lines) + "\n").encode()
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(_fd_array(fds)))] if fds else []
        try:
            self._sock.sendmsg([data], anc, 0, self.address)
        except OSError as e:
            log.warning("systemd.notify_failed", message=lines[0], error=str(e))
            return False
        return True

    # The messages the daemon sends.
    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def fdstore(self, fd: int, name: str) -> bool:
        _check_fdname(name)
        return self.notify("FDSTORE=1", f"FDNAME={name}", fds=[fd])

    def fdstore_remove(self, name: str) -> bool:
        _check_fdname(name)
        return self.notify("FDSTOREREMOVE=1", f"FDNAME={name}")

    # Targets in the fd store.
    def store_target(self, key: str, listener_fd: int, metadata: Mapping[str, Any]) -> bool:
        """Store a target's listener and its metadata (a sealed memfd) under ``key``."""
        if not self.enabled:
            return False
        meta_fd = metadata_memfd(metadata)
        try:
            # Metadata first: a listener without it could not be supervised after a restart.
            return self.fdstore(meta_fd, META_PREFIX + key) and self.fdstore(
                listener_fd, LISTENER_PREFIX + key
            )
        finally:
            os.close(meta_fd)

    def remove_target(self, key: str) -> bool:
        if not self.enabled:
            return False
        return self.fdstore_remove(LISTENER_PREFIX + key) & self.fdstore_remove(META_PREFIX + key)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_fdname(name: str) -> None:
    if not _FDNAME_OK.fullmatch(name):
        raise ValueError(f"invalid FDNAME {name!r}")


def _fd_array(fds: Sequence[int]) -> bytes:
    return b"".join(int(fd).to_bytes(4, "little", signed=True) for fd in fds)


# -- watchdog -----------------------------------------------------------------------------------
def watchdog_usec(environ: Mapping[str, str] | None = None) -> int | None:
    """The watchdog interval in µs asked for this process (sd_watchdog_enabled), or None."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec


async def run_watchdog(notifier: Notifier, usec: int) -> None:
    """Ping every half interval, from the event loop: a hung loop stops the pings."""
    period = usec / 2_000_000
    while True:
        notifier.watchdog()
        await trio.sleep(period)


# -- socket activation and the fd store at start-up ---------------------------------------------
def listen_fds(
    environ: MutableMapping[str, str] | None = None, unset: bool = True
) -> list[tuple[int, str]]:
    """The fds passed by the service manager, with their names (sd_listen_fds_with_names).

    Only when ``$LISTEN_PID`` is our pid; the fds (from 3) are made close-on-exec, and the
    variables are removed so that children do not believe the fds are theirs.
    """
    env = os.environ if environ is None else environ
    try:
        pid = int(env.get("LISTEN_PID", ""))
        count = int(env.get("LISTEN_FDS", ""))
    except ValueError:
        pid, count = 0, 0
    raw_names = env.get("LISTEN_FDNAMES")
    if unset:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(key, None)
    if pid != os.getpid() or count <= 0:
        return []
    names = raw_names.split(":") if raw_names is not None else []
    if len(names) != count:
        names = ["unknown"] * count
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    for fd in fds:
        os.set_inheritable(fd, False)
    return list(zip(fds, names, strict=True))


def recover_from_environ(
    notifier: Notifier | None = None, environ: MutableMapping[str, str] | None = None
) -> Recovered:
    """:func:`listen_fds` then :func:`recover`; logs what was discarded and drops discarded
    stored pieces from the fd store too (else systemd would keep them, and a lone listener would
    keep its target waiting, forever)."""
    got = recover(listen_fds(environ))
    for fd, name, why in got.discarded:
        log.warning("systemd.fd_discarded", fd=fd, fdname=name, reason=why)
        if notifier is not None and name.startswith((LISTENER_PREFIX, META_PREFIX)):
            notifier.fdstore_remove(name)
    return got


# -- the daemon's side ----------------------------------------------------------------------------
@dataclass
class DaemonIntegration:
    """What ``seccomp-supervisor daemon`` takes from its service manager, and gives back.

    ``serve(config, control_socket=i.control_socket, hooks=i.hooks(), recovered=i.recovered)``:
    READY=1 (with STATUS=) once the control socket accepts, the watchdog task started then,
    STATUS= whenever the number of targets changes, each attached target in the fd store (and
    out of it when it is gone), STOPPING=1. All of it is a no-op without $NOTIFY_SOCKET.
    """

    notifier: Notifier
    control_socket: socket.socket | None
    recovered: list[tuple[int, dict[str, Any]]]
    watchdog_usec: int | None
    oci_socket: socket.socket | None = None  # FileDescriptorName=oci (daemon.oci)
    # listener fd -> its fd-store key, for targets recovered from the store (already stored).
    recovered_keys: dict[int, str] = field(default_factory=dict)
    # listener fd -> the start time of the target's process when it was stored, if known.
    recovered_start: dict[int, int | None] = field(default_factory=dict)
    # daemon target id -> fd-store key
    keys: dict[int, str] = field(default_factory=dict)

    def hooks(self) -> DaemonHooks:
        return DaemonHooks(
            ready=self._ready,
            targets_changed=self._targets_changed,
            attached=self._attached,
            detached=self._detached,
            stopping=self._stopping,
        )

    def _ready(self, targets: int) -> None:
        if self.watchdog_usec is not None and self.notifier.enabled:
            trio.lowlevel.spawn_system_task(run_watchdog, self.notifier, self.watchdog_usec)
        self.notifier.ready(status=status_text(targets))
        # A recovered listener the daemon did not take back (policy gone, ...) was closed: drop
        # its pieces from the store, or systemd would keep its target waiting forever.
        for key in self.recovered_keys.values():
            self.notifier.remove_target(key)
        self.recovered_keys.clear()

    def _stopping(self) -> None:
        self.notifier.stopping()

    def _targets_changed(self, count: int) -> None:
        self.notifier.status(status_text(count))

    def _attached(self, target: Target) -> None:
        fd = target.listener.fileno()
        pid = target.metadata["pid"]
        key = self.recovered_keys.pop(fd, None) if target.recovered else None
        if key is None:
            # The daemon checked the pid at attach and recorded its start time then (None: not
            # to be acted on); read here, a pid reused since could be stored as the target.
            start = target.metadata.get("start_time", None)
            if "start_time" not in target.metadata:
                start = proc.start_time(pid)
            meta = {**target.metadata, "id": target.id, "start_time": start}
            key = new_store_key(meta)
            self.notifier.store_target(key, fd, meta)
        else:
            # The dead daemon may have received a notification it never answered: the kernel
            # will not hand it out again, so kick the tree (supervisor.target.recover) as `run` does
            # when it re-attaches; `run` does not when the daemon already has the target.
            start = self.recovered_start.pop(fd, None)
            trio.lowlevel.spawn_system_task(_kick_recovered, pid, start)
        self.keys[target.id] = key

    def _detached(self, target: Target) -> None:
        key = self.keys.pop(target.id, None)
        if key is not None:
            self.notifier.remove_target(key)


def kick_if_same(pid: int, start_time: int | None) -> list[int] | None:
    """Kick the tree of ``pid`` if it still names the process recorded at attach (checked just
    before the signals, in the same thread), else None."""
    if start_time is None or proc.start_time(pid) != start_time:
        return None
    return kick(pid)


async def _kick_recovered(pid: int, start_time: int | None) -> None:
    try:
        kicked = await trio.to_thread.run_sync(kick_if_same, pid, start_time)
    except Exception as e:  # a system task must not raise
        log.error("systemd.kick_failed", pid=pid, error=str(e))
        return
    if kicked is None:
        log.warning("systemd.kick_skipped", pid=pid, reason="not the stored process")
        return
    log.info("target.kicked", pid=pid, pids=kicked)


def status_text(targets: int) -> str:
    return f"supervising {targets} target{'' if targets == 1 else 's'}"


def daemon_integration(environ: MutableMapping[str, str] | None = None) -> DaemonIntegration:
    """Read (and clear) $NOTIFY_SOCKET, $WATCHDOG_*, $LISTEN_*; sort out the passed fds."""
    env = os.environ if environ is None else environ
    notifier = Notifier.from_environ(env, unset=True)
    usec = watchdog_usec(env)
    got = recover_from_environ(notifier, env)
    integration = DaemonIntegration(
        notifier=notifier,
        control_socket=got.control,
        oci_socket=got.oci,
        recovered=[(t.listener_fd, t.metadata) for t in got.targets],
        watchdog_usec=usec,
        recovered_keys={t.listener_fd: t.key for t in got.targets},
        recovered_start={
            t.listener_fd: v if isinstance(v := t.metadata.get("start_time"), int) else None
            for t in got.targets
        },
    )
    if got.control is not None or got.oci is not None or got.targets:
        log.info(
            "systemd.activated",
            control_socket=got.control is not None,
            oci_socket=got.oci is not None,
            recovered_targets=len(got.targets),
        )
    return integration
