"""The syscalls an answered stat, statx, statfs, access or readlink performs on an O_PATH fd,
each giving the exact result the kernel gives the target (C: ``supervisor/kernel/native/answer.c``).

* ``fstat_bytes``: the struct of the target's ABI, made by the kernel itself: fstat(2) for
  x86_64's ``struct stat``; for i386 the same i386 syscall issued with ``int $0x80`` on our fd
  (fstat → ``struct stat``, fstat64 → ``struct stat64``, oldfstat → ``__old_kernel_stat``), so
  the kernel's conversions and their EOVERFLOW checks apply. ``STAT64_SPANS`` are the bytes of a
  stat64 the kernel writes (cp_stat64 writes field by field and leaves the padding as it was).
* ``fstatfs_bytes``: likewise ``struct statfs`` (x86_64 fstatfs; i386 fstatfs and fstatfs64,
  whose size argument the kernel checks: anything but 84 is EINVAL).
* ``statx_bytes``: statx(fd, "", AT_EMPTY_PATH | flags, mask): the 256 bytes of struct statx.
* ``faccess``: faccessat2(fd, "", mode, AT_EMPTY_PATH | AT_EACCESS): checked with the calling
  thread's fsuid, fsgid, groups and capabilities (the caller sets them: real or effective ids).
* ``readlink_bytes``: readlinkat(fd, ""): the link's bytes (EINVAL when it is not a symlink).

Every function raises ``OSError`` with the errno the target would get.
"""

from __future__ import annotations

import os

from supervisor._native import ffi, lib

STAT_X86_64: int = lib.SV_STAT_X86_64
STAT_I386: int = lib.SV_STAT_I386
STAT64_I386: int = lib.SV_STAT64_I386
OLDSTAT_I386: int = lib.SV_OLDSTAT_I386
STATFS_X86_64: int = lib.SV_STATFS_X86_64
STATFS_I386: int = lib.SV_STATFS_I386
STATFS64_I386: int = lib.SV_STATFS64_I386
STAT_SIZES = {STAT_X86_64: 144, STAT_I386: 64, STAT64_I386: 96, OLDSTAT_I386: 32}
STATFS_SIZES = {STATFS_X86_64: 120, STATFS_I386: 64, STATFS64_I386: 84}
STATX_SIZE: int = lib.SV_STATX_SIZE
# i386 struct stat64 (packed): __pad0 at 8..12 and __pad3 at 40..44 are never written.
STAT64_SPANS = ((0, 8), (12, 28), (44, 52))
_LINK_MAX = 4096


def _raise(ret: int) -> None:
    raise OSError(-ret, os.strerror(-ret))


def fstat_bytes(fd: int, kind: int) -> bytes:
    """The stat struct of ``kind`` (STAT_X86_64, STAT_I386, ...) for our fd ``fd``."""
    out = ffi.new("char[]", lib.SV_STAT_SIZE_MAX)
    ret = lib.sv_fstat_abi(fd, kind, out, lib.SV_STAT_SIZE_MAX)
    if ret < 0:
        _raise(ret)
    return bytes(ffi.buffer(out, STAT_SIZES[kind]))


def fstatfs_bytes(fd: int, kind: int, size: int = 0) -> bytes:
    """The statfs struct of ``kind`` (STATFS_*) for our fd; ``size``: statfs64's argument."""
    out = ffi.new("char[]", lib.SV_STAT_SIZE_MAX)
    ret = lib.sv_fstatfs_abi(fd, kind, size & 0xFFFFFFFF, out, lib.SV_STAT_SIZE_MAX)
    if ret < 0:
        _raise(ret)
    return bytes(ffi.buffer(out, STATFS_SIZES[kind]))


def statx_bytes(fd: int, flags: int, mask: int) -> bytes:
    out = ffi.new("char[]", STATX_SIZE)
    ret = lib.sv_statx_fd(fd, flags, mask & 0xFFFFFFFF, out)
    if ret < 0:
        _raise(ret)
    return bytes(ffi.buffer(out, STATX_SIZE))


def faccess(fd: int, mode: int) -> None:
    ret = lib.sv_faccess_fd(fd, mode)
    if ret < 0:
        _raise(ret)


def readlink_bytes(fd: int) -> bytes:
    out = ffi.new("char[]", _LINK_MAX)
    ret = lib.sv_readlink_fd(fd, out, _LINK_MAX)
    if ret < 0:
        _raise(ret)
    return bytes(ffi.buffer(out, ret))
