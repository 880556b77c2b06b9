"""Perform a filesystem-changing path syscall for the target, on exactly what was checked.

The caller (``supervise.fsops``) reads the target's arguments, asks for the objects here, lets the
policy decide on their paths, and calls one of the operations below: nothing the target changes
after the decision can redirect the call, because the call acts on our fds, not on its path.

* **Entries** (what rename, link's new name, symlink, unlink, rmdir, mkdir and mknod act on): the
  parent directory is resolved for the target (``target.resolve``, under its credentials, in its
  root: ``RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS`` or the careful walk) and held as an O_PATH fd;
  the last component stays a name, never followed, handed to the kernel as ONE component relative
  to that fd (with its trailing slashes, so that ``rename("f/", ...)`` fails with ENOTDIR as the
  kernel's own would). The decision is on the parent's canonical path and that name. ``.`` and
  ``..`` as the last component are passed on too: the kernel refuses them (EBUSY, EEXIST, EINVAL,
  EISDIR, ENOTEMPTY) before any lookup.
* **Objects** (what chmod, chown, utimes, truncate, the xattr calls and link's old name act on):
  resolved in full (the last symlink followed where the syscall follows it) to an O_PATH fd of
  the object, which the call then uses: ``AT_EMPTY_PATH`` on the fd (fchmodat2, fchownat,
  utimensat, linkat when the target asked for AT_EMPTY_PATH: the kernel then checks the target's
  CAP_DAC_READ_SEARCH), or /proc/self/fd/N, whose magic link lands on the object itself without
  following it further (truncate, setxattrat, removexattrat and linkat: the kernel refuses
  AT_EMPTY_PATH on O_PATH fds for xattrs). Per-process procfs entries the kernel would check
  against the caller are refused (``procfs.check_open``): the caller is the supervisor.

Every operation runs under the target's credentials (fsuid, fsgid, groups, effective
capabilities: ``kernel.creds.as_creds``) and, for creations, its umask (the thread's own
fs_struct: ``emulate.own_fs``), so the kernel's permission checks, ownership of new files,
protected_hardlinks and default ACLs are the target's. Results are 0 or an errno: the answer.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.kernel import fsops
from supervisor.kernel.creds import Creds, as_creds
from supervisor.kernel.proc import fd_path
from supervisor.target.emulate import own_fs
from supervisor.target.procfs import check_open
from supervisor.target.resolve import PathResolver, Resolved
from supervisor.target.resolve.result import err, join

_DOTS = (b".", b"..")


@dataclass
class Entry:
    """A name in a directory we hold: the target of an entry operation."""

    parent: Resolved  # the directory (exists, our O_PATH fd)
    name: bytes  # one component, with the target's trailing slashes
    path: str  # what the policy decides on
    root: bool = False  # the path was only slashes (the name is then ".")

    @property
    def fd(self) -> int:
        return self.parent.fd

    def close(self) -> None:
        self.parent.close()


def resolve_entry(
    resolver: PathResolver, tid: int, dirfd: int | None, path: bytes, creds: Creds
) -> Entry:
    """The parent directory of ``path`` (resolved for the target) and its last component.
    OSError with the target's errno when the parent cannot be reached."""
    if not path:
        raise err(errno.ENOENT)
    core = path.rstrip(b"/")
    if not core:
        # Only slashes: the root, which no entry operation can change. "." gives the kernel's
        # answer for it (EBUSY, EISDIR, EEXIST; rmdir: EBUSY, see supervise.fsops).
        parent_path, name = b"/", b"."
    else:
        head, sep, last = core.rpartition(b"/")
        parent_path = (head or b"/") if sep else b"."
        name = last + path[len(core) :]
    parent = resolver.resolve(tid, dirfd, parent_path, follow=True, creds=creds)
    try:
        if not parent.exists:
            raise err(errno.ENOENT)
        if not stat.S_ISDIR(parent.st_mode):
            raise err(errno.ENOTDIR)
    except BaseException:
        parent.close()
        raise
    bare = name.rstrip(b"/")
    shown = parent.path if bare in _DOTS else join(parent.path, os.fsdecode(bare))
    return Entry(parent, name, shown, root=not core)


def resolve_object(
    resolver: PathResolver,
    tid: int,
    dirfd: int | None,
    path: bytes,
    creds: Creds,
    *,
    follow: bool,
    empty_path_ok: bool = False,
) -> Resolved:
    """The existing object ``path`` names for the target (our O_PATH fd on it). OSError with
    the target's errno when there is none; EACCES for a procfs entry we may not act on."""
    r = resolver.resolve(tid, dirfd, path, follow=follow, empty_path_ok=empty_path_ok, creds=creds)
    try:
        if not r.exists:
            raise err(errno.ENOENT)
        check_open(tid, r)
    except BaseException:
        r.close()
        raise
    return r


def _magic(r: Resolved) -> bytes:
    return os.fsencode(fd_path(r.fd))


# -- entry operations ---------------------------------------------------------------------------
def rename(creds: Creds, old: Entry, new: Entry, flags: int) -> int:
    with as_creds(creds):
        return fsops.renameat2(old.fd, old.name, new.fd, new.name, flags)


def link(creds: Creds, old: Resolved, new: Entry, *, empty_path: bool) -> int:
    """A new name for the object ``old``. ``empty_path``: the target's own AT_EMPTY_PATH link
    of an fd, which the kernel allows only with CAP_DAC_READ_SEARCH: made the same way."""
    with as_creds(creds):
        if empty_path:
            return fsops.linkat(old.fd, b"", new.fd, new.name, fsops.AT_EMPTY_PATH)
        return fsops.linkat(fsops.AT_FDCWD, _magic(old), new.fd, new.name, fsops.AT_SYMLINK_FOLLOW)


def symlink(creds: Creds, target: bytes, new: Entry) -> int:
    return _create(creds, lambda: fsops.symlinkat(target, new.fd, new.name))


def unlink(creds: Creds, entry: Entry, flags: int) -> int:
    with as_creds(creds):
        return fsops.unlinkat(entry.fd, entry.name, flags)


def mkdir(creds: Creds, entry: Entry, mode: int) -> int:
    return _create(creds, lambda: fsops.mkdirat(entry.fd, entry.name, mode))


def mknod(creds: Creds, entry: Entry, mode: int, dev: int) -> int:
    return _create(creds, lambda: fsops.mknodat(entry.fd, entry.name, mode, dev))


def _create(creds: Creds, call: Callable[[], int]) -> int:
    own_fs()
    with as_creds(creds):
        old = os.umask(creds.umask)
        try:
            return call()
        finally:
            os.umask(old)


# -- object operations --------------------------------------------------------------------------
def chmod(creds: Creds, obj: Resolved, mode: int) -> int:
    with as_creds(creds):
        return fsops.fchmodat2(obj.fd, b"", mode, fsops.AT_EMPTY_PATH)


def chown(creds: Creds, obj: Resolved, uid: int, gid: int) -> int:
    with as_creds(creds):
        return fsops.fchownat(obj.fd, b"", uid, gid, fsops.AT_EMPTY_PATH)


def utimens(creds: Creds, obj: Resolved, times: tuple[int, int, int, int] | None) -> int:
    with as_creds(creds):
        return fsops.utimensat(obj.fd, b"", times, fsops.AT_EMPTY_PATH)


def truncate(creds: Creds, obj: Resolved, length: int) -> int:
    with as_creds(creds):
        return fsops.truncate(_magic(obj), length)


def setxattr(creds: Creds, obj: Resolved, attr: bytes, value: bytes, flags: int) -> int:
    with as_creds(creds):
        return fsops.setxattrat(fsops.AT_FDCWD, _magic(obj), 0, attr, value, flags)


def removexattr(creds: Creds, obj: Resolved, attr: bytes) -> int:
    with as_creds(creds):
        return fsops.removexattrat(fsops.AT_FDCWD, _magic(obj), 0, attr)
