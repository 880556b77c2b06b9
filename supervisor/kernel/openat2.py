"""openat2(2), statx(2) with the mount id, and fstatfs(2): how the resolver opens and names
objects.

* ``openat2``'s ``RESOLVE_*`` flags scope a lookup (``RESOLVE_IN_ROOT``: ``/`` and ``..`` stay in
  the start directory; ``RESOLVE_BENEATH``: refuse to leave it) and refuse jumps
  (``RESOLVE_NO_MAGICLINKS``: /proc/PID/fd/N and friends fail with ELOOP; ``RESOLVE_NO_SYMLINKS``:
  every symlink does).
* statx with ``STATX_MNT_ID`` gives the mount id: (mount id, device, inode) names one directory
  in one mount, which st_dev/st_ino alone cannot (a bind mount and its source share them). The
  32-bit mount id is reused once its mount is freed; two fds held at the same time pin their
  mounts, so comparing the ids of two open fds is exact.
* fstatfs gives the filesystem type: ``PROC_SUPER_MAGIC`` says an object is on procfs, whatever
  mount of it the object was reached through.

Failures are ``OSError`` with the errno.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from supervisor._native import ffi, lib

RESOLVE_NO_XDEV: int = lib.RESOLVE_NO_XDEV
RESOLVE_NO_MAGICLINKS: int = lib.RESOLVE_NO_MAGICLINKS
RESOLVE_NO_SYMLINKS: int = lib.RESOLVE_NO_SYMLINKS
RESOLVE_BENEATH: int = lib.RESOLVE_BENEATH
RESOLVE_IN_ROOT: int = lib.RESOLVE_IN_ROOT
RESOLVE_CACHED: int = lib.RESOLVE_CACHED
RESOLVE_ALL = (
    RESOLVE_NO_XDEV
    | RESOLVE_NO_MAGICLINKS
    | RESOLVE_NO_SYMLINKS
    | RESOLVE_BENEATH
    | RESOLVE_IN_ROOT
    | RESOLVE_CACHED
)
RESOLVE_SCOPED = RESOLVE_BENEATH | RESOLVE_IN_ROOT  # the lookup is bounded by its start fd

PROC_SUPER_MAGIC: int = lib.SV_PROC_SUPER_MAGIC
PROC_ROOT_INO = 1
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000

Ids = tuple[int, int, int]  # (mount id, device, inode): one object in one mount


def _raise_errno() -> None:
    code = ffi.errno
    raise OSError(code, os.strerror(code))


class FdStat:
    """statx (+ fstatfs, for ``fd_stat``) of one object."""

    __slots__ = ("mode", "nlink", "ids", "fstype")

    def __init__(self, s: Any) -> None:
        self.mode = int(s.mode)
        self.nlink = int(s.nlink)
        self.ids: Ids = (int(s.mnt_id), int(s.dev), int(s.ino))
        self.fstype = int(s.fstype)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_proc(self) -> bool:
        return self.fstype == PROC_SUPER_MAGIC

    @property
    def is_proc_root(self) -> bool:
        return self.is_proc and self.ids[2] == PROC_ROOT_INO


def fd_stat(fd: int) -> FdStat:
    """statx and fstatfs of ``fd``."""
    s = ffi.new("struct sv_stat *")
    if lib.sv_fd_stat(fd, s) < 0:
        _raise_errno()
    return FdStat(s)


def path_stat(path: str) -> FdStat:
    """statx of an absolute ``path`` (following symlinks; no fstype)."""
    s = ffi.new("struct sv_stat *")
    if lib.sv_stat(AT_FDCWD, os.fsencode(path), 0, s) < 0:
        _raise_errno()
    return FdStat(s)


def lstat_at(dirfd: int, name: bytes) -> FdStat:
    """statx of ``name`` in ``dirfd``, not following a final symlink (no fstype)."""
    s = ffi.new("struct sv_stat *")
    if lib.sv_stat(dirfd, name, AT_SYMLINK_NOFOLLOW, s) < 0:
        _raise_errno()
    return FdStat(s)


def fd_ids(fd: int) -> Ids:
    """(mount id, device, inode) of ``fd`` (one statx)."""
    s = ffi.new("struct sv_stat *")
    if lib.sv_stat(fd, b"", AT_EMPTY_PATH, s) < 0:
        _raise_errno()
    return (int(s.mnt_id), int(s.dev), int(s.ino))


def openat2(dirfd: int, path: bytes, flags: int, resolve: int) -> int:
    """openat2(dirfd, path, {flags, mode 0, resolve}); our fd."""
    fd: int = lib.sv_openat2(dirfd, path, flags, 0, resolve)
    if fd < 0:
        _raise_errno()
    return fd


_OWN_ROOT: list[Ids] = []


def own_root() -> Ids:
    """The ids of the supervisor's root (statx of ``/``, once)."""
    if not _OWN_ROOT:
        _OWN_ROOT.append(path_stat("/").ids)
    return _OWN_ROOT[0]
