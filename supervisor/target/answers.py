"""Perform an allowed stat, statx, statfs, access, readlink or getxattr/listxattr for the
target, on the object the supervisor resolved and checked: what the kernel would answer the
target, and nothing of any other file.

The caller resolves the target's path once, under the target's credentials (search permission
is the target's: a directory it cannot search is EACCES, as in the kernel), and decides on the
canonical path of the object it then holds as an O_PATH fd (``Resolved``). The operation here
acts on that fd: ``fstat``/``fstatfs``/``statx``/``readlinkat``/``faccessat2`` with an empty path,
``getxattr``/``listxattr`` of its /proc/self/fd/N (which lands on the very object, a symlink
too; an O_PATH fd is EBADF for fgetxattr and getxattrat's AT_EMPTY_PATH). A racing thread that
rewrites the path buffer or swaps a symlink after the check changes nothing: the fd is the
object that was checked. The bytes are then the caller's to write into the target's memory.

Every operation runs under the credentials it is given (``as_creds``), so permission checks
(xattr namespaces, capabilities, LSMs) are the target's. This module decides nothing. Failures
are OSError with the errno the target would get.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from supervisor.kernel import answer
from supervisor.kernel.creds import Creds, as_creds
from supervisor.kernel.proc import fd_path
from supervisor.target.resolve import Resolved

XATTR_SIZE_MAX = 65536
XATTR_LIST_MAX = 65536
AT_SYMLINK_NOFOLLOW = 0x100  # dropped for statx: our fd already is the object


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@dataclass(frozen=True, slots=True)
class Answer:
    """What the target gets: ``ret`` returned, ``data`` written at its output pointer (nothing
    when empty), only its ``spans`` when given."""

    ret: int
    data: bytes = b""
    spans: tuple[tuple[int, int], ...] = ()


def stat_answer(r: Resolved, creds: Creds, kind: int) -> Answer:
    """The stat struct of ABI ``kind`` (kernel.answer.STAT_*) of the object."""
    with as_creds(creds):
        data = answer.fstat_bytes(r.fd, kind)
    spans = answer.STAT64_SPANS if kind == answer.STAT64_I386 else ()
    return Answer(0, data, spans)


def statfs_answer(r: Resolved, creds: Creds, kind: int, size: int) -> Answer:
    """The statfs struct of ABI ``kind`` (kernel.answer.STATFS_*) of the object's filesystem."""
    with as_creds(creds):
        data = answer.fstatfs_bytes(r.fd, kind, size)
    return Answer(0, data)


def statx_answer(r: Resolved, creds: Creds, flags: int, mask: int) -> Answer:
    """struct statx with the target's mask and AT_STATX_* sync flags (symlinks were the
    resolution's business: AT_SYMLINK_NOFOLLOW is dropped)."""
    with as_creds(creds):
        data = answer.statx_bytes(r.fd, flags & ~AT_SYMLINK_NOFOLLOW, mask)
    return Answer(0, data)


def access_answer(r: Resolved, creds: Creds, mode: int) -> Answer:
    """faccessat2 on the object with ``creds`` (the real or the effective ids: the caller's
    choice, see kernel.creds.access_creds)."""
    with as_creds(creds):
        answer.faccess(r.fd, mode)
    return Answer(0)


def readlink_answer(r: Resolved, creds: Creds, size: int) -> Answer:
    """The link's bytes, cut to ``size`` (no NUL), and their count. Not a symlink: EINVAL
    (readlinkat(fd, "") would say ENOENT)."""
    if not stat.S_ISLNK(r.st_mode):
        raise _err(errno.EINVAL)
    with as_creds(creds):
        data = answer.readlink_bytes(r.fd)[:size]
    return Answer(len(data), data)


def getxattr_answer(r: Resolved, creds: Creds, name: bytes, size: int) -> Answer:
    """The value of xattr ``name``: its length when ``size`` is 0, ERANGE when it does not fit
    in ``size`` bytes (at most XATTR_SIZE_MAX, as the kernel)."""
    with as_creds(creds):
        value = os.getxattr(fd_path(r.fd), name)
    return _sized(value, size, XATTR_SIZE_MAX)


def listxattr_answer(r: Resolved, creds: Creds, size: int) -> Answer:
    """The NUL-terminated names of the object's xattrs, sized as getxattr_answer."""
    with as_creds(creds):
        names = os.listxattr(fd_path(r.fd))
    return _sized(b"".join(os.fsencode(n) + b"\0" for n in names), size, XATTR_LIST_MAX)


def _sized(data: bytes, size: int, most: int) -> Answer:
    if size == 0:
        return Answer(len(data))
    if len(data) > min(size, most):
        raise _err(errno.E2BIG if size >= most else errno.ERANGE)
    return Answer(len(data), data)
