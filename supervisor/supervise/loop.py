"""The supervisor loop: receive → read arguments → resolve paths → decide → act → reply.

One ``Supervisor`` serves one listener fd (one filter: a target and all its descendants).

How a decision becomes a reply (the one place that does it, ``_act``):

* deny → the syscall fails with the rule's errno; kill → SIGKILL to the target process through a
  pidfd, then an error reply (which the dying target never sees).
* allow or log, decided by argument *values* only → ``CONTINUE``: nothing the target can still
  change was looked at.
* allow or log after *inspecting* pointer arguments (``Decision.inspected``) → never CONTINUE
  (the target could rewrite the path between our check and the kernel's read). For the open
  family the supervisor opens the file itself, under the target's credentials and root, checks the
  path it actually reached, and installs the fd with ADDFD|SEND. Other syscalls cannot be
  performed that way; for them such an allow is *advisory*, said when the policy is loaded and by
  ``policy check``, and the loop resumes them with CONTINUE. So are opens with O_PATH: the
  kernel's ADDFD cannot install O_PATH files.

Most notifications are handled inline on the loop's task (memory reads, path resolution with
O_PATH and the engine never block). Opens of FIFOs and devices can block for ever, so they run
on worker threads while the loop goes on with other notifications. Any unexpected error while
handling one notification is logged with pid and syscall and answered with EPERM: it never takes
the loop down and never allows the syscall.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from supervisor._native import ffi, lib
from supervisor.kernel import proc
from supervisor.kernel.creds import read_creds
from supervisor.kernel.filter import arch_name, syscall_names
from supervisor.kernel.memory import MemoryReader, TargetGone, TargetMemoryError
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal
from supervisor.kernel.seccomp import ListenerFd, Notification, Readiness
from supervisor.logs import DecisionLog, errno_name
from supervisor.policy import (
    OPEN_SYSCALLS,
    Action,
    Decision,
    Engine,
    Follow,
    PathArg,
    Policy,
    Request,
    path_args,
)
from supervisor.supervise.execs import ExecCalls
from supervisor.supervise.net import NET_SYSCALLS, NetCalls
from supervisor.target.emulate import PreparedOpen, Refused, prepare_open
from supervisor.target.resolve import PathResolver, Resolved, init_lane, lane_path

AT_FDCWD = -100
O_CREAT = os.O_CREAT
O_TRUNC = os.O_TRUNC
O_WRONLY = os.O_WRONLY
O_NOFOLLOW = os.O_NOFOLLOW
O_CLOEXEC = os.O_CLOEXEC
O_PATH = os.O_PATH
OPEN_HOW_SIZE = 24  # struct open_how, version 0
# How many notifications the loop handles back to back before letting other tasks run.
BATCH = 32


def int32(value: int) -> int:
    """An ``int`` syscall argument: only the low 32 bits are meaningful, sign-extended."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@dataclass
class Counters:
    """What this supervisor did, for status reports."""

    notifications: int = 0
    allowed: int = 0
    denied: int = 0
    killed: int = 0
    by_syscall: Counter[str] = field(default_factory=Counter)


_LANE_NOT_TRIED: int = lib.SV_LANE_NOT_TRIED
_RESOLVED_CLOSED: int = lib.SV_RESOLVED_CLOSED
_LANE_MAX_NR: int = lib.SV_LANE_MAX_NR
_LANE_ARCH = {lib.SCMP_ARCH_X86_64: 0, lib.SCMP_ARCH_X86: 1}  # sv_lane.routes[...]
_LANE_FOLLOW = {
    Follow.ALWAYS: lib.SV_FOLLOW_ALWAYS,
    Follow.NEVER: lib.SV_FOLLOW_NEVER,
    Follow.UNLESS_FLAG: lib.SV_FOLLOW_UNLESS_FLAG,
    Follow.IF_FLAG: lib.SV_FOLLOW_IF_FLAG,
}

# How _route() says a notification is handled.
_UNKNOWN, _PLAIN, _PATHS, _EXEC, _NET = "unknown", "plain", "paths", "exec", "net"


@dataclass(slots=True)
class _Route:
    name: str
    arch: str
    kind: str
    specs: tuple[PathArg, ...]


@dataclass(slots=True)  # not frozen: one per notification (see policy.Request)
class PathCall:
    """The path arguments of one notification, resolved in the target's view."""

    resolved: tuple[Resolved, ...]
    paths: tuple[str, ...]

    def close(self) -> None:
        for r in self.resolved:
            r.close()


class Supervisor:
    def __init__(
        self,
        listener: ListenerFd,
        policy: Policy,
        *,
        log: Any | None = None,
        max_blocking_opens: int = 32,
        batch: int = BATCH,
    ) -> None:
        self.listener = listener
        # Notifications handled back to back before other tasks (other targets) may run.
        self.batch = max(1, batch)
        self.policy = policy
        self.engine = Engine(policy)
        self.log = log or structlog.get_logger("seccomp-supervisor")
        self.decisions = DecisionLog(self.log)
        self.counters = Counters()
        self._names = syscall_names()
        # path_args() of each (syscall, arch) seen: a pure function of static tables.
        self._path_specs: dict[tuple[str, str], tuple[PathArg, ...]] = {}
        # _route() of each (arch, nr) seen under the current policy.
        self._routes: dict[tuple[int, int], _Route] = {}
        # A denial _act leaves for _serve to send with its next receive (_defer: in handle()).
        self._denial: tuple[int, int] | None = None
        self._defer = False
        # sv_lane_next's routes and outputs (see _route and _lane_paths).
        self._lane: Any = ffi.new("struct sv_lane *")
        init_lane(self._lane)
        self._lane_reset()
        self._memory = MemoryReader(listener.fileno())
        self._resolver = PathResolver()
        self._threads = trio.CapacityLimiter(max_blocking_opens)
        self._nursery: trio.Nursery | None = None
        self._net = NetCalls(self)
        self._exec = ExecCalls(self)

    def counters_summary(self) -> dict[str, Any]:
        c = self.counters
        return {
            "notifications": c.notifications,
            "allowed": c.allowed,
            "denied": c.denied,
            "killed": c.killed,
        }

    def set_policy(self, policy: Policy) -> None:
        """New decisions use ``policy`` (the kernel filter itself cannot change). A new Engine:
        the counters, token buckets and dice of stateful rules start afresh."""
        self.policy = policy
        self.engine = Engine(policy)
        self._routes.clear()
        self._lane_reset()

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve notifications until every task using the filter is gone."""
        self.listener.enable_sync_wakeup()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._flush_logs)
                await self._serve()
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self.decisions.flush()

    async def _serve(self) -> None:
        listener = self.listener
        handled = 0
        lane = self._lane
        try:
            while True:
                denial = self._denial
                if denial is None:
                    got = listener.next_notification(lane)
                else:  # the last notification's answer, sent with this receive
                    self._denial = None
                    got = listener.deny_then_next(denial[0], denial[1], lane)
                if got is Readiness.IDLE:
                    handled = 0
                    await listener.wait_readable()
                    continue
                if got is Readiness.GONE:
                    return
                if got is not Readiness.PENDING:
                    self._defer = True
                    try:
                        self.handle(got)
                    finally:
                        self._defer = False
                handled += 1
                if handled >= self.batch:
                    handled = 0
                    self._send_denial()
                    await trio.lowlevel.checkpoint()
        finally:
            # Leaving (every target gone, or cancelled): nobody may be left waiting, but the
            # listener may be closed or the target gone by now.
            with contextlib.suppress(OSError, ValueError):
                self._send_denial()

    def _send_denial(self) -> None:
        """Send a denial _act left for the next receive (never left waiting past the loop)."""
        denial, self._denial = self._denial, None
        if denial is not None:
            self.listener.send_error(denial[0], denial[1])

    async def _flush_logs(self) -> None:
        while True:
            await trio.sleep(1.0)
            self.decisions.flush()

    # -- one notification -------------------------------------------------------------------
    def _route(self, key: tuple[int, int]) -> _Route:
        """How notifications of one (arch, nr) are handled under the current policy: worked out
        once, not per notification (set_policy() forgets them)."""
        name = self._names.get(key)
        arch = arch_name(key[0])
        if name is None:
            route = _Route(f"nr{key[1]}", arch, _UNKNOWN, ())
        elif self._exec.wants(name):
            route = _Route(name, arch, _EXEC, ())
        elif name in NET_SYSCALLS and self._net.wants(name):
            route = _Route(name, arch, _NET, ())
        elif self.engine.needs_paths(name):
            route = _Route(name, arch, _PATHS, self._specs(name, arch))
            self._lane_route(key, name, route.specs)
        else:
            route = _Route(name, arch, _PLAIN, ())
        self._routes[key] = route
        return route

    def _lane_reset(self) -> None:
        for table in self._lane.routes:
            for r in table:
                r.path_arg = -1

    def _lane_route(self, key: tuple[int, int], name: str, specs: tuple[PathArg, ...]) -> None:
        """Let sv_lane_next read and resolve this syscall's path when _resolve_arg would do no
        more than that: one path argument, not NULL-able, no open_how to read first."""
        arch, nr = key
        table = _LANE_ARCH.get(arch)
        if table is None or len(specs) != 1 or name == "openat2" or not 0 <= nr < _LANE_MAX_NR:
            return
        spec = specs[0]
        if spec.nullable:
            return
        r = self._lane.routes[table][nr]
        r.dirfd_arg = -1 if spec.dirfd is None else spec.dirfd
        r.flags_arg = -1 if spec.flags_arg is None else spec.flags_arg
        r.follow = _LANE_FOLLOW[spec.follow]
        r.flag = spec.flag
        r.path_arg = spec.path

    def _specs(self, name: str, arch: str) -> tuple[PathArg, ...]:
        specs = self._path_specs.get((name, arch))
        if specs is None:
            specs = self._path_specs[(name, arch)] = path_args(name, arch)
        return specs

    def handle(self, n: Notification) -> None:
        lane = self._lane
        lane_fd = lane.fd  # what sv_lane_next did with this notification's path, if anything
        if lane_fd != _LANE_NOT_TRIED:
            lane.fd = _LANE_NOT_TRIED  # consumed: a later handle() of another source sees none
        counters = self.counters
        counters.notifications += 1
        key = (n.arch, n.nr)
        route = self._routes.get(key) or self._route(key)
        name = route.name
        kind = route.kind
        if kind is _UNKNOWN:
            # Cannot happen with our filters (only known syscalls are notified); fail closed.
            self._reply_error(n, name, errno.ENOSYS, reason="unknown syscall")
            return
        counters.by_syscall[name] += 1
        try:
            # An allowed exec of this process still to be verified: before anything else
            # (supervisor/execcalls.py). False: killed, the answer is never seen.
            pending = self._exec.pending
            if pending and n.pid in pending and not self._exec.before_notification(n):
                self.listener.send_error(n.id, errno.EPERM)
                return
            if kind is _EXEC:
                self._exec.handle(n, name)  # exec rules: supervisor/execcalls.py
                return
            if kind is _NET:
                self._net.handle(n, name)  # address rules: supervisor/netcalls.py
                return
            if kind is _PATHS:
                if lane_fd != _LANE_NOT_TRIED:
                    paths = self._lane_paths(n, name, route.specs[0], lane_fd)
                else:
                    paths = self._decision_paths(n, name, route.specs)
                if paths is None:
                    return
                request = Request(n.pid, name, route.arch, n.args, paths)
            else:
                request = Request(n.pid, name, route.arch, n.args)
            engine = self.engine
            if engine.has_budgets:
                request = self._budget_facts(n, request)
            self._act(n, request, engine.decide(request), defer=True)
        except TargetGone:
            pass
        except Exception as e:  # never let one notification take the supervisor down
            self.log.error(
                "supervisor.internal_error",
                pid=n.pid,
                syscall=name,
                error=f"{type(e).__name__}: {e}",
            )
            self._reply_error(n, name, errno.EPERM, reason="internal error")

    def _lane_paths(
        self, n: Notification, name: str, spec: PathArg, lane_fd: int
    ) -> tuple[str, ...] | None:
        """_decision_paths for a path sv_lane_next has read (and, if it could, resolved)."""
        lane = self._lane
        try:
            length = lane.len
            if length < 0:
                self._memory.fail(length)  # TargetGone or TargetMemoryError, as read_string
            if lane_fd == _RESOLVED_CLOSED:
                return (lane_path(lane),)
            raw: bytes = ffi.unpack(lane.buf, length)
            _addr, dirfd, follow, empty_ok, _rflags = self._arg_view(n, name, spec)
            r = self._resolver.resolve_read(
                n.pid, dirfd, raw, follow=follow, empty_path_ok=empty_ok
            )
            r.close()
            return (r.path if r.exists else _join(r.path, r.name or ""),)
        except TargetMemoryError as e:
            self._reply_error(n, name, e.errno or errno.EFAULT, reason="bad pointer")
            return None
        except OSError as e:
            err = self._errno_as_target(n, name, (spec,)) or e.errno or errno.EACCES
            self.listener.send_error(n.id, err)
            return None

    def _decision_paths(
        self, n: Notification, name: str, specs: tuple[PathArg, ...]
    ) -> tuple[str, ...] | None:
        """What the engine decides on: the resolved path of each path argument (what
        _read_paths gives, without the fds, which are closed at once). None: answered."""
        paths: list[str] = []
        try:
            for spec in specs:
                r = self._resolve_arg(n, name, spec, keep_fd=False)
                r.close()
                paths.append(r.path if r.exists else _join(r.path, r.name or ""))
        except TargetMemoryError as e:
            self._reply_error(n, name, e.errno or errno.EFAULT, reason="bad pointer")
            return None
        except OSError as e:
            err = self._errno_as_target(n, name, specs) or e.errno or errno.EACCES
            self.listener.send_error(n.id, err)
            return None
        return tuple(paths)

    def _read_paths(
        self,
        n: Notification,
        name: str,
        arch: str,
        specs: tuple[PathArg, ...] | None = None,
    ) -> PathCall | None:
        """Read and resolve every path argument, keeping our fd on each result. On failure,
        answer with the errno the kernel would give (an unreadable pointer is EFAULT) and
        return None."""
        if specs is None:
            specs = self._specs(name, arch)
        resolved: list[Resolved] = []
        try:
            for spec in specs:
                resolved.append(self._resolve_arg(n, name, spec))
        except TargetMemoryError as e:
            for r in resolved:
                r.close()
            self._reply_error(n, name, e.errno or errno.EFAULT, reason="bad pointer")
            return None
        except OSError as e:
            for r in resolved:
                r.close()
            # The syscall would fail anyway: answer as the kernel would. The lookup ran with our
            # credentials; for the errno the target would see, look again with its own.
            err = self._errno_as_target(n, name, specs) or e.errno or errno.EACCES
            self.listener.send_error(n.id, err)
            return None
        paths = tuple([r.path if r.exists else _join(r.path, r.name or "") for r in resolved])
        return PathCall(tuple(resolved), paths)

    def _resolve_arg(
        self,
        n: Notification,
        name: str,
        spec: PathArg,
        creds: Any | None = None,
        *,
        keep_fd: bool = True,
    ) -> Resolved:
        addr, dirfd, follow, empty_ok, resolve_flags = self._arg_view(n, name, spec)
        if addr == 0 and spec.nullable:
            path, empty_ok = b"", True
        elif creds is None:
            return self._resolver.read_and_resolve(
                self._memory,
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
            path = self._memory.read_string(n.id, n.pid, addr)
        return self._resolver.resolve(
            n.pid,
            dirfd,
            path,
            follow=follow,
            empty_path_ok=empty_ok,
            resolve_flags=resolve_flags,
            creds=creds,
        )

    def _arg_view(
        self, n: Notification, name: str, spec: PathArg
    ) -> tuple[int, int | None, bool, bool, int]:
        """Where a path argument is and how the kernel walks it: (address, dirfd or None for
        the cwd, follow the last symlink, an empty path means the dirfd, RESOLVE_ flags).
        sv_lane_next does the same in C for the routes _lane_route registers."""
        args = n.args
        flags_arg = spec.flags_arg
        flags = args[flags_arg] if flags_arg is not None else 0
        follow = _follows(spec, flags)
        resolve_flags = 0
        if name == "openat2":
            how_flags, _mode, resolve_flags = self._open_how(n)
            follow = not (how_flags & O_NOFOLLOW)
        dirfd_arg = spec.dirfd
        if dirfd_arg is None:
            dirfd = None
        else:  # _dirfd() inline (hot path): the low 32 bits, sign-extended; AT_FDCWD is None
            fd = args[dirfd_arg] & 0xFFFFFFFF
            dirfd = None if fd == 0xFFFFFF9C else fd - (1 << 32) if fd & 0x80000000 else fd
        empty_ok = bool(spec.empty_path_flag and flags & spec.empty_path_flag)
        return args[spec.path], dirfd, follow, empty_ok, resolve_flags

    def _errno_as_target(self, n: Notification, name: str, specs: tuple[PathArg, ...]) -> int:
        try:
            creds = read_creds(n.pid)
            if not self.listener.id_valid(n.id):
                return 0
            for spec in specs:
                self._resolve_arg(n, name, spec, creds=creds).close()
        except OSError as e:
            return e.errno or 0
        except TargetGone:
            return 0
        return 0

    def _open_how(self, n: Notification) -> tuple[int, int, int]:
        size = n.args[3]
        if size < OPEN_HOW_SIZE:
            raise TargetMemoryError(errno.EINVAL, "open_how too small")
        if size > 4096:
            raise TargetMemoryError(errno.E2BIG, "open_how too large")
        raw = self._memory.read_bytes(n.id, n.pid, n.args[2], OPEN_HOW_SIZE)
        how = memoryview(raw).cast("Q")
        return how[0], how[1], how[2]

    def _budget_facts(self, n: Notification, request: Request) -> Request:
        """The request with what `limit`/`rate` rules count by: the time, and the process and
        user only for syscalls whose rules count per process or user (a /proc read)."""
        engine = self.engine
        if not engine.counts(request.syscall):
            return request
        now = time.monotonic() if engine.uses_clock else 0.0
        tgid, uid = 0, -1
        if engine.needs_process(request.syscall) or engine.needs_user(request.syscall):
            try:
                tgid, uid = proc.tgid_uid(n.pid)
            except (OSError, ValueError):
                if not self.listener.id_valid(n.id):
                    raise TargetGone() from None
                raise  # ours (EMFILE...): answered as an internal error, never left waiting
            if not self.listener.id_valid(n.id):
                raise TargetGone()  # the tid may name another thread by now
        return dataclasses.replace(request, now=now, tgid=tgid, uid=uid)

    # -- acting on a decision -----------------------------------------------------------------
    def _act(
        self, n: Notification, request: Request, decision: Decision, defer: bool = False
    ) -> None:
        """Turn a decision into the answer. ``defer``: handle()'s own final call, inside _serve:
        a denial may then be left in self._denial for _serve to send (sv_lane_answer_next)."""
        if decision.enters is not None:
            self._phase_entered(n, request, decision)
        action = decision.action
        if action is Action.DENY:
            self.counters.denied += 1
            self._record("syscall.denied", n, request, decision)
            err = decision.errno or errno.EPERM
            if defer and self._defer:
                # The last thing handle() does: _serve sends it with its next receive.
                self._denial = (n.id, err)
            else:
                self.listener.send_error(n.id, err)
        elif action is Action.FAIL:
            # Fault injection: an error the call could have had, chosen by the policy.
            self.counters.denied += 1
            self._record("syscall.failed", n, request, decision, level="info")
            self.listener.send_error(n.id, decision.errno or errno.EIO)
        elif action is Action.VALUE:
            # Answered without running the syscall: nothing the target holds is used.
            self.counters.allowed += 1
            self._record("syscall.answered", n, request, decision, level="info")
            self.listener.send_value(n.id, decision.value)
        elif action is Action.KILL:
            self.counters.killed += 1
            self._record("syscall.killed", n, request, decision, level="error")
            self._kill(n)
            self.listener.send_error(n.id, errno.EPERM)
        else:
            self.counters.allowed += 1
            if action is Action.LOG:
                self._record("syscall.logged", n, request, decision, level="info")
            if decision.inspected and request.syscall in OPEN_SYSCALLS:
                self._emulate_open(n, request)
            else:
                # Decided by values, or advisory (said when the policy was loaded).
                self.listener.send_continue(n.id)

    def _phase_entered(self, n: Notification, request: Request, decision: Decision) -> None:
        entered = self.engine.take_entered()
        if entered is not None:
            self.log.info(
                "policy.phase",
                phase=entered,
                pid=n.pid,
                comm=proc.comm(n.pid),
                syscall=request.syscall,
                rule=decision.rule,
            )

    def _kill(self, n: Notification) -> None:
        try:
            tgid = proc.tgid(n.pid)
            pidfd = pidfd_open(tgid)
        except OSError:
            return  # already gone
        try:
            # Valid after pidfd_open: the thread (so its process) was alive when we took the pidfd.
            if self.listener.id_valid(n.id):
                pidfd_send_signal(pidfd, signal.SIGKILL)
        finally:
            os.close(pidfd)

    def _emulate_open(self, n: Notification, request: Request) -> None:
        args = request.args
        name = request.syscall
        if name == "open":
            dirfd, path_arg, flags, mode, resolve_flags = None, args[0], args[1], args[2], 0
        elif name == "creat":
            dirfd, path_arg, flags, mode, resolve_flags = (
                None,
                args[0],
                O_CREAT | O_WRONLY | O_TRUNC,
                args[1],
                0,
            )
        elif name == "openat":
            dirfd, path_arg, flags, mode, resolve_flags = (
                _dirfd(args[0]),
                args[1],
                args[2],
                args[3],
                0,
            )
        else:  # openat2
            flags, mode, resolve_flags = self._open_how(n)
            dirfd, path_arg = _dirfd(args[0]), args[1]
        flags = int32(flags) & 0xFFFFFFFF
        mode &= 0o7777
        if flags & O_PATH:
            # ADDFD cannot install an O_PATH file (the kernel's fget() skips them), so an
            # allowed O_PATH open is resumed after the check: advisory. Such an fd grants no
            # read or write, and every later use of it by path (openat relative to it,
            # /proc/self/fd/N) is resolved and checked again.
            self.listener.send_continue(n.id)
            return
        path = self._memory.read_string(n.id, n.pid, path_arg)
        try:
            creds = read_creds(n.pid)
        except OSError:
            if not self.listener.id_valid(n.id):
                return  # the thread is gone: nobody to answer
            raise
        cloexec = bool(flags & O_CLOEXEC)

        def allowed(final_path: str) -> bool:
            again = self.engine.peek(_with_paths(request, (final_path,)))
            return again.action in (Action.ALLOW, Action.LOG)

        try:
            prepared = prepare_open(
                self._resolver,
                n.pid,
                creds,
                dirfd,
                path,
                flags & ~O_CLOEXEC,
                mode,
                resolve_flags,
                allowed,
            )
        except Refused as e:
            decision = self.engine.peek(_with_paths(request, (e.path,)))
            self.counters.allowed -= 1
            self.counters.denied += 1
            self._record("syscall.denied", n, request, decision, raced_path=e.path)
            self.listener.send_error(n.id, decision.errno or errno.EACCES)
            return
        except OSError as e:
            self.listener.send_error(n.id, e.errno or errno.EACCES)
            return
        # One ID_VALID after the credentials were read AND the resolver took its handles on
        # /proc/TID/{root,cwd,fd/N}, before anything with a side effect (O_CREAT, O_TRUNC):
        # still valid means the tid was not reused, so both were the calling thread's.
        if not self.listener.id_valid(n.id):
            prepared.close()
            return
        if prepared.may_block and self._nursery is not None:
            self._nursery.start_soon(self._open_blocking, n, prepared, cloexec)
            return
        self._finish_open(n, prepared, cloexec)

    def _finish_open(self, n: Notification, prepared: PreparedOpen, cloexec: bool) -> None:
        try:
            fd = prepared.open()
        except OSError as e:
            self.listener.send_error(n.id, e.errno or errno.EACCES)
            return
        finally:
            prepared.close()
        try:
            self.listener.send_fd(n.id, fd, cloexec=cloexec)
        except OSError as e:
            # e.g. EMFILE in the target: it gets the errno it would have got from open().
            self.listener.send_error(n.id, e.errno or errno.EMFILE)
        finally:
            os.close(fd)

    async def _open_blocking(self, n: Notification, prepared: PreparedOpen, cloexec: bool) -> None:
        """Perform a blocking open (a FIFO with no writer, a device) on a worker thread. When
        the task is cancelled (the target is gone, shutdown), the thread is abandoned and may
        stay blocked; it *owns* ``prepared`` (closing its fds here could hand their numbers
        to another open while the thread still reopens ``/proc/self/fd/N``), and an fd it gets
        after it was abandoned is closed, not leaked. The lock decides, once, which side closes
        what."""
        lock = threading.Lock()
        state = {"started": False, "abandoned": False, "fd": -1}

        def perform() -> int:
            with lock:
                if state["abandoned"]:
                    return -1  # cancelled before we ran: the task closed ``prepared``
                state["started"] = True
            try:
                fd = prepared.open()
            finally:
                prepared.close()
            with lock:
                if not state["abandoned"]:
                    state["fd"] = fd
                    return fd
            os.close(fd)  # nobody will take it
            return -1

        try:
            fd = await trio.to_thread.run_sync(
                perform, limiter=self._threads, abandon_on_cancel=True
            )
        except OSError as e:
            self.listener.send_error(n.id, e.errno or errno.EACCES)
            return
        except BaseException:  # cancelled: the thread, if it runs, cleans up after itself
            with lock:
                state["abandoned"] = True
                started, done = state["started"], state["fd"]
            if not started:
                prepared.close()
            if done >= 0:
                os.close(done)  # the thread finished just as we were cancelled
            raise
        try:
            self.listener.send_fd(n.id, fd, cloexec=cloexec)
        except OSError as e:
            self.listener.send_error(n.id, e.errno or errno.EMFILE)
        finally:
            os.close(fd)

    # -- replies and records -----------------------------------------------------------------
    def _reply_error(self, n: Notification, name: str, err: int, *, reason: str) -> None:
        self.counters.denied += 1
        self.decisions.emit(
            "syscall.refused",
            (n.pid, name, reason, err),
            lambda: {
                "pid": n.pid,
                "comm": proc.comm(n.pid),
                "syscall": name,
                "reason": reason,
                "errno": errno_name(err),
            },
        )
        self.listener.send_error(n.id, err)

    def _record(
        self,
        event: str,
        n: Notification,
        request: Request,
        decision: Decision,
        level: str = "warning",
        **extra: Any,
    ) -> None:
        key = (
            n.pid,
            request.syscall,
            request.paths,
            request.address,
            decision.rule,
            decision.action,
        )

        def fields() -> dict[str, Any]:
            data: dict[str, Any] = {
                "pid": n.pid,
                "comm": proc.comm(n.pid),
                "syscall": request.syscall,
            }
            if request.arch != "x86_64":
                data["arch"] = request.arch
            if request.paths:
                data["path"] = request.paths[0] if len(request.paths) == 1 else list(request.paths)
            else:
                data["args"] = [hex(a) for a in request.args]
            if request.argv is not None:
                data["argv"] = _loggable_argv(request.argv)
            if request.address is not None:
                data["address"] = request.address.describe()
            data["rule"] = decision.rule or "(default)"
            data["action"] = decision.action.value
            if decision.action is Action.DENY:
                data["errno"] = errno_name(decision.errno or errno.EPERM)
            elif decision.action is Action.FAIL:
                data["errno"] = errno_name(decision.errno or errno.EIO)
            elif decision.action is Action.VALUE:
                data["value"] = decision.value
            if decision.over_limit:
                data["over_limit"] = True
            data.update(extra)
            return data

        self.decisions.emit(event, key, fields, level=level)


def _loggable_argv(argv: tuple[str, ...]) -> list[str]:
    """The argv for a log event: at most 64 elements of at most 256 characters."""
    out = [a if len(a) <= 256 else a[:256] + "..." for a in argv[:64]]
    if len(argv) > 64:
        out.append(f"... ({len(argv) - 64} more)")
    return out


def _with_paths(r: Request, paths: tuple[str, ...]) -> Request:
    """``r`` with other paths; dataclasses.replace() costs 4x this on the emulated open's path."""
    return Request(r.pid, r.syscall, r.arch, r.args, paths, r.now, r.tgid, r.uid, r.address, r.argv)


def _follows(spec: PathArg, flags: int) -> bool:
    if spec.follow is Follow.ALWAYS:
        return True
    if spec.follow is Follow.NEVER:
        return False
    if spec.follow is Follow.UNLESS_FLAG:
        return not (flags & spec.flag)
    return bool(flags & spec.flag)  # IF_FLAG


def _dirfd(arg: int) -> int | None:
    fd = int32(arg)
    return None if fd == AT_FDCWD else fd


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name if name else parent
