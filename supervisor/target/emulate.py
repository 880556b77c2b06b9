"""Perform an allowed open(2)/openat(2)/openat2(2) for the target, never granting more than the
kernel would.

The target's path is resolved once (``target.resolve``, under the target's credentials, so
search permission is the target's), the policy decides on the canonical path of the object we
then hold as an O_PATH fd, and the real open acts on that fd: nothing the target changes after
the decision can redirect it (no TOCTOU).

* Existing object: reopen through /proc/self/fd/N (our O_PATH fd) under the target's
  credentials: the kernel checks the inode's permissions for the target, truncates, appends,
  refuses write access to directories, as it would have for the target.
* Missing object with O_CREAT: ``openat(parent_fd, name, flags | O_NOFOLLOW)`` under the
  target's credentials, so the file gets the target's owner and group; O_NOFOLLOW so that a
  symlink planted after the resolution is not followed (the open then fails with ELOOP rather
  than creating a file the policy did not see). The target's umask applies: the emulating thread
  gets its own fs_struct once (unshare(CLONE_FS) acts on the caller only) and sets its umask to
  the target's around the call, so a default ACL on the directory works as in the kernel.
* O_PATH: ``open`` returns the O_PATH fd of the resolution, but SECCOMP_IOCTL_NOTIF_ADDFD takes
  its source with fget(), which skips O_PATH files: ADDFD answers EBADF. ``path_only`` tells the
  loop; it has to answer such opens another way (seen in tests/test_run_paths.py).
* Per-process procfs entries of other processes (and all of the supervisor's own /proc/PID)
  are refused unless the kernel checks nothing of the opener when they are opened
  (``supervisor.target.procfs``): the opener here is the supervisor, not the target.
* O_CLOEXEC is the loop's business (ADDFD ``newfd_flags``); our fd is always close-on-exec, and
  O_NOCTTY so that opening a terminal never makes it the supervisor's controlling terminal.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.kernel.creds import Creds, as_creds
from supervisor.kernel.proc import fd_path
from supervisor.kernel.unshare import unshare_fs
from supervisor.target.procfs import check_open
from supervisor.target.resolve import PathResolver, Resolved

O_TMPFILE: int = os.O_TMPFILE
_CREATE_ONLY = os.O_CREAT | os.O_EXCL
_PATH_KEEPS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW  # what O_PATH keeps (O_CLOEXEC aside)


class Refused(Exception):
    """The policy does not allow the canonical path the open would reach."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class _Fs(threading.local):
    own: bool = False


_fs = _Fs()


def own_fs() -> None:
    """Give the calling thread its own umask (once): the umask is per fs_struct, shared by all
    threads of the supervisor until one unshares it."""
    if not _fs.own:
        unshare_fs()
        _fs.own = True


@dataclass
class PreparedOpen:
    """An allowed open, ready to be performed (possibly on a worker thread: see may_block)."""

    path: str
    may_block: bool
    path_only: bool  # O_PATH was asked: the fd cannot go through ADDFD (see the module doc)
    _resolved: Resolved
    _flags: int
    _mode: int
    _creds: Creds
    _trailing_slash: bool
    _as_supervisor: bool = False  # the target's own fd directory (procfs.check_open)

    def close(self) -> None:
        """Release our O_PATH fd when ``open`` is not called."""
        self._resolved.close()

    def open(self) -> int:
        """Open as the kernel would for the target; returns OUR fd (close-on-exec)."""
        try:
            return self._open()
        finally:
            self._resolved.close()

    def _open(self) -> int:
        r, flags = self._resolved, self._flags
        if r.fd < 0:
            raise _err(errno.EBADF)  # opened or closed already
        is_dir = stat.S_ISDIR(r.st_mode)
        if flags & os.O_PATH:
            if not r.exists:
                raise _err(errno.ENOENT)
            if flags & os.O_DIRECTORY and not is_dir:
                raise _err(errno.ENOTDIR)
            return r.take_fd()  # opened under the target's creds by the resolution
        creds = self._creds
        if (flags & O_TMPFILE) == O_TMPFILE:
            if not r.exists:
                raise _err(errno.ENOENT)
            if not is_dir:
                raise _err(errno.ENOTDIR)
            return self._create(".", flags, r.fd)
        if not r.exists:
            if not flags & os.O_CREAT:
                raise _err(errno.ENOENT)
            if self._trailing_slash:
                raise _err(errno.EISDIR)
            assert r.name is not None
            return self._create(r.name, flags | os.O_NOFOLLOW, r.fd)
        if flags & _CREATE_ONLY == _CREATE_ONLY:
            raise _err(errno.EEXIST)
        if stat.S_ISLNK(r.st_mode):
            raise _err(errno.ELOOP)  # O_NOFOLLOW on a symlink
        if flags & os.O_DIRECTORY and not is_dir:
            raise _err(errno.ENOTDIR)
        if flags & os.O_CREAT and is_dir:
            raise _err(errno.EISDIR)
        drop = os.O_NOFOLLOW | os.O_CLOEXEC | (_CREATE_ONLY if flags & os.O_CREAT else 0)
        reopen = (flags & ~drop) | os.O_CLOEXEC | os.O_NOCTTY
        if self._as_supervisor:
            # Only a directory of procfs the kernel lets the target read whatever its mode
            # (procfs.check_open), opened for reading: the same grant, no more.
            if reopen & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND) or not is_dir:
                raise _err(errno.EACCES)
            return os.open(fd_path(r.fd), reopen)
        with as_creds(creds):
            return os.open(fd_path(r.fd), reopen)

    def _create(self, name: str, flags: int, dirfd: int) -> int:
        flags = (flags & ~os.O_CLOEXEC) | os.O_CLOEXEC | os.O_NOCTTY
        own_fs()
        with as_creds(self._creds):
            old = os.umask(self._creds.umask)
            try:
                return os.open(name, flags, self._mode & 0o7777, dir_fd=dirfd)
            finally:
                os.umask(old)


def prepare_open(
    resolver: PathResolver,
    tid: int,
    creds: Creds,
    dirfd: int | None,
    path: bytes,
    flags: int,
    mode: int,
    resolve_flags: int,
    allowed: Callable[[str], bool],
) -> PreparedOpen:
    """Resolve ``path`` for the target under its credentials and check it with ``allowed``.

    Raises OSError (the target's errno) when the resolution fails, ``Refused`` when the canonical
    path is not allowed. No side effect happens before ``PreparedOpen.open``."""
    if flags & os.O_PATH:
        flags &= _PATH_KEEPS
    tmpfile = (flags & O_TMPFILE) == O_TMPFILE
    if not tmpfile and flags & os.O_CREAT and flags & os.O_DIRECTORY:
        raise _err(errno.EINVAL)  # as the kernel since 6.4
    create = bool(flags & os.O_CREAT) and not tmpfile and not flags & os.O_PATH
    # O_CREAT|O_EXCL never follows a final symlink: an existing one, even dangling, is EEXIST.
    follow = not flags & os.O_NOFOLLOW and not (create and flags & os.O_EXCL)
    r = resolver.resolve(tid, dirfd, path, follow=follow, resolve_flags=resolve_flags, creds=creds)
    as_supervisor = False
    try:
        if not allowed(r.full_path):
            raise Refused(r.full_path)
        if r.exists or create or tmpfile:
            # The open runs in the supervisor: another process's /proc/PID files that check
            # the opener would check us (supervisor/procfs.py).
            as_supervisor = check_open(tid, r)
    except BaseException:
        r.close()
        raise
    kind = stat.S_IFMT(r.st_mode)
    may_block = (
        r.exists and not flags & os.O_PATH and kind in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFSOCK)
    )
    return PreparedOpen(
        path=r.full_path,
        may_block=may_block,
        path_only=bool(flags & os.O_PATH),
        _resolved=r,
        _flags=flags,
        _mode=mode,
        _creds=creds,
        _trailing_slash=path.endswith(b"/"),
        _as_supervisor=as_supervisor,
    )
