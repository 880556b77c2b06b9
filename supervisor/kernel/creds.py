"""A target's filesystem credentials, and switching the calling thread to them.

An emulated operation must be checked by the kernel as if the target made it: the thread that
performs it takes the target's fsuid, fsgid, supplementary groups and effective capabilities with
raw syscalls (``sv_creds_enter`` in ``supervisor/kernel/native/creds.c``), which act on the
calling thread only; glibc's setgroups()/setuid() would change every thread of the supervisor.

The credentials come from /proc/TID/status, text the kernel writes for the target; it is parsed
strictly all the same, and the caller brackets the read with ID_VALID so that the tid is the
thread that made the syscall.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from supervisor._native import ffi, lib

MAX_GROUPS: int = lib.SV_MAX_GROUPS
_CAP_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class Creds:
    """What the kernel checks for filesystem access. ``umask`` rides along for emulated creations
    (it is not a credential: it takes no part in equality)."""

    fsuid: int
    fsgid: int
    groups: tuple[int, ...]
    cap_effective: int
    umask: int = field(default=0o022, compare=False)


def parse_status(text: str | bytes) -> Creds:
    """The credentials in the text of a /proc/TID/status file (parsed in C: sv_parse_status)."""
    raw = text.encode("latin-1") if isinstance(text, str) else text
    out = _scratch_status()
    ret = lib.sv_parse_status(raw, len(raw), out)
    if ret == -2:
        raise OSError(errno.EINVAL, f"target has more than {MAX_GROUPS} groups")
    if ret < 0:
        raise ValueError("malformed Uid:, Gid:, Groups:, CapEff: or Umask: line in /proc status")
    return Creds(
        fsuid=out.fsuid,
        fsgid=out.fsgid,
        groups=tuple(out.groups[0 : out.ngroups]),
        cap_effective=out.cap_effective,
        umask=out.umask if out.umask >= 0 else 0o022,
    )


class _StatusScratch(threading.local):
    def __init__(self) -> None:
        self.out = ffi.new("struct sv_status_creds *")


_status_scratch = _StatusScratch()


def _scratch_status() -> Any:
    return _status_scratch.out


_OWN_USERNS: list[tuple[int, int]] = []


def _userns(where: str) -> tuple[int, int]:
    st = os.stat(f"{where}/ns/user")
    return st.st_dev, st.st_ino


def in_own_userns(tid: int) -> bool:
    """Is thread ``tid`` in the supervisor's user namespace? (The namespace of a thread blocked
    in a notified syscall cannot change: only the thread itself can unshare or setns.)"""
    if not _OWN_USERNS:
        _OWN_USERNS.append(_userns("/proc/thread-self"))
    return _userns(f"/proc/{int(tid)}") == _OWN_USERNS[0]


def read_creds(tid: int) -> Creds:
    """The filesystem credentials (and umask) of thread ``tid``. OSError if it is gone.

    fsuid, fsgid and groups in /proc/TID/status are shown in the reader's user namespace (ours),
    which is where the emulating thread applies them. Capabilities are not: CapEff is the set
    the target holds in ITS user namespace, and applied by us it would count in ours (the
    initial one): a target that made itself a user namespace (CLONE_NEWUSER gives a full set)
    would get root's file access. So a target outside our user namespace gets no capabilities
    for emulated operations (stricter than the kernel, which honours them for inodes whose owner
    is mapped in the target's namespace)."""
    fd = os.open(f"/proc/{int(tid)}/status", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)  # procfs gives the whole file in one read
    finally:
        os.close(fd)
    creds = parse_status(data)
    if creds.cap_effective and not in_own_userns(tid):
        creds = replace(creds, cap_effective=0)
    return creds


def _to_struct(creds: Creds) -> Any:
    c = ffi.new("struct sv_creds *")
    if len(creds.groups) > MAX_GROUPS:
        raise OSError(errno.EINVAL, "too many groups")
    if not 0 <= creds.cap_effective <= _CAP_MAX:
        raise OSError(errno.EINVAL, "bad capability set")
    c.fsuid = creds.fsuid
    c.fsgid = creds.fsgid
    c.ngroups = len(creds.groups)
    for i, g in enumerate(creds.groups):
        c.groups[i] = g
    c.cap_effective[0] = creds.cap_effective & 0xFFFFFFFF
    c.cap_effective[1] = creds.cap_effective >> 32
    return c


def _from_struct(c: Any) -> Creds:
    return Creds(
        fsuid=int(c.fsuid),
        fsgid=int(c.fsgid),
        groups=tuple(int(c.groups[i]) for i in range(c.ngroups)),
        cap_effective=int(c.cap_effective[0]) | (int(c.cap_effective[1]) << 32),
    )


class _ThreadState(threading.local):
    own: Creds | None = None
    depth: int = 0  # how many as_creds switches are active on this thread


_state = _ThreadState()


def current_creds() -> Creds:
    """The calling thread's credentials right now."""
    c = ffi.new("struct sv_creds *")
    if lib.sv_creds_get(c) < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err))
    return _from_struct(c)


def _own_creds() -> Creds:
    # The supervisor never changes its own credentials, so they are read once per thread (before
    # any switch, when depth is 0).
    if _state.own is None:
        _state.own = current_creds()
    return _state.own


def switch_is_noop(creds: Creds) -> bool:
    """True when ``as_creds(creds)`` would change nothing on the calling thread (the same test
    it makes), so a caller may skip the context manager."""
    return _state.depth == 0 and creds == _own_creds()


@contextmanager
def as_creds(creds: Creds) -> Iterator[None]:
    """Run the body with ``creds`` on the calling thread only; restore the thread's own after.

    No switch at all when they equal the thread's own credentials (the common case of a target
    that runs as the supervisor's user). If the thread cannot get its credentials back,
    ``sv_creds_leave`` aborts the process: fail closed rather than serve with foreign creds."""
    if _state.depth == 0 and creds == _own_creds():
        yield
        return
    want = _to_struct(creds)
    saved = ffi.new("struct sv_creds *")
    if lib.sv_creds_enter(want, saved) < 0:
        err = ffi.errno
        raise OSError(err, f"cannot take the target's credentials: {os.strerror(err)}")
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        lib.sv_creds_leave(saved)


@contextmanager
def as_supervisor() -> Iterator[None]:
    """Inside ``as_creds``: run the body with the thread's own credentials again (for the few
    steps the supervisor must take with its own rights, e.g. following a magic link of the
    target's own process). A no-op outside ``as_creds``."""
    if _state.depth == 0:
        yield
        return
    with as_creds(_own_creds()):
        yield


def _status_ids(text: str, key: str) -> list[int]:
    for line in text.splitlines():
        if line.startswith(key):
            return [int(v, 16 if key.startswith("Cap") else 10) for v in line.split()[1:]]
    raise ValueError(f"no {key} line in /proc status")


def access_creds(tid: int, creds: Creds) -> Creds:
    """What access(2) and faccessat(2) without AT_EACCESS check with: the kernel's
    access_override_creds, for thread ``tid`` whose filesystem credentials are ``creds``. The
    REAL uid and gid stand in for fsuid and fsgid, and the capabilities are none, or the
    permitted set when the real uid is 0 (none at all outside our user namespace, as
    read_creds). SECURE_NO_SETUID_FIXUP is not looked at (the kernel then keeps CapEff)."""
    fd = os.open(f"/proc/{int(tid)}/status", os.O_RDONLY | os.O_CLOEXEC)
    try:
        text = os.read(fd, 65536).decode("latin-1")
    finally:
        os.close(fd)
    uid = _status_ids(text, "Uid:")[0]
    gid = _status_ids(text, "Gid:")[0]
    caps = _status_ids(text, "CapPrm:")[0] if uid == 0 else 0
    if caps and not in_own_userns(tid):
        caps = 0
    return Creds(fsuid=uid, fsgid=gid, groups=creds.groups, cap_effective=caps, umask=creds.umask)
