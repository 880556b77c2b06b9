"""A target's filesystem credentials, and switching the calling thread to them.

An emulated operation must be checked by the kernel as if the target made it: the thread that
performs it takes the target's fsuid, fsgid, supplementary groups and effective capabilities with
raw syscalls (``sv_creds_enter`` in ``supervisor/_build.py``), which act on the calling thread
only; glibc's setgroups()/setuid() would change every thread of the supervisor.

The credentials come from /proc/TID/status, text the kernel writes for the target; it is parsed
strictly all the same, and the caller brackets the read with ID_VALID so that the tid is the
thread that made the syscall.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from supervisor._native import ffi, lib

MAX_GROUPS: int = lib.SV_MAX_GROUPS
_ID_MAX = 0xFFFFFFFF
_HEX64 = re.compile(r"[0-9a-fA-F]{1,16}")
_OCTAL = re.compile(r"[0-7]+")
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


def _id(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"bad id {text!r} in /proc status")
    value = int(text)
    if value > _ID_MAX:
        raise ValueError(f"id {text!r} out of range in /proc status")
    return value


def _line(text: str, tag: str) -> str | None:
    """The value of the one line starting with ``tag`` ("\\nKey:") in ``text`` (which starts with
    a newline); None when there is none. Found with str.find: parse_status runs for every
    emulated operation, and splitting all ~60 lines of a status file cost ~20 us of Python."""
    i = text.find(tag)
    if i < 0:
        return None
    start = i + len(tag)
    end = text.find("\n", start)
    if end < 0:
        end = len(text)
    if text.find(tag, end) >= 0:
        raise ValueError(f"duplicate {tag.strip()} line in /proc status")
    return text[start:end].strip()


def parse_status(text: str) -> Creds:
    """The credentials in the text of a /proc/TID/status file."""
    text = "\n" + text
    fields: dict[str, str] = {}
    for key in ("Uid", "Gid", "Groups", "CapEff", "Umask"):
        value = _line(text, f"\n{key}:")
        if value is not None:
            fields[key] = value
    for key in ("Uid", "Gid", "Groups", "CapEff"):
        if key not in fields:
            raise ValueError(f"no {key}: line in /proc status")
    uids = fields["Uid"].split()
    gids = fields["Gid"].split()
    if len(uids) != 4 or len(gids) != 4:
        raise ValueError("Uid:/Gid: lines in /proc status need 4 fields")
    groups = tuple(_id(g) for g in fields["Groups"].split())
    if len(groups) > MAX_GROUPS:
        raise OSError(errno.EINVAL, f"target has {len(groups)} groups, more than {MAX_GROUPS}")
    cap_text = fields["CapEff"]
    if _HEX64.fullmatch(cap_text) is None:
        raise ValueError(f"bad CapEff {cap_text!r} in /proc status")
    umask = 0o022
    if "Umask" in fields:
        umask_text = fields["Umask"]
        if _OCTAL.fullmatch(umask_text) is None:
            raise ValueError(f"bad Umask {umask_text!r} in /proc status")
        umask = int(umask_text, 8) & 0o777
    return Creds(
        fsuid=_id(uids[3]),
        fsgid=_id(gids[3]),
        groups=groups,
        cap_effective=int(cap_text, 16),
        umask=umask,
    )


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
    # latin-1: the Name: line is the target's own bytes; the fields we use are checked.
    creds = parse_status(data.decode("latin-1"))
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
