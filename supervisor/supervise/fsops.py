"""Filesystem-changing path syscalls, performed by the supervisor: rename, link, symlink, unlink,
rmdir, mkdir, mknod, chmod, chown, utime(s), truncate and the setxattr/removexattr families, with
their *at forms and i386 twins.

Resumed after a check of its path (CONTINUE), such a call is advisory: a thread of the target
rewrites the path buffer between our read and the kernel's, and the kernel acts on another path
(issue 14: a raced rename moved a protected directory to an allowed name). So an allowed call is
performed here instead, on the objects that were decided on: the path arguments are read once
(between ID_VALIDs), resolved for the target into our O_PATH fds (``target.fsops``: the parent
and one name for entry operations, the object itself for attribute operations), the engine
decides on THOSE paths, and the operation runs on those fds under the target's credentials and
umask. Its result (0 or -errno) is the answer. Other data the call takes is read the same way
and checked as the kernel checks it: a symlink's target string, utime/utimes/utimensat times,
xattr names (XATTR_NAME_MAX) and values (XATTR_SIZE_MAX), setxattrat's ``struct xattr_args``.

Refusals, faults, ``value`` answers and kills go to ``supervise.act``; an allow that looked at
no path (decided by values) is resumed there too: nothing the target can change was used.

Known differences from the kernel (stricter or equal, never more permissive):
* a target outside the supervisor's user namespace: chown's ids are mapped through its
  uid_map/gid_map as the kernel would (unmapped: EINVAL), and setting POSIX ACLs or
  security.capability (whose values hold ids of the caller's namespace) is refused with EPERM;
* utimensat/futimesat with a NULL path act on the fd's object even when the target's fd is
  O_PATH (the kernel: EBADF; utimensat(fd, "", AT_EMPTY_PATH) does the same there).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from supervisor.kernel import fsops as k
from supervisor.kernel import proc
from supervisor.kernel.creds import Creds, in_own_userns, read_creds
from supervisor.kernel.filter import arch_name
from supervisor.kernel.memory import TargetGone, TargetMemoryError
from supervisor.kernel.seccomp import Notification
from supervisor.policy import PERFORMED_FS_SYSCALLS, Action, Request
from supervisor.supervise import reply
from supervisor.supervise.act import act, allowed
from supervisor.supervise.context import Context
from supervisor.supervise.requests import arg_view, budget_facts, path_specs
from supervisor.target import fsops
from supervisor.target.resolve import Resolved

I386 = "i386"
_ALL = 0xFFFFFFFF
_AT_FLAGS = k.AT_SYMLINK_NOFOLLOW | k.AT_EMPTY_PATH
_RENAME_FLAGS = k.RENAME_NOREPLACE | k.RENAME_EXCHANGE | k.RENAME_WHITEOUT
# xattrs whose values hold uids/gids of the caller's user namespace (see the module doc).
_ID_XATTRS = (b"system.posix_acl_access", b"system.posix_acl_default", b"security.capability")
XATTR_ARGS_SIZE = 16  # struct xattr_args, version 0
_PAGE = 4096


class Answer(Exception):
    """The call fails with this errno before anything is decided (bad flags, EFAULT ...)."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


def _s32(v: int) -> int:
    v &= _ALL
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v & (1 << 63) else v


# A plan: the paths to decide on, and the operation to perform if they are allowed.
Plan = tuple[tuple[str, ...], Callable[[], int]]


class _Call:
    """One notification being planned: its reads, and the fds it holds until answered."""

    __slots__ = ("ctx", "n", "name", "arch", "creds", "held")

    def __init__(self, ctx: Context, n: Notification, name: str, arch: str, creds: Creds) -> None:
        self.ctx, self.n, self.name, self.arch, self.creds = ctx, n, name, arch, creds
        self.held: list[Any] = []

    def close(self) -> None:
        for h in self.held:
            h.close()

    def string(self, addr: int, maxlen: int = 4096) -> bytes:
        return self.ctx.memory.read_string(self.n.id, self.n.pid, addr, maxlen)

    def data(self, addr: int, length: int) -> bytes:
        return self.ctx.memory.read_large(self.n.id, self.n.pid, addr, length)

    def _view(self, i: int) -> tuple[bytes, int | None, bool, bool]:
        spec = path_specs(self.name, self.arch)[i]
        addr, dirfd, follow, empty_ok, _ = arg_view(self.ctx, self.n, self.name, spec)
        if addr == 0 and spec.nullable:
            # utimensat/futimesat(fd, NULL, ...): the fd itself (AT_FDCWD: EFAULT, as getname)
            if dirfd is None:
                raise Answer(errno.EFAULT)
            return b"", dirfd, True, True
        return self.string(addr), dirfd, follow, empty_ok

    def entry(self, i: int) -> fsops.Entry:
        path, dirfd, _follow, _empty = self._view(i)
        e = fsops.resolve_entry(self.ctx.resolver, self.n.pid, dirfd, path, self.creds)
        self.held.append(e)
        return e

    def obj(self, i: int) -> tuple[Resolved, bool]:
        """The object of path argument ``i``; True when it was named by an empty path."""
        raw, dirfd, follow, empty_ok = self._view(i)
        r = fsops.resolve_object(
            self.ctx.resolver,
            self.n.pid,
            dirfd,
            raw,
            self.creds,
            follow=follow,
            empty_path_ok=empty_ok,
        )
        self.held.append(r)
        return r, not raw


def _flags(value: int, allowed_bits: int) -> int:
    flags = value & _ALL
    if flags & ~allowed_bits:
        raise Answer(errno.EINVAL)
    return flags


# -- the plans, one per family ------------------------------------------------------------------
def _rename(c: _Call) -> Plan:
    flags = _flags(c.n.args[4], _RENAME_FLAGS) if c.name == "renameat2" else 0
    if flags & k.RENAME_EXCHANGE and flags & (k.RENAME_NOREPLACE | k.RENAME_WHITEOUT):
        raise Answer(errno.EINVAL)
    old, new = c.entry(0), c.entry(1)
    return (old.path, new.path), lambda: fsops.rename(c.creds, old, new, flags)


def _link(c: _Call) -> Plan:
    if c.name == "linkat":
        _flags(c.n.args[4], k.AT_SYMLINK_FOLLOW | k.AT_EMPTY_PATH)
    old, empty = c.obj(0)
    new = c.entry(1)
    return (old.path, new.path), lambda: fsops.link(c.creds, old, new, empty_path=empty)


def _symlink(c: _Call) -> Plan:
    target = c.string(c.n.args[0])
    if not target:
        raise Answer(errno.ENOENT)
    new = c.entry(0)
    return (new.path,), lambda: fsops.symlink(c.creds, target, new)


def _unlink(c: _Call) -> Plan:
    if c.name == "unlinkat":
        flags = _flags(c.n.args[2], k.AT_REMOVEDIR)
    else:
        flags = k.AT_REMOVEDIR if c.name == "rmdir" else 0
    e = c.entry(0)
    if flags & k.AT_REMOVEDIR and e.root:
        # rmdir("/"): the kernel says EBUSY (resolve_entry passes "." for the root)
        return (e.path,), lambda: errno.EBUSY
    return (e.path,), lambda: fsops.unlink(c.creds, e, flags)


def _mkdir(c: _Call) -> Plan:
    mode = c.n.args[2 if c.name == "mkdirat" else 1] & _ALL
    e = c.entry(0)
    return (e.path,), lambda: fsops.mkdir(c.creds, e, mode)


def _mknod(c: _Call) -> Plan:
    at = c.name == "mknodat"
    mode, dev = c.n.args[2 if at else 1] & _ALL, c.n.args[3 if at else 2] & _ALL
    e = c.entry(0)
    return (e.path,), lambda: fsops.mknod(c.creds, e, mode, dev)


def _chmod(c: _Call) -> Plan:
    if c.name == "fchmodat2":
        _flags(c.n.args[3], _AT_FLAGS)
    mode = c.n.args[1 if c.name == "chmod" else 2] & _ALL
    r, _ = c.obj(0)
    return (r.path,), lambda: fsops.chmod(c.creds, r, mode)


def _chown(c: _Call) -> Plan:
    args = c.n.args
    if c.name == "fchownat":
        _flags(args[4], _AT_FLAGS)
        uid, gid = args[2] & _ALL, args[3] & _ALL
    else:
        uid, gid = args[1] & _ALL, args[2] & _ALL
        if c.arch == I386 and c.name in ("chown", "lchown"):  # chown16/lchown16: old_uid_t
            uid, gid = _high(uid & 0xFFFF), _high(gid & 0xFFFF)
    if not in_own_userns(c.n.pid):
        uid, gid = _mapped(c.n.pid, "uid_map", uid), _mapped(c.n.pid, "gid_map", gid)
    r, _ = c.obj(0)
    return (r.path,), lambda: fsops.chown(c.creds, r, uid, gid)


def _high(v16: int) -> int:
    return _ALL if v16 == 0xFFFF else v16  # low2highuid: (u16)-1 stays "unchanged"


def _mapped(tid: int, which: str, value: int) -> int:
    if value == _ALL:
        return value
    got = proc.map_id(tid, which, value)
    if got is None:
        raise Answer(errno.EINVAL)  # the kernel: !uid_valid()
    return got


def _times(c: _Call) -> Plan:
    name, args = c.name, c.n.args
    at = name in ("utimensat", "utimensat_time64", "futimesat")
    ptr = args[2] if at else args[1]
    if name.startswith("utimensat"):
        flags = _flags(args[3], _AT_FLAGS)
        if args[1] == 0 and flags:
            raise Answer(errno.EINVAL)  # do_utimes_fd: no flags with a NULL path
    times = None if ptr == 0 else _read_times(c, ptr)
    r, _ = c.obj(0)
    return (r.path,), lambda: fsops.utimens(c.creds, r, times)


def _read_times(c: _Call, ptr: int) -> tuple[int, int, int, int]:
    """The two times at ``ptr`` as (sec, nsec) x 2, from the layout of this syscall and ABI."""
    name, i386 = c.name, c.arch == I386
    if name == "utime":  # struct utimbuf {time_t actime, modtime}
        words = _words(c, ptr, 2, i386)
        return words[0], 0, words[1], 0
    if name in ("utimes", "futimesat"):  # struct timeval[2]
        w = _words(c, ptr, 4, i386)
        if any(not 0 <= usec < 1_000_000 for usec in (w[1], w[3])):
            raise Answer(errno.EINVAL)
        return w[0], w[1] * 1000, w[2], w[3] * 1000
    if name == "utimensat_time64":  # struct __kernel_timespec[2]; compat: nsec's low 32 bits
        w = _words(c, ptr, 4, False)
        return w[0], w[1] & _ALL, w[2], w[3] & _ALL
    w = _words(c, ptr, 4, i386)  # utimensat: struct timespec[2] (i386: old_timespec32)
    return w[0], w[1], w[2], w[3]


def _words(c: _Call, ptr: int, count: int, i386: bool) -> list[int]:
    size = 4 if i386 else 8
    raw = c.data(ptr, size * count)
    conv = _s32 if i386 else _s64
    return [conv(int.from_bytes(raw[i * size : (i + 1) * size], "little")) for i in range(count)]


def _truncate(c: _Call) -> Plan:
    args = c.n.args
    if c.name == "truncate64":  # i386: (path, low, high)
        length = _s64((args[1] & _ALL) | ((args[2] & _ALL) << 32))
    elif c.arch == I386:
        length = _s32(args[1])  # compat_off_t
    else:
        length = _s64(args[1])
    if length < 0:
        raise Answer(errno.EINVAL)
    r, _ = c.obj(0)
    return (r.path,), lambda: fsops.truncate(c.creds, r, length)


def _attr_name(c: _Call, addr: int) -> bytes:
    try:
        attr = c.string(addr, k.XATTR_NAME_MAX + 2)
    except TargetMemoryError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise Answer(errno.ERANGE) from None
        raise
    if not attr or len(attr) > k.XATTR_NAME_MAX:
        raise Answer(errno.ERANGE)
    return attr


def _setxattr(c: _Call) -> Plan:
    args = c.n.args
    if c.name == "setxattrat":
        _flags(args[2], _AT_FLAGS)
        attr = _attr_name(c, args[3])
        usize = args[5]
        if usize < XATTR_ARGS_SIZE:
            raise Answer(errno.EINVAL)
        if usize > _PAGE:
            raise Answer(errno.E2BIG)
        raw = c.data(args[4], usize)
        if any(raw[XATTR_ARGS_SIZE:]):
            raise Answer(errno.E2BIG)  # copy_struct_from_user: unknown fields must be zero
        value_ptr = int.from_bytes(raw[0:8], "little")
        size = int.from_bytes(raw[8:12], "little")
        flags = int.from_bytes(raw[12:16], "little")
    else:
        attr = _attr_name(c, args[1])
        value_ptr, size, flags = args[2], args[3], args[4] & _ALL
    if size > k.XATTR_SIZE_MAX:
        raise Answer(errno.E2BIG)
    value = c.data(value_ptr, size) if size else b""
    if attr in _ID_XATTRS and not in_own_userns(c.n.pid):
        raise Answer(errno.EPERM)
    r, _ = c.obj(0)
    return (r.path,), lambda: fsops.setxattr(c.creds, r, attr, value, flags)


def _removexattr(c: _Call) -> Plan:
    args = c.n.args
    if c.name == "removexattrat":
        _flags(args[2], _AT_FLAGS)
        attr = _attr_name(c, args[3])
    else:
        attr = _attr_name(c, args[1])
    r, _ = c.obj(0)
    return (r.path,), lambda: fsops.removexattr(c.creds, r, attr)


PLANS: dict[str, Callable[[_Call], Plan]] = {
    **dict.fromkeys(("rename", "renameat", "renameat2"), _rename),
    **dict.fromkeys(("link", "linkat"), _link),
    **dict.fromkeys(("symlink", "symlinkat"), _symlink),
    **dict.fromkeys(("unlink", "unlinkat", "rmdir"), _unlink),
    **dict.fromkeys(("mkdir", "mkdirat"), _mkdir),
    **dict.fromkeys(("mknod", "mknodat"), _mknod),
    **dict.fromkeys(("chmod", "fchmodat", "fchmodat2"), _chmod),
    **dict.fromkeys(("chown", "chown32", "lchown", "lchown32", "fchownat"), _chown),
    **dict.fromkeys(("utime", "utimes", "futimesat", "utimensat", "utimensat_time64"), _times),
    **dict.fromkeys(("truncate", "truncate64"), _truncate),
    **dict.fromkeys(("setxattr", "lsetxattr", "setxattrat"), _setxattr),
    **dict.fromkeys(("removexattr", "lremovexattr", "removexattrat"), _removexattr),
}
assert frozenset(PLANS) == PERFORMED_FS_SYSCALLS


class FsCalls:
    """The handler of one Supervisor for the filesystem-changing path syscalls."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def wants(self, name: str) -> bool:
        return name in PLANS and self.ctx.engine.needs_paths(name)

    def handle(self, n: Notification, name: str) -> None:
        ctx = self.ctx
        try:
            creds = read_creds(n.pid)
        except OSError:
            if not ctx.listener.id_valid(n.id):
                raise TargetGone() from None
            raise
        c = _Call(ctx, n, name, arch_name(n.arch), creds)
        try:
            self._handle(c)
        finally:
            c.close()

    def _handle(self, c: _Call) -> None:
        ctx, n, name = self.ctx, c.n, c.name
        try:
            paths, perform = PLANS[name](c)
        except Answer as e:
            reply.error(ctx, n, e.err)
            return
        except TargetMemoryError as e:
            reply.refuse(ctx, n, name, e.errno or errno.EFAULT, reason="bad pointer")
            return
        except OSError as e:  # the lookup, made with the target's credentials: its errno
            if not ctx.listener.id_valid(n.id):
                raise TargetGone() from None
            reply.error(ctx, n, e.errno or errno.EACCES)
            return
        request = Request(n.pid, name, c.arch, n.args, paths)
        engine = ctx.engine
        if engine.has_budgets:
            request = budget_facts(ctx, n, request)
        decision = engine.decide(request)
        if decision.action not in (Action.ALLOW, Action.LOG) or not decision.inspected:
            act(ctx, n, request, decision)  # refused, or decided by values: resumed
            return
        # Valid after the credentials were read and the resolver took its handles on
        # /proc/TID/{root,cwd,fd/N}: they were the calling thread's. Then the side effect.
        if not ctx.listener.id_valid(n.id):
            raise TargetGone()
        allowed(ctx, n, request, decision)
        reply.status(ctx, n, perform())
