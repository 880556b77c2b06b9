"""Resolve a target's path argument the way the kernel would resolve it for the target.

The policy matches globs on the result, and ``target.emulate`` opens the object we found, so a
resolution that differs from the kernel's is a sandbox escape. What this module relies on:

* The target's view is its root (/proc/TID/root), its cwd (/proc/TID/cwd) and its fds
  (/proc/TID/fd/N). Opening these magic links (as the supervisor, before any credential switch)
  gives fds on the very objects, in the target's mount namespace; later lookups from them walk
  the target's mount tree.
* When the target's root is the supervisor's (same mount id, device and inode: the common case)
  a walk from the right start fd is the walk the kernel would make, so one ``openat2(O_PATH)``
  does it. ``RESOLVE_NO_MAGICLINKS`` makes /proc/PID/{fd/N,cwd,root,exe,...} fail with ELOOP
  instead of jumping (they would be the SUPERVISOR's magic links after /proc/self), and a result
  on procfs (fstatfs) means /proc/self or /proc/thread-self may have been read as the
  supervisor: both go to the careful walk below. Absolute paths of a target with another root
  use ``RESOLVE_IN_ROOT`` on its root fd, which keeps ``..`` and absolute symlinks inside it.
* Cost of the fast path (roots equal, no creds switch): statx(/proc/TID/root), openat2,
  statx + fstatfs, readlink = 5 syscalls for an absolute path; +2 (open /proc/TID/cwd or
  /proc/TID/fd/N, close) for a relative one; a missing final component adds openat2 of the parent
  and a statx of the name. When no credential switch is needed, the case of an existing object
  off procfs runs as one C call (``sv_resolve_fast``, same syscalls); anything else it meets
  (errors, ENOENT, procfs, another root, an odd readlink) sends it back to the Python code below,
  which starts over and decides.
* The careful walk opens one component at a time (O_PATH|O_NOFOLLOW), counts symlinks (40, as
  the kernel), clamps ``..`` at the root by comparing (mount id, dev, inode), replaces procfs's
  ``self``/``thread-self`` with the target's ids and treats magic links itself: see
  ``_Walk._magic``.
* The canonical path is what the kernel says about the fd we hold (readlink /proc/self/fd/N of
  OUR fd), cut to the target's root. Policy is thus decided on the object we hold, even if the
  target renames things concurrently.
* Untrusted bytes stay bytes until the end; names are decoded with ``os.fsdecode``
  (surrogateescape), so a non-UTF-8 byte becomes a lone surrogate that no glob ``*`` can turn
  into a ``/``.

Choices (refuse rather than guess):
* A start directory (cwd, dirfd) outside the target's root: EACCES.
* A magic link of a process outside the target's thread group (/proc/OTHER/cwd, ...): EACCES,
  although the kernel would allow it with ptrace read access. A target rarely needs it, and
  following it correctly would mean repeating ptrace_may_access.
* A magic link whose object is not reachable by path in the target's root (a pipe, socket,
  anonymous inode, deleted file, file outside the root): as the final component, the object is
  the magic link itself, named ``/proc/<tgid>/fd/N``; in the middle of a path: EACCES.
* Residual: an object on a mount detached from every tree (umount -l) has no real path; the
  kernel's readlink then names it relative to the detached tree.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
from collections import deque
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from typing import Any

from supervisor._native import ffi, lib
from supervisor.kernel.creds import Creds, as_creds, as_supervisor, switch_is_noop
from supervisor.kernel.memory import MemoryReader

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
_SCOPED = RESOLVE_BENEATH | RESOLVE_IN_ROOT

PATH_MAX = 4096
NAME_MAX = 255
MAXSYMLINKS = 40
PROC_SUPER_MAGIC: int = lib.SV_PROC_SUPER_MAGIC
PROC_ROOT_INO = 1
_O_BASE = os.O_PATH | os.O_CLOEXEC
_AT_SYMLINK_NOFOLLOW = 0x100
_START_NONE: int = lib.SV_START_NONE
_START_CWD: int = lib.SV_START_CWD
_START_DIRFD: int = lib.SV_START_DIRFD
_INT_MAX = 0x7FFFFFFF
_AT_FDCWD = -100
_RESOLVED_CLOSED: int = lib.SV_RESOLVED_CLOSED
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()

Ids = tuple[int, int, int]  # (mount id, device, inode): one directory in one mount


def _err(code: int, what: str = "") -> OSError:
    return OSError(code, os.strerror(code) + (f": {what}" if what else ""))


def _raise_errno() -> None:
    code = ffi.errno
    raise OSError(code, os.strerror(code))


class _Stat:
    """statx (+ fstatfs) of one fd."""

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


def _fd_stat(fd: int) -> _Stat:
    s = ffi.new("struct sv_stat *")
    if lib.sv_fd_stat(fd, s) < 0:
        _raise_errno()
    return _Stat(s)


def _path_stat(path: str) -> _Stat:
    s = ffi.new("struct sv_stat *")
    if lib.sv_stat(-100, os.fsencode(path), 0, s) < 0:  # -100: AT_FDCWD, absolute path only
        _raise_errno()
    return _Stat(s)


def _openat2(dirfd: int, path: bytes, flags: int, resolve: int) -> int:
    fd: int = lib.sv_openat2(dirfd, path, flags, 0, resolve)
    if fd < 0:
        _raise_errno()
    return fd


def _our_path(fd: int) -> str:
    """The kernel's name for OUR fd, in the supervisor's view."""
    return os.readlink(f"/proc/self/fd/{fd}")


def _close(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        os.close(fd)


def _split(path: bytes) -> list[bytes]:
    return [c for c in path.split(b"/") if c]


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


@dataclass
class Resolved:
    """Where a path argument leads, in the target's view.

    ``path`` is the canonical path of the object, or, when it does not exist yet, of its parent
    directory (the object would be ``full_path`` = path + "/" + ``name``: decide on that).
    ``fd`` is ours (O_PATH, close-on-exec): the object, or when it does not exist its parent."""

    path: str
    fd: int
    exists: bool
    name: str | None
    st_mode: int
    off_proc: bool = False  # known not to be on procfs (the fast paths check); False: unknown

    @property
    def full_path(self) -> str:
        """The object's canonical path, whether it exists or is to be created."""
        if self.exists or self.name is None:
            return self.path
        return _join(self.path, self.name)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        _close(fd)

    def take_fd(self) -> int:
        """Hand the fd over to the caller (``close`` then does nothing)."""
        fd, self.fd = self.fd, -1
        return fd


class _Target:
    """What we learn about one target thread during one resolution (fds are ours)."""

    def __init__(self, tid: int, own_root: Ids) -> None:
        self.tid = int(tid)
        self._own_root = own_root
        self.root_fd = -1
        self.root_ids: Ids = (0, 0, 0)
        self.prefix = ""  # the target's root in our view; "" when it is our root
        self.fds: list[int] = []
        self._status: dict[str, list[int]] | None = None

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
            st = _path_stat(f"/proc/{self.tid}/root")
        except OSError as e:
            raise _err(errno.ESRCH if e.errno == errno.ENOENT else (e.errno or errno.EACCES)) from e
        return st.ids == self._own_root

    def open_root(self) -> int:
        if self.root_fd < 0:
            try:
                with as_supervisor():  # the target's own root: not a permission question
                    fd = os.open(f"/proc/{self.tid}/root", _O_BASE | os.O_DIRECTORY)
            except FileNotFoundError:
                raise _err(errno.ESRCH) from None
            self.root_fd = self.keep(fd)
            self.root_ids = _fd_stat(fd).ids
            if self.root_ids == self._own_root:
                self.prefix = ""
            else:
                self.prefix = _our_path(fd)
                if not self.prefix.startswith("/") or self.prefix.endswith(" (deleted)"):
                    raise _err(errno.EACCES, "target's root has no path")
        return self.root_fd

    def view(self, fd: int, st: _Stat) -> str | None:
        """The target's name for our fd, or None when it is outside the target's root."""
        text = _our_path(fd)
        if not text.startswith("/"):
            return None
        if text.endswith(" (deleted)") and st.nlink == 0:
            return None
        prefix = self.prefix.rstrip("/")
        if not prefix:
            return text
        if text == prefix:
            return "/"
        if text.startswith(prefix + "/"):
            return text[len(prefix) :]
        return None

    def status(self) -> dict[str, list[int]]:
        if self._status is None:
            with open(f"/proc/{self.tid}/status", "rb") as f:
                text = f.read(65536).decode("latin-1")
            wanted = ("Tgid", "NStgid", "NSpid")
            out: dict[str, list[int]] = {}
            for line in text.splitlines():
                key, _, value = line.partition(":")
                if key in wanted:
                    out[key] = [int(v) for v in value.split()]
            if any(k not in out or not out[k] for k in wanted):
                raise _err(errno.ESRCH, "no Tgid/NSpid in /proc status")
            self._status = out
        return self._status

    def start_time(self, proc_dir: int, pid: int) -> bytes | None:
        try:
            fd = os.open(f"{pid}/stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
        except OSError:
            return None
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        fields = data[data.rfind(b")") + 2 :].split()
        return fields[19] if len(fields) > 19 else None

    def ids_in(self, proc_root: int, proc_st: _Stat) -> tuple[int, int] | None:
        """(tgid, tid) of the target as the procfs instance ``proc_root`` numbers them, or None
        when the target has no pid in that instance's pid namespace."""
        s = self.status()
        ours = _fd_stat_path_proc()
        if ours is not None and proc_st.ids[1] == ours:
            return s["Tgid"][0], self.tid
        # Another procfs instance: try each pid-namespace level of the target and keep the one
        # whose process there started when ours did.
        mine = self.start_time(_proc_root_fd(), s["Tgid"][0])
        if mine is None:
            raise _err(errno.ESRCH)
        for tgid, tid in zip(s["NStgid"], s["NSpid"], strict=False):
            if self.start_time(proc_root, tgid) == mine:
                return tgid, tid
        return None


_OWN_ROOT: Ids | None = None
_PROC_DEV: int | None = None
_PROC_FD: int | None = None


def _own_root() -> Ids:
    global _OWN_ROOT
    if _OWN_ROOT is None:
        _OWN_ROOT = _path_stat("/").ids
    return _OWN_ROOT


_OWN_ROOT_ST: Any = None


def _own_root_st() -> Any:
    """Our root's ids as a ``struct sv_stat`` for ``sv_resolve_fast`` (built once)."""
    global _OWN_ROOT_ST
    if _OWN_ROOT_ST is None:
        mnt_id, dev, ino = _own_root()
        s = ffi.new("struct sv_stat *")
        s.mnt_id, s.dev, s.ino = mnt_id, dev, ino
        _OWN_ROOT_ST = s
    return _OWN_ROOT_ST


def _proc_root_fd() -> int:
    global _PROC_FD
    if _PROC_FD is None:
        _PROC_FD = os.open("/proc", _O_BASE | os.O_DIRECTORY)
    return _PROC_FD


def _fd_stat_path_proc() -> int | None:
    global _PROC_DEV
    if _PROC_DEV is None:
        st = _fd_stat(_proc_root_fd())
        if not st.is_proc_root:
            return None
        _PROC_DEV = st.ids[1]
    return _PROC_DEV


def _open_self_fds() -> None:
    """Our fd on /proc/self/fd (that is /proc/<our pid>/fd), for the readlinks of
    ``sv_resolve_fast``. Opened when the module is imported, so that it is not mistaken for a
    leak, and again in a forked child (whose /proc/self is another directory)."""
    old = _SELF_FDS[0]
    _SELF_FDS[0] = -1
    if old >= 0:
        os.close(old)
    # Without procfs, sv_resolve_fast reads /proc/self/fd/N by path (and falls back).
    with suppress(OSError):
        _SELF_FDS[0] = os.open("/proc/self/fd", _O_BASE | os.O_DIRECTORY)


_SELF_FDS = [-1]
_open_self_fds()
os.register_at_fork(after_in_child=_open_self_fds)


class _Scratch(threading.local):
    """Per-thread output buffers of ``sv_resolve_fast`` (the resolver may run on worker threads)."""

    def __init__(self) -> None:
        self.out = ffi.new("char[]", PATH_MAX + 1)
        self.st = ffi.new("struct sv_stat *")
        self.fd = ffi.new("int *")


_scratch = _Scratch()


def _native_fast(
    tid: int, dirfd: int | None, path: bytes, follow: bool, flags: int
) -> Resolved | None:
    """``PathResolver._resolve``'s fast case (roots equal, no credential switch, one openat2
    finds an existing object off procfs with an ordinary path) in one C call. None: anything
    else; the caller then runs the Python resolver from the start, which decides."""
    if not 0 < tid <= _INT_MAX or b"\0" in path:
        return None
    if path.startswith(b"/") and not flags & _SCOPED:
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
        _own_root_st(),
        _SELF_FDS[0],
        out,
        PATH_MAX + 1,
        st,
    )
    if fd < 0:
        return None
    # What os.fsdecode does (and os.readlink(str) in the Python path), without its type checks.
    path_text = ffi.string(out).decode(_FS_ENCODING, _FS_ERRORS)
    return Resolved(path_text, fd, True, None, st.mode, off_proc=True)


def _checked_flags(resolve_flags: int) -> int:
    """openat2's RESOLVE_ flags as the kernel checks them; RESOLVE_CACHED dropped."""
    if resolve_flags & ~RESOLVE_ALL:
        raise _err(errno.EINVAL, "unknown RESOLVE_ flags")
    if resolve_flags & _SCOPED == _SCOPED:
        raise _err(errno.EINVAL, "RESOLVE_BENEATH with RESOLVE_IN_ROOT")
    return resolve_flags & ~RESOLVE_CACHED  # a hint; we may always do the full lookup


def init_lane(lane: Any) -> None:
    """Give a ``struct sv_lane`` what sv_read_resolve_fast needs: our root, our /proc/self/fd."""
    lane.own_root = (_OWN_ROOT_ST or _own_root_st())[0]
    lane.self_fds = _SELF_FDS[0]


def lane_path(lane: Any) -> str:
    """The canonical path sv_lane_next resolved (lane.fd == SV_RESOLVED_CLOSED)."""
    text: str = ffi.string(lane.out).decode(_FS_ENCODING, _FS_ERRORS)
    return text


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
            raise _err(errno.ENAMETOOLONG)
        if path and b"self" not in path and (creds is None or switch_is_noop(creds)):
            done = _native_fast(tid, dirfd, path, follow, flags)
            if done is not None:
                return done
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
            return Resolved(
                ffi.string(out).decode(_FS_ENCODING, _FS_ERRORS),
                max(fd, -1),
                True,
                None,
                st.mode,
                off_proc=True,
            )
        read: bytes = ffi.unpack(buf, ret)
        return self._walk(tid, dirfd, read, follow, empty_path_ok, flags, None)

    def resolve_read(
        self, tid: int, dirfd: int | None, path: bytes, *, follow: bool, empty_path_ok: bool
    ) -> Resolved:
        """The careful walk of ``path`` (already read from the target, and tried by the fast
        path in C: sv_lane_next), as the supervisor."""
        if len(path) >= PATH_MAX:
            raise _err(errno.ENAMETOOLONG)
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
            raise _err(errno.ENOENT)
        t = _Target(tid, _own_root())
        try:
            return self._resolve(t, dirfd, path, follow, flags, creds)
        finally:
            t.close()

    def _resolve(
        self,
        t: _Target,
        dirfd: int | None,
        path: bytes,
        follow: bool,
        flags: int,
        creds: Creds | None,
    ) -> Resolved:
        scoped = bool(flags & _SCOPED)
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
            return _Walk(t, start, path, follow, flags).run()

    def _open_start(self, t: _Target, dirfd: int | None) -> int:
        """Our fd on the target's cwd or dirfd (as the supervisor: these are the target's own)."""
        if dirfd is None:
            where = f"/proc/{t.tid}/cwd"
        elif dirfd < 0:
            raise _err(errno.EBADF)
        else:
            where = f"/proc/{t.tid}/fd/{int(dirfd)}"
        try:
            return t.keep(os.open(where, _O_BASE))
        except FileNotFoundError:
            if dirfd is None:
                raise _err(errno.ESRCH) from None
            raise _err(errno.EBADF) from None

    def _empty(self, t: _Target, start: int, dirfd: int | None) -> Resolved:
        """AT_EMPTY_PATH: the object is the dirfd (or cwd) itself."""
        st = _fd_stat(start)
        view = t.view(start, st)
        if view is None:
            if dirfd is None:
                raise _err(errno.EACCES, "cwd outside the target's root")
            view = f"/proc/{t.status()['NStgid'][-1]}/fd/{dirfd}"
        t.fds.remove(start)
        return Resolved(view, start, True, None, st.mode)

    def _fast(self, t: _Target, dfd: int, path: bytes, follow: bool, res: int) -> Resolved:
        oflags = _O_BASE | (0 if follow else os.O_NOFOLLOW)
        fd = lib.sv_openat2(dfd, path, oflags, 0, res)
        if fd >= 0:
            return self._fast_result(t, fd)
        # An error may come from a walk through the SUPERVISOR's /proc/self (/dev/fd/3/..: our
        # fd 3 may not exist): only the careful walk can say what the target would get. ELOOP
        # is also what RESOLVE_NO_MAGICLINKS gives for a magic link.
        if ffi.errno != errno.ENOENT:
            raise _SlowPath()
        # Missing: the final component (not an error), a middle one, or a dangling symlink.
        stripped = path.rstrip(b"/")
        parent, _, name = stripped.rpartition(b"/")
        if name in (b".", b"..") or not name:
            raise _err(errno.ENOENT)
        if not parent:
            parent = b"/" if stripped.startswith(b"/") else b"."
        pfd = lib.sv_openat2(dfd, parent, _O_BASE | os.O_DIRECTORY, 0, res)
        if pfd < 0:
            raise _SlowPath()  # a middle component is missing, or see above
        try:
            pst = _fd_stat(pfd)
            if pst.is_proc:
                raise _SlowPath()
            s = ffi.new("struct sv_stat *")
            if len(name) > NAME_MAX:
                raise _err(errno.ENAMETOOLONG)
            if lib.sv_stat(pfd, name, _AT_SYMLINK_NOFOLLOW, s) == 0:
                raise _SlowPath()  # a dangling symlink to follow, or a race
            if ffi.errno != errno.ENOENT:
                raise _err(ffi.errno)
            view = t.view(pfd, pst)
            if view is None:
                raise _err(errno.ENOENT if pst.nlink == 0 else errno.EACCES)
        except BaseException:
            os.close(pfd)
            raise
        uname = os.fsdecode(name)
        return Resolved(view, pfd, False, uname, 0, off_proc=True)

    def _fast_result(self, t: _Target, fd: int) -> Resolved:
        try:
            st = _fd_stat(fd)
            if st.is_proc:
                raise _SlowPath()  # /proc/self would have been the supervisor's
            view = t.view(fd, st)
            if view is None:
                raise _err(errno.EACCES, "outside the target's root")
        except BaseException:
            os.close(fd)
            raise
        return Resolved(view, fd, True, None, st.mode, off_proc=True)


class _Walk:
    """The careful walk: one component at a time, as fs/namei.c does it for the target."""

    def __init__(self, t: _Target, start: int, path: bytes, follow: bool, flags: int) -> None:
        self.t = t
        self.follow = follow
        self.flags = flags
        self.path = path
        self.links = 0
        self.own_proc: dict[Ids, bool] = {}
        if flags & _SCOPED:
            self.scope_fd = start
            if path.startswith(b"/") and flags & RESOLVE_BENEATH:
                raise _err(errno.EXDEV)
        else:
            self.scope_fd = t.open_root()
            if not path.startswith(b"/"):
                view = t.view(start, _fd_stat(start))
                if view is None:
                    raise _err(errno.EACCES, "start directory outside the target's root")
        self.scope_ids = _fd_stat(self.scope_fd).ids
        first = self.scope_fd if path.startswith(b"/") else start
        self.cur = os.dup(first)
        self.cur_st = _fd_stat(self.cur)
        if not self.cur_st.is_dir:
            os.close(self.cur)
            raise _err(errno.ENOTDIR)

    def _set_cur(self, fd: int, st: _Stat) -> None:
        if self.flags & RESOLVE_NO_XDEV and st.ids[0] != self.cur_st.ids[0]:
            os.close(fd)
            raise _err(errno.EXDEV)
        os.close(self.cur)
        self.cur, self.cur_st = fd, st

    def _count_link(self) -> None:
        if self.flags & RESOLVE_NO_SYMLINKS:
            raise _err(errno.ELOOP)
        self.links += 1
        if self.links > MAXSYMLINKS:
            raise _err(errno.ELOOP)

    def run(self) -> Resolved:
        try:
            return self._run()
        finally:
            _close(self.cur)

    def _take_cur(self) -> tuple[int, _Stat]:
        fd, self.cur = self.cur, -1
        return fd, self.cur_st

    def _run(self) -> Resolved:
        comps: deque[bytes] = deque(_split(self.path))
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
                raise _err(errno.ENAMETOOLONG)
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
                    nfd = os.open(name, _O_BASE | os.O_NOFOLLOW, dir_fd=self.cur)
            except FileNotFoundError:
                if not last:
                    raise
                return self._missing(name)
            try:
                nst = _fd_stat(nfd)
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
                    raise _err(errno.ENOENT)
                if body.startswith(b"/"):
                    if self.flags & RESOLVE_BENEATH:
                        raise _err(errno.EXDEV)
                    self._set_cur(os.dup(self.scope_fd), _fd_stat(self.scope_fd))
                if last:
                    must_dir = must_dir or body.endswith(b"/")
                comps.extendleft(reversed(_split(body)))
                continue
            if last:
                if must_dir and not nst.is_dir:
                    os.close(nfd)
                    raise _err(errno.ENOTDIR)
                self._set_cur(nfd, nst)
                return self._result()
            if not nst.is_dir:
                os.close(nfd)
                raise _err(errno.ENOTDIR)
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
                raise _err(errno.EXDEV)
            return  # `..` of the root is the root
        fd = os.open("..", _O_BASE | os.O_DIRECTORY, dir_fd=self.cur)
        self._set_cur(fd, _fd_stat(fd))

    def _result(self, view: str | None = None) -> Resolved:
        fd, st = self._take_cur()
        try:
            if view is None:
                view = self.t.view(fd, st)
                if view is None:
                    raise _err(errno.EACCES, "outside the target's root")
        except BaseException:
            os.close(fd)
            raise
        return Resolved(view, fd, True, None, st.mode)

    def _missing(self, name: bytes) -> Resolved:
        view = self.t.view(self.cur, self.cur_st)
        if view is None:
            raise _err(errno.ENOENT if self.cur_st.nlink == 0 else errno.EACCES)
        fd, _ = self._take_cur()
        uname = os.fsdecode(name)
        return Resolved(view, fd, False, uname, 0)

    def _self_components(self, name: bytes) -> list[bytes]:
        """/proc/self and /proc/thread-self as the TARGET reads them in this procfs instance."""
        with as_supervisor():
            ids = self.t.ids_in(self.cur, self.cur_st)
        if ids is None:
            raise _err(errno.ENOENT)  # no pid in this procfs's namespace, as for the kernel
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
                up = os.open("..", _O_BASE | os.O_DIRECTORY, dir_fd=fd)
                ust = _fd_stat(up)
                if not ust.is_proc:
                    os.close(up)
                    return False
                if ust.is_proc_root:
                    pid = os.fsencode(_our_path(fd)).rpartition(b"/")[2]
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
                raise _err(errno.ELOOP)
            if self.flags & _SCOPED:
                raise _err(errno.EXDEV)  # nd_jump_link refuses scoped lookups
            if not self._in_own_proc():
                raise _err(errno.EACCES, "magic link of another process")
            with as_supervisor():
                self._count_link()
                jfd = os.open(name, _O_BASE, dir_fd=self.cur)
        finally:
            os.close(nfd)
        try:
            jst = _fd_stat(jfd)
            if self.flags & RESOLVE_NO_XDEV and jst.ids[0] != self.cur_st.ids[0]:
                raise _err(errno.EXDEV)
            view = self.t.view(jfd, jst)
            reachable = False
            if view is not None:
                root = self.t.open_root()
                vfd = lib.sv_openat2(
                    root,
                    os.fsencode(view),
                    _O_BASE | os.O_NOFOLLOW,
                    0,
                    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                )
                if vfd >= 0:
                    reachable = _fd_stat(vfd).ids == jst.ids
                    os.close(vfd)
            if reachable:
                if not last and not jst.is_dir:
                    raise _err(errno.ENOTDIR)
                os.close(self.cur)
                self.cur, self.cur_st = jfd, jst
                return self._result(view) if last else None
            if not last:
                raise _err(errno.ENOTDIR if not jst.is_dir else errno.EACCES)
            here = self.t.view(self.cur, self.cur_st)
            if here is None:
                raise _err(errno.EACCES)
        except BaseException:
            os.close(jfd)
            raise
        return Resolved(_join(here, os.fsdecode(name)), jfd, True, None, jst.mode)
