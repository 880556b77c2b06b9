"""``PathResolver``: the entry points of a resolution, and its fast path.

Each call first tries the fast path: one C call (``supervisor.kernel.fastpath``) when no
credential switch is needed, else the same steps here under the target's credentials
(``PathResolver._fast``): one ``openat2(O_PATH, RESOLVE_NO_MAGICLINKS)`` from the right start,
``RESOLVE_IN_ROOT`` on the target's root fd when its root is not ours. Whatever the fast path
cannot answer (an error, a result on procfs, a path naming ``self``, a relative path in another
root) goes to the careful walk (``supervisor.target.resolve.walk``), which decides.
"""

from __future__ import annotations

import errno
import os
from contextlib import nullcontext

from supervisor.kernel import fastpath, proc
from supervisor.kernel.creds import Creds, as_creds, switch_is_noop
from supervisor.kernel.memory import MemoryReader
from supervisor.kernel.openat2 import (
    RESOLVE_ALL,
    RESOLVE_CACHED,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_SCOPED,
    fd_stat,
    lstat_at,
    openat2,
    own_root,
)
from supervisor.target.resolve.result import NAME_MAX, O_BASE, PATH_MAX, Resolved, err
from supervisor.target.resolve.view import TargetView
from supervisor.target.resolve.walk import Walk

_INT_MAX = 0x7FFFFFFF


def _checked_flags(resolve_flags: int) -> int:
    """openat2's RESOLVE_ flags as the kernel checks them; RESOLVE_CACHED dropped."""
    if resolve_flags & ~RESOLVE_ALL:
        raise err(errno.EINVAL, "unknown RESOLVE_ flags")
    if resolve_flags & RESOLVE_SCOPED == RESOLVE_SCOPED:
        raise err(errno.EINVAL, "RESOLVE_BENEATH with RESOLVE_IN_ROOT")
    return resolve_flags & ~RESOLVE_CACHED  # a hint; we may always do the full lookup


class _SlowPath(Exception):
    """The fast path cannot answer; walk component by component."""


class PathResolver:
    """Resolves path arguments of target threads. Holds no per-target state; thread-safe."""

    def resolve(
        self,
        tid: int,
        dirfd: int | None,
        path: bytes,
        *,
        follow: bool,
        empty_path_ok: bool = False,
        resolve_flags: int = 0,
        creds: Creds | None = None,
    ) -> Resolved:
        flags = _checked_flags(resolve_flags)
        if len(path) >= PATH_MAX:
            raise err(errno.ENAMETOOLONG)
        if path and b"self" not in path and (creds is None or switch_is_noop(creds)):
            done = fastpath.resolve_fast(tid, dirfd, path, follow, flags)
            if done is not None:
                return Resolved(done[0], done[1], True, None, done[2], off_proc=True)
        return self._walk(tid, dirfd, path, follow, empty_path_ok, flags, creds)

    def read_and_resolve(
        self,
        memory: MemoryReader,
        notif_id: int,
        tid: int,
        addr: int,
        dirfd: int | None,
        *,
        follow: bool,
        empty_path_ok: bool = False,
        resolve_flags: int = 0,
        keep_fd: bool = True,
    ) -> Resolved:
        """``resolve()`` of the path at ``addr`` in the target's memory, read between two
        ID_VALIDs (``memory.read_string``), as the supervisor. The read and the resolver's fast
        case are one C call: this is the hot path of every path-inspected syscall. With
        ``keep_fd=False`` the result may hold no fd (-1): for a decision, only the path counts."""
        flags = _checked_flags(resolve_flags) if resolve_flags else 0
        if not 0 < tid <= _INT_MAX:
            path = memory.read_string(notif_id, tid, addr)
            return self.resolve(
                tid, dirfd, path, follow=follow, empty_path_ok=empty_path_ok, resolve_flags=flags
            )
        got = fastpath.read_resolve_fast(memory, notif_id, tid, addr, dirfd, follow, flags, keep_fd)
        if not isinstance(got, bytes):
            return Resolved(got[0], got[1], True, None, got[2], off_proc=True)
        return self._walk(tid, dirfd, got, follow, empty_path_ok, flags, None)

    def resolve_read(
        self, tid: int, dirfd: int | None, path: bytes, *, follow: bool, empty_path_ok: bool
    ) -> Resolved:
        """The careful walk of ``path`` (already read from the target, and tried by the fast
        path in C: sv_lane_next), as the supervisor."""
        if len(path) >= PATH_MAX:
            raise err(errno.ENAMETOOLONG)
        return self._walk(tid, dirfd, path, follow, empty_path_ok, 0, None)

    def _walk(
        self,
        tid: int,
        dirfd: int | None,
        path: bytes,
        follow: bool,
        empty_path_ok: bool,
        flags: int,
        creds: Creds | None,
    ) -> Resolved:
        if not path and not empty_path_ok:
            raise err(errno.ENOENT)
        t = TargetView(tid, own_root())
        try:
            return self._resolve(t, dirfd, path, follow, flags, creds)
        finally:
            t.close()

    def _resolve(
        self,
        t: TargetView,
        dirfd: int | None,
        path: bytes,
        follow: bool,
        flags: int,
        creds: Creds | None,
    ) -> Resolved:
        scoped = bool(flags & RESOLVE_SCOPED)
        absolute = path.startswith(b"/")
        same_root = t.root_is_ours()
        if not same_root:
            t.open_root()
        start = -1
        if not path or scoped or not absolute:
            start = self._open_start(t, dirfd)
            if not path:
                return self._empty(t, start, dirfd)
        if absolute and not scoped:
            dfd, res = (-1, flags) if same_root else (t.root_fd, flags | RESOLVE_IN_ROOT)
        elif same_root or scoped:
            dfd, res = start, flags
        else:
            dfd, res = -1, -1  # relative in another root: only the walk gets it right
        if b"self" in path:
            # /proc/self/task/<a supervisor tid>/../.. exists for us, not for the target: the
            # result is outside procfs, so the fstatfs check alone would miss it.
            res = -1
        with as_creds(creds) if creds is not None else nullcontext():
            if res >= 0:
                try:
                    return self._fast(t, dfd, path, follow, res | RESOLVE_NO_MAGICLINKS)
                except _SlowPath:
                    pass
            return Walk(t, start, path, follow, flags).run()

    def _open_start(self, t: TargetView, dirfd: int | None) -> int:
        """Our fd on the target's cwd or dirfd (as the supervisor: these are the target's own)."""
        if dirfd is not None and dirfd < 0:
            raise err(errno.EBADF)
        t.from_start = True  # names found from it must be placed (view.TargetView.view)
        try:
            return t.keep(proc.open_cwd(t.tid) if dirfd is None else proc.open_fd(t.tid, dirfd))
        except FileNotFoundError:
            if dirfd is None:
                raise err(errno.ESRCH) from None
            raise err(errno.EBADF) from None

    def _empty(self, t: TargetView, start: int, dirfd: int | None) -> Resolved:
        """AT_EMPTY_PATH: the object is the dirfd (or cwd) itself."""
        st = fd_stat(start)
        view = t.view(start, st)
        if view is None:
            if dirfd is None:
                raise err(errno.EACCES, "cwd outside the target's root")
            view = proc.fd_link(t.status()["NStgid"][-1], dirfd)
        t.fds.remove(start)
        return Resolved(view, start, True, None, st.mode)

    def _fast(self, t: TargetView, dfd: int, path: bytes, follow: bool, res: int) -> Resolved:
        oflags = O_BASE | (0 if follow else os.O_NOFOLLOW)
        try:
            fd = openat2(dfd, path, oflags, res)
        except OSError as e:
            # An error may come from a walk through the SUPERVISOR's /proc/self (/dev/fd/3/..:
            # our fd 3 may not exist): only the careful walk can say what the target would get.
            # ELOOP is also what RESOLVE_NO_MAGICLINKS gives for a magic link.
            if e.errno != errno.ENOENT:
                raise _SlowPath() from None
        else:
            return self._fast_result(t, fd)
        # Missing: the final component (not an error), a middle one, or a dangling symlink.
        stripped = path.rstrip(b"/")
        parent, _, name = stripped.rpartition(b"/")
        if name in (b".", b"..") or not name:
            raise err(errno.ENOENT)
        if not parent:
            parent = b"/" if stripped.startswith(b"/") else b"."
        try:
            pfd = openat2(dfd, parent, O_BASE | os.O_DIRECTORY, res)
        except OSError:
            raise _SlowPath() from None  # a middle component is missing, or see above
        try:
            pst = fd_stat(pfd)
            if pst.is_proc:
                raise _SlowPath()
            if len(name) > NAME_MAX:
                raise err(errno.ENAMETOOLONG)
            try:
                lstat_at(pfd, name)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise err(e.errno or errno.EACCES) from None
            else:
                raise _SlowPath()  # a dangling symlink to follow, or a race
            view = t.view(pfd, pst)
            if view is None:
                raise err(errno.ENOENT if pst.nlink == 0 else errno.EACCES)
        except BaseException:
            os.close(pfd)
            raise
        uname = os.fsdecode(name)
        return Resolved(view, pfd, False, uname, 0, off_proc=True)

    def _fast_result(self, t: TargetView, fd: int) -> Resolved:
        try:
            st = fd_stat(fd)
            if st.is_proc:
                raise _SlowPath()  # /proc/self would have been the supervisor's
            view = t.view(fd, st)
            if view is None:
                raise err(errno.EACCES, "outside the target's root")
        except BaseException:
            os.close(fd)
            raise
        return Resolved(view, fd, True, None, st.mode, off_proc=True)
