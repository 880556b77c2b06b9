"""The careful walk: one component at a time, as fs/namei.c does it for the target.

Used whenever the fast path cannot answer. It opens one component at a time
(O_PATH|O_NOFOLLOW), counts symlinks (40, as the kernel), clamps ``..`` at the root by comparing
(mount id, dev, inode), replaces procfs's ``self``/``thread-self`` with the target's ids and
follows magic links itself (``Walk._magic``): only those of the target's own thread group, and on
by path only when the object is reachable under that very path in the target's root.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from contextlib import nullcontext

from supervisor.kernel.creds import as_supervisor
from supervisor.kernel.openat2 import (
    RESOLVE_BENEATH,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    RESOLVE_SCOPED,
    FdStat,
    Ids,
    fd_stat,
    openat2,
)
from supervisor.kernel.proc import fd_name
from supervisor.target.resolve.result import (
    MAXSYMLINKS,
    NAME_MAX,
    O_BASE,
    Resolved,
    close_fd,
    err,
    join,
    split,
)
from supervisor.target.resolve.view import TargetView


class Walk:
    """The careful walk: one component at a time, as fs/namei.c does it for the target."""

    def __init__(self, t: TargetView, start: int, path: bytes, follow: bool, flags: int) -> None:
        self.t = t
        self.follow = follow
        self.flags = flags
        self.path = path
        self.links = 0
        self.own_proc: dict[Ids, bool] = {}
        if flags & RESOLVE_SCOPED:
            self.scope_fd = start
            if path.startswith(b"/") and flags & RESOLVE_BENEATH:
                raise err(errno.EXDEV)
        else:
            self.scope_fd = t.open_root()
            if not path.startswith(b"/"):
                view = t.view(start, fd_stat(start))
                if view is None:
                    raise err(errno.EACCES, "start directory outside the target's root")
        self.scope_ids = fd_stat(self.scope_fd).ids
        first = self.scope_fd if path.startswith(b"/") else start
        self.cur = os.dup(first)
        self.cur_st = fd_stat(self.cur)
        if not self.cur_st.is_dir:
            os.close(self.cur)
            raise err(errno.ENOTDIR)

    def _set_cur(self, fd: int, st: FdStat) -> None:
        if self.flags & RESOLVE_NO_XDEV and st.ids[0] != self.cur_st.ids[0]:
            os.close(fd)
            raise err(errno.EXDEV)
        os.close(self.cur)
        self.cur, self.cur_st = fd, st

    def _count_link(self) -> None:
        if self.flags & RESOLVE_NO_SYMLINKS:
            raise err(errno.ELOOP)
        self.links += 1
        if self.links > MAXSYMLINKS:
            raise err(errno.ELOOP)

    def run(self) -> Resolved:
        try:
            return self._run()
        finally:
            close_fd(self.cur)

    def _take_cur(self) -> tuple[int, FdStat]:
        fd, self.cur = self.cur, -1
        return fd, self.cur_st

    def _run(self) -> Resolved:
        comps: deque[bytes] = deque(split(self.path))
        must_dir = self.path.endswith(b"/")
        while comps:
            name = comps.popleft()
            last = not comps
            if name == b".":
                continue
            if name == b"..":
                self._dotdot()
                continue
            if len(name) > NAME_MAX:
                raise err(errno.ENAMETOOLONG)
            if (
                self.cur_st.is_proc_root
                and name in (b"self", b"thread-self")
                and (not last or self.follow or must_dir)
            ):
                self._count_link()
                comps.extendleft(reversed(self._self_components(name)))
                continue
            try:
                # The kernel lets a process into its own /proc/PID whatever its creds
                # (proc_fd_permission, ptrace_may_access of the same thread group).
                with as_supervisor() if self._in_own_proc() else nullcontext():
                    nfd = os.open(name, O_BASE | os.O_NOFOLLOW, dir_fd=self.cur)
            except FileNotFoundError:
                if not last:
                    raise
                return self._missing(name)
            try:
                nst = fd_stat(nfd)
                follow_link = stat.S_ISLNK(nst.mode) and (not last or self.follow or must_dir)
                magic = follow_link and self.cur_st.is_proc and not self.cur_st.is_proc_root
                body = b""
                if follow_link and not magic:
                    self._count_link()
                    body = os.readlink(b"", dir_fd=nfd)
            except BaseException:
                os.close(nfd)
                raise
            if magic:
                done = self._magic(nfd, name, last)  # closes nfd
                if done is not None:
                    return done
                continue
            if follow_link:
                os.close(nfd)
                if not body:
                    raise err(errno.ENOENT)
                if body.startswith(b"/"):
                    if self.flags & RESOLVE_BENEATH:
                        raise err(errno.EXDEV)
                    self._set_cur(os.dup(self.scope_fd), fd_stat(self.scope_fd))
                if last:
                    must_dir = must_dir or body.endswith(b"/")
                comps.extendleft(reversed(split(body)))
                continue
            if last:
                if must_dir and not nst.is_dir:
                    os.close(nfd)
                    raise err(errno.ENOTDIR)
                self._set_cur(nfd, nst)
                return self._result()
            if not nst.is_dir:
                os.close(nfd)
                raise err(errno.ENOTDIR)
            self._set_cur(nfd, nst)
        return self._result()

    def _in_own_proc(self) -> bool:
        st = self.cur_st
        if not st.is_proc or st.is_proc_root:
            return False
        own = self.own_proc.get(st.ids)
        if own is None:
            with as_supervisor():
                own = self.own_proc[st.ids] = self._owner_ok()
        return own

    def _dotdot(self) -> None:
        if self.cur_st.ids == self.scope_ids:
            if self.flags & RESOLVE_BENEATH:
                raise err(errno.EXDEV)
            return  # `..` of the root is the root
        fd = os.open("..", O_BASE | os.O_DIRECTORY, dir_fd=self.cur)
        self._set_cur(fd, fd_stat(fd))

    def _result(self, view: str | None = None) -> Resolved:
        fd, st = self._take_cur()
        try:
            if view is None:
                view = self.t.view(fd, st)
                if view is None:
                    raise err(errno.EACCES, "outside the target's root")
        except BaseException:
            os.close(fd)
            raise
        return Resolved(view, fd, True, None, st.mode)

    def _missing(self, name: bytes) -> Resolved:
        view = self.t.view(self.cur, self.cur_st)
        if view is None:
            raise err(errno.ENOENT if self.cur_st.nlink == 0 else errno.EACCES)
        fd, _ = self._take_cur()
        uname = os.fsdecode(name)
        return Resolved(view, fd, False, uname, 0)

    def _self_components(self, name: bytes) -> list[bytes]:
        """procfs's ``self`` and ``thread-self`` as the TARGET reads them in this instance."""
        with as_supervisor():
            ids = self.t.ids_in(self.cur, self.cur_st)
        if ids is None:
            raise err(errno.ENOENT)  # no pid in this procfs's namespace, as for the kernel
        tgid, tid = ids
        if name == b"self":
            return [str(tgid).encode()]
        return [str(tgid).encode(), b"task", str(tid).encode()]

    def _owner_ok(self) -> bool:
        """Is the procfs directory we are in part of the target's thread group?"""
        pid: bytes | None = None
        fd = os.dup(self.cur)
        try:
            while True:
                up = os.open("..", O_BASE | os.O_DIRECTORY, dir_fd=fd)
                ust = fd_stat(up)
                if not ust.is_proc:
                    os.close(up)
                    return False
                if ust.is_proc_root:
                    pid = os.fsencode(fd_name(fd)).rpartition(b"/")[2]
                    root, root_st = up, ust
                    break
                os.close(fd)
                fd = up
            try:
                ids = self.t.ids_in(root, root_st)
                if ids is None or not pid.isdigit():
                    return False
                if int(pid) == ids[0]:
                    return True
                try:
                    os.stat(f"{ids[0]}/task/{int(pid)}", dir_fd=root, follow_symlinks=False)
                except OSError:
                    return False
                return True
            finally:
                os.close(root)
        finally:
            os.close(fd)

    def _magic(self, nfd: int, name: bytes, last: bool) -> Resolved | None:
        """A magic link (/proc/PID/{fd/N,cwd,root,exe,map_files/..,ns/..}): the kernel jumps to
        the object itself. We jump too, and continue by path only when the object is reachable
        under that very path in the target's root."""
        try:
            if self.flags & RESOLVE_NO_MAGICLINKS:
                raise err(errno.ELOOP)
            if self.flags & RESOLVE_SCOPED:
                raise err(errno.EXDEV)  # nd_jump_link refuses scoped lookups
            if not self._in_own_proc():
                raise err(errno.EACCES, "magic link of another process")
            with as_supervisor():
                self._count_link()
                jfd = os.open(name, O_BASE, dir_fd=self.cur)
        finally:
            os.close(nfd)
        try:
            jst = fd_stat(jfd)
            if self.flags & RESOLVE_NO_XDEV and jst.ids[0] != self.cur_st.ids[0]:
                raise err(errno.EXDEV)
            view = self.t.view(jfd, jst)
            reachable = False
            if view is not None:
                root = self.t.open_root()
                try:
                    vfd = openat2(
                        root,
                        os.fsencode(view),
                        O_BASE | os.O_NOFOLLOW,
                        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                    )
                except OSError:
                    vfd = -1
                if vfd >= 0:
                    reachable = fd_stat(vfd).ids == jst.ids
                    os.close(vfd)
            if reachable:
                if not last and not jst.is_dir:
                    raise err(errno.ENOTDIR)
                os.close(self.cur)
                self.cur, self.cur_st = jfd, jst
                return self._result(view) if last else None
            if not last:
                raise err(errno.ENOTDIR if not jst.is_dir else errno.EACCES)
            here = self.t.view(self.cur, self.cur_st)
            if here is None:
                raise err(errno.EACCES)
        except BaseException:
            os.close(jfd)
            raise
        return Resolved(join(here, os.fsdecode(name)), jfd, True, None, jst.mode)
