"""Filesystem calls performed for a target: renameat2, linkat, symlinkat, unlinkat, mkdirat,
mknodat, fchmodat2, fchownat, utimensat, truncate, setxattrat and removexattrat, as raw syscalls
(``supervisor/kernel/native/fsops.c``).

Each returns 0 or the errno (positive): the answer the target gets, not an exception, since a
failure here is the call's result, not ours. Names are bytes and are handed to the kernel as
they are: callers pass a directory fd and ONE name (the kernel then walks nothing else), or an
O_PATH fd with an empty name and ``AT_EMPTY_PATH``. Nothing here switches credentials: the
caller runs these under the target's (``kernel.creds.as_creds``).
"""

from __future__ import annotations

from supervisor._native import ffi, lib

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536


def renameat2(olddir: int, old: bytes, newdir: int, new: bytes, flags: int) -> int:
    return -int(lib.sv_fs_renameat2(olddir, old, newdir, new, flags))


def linkat(olddir: int, old: bytes, newdir: int, new: bytes, flags: int) -> int:
    return -int(lib.sv_fs_linkat(olddir, old, newdir, new, flags))


def symlinkat(target: bytes, newdir: int, new: bytes) -> int:
    return -int(lib.sv_fs_symlinkat(target, newdir, new))


def unlinkat(dirfd: int, name: bytes, flags: int) -> int:
    return -int(lib.sv_fs_unlinkat(dirfd, name, flags))


def mkdirat(dirfd: int, name: bytes, mode: int) -> int:
    return -int(lib.sv_fs_mkdirat(dirfd, name, mode))


def mknodat(dirfd: int, name: bytes, mode: int, dev: int) -> int:
    return -int(lib.sv_fs_mknodat(dirfd, name, mode, dev))


def fchmodat2(dirfd: int, name: bytes, mode: int, flags: int) -> int:
    return -int(lib.sv_fs_fchmodat2(dirfd, name, mode, flags))


def fchownat(dirfd: int, name: bytes, uid: int, gid: int, flags: int) -> int:
    return -int(lib.sv_fs_fchownat(dirfd, name, uid, gid, flags))


def utimensat(dirfd: int, name: bytes, times: tuple[int, int, int, int] | None, flags: int) -> int:
    """``times``: (atime sec, atime nsec, mtime sec, mtime nsec), or None (both now)."""
    arg = ffi.NULL if times is None else ffi.new("int64_t[4]", list(times))
    return -int(lib.sv_fs_utimensat(dirfd, name, arg, flags))


def truncate(path: bytes, length: int) -> int:
    return -int(lib.sv_fs_truncate(path, length))


def setxattrat(
    dirfd: int, name: bytes, at_flags: int, attr: bytes, value: bytes, flags: int
) -> int:
    buf = ffi.from_buffer(value) if value else ffi.NULL
    return -int(lib.sv_fs_setxattrat(dirfd, name, at_flags, attr, buf, len(value), flags))


def removexattrat(dirfd: int, name: bytes, at_flags: int, attr: bytes) -> int:
    return -int(lib.sv_fs_removexattrat(dirfd, name, at_flags, attr))
