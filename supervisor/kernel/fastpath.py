"""The resolver's fast path in C: ``sv_resolve_fast``, ``sv_read_resolve_fast`` and the path
lane's set-up (``struct sv_lane``, which ``sv_lane_next`` fills for the loop).

The common case of ``supervisor.target.resolve``: the target's root is ours, one
``openat2(O_PATH, RESOLVE_NO_MAGICLINKS)`` from the start (no fd for an absolute path,
/proc/TID/cwd or /proc/TID/fd/N) finds an object off procfs, and the kernel's name for our fd on
it (readlink through our /proc/self/fd) is an ordinary absolute path. For a lookup from a start
fd, the C also checks that this name, walked again from the root, leads to the very object
(``sv_placed``): a start on a detached or foreign mount is named by the kernel relative to a tree
the target's root does not hold. Anything else returns nothing here, and the Python resolver
starts over and decides. The same syscalls as the Python code, in the same order, without its
interpreter overhead: this is the hot path of every path-inspected syscall.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import suppress
from typing import Any

from supervisor._native import ffi, lib
from supervisor.kernel.memory import MemoryReader
from supervisor.kernel.openat2 import RESOLVE_NO_MAGICLINKS, RESOLVE_SCOPED, own_root
from supervisor.kernel.proc import open_own_fd_dir

PATH_MAX = 4096
_INT_MAX = 0x7FFFFFFF
_AT_FDCWD = -100
_O_BASE = os.O_PATH | os.O_CLOEXEC
_START_NONE: int = lib.SV_START_NONE
_START_CWD: int = lib.SV_START_CWD
_START_DIRFD: int = lib.SV_START_DIRFD
_RESOLVED_CLOSED: int = lib.SV_RESOLVED_CLOSED
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()

Found = tuple[str, int, int]  # (canonical path, our fd or -1, st_mode)

_OWN_ROOT_ST: Any = None


def _own_root_st() -> Any:
    """Our root's ids as a ``struct sv_stat`` (built once)."""
    global _OWN_ROOT_ST
    if _OWN_ROOT_ST is None:
        mnt_id, dev, ino = own_root()
        s = ffi.new("struct sv_stat *")
        s.mnt_id, s.dev, s.ino = mnt_id, dev, ino
        _OWN_ROOT_ST = s
    return _OWN_ROOT_ST


def _open_self_fds() -> None:
    """Our fd on /proc/self/fd, for the readlinks of ``sv_resolve_fast``. Opened when the module
    is imported, so that it is not mistaken for a leak, and again in a forked child (whose
    /proc/self is another directory)."""
    old = _SELF_FDS[0]
    _SELF_FDS[0] = -1
    if old >= 0:
        os.close(old)
    # Without procfs, sv_resolve_fast reads /proc/self/fd/N by path (and falls back).
    with suppress(OSError):
        _SELF_FDS[0] = open_own_fd_dir()


_SELF_FDS = [-1]
_open_self_fds()
os.register_at_fork(after_in_child=_open_self_fds)


class _Scratch(threading.local):
    """Per-thread output buffers of the C calls (the resolver may run on worker threads)."""

    def __init__(self) -> None:
        self.out = ffi.new("char[]", PATH_MAX + 1)
        self.st = ffi.new("struct sv_stat *")
        self.fd = ffi.new("int *")


_scratch = _Scratch()


def resolve_fast(
    tid: int, dirfd: int | None, path: bytes, follow: bool, flags: int
) -> Found | None:
    """The fast case of a resolution (roots equal, no credential switch: the caller's business)
    in one C call. None: anything else; the caller then resolves from the start."""
    if not 0 < tid <= _INT_MAX or b"\0" in path:
        return None
    if path.startswith(b"/") and not flags & RESOLVE_SCOPED:
        kind, fd_arg = _START_NONE, -1
    elif dirfd is None:
        kind, fd_arg = _START_CWD, -1
    elif 0 <= dirfd <= _INT_MAX:
        kind, fd_arg = _START_DIRFD, dirfd
    else:
        return None
    scratch = _scratch
    out, st = scratch.out, scratch.st
    fd = lib.sv_resolve_fast(
        tid,
        kind,
        fd_arg,
        path,
        _O_BASE if follow else _O_BASE | os.O_NOFOLLOW,
        flags | RESOLVE_NO_MAGICLINKS,
        _OWN_ROOT_ST or _own_root_st(),
        _SELF_FDS[0],
        out,
        PATH_MAX + 1,
        st,
    )
    if fd < 0:
        return None
    # What os.fsdecode does (and os.readlink(str) in the Python path), without its type checks.
    return ffi.string(out).decode(_FS_ENCODING, _FS_ERRORS), fd, int(st.mode)


def read_resolve_fast(
    memory: MemoryReader,
    notif_id: int,
    tid: int,
    addr: int,
    dirfd: int | None,
    follow: bool,
    flags: int,
    keep_fd: bool,
) -> Found | bytes:
    """Read the path at ``addr`` of ``tid`` (between two ID_VALIDs: ``memory.fail`` raises what a
    failed read means) and, in the fast case, resolve it, in one C call (0 < tid <= INT_MAX).
    The bytes read when the fast case could not answer. Without ``keep_fd`` the fd is -1."""
    scratch = _scratch
    out, st, fd_out = scratch.out, scratch.st, scratch.fd
    buf = memory.buf
    ret = lib.sv_read_resolve_fast(
        memory.listener,
        notif_id,
        tid,
        addr,
        buf,
        PATH_MAX,
        _AT_FDCWD if dirfd is None else dirfd if -_INT_MAX <= dirfd <= _INT_MAX else -1,
        _O_BASE if follow else _O_BASE | os.O_NOFOLLOW,
        flags | RESOLVE_NO_MAGICLINKS,
        _OWN_ROOT_ST or _own_root_st(),
        _SELF_FDS[0],
        out,
        PATH_MAX + 1,
        st,
        keep_fd,
        fd_out,
    )
    if ret < 0:
        memory.fail(ret)
    fd = fd_out[0]
    if fd >= 0 or fd == _RESOLVED_CLOSED:
        return ffi.string(out).decode(_FS_ENCODING, _FS_ERRORS), max(fd, -1), int(st.mode)
    read: bytes = ffi.unpack(buf, ret)
    return read


def init_lane(lane: Any) -> None:
    """Give a ``struct sv_lane`` what sv_read_resolve_fast needs: our root, our /proc/self/fd."""
    lane.own_root = (_OWN_ROOT_ST or _own_root_st())[0]
    lane.self_fds = _SELF_FDS[0]


def lane_path(lane: Any) -> str:
    """The canonical path sv_lane_next resolved (lane.fd == SV_RESOLVED_CLOSED)."""
    text: str = ffi.string(lane.out).decode(_FS_ENCODING, _FS_ERRORS)
    return text
