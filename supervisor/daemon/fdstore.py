"""systemd's fd store as the daemon uses it: each target's listener and its metadata.

Each target's seccomp listener fd is stored under ``FDNAME=listener-KEY``, next to a sealed
memfd holding the target's metadata as JSON (``FDNAME=meta-KEY``: policy, pid, argv, uid, id,
session, the process's start time). A copy of a listener in the store keeps the target's
notified syscalls *waiting* while the daemon is down (never allowed, never failed), and hands
the target back at the next start, when :func:`recover` sorts the passed fds into the control
socket and the stored targets. Sending to systemd is ``daemon.systemd``'s (``Notifier``).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LISTENER_PREFIX = "listener-"
META_PREFIX = "meta-"
CONTROL_NAME = "control"
OCI_NAME = "oci"  # FileDescriptorName= of systemd/seccomp-supervisor-oci.socket (daemon.oci)
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
MAX_META_BYTES = 1 << 20


def new_store_key(metadata: Mapping[str, Any]) -> str:
    """A name for a target in the fd store, unique across daemon restarts (ids restart at 1)."""
    pid = metadata.get("pid")
    return f"{pid if isinstance(pid, int) else 0}-{secrets.token_hex(4)}"


def metadata_memfd(metadata: Mapping[str, Any]) -> int:
    """A memfd holding ``metadata`` as JSON, sealed so nobody holding it can change it."""
    data = json.dumps(dict(metadata), sort_keys=True).encode()
    fd = os.memfd_create("seccomp-supervisor-target", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_metadata(fd: int) -> dict[str, Any]:
    """The JSON object in a metadata memfd (ValueError when it is not one)."""
    size = os.fstat(fd).st_size
    if size > MAX_META_BYTES:
        raise ValueError(f"metadata of {size} bytes")
    data = os.pread(fd, size, 0)
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError("metadata nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("metadata is not a JSON object")
    return value


# -- at start-up --------------------------------------------------------------------------------
@dataclass
class StoredTarget:
    """A target recovered from the fd store: its listener fd (ours to close) and metadata."""

    key: str
    listener_fd: int
    metadata: dict[str, Any]


@dataclass
class Recovered:
    """What the service manager handed us at start-up, sorted out."""

    control: socket.socket | None = None
    oci: socket.socket | None = None  # the OCI agent's socket, when one is passed
    targets: list[StoredTarget] = field(default_factory=list)
    # (fd, name) of what could not be used; already closed, listed for the log.
    discarded: list[tuple[int, str, str]] = field(default_factory=list)


def _is_listening_unix_stream(fd: int) -> bool:
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return False
        s = socket.socket(fileno=fd)
        try:
            return (
                s.family == socket.AF_UNIX
                and s.type == socket.SOCK_STREAM
                and s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            )
        finally:
            s.detach()
    except OSError:
        return False


def recover(fds: Sequence[tuple[int, str]]) -> Recovered:
    """Split passed fds into the control socket and stored targets (listener + metadata pairs).

    The control socket is the fd named ``control`` or, when the activator gave no such name
    (``systemd-socket-activate`` without ``--fdname``), the first listening AF_UNIX stream
    socket; the OCI agent's socket (``daemon.oci``) is the one named ``oci``. A listener
    without readable metadata, metadata without a listener, and anything else
    are closed and reported in ``discarded``: a target whose policy is unknown cannot be
    supervised (closing its listener fails its notified syscalls with ENOSYS, closed not open,
    unless its `run` still holds a copy and hands it over again).
    """
    out = Recovered()
    listeners: dict[str, int] = {}
    metas: dict[str, int] = {}
    rest: list[tuple[int, str]] = []
    for fd, name in fds:
        if name.startswith(LISTENER_PREFIX) and name != LISTENER_PREFIX:
            key = name[len(LISTENER_PREFIX) :]
            if key in listeners:
                out.discarded.append((fd, name, "duplicate"))
                os.close(fd)
            else:
                listeners[key] = fd
        elif name.startswith(META_PREFIX) and name != META_PREFIX:
            key = name[len(META_PREFIX) :]
            if key in metas:
                out.discarded.append((fd, name, "duplicate"))
                os.close(fd)
            else:
                metas[key] = fd
        else:
            rest.append((fd, name))
    oci = [fd for fd, n in rest if n == OCI_NAME and _is_listening_unix_stream(fd)][:1]
    rest = [(fd, n) for fd, n in rest if fd not in oci]
    named = [(fd, n) for fd, n in rest if n == CONTROL_NAME and _is_listening_unix_stream(fd)]
    unnamed = [(fd, n) for fd, n in rest if _is_listening_unix_stream(fd)]
    chosen = (named or unnamed)[0][0] if named or unnamed else -1
    if oci:
        out.oci = socket.socket(fileno=oci[0])
    for fd, name in rest:
        if fd == chosen:
            out.control = socket.socket(fileno=fd)
        else:
            out.discarded.append((fd, name, "not a control socket or a stored target"))
            os.close(fd)
    for key, fd in sorted(listeners.items()):
        meta_fd = metas.pop(key, None)
        if meta_fd is None:
            out.discarded.append((fd, LISTENER_PREFIX + key, "no metadata"))
            os.close(fd)
            continue
        try:
            metadata = read_metadata(meta_fd)
        except (OSError, ValueError) as e:
            out.discarded.append((fd, LISTENER_PREFIX + key, f"bad metadata: {e}"))
            os.close(fd)
            continue
        finally:
            os.close(meta_fd)
        out.targets.append(StoredTarget(key, fd, metadata))
    for key, fd in sorted(metas.items()):
        out.discarded.append((fd, META_PREFIX + key, "no listener"))
        os.close(fd)
    return out
