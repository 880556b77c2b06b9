"""One target thread as the resolver sees it during one resolution: its root, the name of an
object in its view, its pid in a procfs instance. Every fd here is ours and closed with it.

Names come from the kernel (readlink of our fd), cut to the target's root. A lookup that starts
from the target's cwd or a dirfd may start on a detached mount (an open_tree clone, an fsmount)
or on a mount of another mount namespace (an fd received over SCM_RIGHTS, pidfd_getfd): the
kernel then names objects relative to a tree the target's root does not hold, and a rule would
match the wrong name (a clone of /d names /d/secret "/secret"). So in such a lookup
(``from_start``) a name counts only when it is *placed*: walked again from the target's root
(openat2 with RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, RESOLVE_IN_ROOT on its root fd), it
leads to the very object, the same (mount id, device, inode). What cannot be placed is refused
with EACCES and logged (``resolve.unplaced``, with the reason: on a mount that is not in the
target's mountinfo, or a name that leads elsewhere); an unlinked object (" (deleted)", a memfd)
has no name at all, as before. Both fds are open while their ids are compared, so the 32-bit
mount ids cannot have been reused in between (STATX_MNT_ID_UNIQUE is not needed).
"""

from __future__ import annotations

import errno
import os

import structlog

from supervisor.kernel import proc
from supervisor.kernel.creds import as_supervisor
from supervisor.kernel.openat2 import (
    AT_FDCWD,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    FdStat,
    Ids,
    fd_ids,
    fd_stat,
    openat2,
)
from supervisor.target.resolve.result import O_BASE, err

_PLACE = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_log = structlog.get_logger("seccomp-supervisor")


class TargetView:
    """What we learn about one target thread during one resolution (fds are ours)."""

    def __init__(self, tid: int, own_root: Ids) -> None:
        self.tid = int(tid)
        self._own_root = own_root
        self.root_fd = -1
        self.root_ids: Ids = (0, 0, 0)
        self.prefix = ""  # the target's root in our view; "" when it is our root
        self.fds: list[int] = []
        self._status: dict[str, list[int]] | None = None
        self.from_start = False  # the lookup started from a cwd or dirfd: place every name

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def root_is_ours(self) -> bool:
        """One statx through /proc/TID/root; no fd is opened in the common case."""
        try:
            st = proc.root_stat(self.tid)
        except OSError as e:
            raise err(errno.ESRCH if e.errno == errno.ENOENT else (e.errno or errno.EACCES)) from e
        return st.ids == self._own_root

    def open_root(self) -> int:
        if self.root_fd < 0:
            try:
                with as_supervisor():  # the target's own root: not a permission question
                    fd = proc.open_root(self.tid)
            except FileNotFoundError:
                raise err(errno.ESRCH) from None
            self.root_fd = self.keep(fd)
            self.root_ids = fd_stat(fd).ids
            if self.root_ids == self._own_root:
                self.prefix = ""
            else:
                self.prefix = proc.fd_name(fd)
                if not self.prefix.startswith("/") or self.prefix.endswith(" (deleted)"):
                    raise err(errno.EACCES, "target's root has no path")
        return self.root_fd

    def view(self, fd: int, st: FdStat) -> str | None:
        """The target's name for our fd, or None when it is outside the target's root."""
        text = proc.fd_name(fd)
        if not text.startswith("/"):
            return None
        if text.endswith(" (deleted)") and st.nlink == 0:
            return None
        prefix = self.prefix.rstrip("/")
        if not prefix:
            name = text
        elif text == prefix:
            name = "/"
        elif text.startswith(prefix + "/"):
            name = text[len(prefix) :]
        else:
            return None
        if self.from_start and not self.placed(name, st):
            if text.endswith(" (deleted)"):
                return None  # unlinked (nlink may still be 1: a memfd): no name anywhere
            raise self._unplaced(name, st)
        return name

    def placed(self, name: str, st: FdStat) -> bool:
        """Does ``name``, walked from the target's root, lead to the object ``st`` is of?"""
        if self.root_fd >= 0:
            dfd, res = self.root_fd, _PLACE | RESOLVE_IN_ROOT
        else:
            dfd, res = AT_FDCWD, _PLACE  # the target's root is ours (it was checked)
        try:
            with as_supervisor():  # where the object is, not whether the target may search
                fd = openat2(dfd, os.fsencode(name), O_BASE | os.O_NOFOLLOW, res)
        except OSError:
            return False
        try:
            return fd_ids(fd) == st.ids
        finally:
            os.close(fd)

    def _unplaced(self, name: str, st: FdStat) -> OSError:
        try:
            known = st.ids[0] in proc.mount_roots(self.tid)
        except OSError:
            known = False
        if known:
            reason = "its name leads to another object in the target's root"
        else:
            reason = "on a mount outside the target's mount namespace (detached or foreign)"
        _log.warning(
            "resolve.unplaced", tid=self.tid, kernel_name=name, mount_id=st.ids[0], reason=reason
        )
        return err(errno.EACCES, f"cannot be placed in the target's root: {reason}")

    def status(self) -> dict[str, list[int]]:
        """Tgid, NStgid and NSpid of the thread (read once)."""
        if self._status is None:
            try:
                self._status = proc.status_ids(self.tid)
            except ProcessLookupError:
                raise err(errno.ESRCH, "no Tgid/NSpid in /proc status") from None
        return self._status

    def ids_in(self, proc_root: int, proc_st: FdStat) -> tuple[int, int] | None:
        """(tgid, tid) of the target as the procfs instance ``proc_root`` numbers it, or None
        when the target has no pid in that instance's pid namespace."""
        s = self.status()
        ours = _our_proc_dev()
        if ours is not None and proc_st.ids[1] == ours:
            return s["Tgid"][0], self.tid
        # Another procfs instance: try each pid-namespace level of the target and keep the one
        # whose process there started when ours did.
        mine = proc.start_time_at(_our_proc_fd(), s["Tgid"][0])
        if mine is None:
            raise err(errno.ESRCH)
        for tgid, tid in zip(s["NStgid"], s["NSpid"], strict=False):
            if proc.start_time_at(proc_root, tgid) == mine:
                return tgid, tid
        return None


_PROC: dict[str, int] = {}


def _our_proc_fd() -> int:
    """Our fd on our /proc (opened once)."""
    fd = _PROC.get("fd")
    if fd is None:
        fd = _PROC["fd"] = proc.open_proc()
    return fd


def _our_proc_dev() -> int | None:
    """The device of our /proc, None when it is not a procfs root."""
    dev = _PROC.get("dev")
    if dev is None:
        st = fd_stat(_our_proc_fd())
        if not st.is_proc_root:
            return None
        dev = _PROC["dev"] = st.ids[1]
    return dev
