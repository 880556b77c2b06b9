"""Facts → Request: what the engine decides on, read from a notification and the target.

The path arguments of a path syscall, resolved in the target's view (``lane_paths`` for a path
the C lane already read, ``decision_paths`` otherwise, ``read_paths`` when the caller keeps our
fds on the results: exec); how each argument is walked (``arg_view``: dirfd, follow, empty
path, openat2's ``struct open_how``); and the facts of ``limit``/``rate`` rules
(``budget_facts``: the time, the process, the user). A read that fails is answered here with
the errno the kernel would give (EFAULT for an unreadable pointer, the lookup's errno as the
TARGET would get it) and the caller gets None: the notification is answered.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import time
from dataclasses import dataclass
from typing import Any

from supervisor.kernel import proc
from supervisor.kernel.creds import read_creds
from supervisor.kernel.lane import RESOLVED_CLOSED, raw_path, resolved_path
from supervisor.kernel.memory import TargetGone, TargetMemoryError
from supervisor.kernel.pidfd import pidfd_open
from supervisor.kernel.seccomp import Notification
from supervisor.policy import Follow, PathArg, Request, path_args
from supervisor.supervise import reply
from supervisor.supervise.context import Context
from supervisor.target.resolve import Resolved

AT_FDCWD = -100
O_NOFOLLOW = os.O_NOFOLLOW
OPEN_HOW_SIZE = 24  # struct open_how, version 0

# path_args() of a (syscall, arch): a pure function of static tables, worked out once.
path_specs = functools.cache(path_args)


def int32(value: int) -> int:
    """An ``int`` syscall argument: only the low 32 bits are meaningful, sign-extended."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def dirfd_arg(arg: int) -> int | None:
    """A dirfd argument: the fd, or None for AT_FDCWD (the cwd)."""
    fd = int32(arg)
    return None if fd == AT_FDCWD else fd


def with_paths(r: Request, paths: tuple[str, ...]) -> Request:
    """``r`` with other paths; dataclasses.replace() costs 4x this on the emulated open's path."""
    return Request(r.pid, r.syscall, r.arch, r.args, paths, r.now, r.tgid, r.uid, r.address, r.argv)


@dataclass(slots=True)  # not frozen: one per notification (see policy.Request)
class PathCall:
    """The path arguments of one notification, resolved in the target's view."""

    resolved: tuple[Resolved, ...]
    paths: tuple[str, ...]

    def close(self) -> None:
        for r in self.resolved:
            r.close()


def lane_paths(
    ctx: Context, lane: Any, n: Notification, name: str, spec: PathArg, lane_fd: int
) -> tuple[str, ...] | None:
    """decision_paths for a path sv_lane_next has read (and, if it could, resolved)."""
    try:
        length = lane.len
        if length < 0:
            ctx.memory.fail(length)  # TargetGone or TargetMemoryError, as read_string
        if lane_fd == RESOLVED_CLOSED:
            return (resolved_path(lane),)
        raw = raw_path(lane, length)
        _addr, dirfd, follow, empty_ok, _rflags = arg_view(ctx, n, name, spec)
        r = ctx.resolver.resolve_read(n.pid, dirfd, raw, follow=follow, empty_path_ok=empty_ok)
        r.close()
        return (r.path if r.exists else _join(r.path, r.name or ""),)
    except TargetMemoryError as e:
        reply.refuse(ctx, n, name, e.errno or errno.EFAULT, reason="bad pointer")
        return None
    except OSError as e:
        reply.error(ctx, n, errno_as_target(ctx, n, name, (spec,)) or e.errno or errno.EACCES)
        return None


def decision_paths(
    ctx: Context, n: Notification, name: str, specs: tuple[PathArg, ...]
) -> tuple[str, ...] | None:
    """What the engine decides on: the resolved path of each path argument (what read_paths
    gives, without the fds, which are closed at once). None: answered."""
    paths: list[str] = []
    try:
        for spec in specs:
            r = resolve_arg(ctx, n, name, spec, keep_fd=False)
            r.close()
            paths.append(r.path if r.exists else _join(r.path, r.name or ""))
    except TargetMemoryError as e:
        reply.refuse(ctx, n, name, e.errno or errno.EFAULT, reason="bad pointer")
        return None
    except OSError as e:
        reply.error(ctx, n, errno_as_target(ctx, n, name, specs) or e.errno or errno.EACCES)
        return None
    return tuple(paths)


def read_paths(ctx: Context, n: Notification, name: str, arch: str) -> PathCall | None:
    """Read and resolve every path argument, keeping our fd on each result. On failure,
    answer with the errno the kernel would give (an unreadable pointer is EFAULT) and
    return None."""
    specs = path_specs(name, arch)
    resolved: list[Resolved] = []
    try:
        for spec in specs:
            resolved.append(resolve_arg(ctx, n, name, spec))
    except TargetMemoryError as e:
        for r in resolved:
            r.close()
        reply.refuse(ctx, n, name, e.errno or errno.EFAULT, reason="bad pointer")
        return None
    except OSError as e:
        for r in resolved:
            r.close()
        # The syscall would fail anyway: answer as the kernel would. The lookup ran with our
        # credentials; for the errno the target would see, look again with its own.
        reply.error(ctx, n, errno_as_target(ctx, n, name, specs) or e.errno or errno.EACCES)
        return None
    paths = tuple([r.path if r.exists else _join(r.path, r.name or "") for r in resolved])
    return PathCall(tuple(resolved), paths)


def resolve_arg(
    ctx: Context,
    n: Notification,
    name: str,
    spec: PathArg,
    creds: Any | None = None,
    *,
    keep_fd: bool = True,
) -> Resolved:
    addr, dirfd, follow, empty_ok, resolve_flags = arg_view(ctx, n, name, spec)
    if addr == 0 and spec.nullable:
        path, empty_ok = b"", True
    elif creds is None:
        return ctx.resolver.read_and_resolve(
            ctx.memory,
            n.id,
            n.pid,
            addr,
            dirfd,
            follow=follow,
            empty_path_ok=empty_ok,
            resolve_flags=resolve_flags,
            keep_fd=keep_fd,
        )
    else:
        path = ctx.memory.read_string(n.id, n.pid, addr)
    return ctx.resolver.resolve(
        n.pid,
        dirfd,
        path,
        follow=follow,
        empty_path_ok=empty_ok,
        resolve_flags=resolve_flags,
        creds=creds,
    )


def arg_view(
    ctx: Context, n: Notification, name: str, spec: PathArg
) -> tuple[int, int | None, bool, bool, int]:
    """Where a path argument is and how the kernel walks it: (address, dirfd or None for
    the cwd, follow the last symlink, an empty path means the dirfd, RESOLVE_ flags).
    sv_lane_next does the same in C for the routes the loop gives the lane."""
    args = n.args
    flags_arg = spec.flags_arg
    flags = args[flags_arg] if flags_arg is not None else 0
    follow = follows(spec, flags)
    resolve_flags = 0
    if name == "openat2":
        how_flags, _mode, resolve_flags = open_how(ctx, n)
        follow = not (how_flags & O_NOFOLLOW)
    dirfd_index = spec.dirfd
    if dirfd_index is None:
        dirfd = None
    else:  # dirfd_arg() inline (hot path): the low 32 bits, sign-extended; AT_FDCWD is None
        fd = args[dirfd_index] & 0xFFFFFFFF
        dirfd = None if fd == 0xFFFFFF9C else fd - (1 << 32) if fd & 0x80000000 else fd
    empty_ok = bool(spec.empty_path_flag and flags & spec.empty_path_flag)
    return args[spec.path], dirfd, follow, empty_ok, resolve_flags


def errno_as_target(ctx: Context, n: Notification, name: str, specs: tuple[PathArg, ...]) -> int:
    """The errno the target's own lookup of its path arguments gets (its credentials); 0
    when it succeeds or the thread is gone."""
    try:
        creds = read_creds(n.pid)
        if not ctx.listener.id_valid(n.id):
            return 0
        for spec in specs:
            resolve_arg(ctx, n, name, spec, creds=creds).close()
    except OSError as e:
        return e.errno or 0
    except TargetGone:
        return 0
    return 0


def open_how(ctx: Context, n: Notification) -> tuple[int, int, int]:
    """openat2's ``struct open_how``: (flags, mode, resolve)."""
    size = n.args[3]
    if size < OPEN_HOW_SIZE:
        raise TargetMemoryError(errno.EINVAL, "open_how too small")
    if size > 4096:
        raise TargetMemoryError(errno.E2BIG, "open_how too large")
    raw = ctx.memory.read_bytes(n.id, n.pid, n.args[2], OPEN_HOW_SIZE)
    how = memoryview(raw).cast("Q")
    return how[0], how[1], how[2]


def budget_facts(ctx: Context, n: Notification, request: Request) -> Request:
    """The request with what `limit`/`rate` rules count by: the time, and the process and
    user only for syscalls whose rules count per process or user (a /proc read)."""
    engine = ctx.engine
    if not engine.counts(request.syscall):
        return request
    now = time.monotonic() if engine.uses_clock else 0.0
    tgid, uid = 0, -1
    if engine.needs_process(request.syscall) or engine.needs_user(request.syscall):
        try:
            tgid, uid = proc.tgid_uid(n.pid)
        except (OSError, ValueError):
            if not ctx.listener.id_valid(n.id):
                raise TargetGone() from None
            raise  # ours (EMFILE...): answered as an internal error, never left waiting
        if not ctx.listener.id_valid(n.id):
            raise TargetGone()  # the tid may name another thread by now
    return dataclasses.replace(request, now=now, tgid=tgid, uid=uid)


def follows(spec: PathArg, flags: int) -> bool:
    """Whether the kernel follows a last-component symlink of this argument, given ``flags``."""
    if spec.follow is Follow.ALWAYS:
        return True
    if spec.follow is Follow.NEVER:
        return False
    if spec.follow is Follow.UNLESS_FLAG:
        return not (flags & spec.flag)
    return bool(flags & spec.flag)  # IF_FLAG


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name if name else parent


def process_pidfd(ctx: Context, n: Notification) -> tuple[int, int]:
    """(tgid, a pidfd of it) for the process of the notifying thread. When either cannot be had,
    TargetGone if ID_VALID says the thread went away; otherwise the failure is ours (EMFILE...)
    and the OSError is raised, to be answered as an internal error, never left waiting. The
    caller checks ID_VALID again once it holds the pidfd (the tid may have been reused)."""
    try:
        tgid = proc.tgid(n.pid)
        return tgid, pidfd_open(tgid)
    except OSError:
        if not ctx.listener.id_valid(n.id):
            raise TargetGone() from None
        raise
