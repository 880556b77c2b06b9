"""Answered syscalls: an allowed stat, statx, statfs, access, readlink or getxattr/listxattr
whose path was inspected is performed by the supervisor, and its result written into the
target's memory.

Resumed with CONTINUE, such a call would be advice: a thread of the target racing the path
buffer (or a symlink) makes the kernel stat, read the link or the xattrs of a denied file after
the check (its existence, size, owner, times, link target, xattr values leak). Here the path is
read once and resolved as the supervisor (the resolver's C fast path): a denial is answered at
that cost. An allow reads the target's credentials; when they differ from ours the path is
resolved again under them (the target's search permissions; access(2) with its real ids) and
decided again on the object reached. The call then acts on the object we hold
(``target.answers``); the struct, link or value goes back with
``ctx.memory.write_bytes`` (process_vm_writev between two ID_VALIDs: a buffer the target cannot
be written at is EFAULT, as from the kernel), the return value with ``supervise.reply``.

The kernel's own argument checks that come before the lookup (flags, modes, sizes, xattr names)
are repeated here first, so the target gets the errno it would get. The stat structs are the
target ABI's, made by the kernel (``kernel.answer``): x86_64 ``struct stat``; i386 ``struct
stat``, ``stat64`` and ``__old_kernel_stat``; ``struct statx`` for both.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from supervisor.kernel import answer
from supervisor.kernel.creds import Creds, access_creds, read_creds, switch_is_noop
from supervisor.kernel.filter import arch_name
from supervisor.kernel.memory import TargetGone, TargetMemoryError
from supervisor.kernel.seccomp import Notification
from supervisor.policy import ANSWERED_SYSCALLS, Action, Decision, Request
from supervisor.supervise import reply
from supervisor.supervise.act import act, allowed
from supervisor.supervise.context import Context
from supervisor.supervise.requests import (
    budget_facts,
    dirfd_arg,
    errno_as_target,
    follows,
    int32,
    path_specs,
)
from supervisor.target import answers as perform
from supervisor.target.answers import Answer
from supervisor.target.resolve import Resolved

AT_SYMLINK_NOFOLLOW = 0x100
AT_EACCESS = 0x200
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000
STATX__RESERVED = 0x80000000
XATTR_NAME_MAX = 255
XATTR_ARGS_SIZE = 16  # struct xattr_args, version 0
PAGE_SIZE = 4096
STATFS64_SIZE = 84  # i386 struct statfs64 (packed)

_STAT, _STATX, _ACCESS, _READLINK, _GETXATTR, _LISTXATTR, _STATFS = range(7)


@dataclass(frozen=True, slots=True)
class _Call:
    """How one answered syscall is laid out: what it does and which argument is what."""

    op: int
    out: int = -1  # the output pointer (-1: none; getxattrat's is in its struct xattr_args)
    size: int = -1  # its size, or access's mode, or statx's mask
    kind: int = 0  # the stat struct (kernel.answer.STAT_*)
    flags: int = -1  # the flags argument checked before the lookup (-1: none)
    valid: int = 0  # the flags it may hold
    name: int = -1  # the xattr name


_FSTATAT = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH
_XATTRAT = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH
_COMMON = {
    "statx": _Call(_STATX, out=4, size=3, flags=2, valid=_FSTATAT | AT_STATX_SYNC_TYPE),
    "access": _Call(_ACCESS, size=1),
    "faccessat": _Call(_ACCESS, size=2),
    "faccessat2": _Call(_ACCESS, size=2, flags=3, valid=AT_EACCESS | _XATTRAT),
    "readlink": _Call(_READLINK, out=1, size=2),
    "readlinkat": _Call(_READLINK, out=2, size=3),
    "getxattr": _Call(_GETXATTR, out=2, size=3, name=1),
    "lgetxattr": _Call(_GETXATTR, out=2, size=3, name=1),
    "getxattrat": _Call(_GETXATTR, flags=2, valid=_XATTRAT, name=3),
    "listxattr": _Call(_LISTXATTR, out=1, size=2),
    "llistxattr": _Call(_LISTXATTR, out=1, size=2),
    "listxattrat": _Call(_LISTXATTR, out=3, size=4, flags=2, valid=_XATTRAT),
}
CALLS: dict[tuple[str, str], _Call] = {
    **{("x86_64", k): v for k, v in _COMMON.items()},
    **{("i386", k): v for k, v in _COMMON.items()},
    ("x86_64", "stat"): _Call(_STAT, out=1, kind=answer.STAT_X86_64),
    ("x86_64", "lstat"): _Call(_STAT, out=1, kind=answer.STAT_X86_64),
    ("x86_64", "newfstatat"): _Call(_STAT, out=2, kind=answer.STAT_X86_64, flags=3, valid=_FSTATAT),
    ("i386", "stat"): _Call(_STAT, out=1, kind=answer.STAT_I386),
    ("i386", "lstat"): _Call(_STAT, out=1, kind=answer.STAT_I386),
    ("i386", "oldstat"): _Call(_STAT, out=1, kind=answer.OLDSTAT_I386),
    ("i386", "oldlstat"): _Call(_STAT, out=1, kind=answer.OLDSTAT_I386),
    ("i386", "stat64"): _Call(_STAT, out=1, kind=answer.STAT64_I386),
    ("i386", "lstat64"): _Call(_STAT, out=1, kind=answer.STAT64_I386),
    ("i386", "fstatat64"): _Call(_STAT, out=2, kind=answer.STAT64_I386, flags=3, valid=_FSTATAT),
    ("x86_64", "statfs"): _Call(_STATFS, out=1, kind=answer.STATFS_X86_64),
    ("i386", "statfs"): _Call(_STATFS, out=1, kind=answer.STATFS_I386),
    ("i386", "statfs64"): _Call(_STATFS, out=2, size=1, kind=answer.STATFS64_I386),
}


class _Invalid(Exception):
    """An argument the kernel refuses before the lookup: answered with ``errno``."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.errno = err


@dataclass(frozen=True, slots=True)
class _Args:
    """The call's other arguments, checked: where to write, how much, what to ask."""

    out: int  # the output pointer (0: none)
    size: int  # its size; access's mode; statx's mask
    flags: int = 0
    name: bytes = b""  # the xattr name


class AnswerCalls:
    """The handler (supervise/handlers.py) of the answered syscalls under path rules."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def wants(self, name: str) -> bool:
        # Without a path rule on it a syscall is decided by values: resumed, nothing inspected.
        return name in ANSWERED_SYSCALLS and self.ctx.engine.needs_paths(name)

    def handle(self, n: Notification, name: str) -> None:
        ctx = self.ctx
        arch = arch_name(n.arch)
        call = CALLS.get((arch, name))
        if call is None:  # not a syscall of this ABI: never notified, fail closed all the same
            reply.refuse(ctx, n, name, errno.ENOSYS, reason="unknown syscall")
            return
        # An i386 pointer is 32 bits (the upper half of a compat argument means nothing).
        mask = 0xFFFFFFFF if arch == "i386" else 0xFFFFFFFFFFFFFFFF
        args = n.args
        spec = path_specs(name, arch)[0]
        flags = args[spec.flags_arg] if spec.flags_arg is not None else 0
        try:
            checked = self._check(n, call, mask)
            path = ctx.memory.read_string(n.id, n.pid, args[spec.path] & mask)
        except _Invalid as e:
            reply.error(ctx, n, e.errno)
            return
        except TargetMemoryError as e:
            reply.refuse(ctx, n, name, e.errno or errno.EFAULT, reason="bad pointer")
            return
        dirfd = dirfd_arg(args[spec.dirfd]) if spec.dirfd is not None else None
        follow = follows(spec, flags)
        empty_ok = bool(spec.empty_path_flag and flags & spec.empty_path_flag)
        resolver = ctx.resolver
        try:
            # As the supervisor first (the resolver's C fast path): a denial needs nothing more.
            r = resolver.resolve(n.pid, dirfd, path, follow=follow, empty_path_ok=empty_ok)
        except OSError as e:
            reply.error(ctx, n, errno_as_target(ctx, n, name, (spec,)) or e.errno or errno.EACCES)
            return
        held = [r]
        try:
            request = Request(n.pid, name, arch, args, (r.full_path,))
            decision = self._decide(n, request)
            if decision.action not in (Action.ALLOW, Action.LOG):
                act(ctx, n, request, decision)
                return
            creds = self._creds(n, call, checked)
            if not switch_is_noop(creds):
                # The lookup as the target makes it (its search permissions, for access(2) its
                # real ids), decided again on the object it reaches.
                r.close()
                try:
                    r = resolver.resolve(
                        n.pid, dirfd, path, follow=follow, empty_path_ok=empty_ok, creds=creds
                    )
                except OSError as e:
                    reply.error(ctx, n, e.errno or errno.EACCES)
                    return
                held.append(r)
                request = Request(n.pid, name, arch, args, (r.full_path,))
                decision = self._decide(n, request, commit=False)
                if decision.action not in (Action.ALLOW, Action.LOG):
                    act(ctx, n, request, decision)
                    return
            allowed(ctx, n, request, decision)
            try:
                if not r.exists:
                    raise OSError(errno.ENOENT, "no such file")
                result = _perform(call, r, creds, checked)
            except OSError as e:
                # Our /proc reads (creds, root, cwd) were the calling thread's if it is still
                # there: the answer is then its own.
                if not ctx.listener.id_valid(n.id):
                    raise TargetGone() from None
                reply.error(ctx, n, e.errno or errno.EIO)
                return
        finally:
            for h in held:
                h.close()
        if result.data:
            try:
                ctx.memory.write_bytes(n.id, n.pid, checked.out, result.data, result.spans)
            except TargetMemoryError as e:
                reply.error(ctx, n, e.errno or errno.EFAULT)
                return
        elif not ctx.listener.id_valid(n.id):
            raise TargetGone()
        reply.value(ctx, n, result.ret)

    def _decide(self, n: Notification, request: Request, *, commit: bool = True) -> Decision:
        """The engine's decision; ``commit=False`` for a second look at the same call (as an
        emulated open's: no budget spent twice, no dice rolled again)."""
        engine = self.ctx.engine
        if engine.has_budgets:
            request = budget_facts(self.ctx, n, request)
        return engine.decide(request) if commit else engine.peek(request)

    def _creds(self, n: Notification, call: _Call, checked: _Args) -> Creds:
        """The credentials the call is checked with: the target's filesystem ones; for access
        and faccessat without AT_EACCESS its real uid and gid (access_override_creds)."""
        try:
            creds = read_creds(n.pid)
            if call.op == _ACCESS and not checked.flags & AT_EACCESS:
                creds = access_creds(n.pid, creds)
        except (OSError, ValueError):
            if not self.ctx.listener.id_valid(n.id):
                raise TargetGone() from None
            raise
        return creds

    def _check(self, n: Notification, call: _Call, mask: int) -> _Args:
        """The kernel's checks before the lookup (EINVAL, ERANGE, E2BIG as _Invalid; EFAULT
        as TargetMemoryError), in its order; the call's other arguments."""
        args = n.args
        flags = int32(args[call.flags]) if call.flags >= 0 else 0
        out = args[call.out] & mask if call.out >= 0 else 0
        size = args[call.size] & mask if call.size >= 0 else 0
        op = call.op
        if op == _GETXATTR and call.out < 0:  # getxattrat: the size checks come first
            out, size = self._xattr_args(n, mask)
        if flags & ~call.valid:
            raise _Invalid(errno.EINVAL)
        if op == _STATX:
            size &= 0xFFFFFFFF
            if flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE or size & STATX__RESERVED:
                raise _Invalid(errno.EINVAL)
        elif op == _STATFS:
            if call.size >= 0 and size != STATFS64_SIZE:
                raise _Invalid(errno.EINVAL)  # i386 statfs64's sz: sizeof(struct statfs64)
        elif op == _ACCESS:
            if int32(size) & ~0o7:
                raise _Invalid(errno.EINVAL)
        elif op == _READLINK:
            size = int32(size)
            if size <= 0:
                raise _Invalid(errno.EINVAL)
        elif op == _GETXATTR:
            try:  # strncpy_from_user of XATTR_NAME_MAX + 1 bytes: no NUL in them is ERANGE
                name = self.ctx.memory.read_string(
                    n.id, n.pid, args[call.name] & mask, XATTR_NAME_MAX + 1
                )
            except TargetMemoryError as e:
                if e.errno != errno.ENAMETOOLONG:
                    raise
                raise _Invalid(errno.ERANGE) from None
            if not name:
                raise _Invalid(errno.ERANGE)
            return _Args(out, size, flags, name)
        return _Args(out, size, flags)

    def _xattr_args(self, n: Notification, mask: int) -> tuple[int, int]:
        """getxattrat's struct xattr_args {u64 value; u32 size; u32 flags;} (value, size)."""
        usize = n.args[5]
        if usize < XATTR_ARGS_SIZE:
            raise _Invalid(errno.EINVAL)
        if usize > PAGE_SIZE:
            raise _Invalid(errno.E2BIG)
        raw = self.ctx.memory.read_bytes(n.id, n.pid, n.args[4] & mask, usize)
        if any(raw[XATTR_ARGS_SIZE:]):
            raise _Invalid(errno.E2BIG)  # copy_struct_from_user: unknown fields must be 0
        value = int.from_bytes(raw[0:8], "little")
        size = int.from_bytes(raw[8:12], "little")
        if int.from_bytes(raw[12:16], "little"):
            raise _Invalid(errno.EINVAL)
        return value, size


def _perform(call: _Call, r: Resolved, creds: Creds, a: _Args) -> Answer:
    op = call.op
    if op == _STAT:
        return perform.stat_answer(r, creds, call.kind)
    if op == _STATFS:
        return perform.statfs_answer(r, creds, call.kind, a.size)
    if op == _STATX:
        return perform.statx_answer(r, creds, a.flags, a.size)
    if op == _ACCESS:
        return perform.access_answer(r, creds, a.size)
    if op == _READLINK:
        return perform.readlink_answer(r, creds, a.size)
    if op == _GETXATTR:
        return perform.getxattr_answer(r, creds, a.name, a.size)
    return perform.listxattr_answer(r, creds, a.size)
