"""The supervisor loop: receive → Request → decide → answer, for one listener fd.

One ``Supervisor`` serves one listener fd (one filter: a target and all its descendants). The
data flow of one notification, and the module that does each step:

* receive (``ListenerFd.next_notification`` with the path lane, ``kernel.lane``: for a path
  syscall the same C call reads and resolves the path);
* route (here, once per (arch, syscall) and policy): a handler of ``supervise.handlers`` (exec,
  net ...), a *path* syscall, or a *plain* one decided by argument values;
* facts → Request (``supervise.requests``: path arguments in the target's view, the facts of
  limit/rate rules);
* decide (``ctx.engine``, pure: ``supervisor.policy``);
* answer (``supervise.act``: a Decision becomes a reply; ``supervise.opens`` performs an allowed
  open; every SEND and ADDFD is ``supervise.reply``). A denial of the loop's own routes is sent
  with the next receive, in the same C call.

Most notifications are handled inline on the loop's task (memory reads, path resolution with
O_PATH and the engine never block). Calls that can block for ever (opens of FIFOs and devices,
blocking connects and sends) run on worker threads while the loop goes on with other
notifications. Any unexpected error while handling one notification is logged with pid and
syscall and answered with EPERM: it never takes the loop down and never allows the syscall.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from supervisor.kernel import lane as lanes
from supervisor.kernel.filter import arch_name, syscall_names
from supervisor.kernel.memory import TargetGone
from supervisor.kernel.seccomp import ListenerFd, Notification, Readiness
from supervisor.policy import Engine, Follow, PathArg, Policy, Request
from supervisor.supervise import reply
from supervisor.supervise.act import act
from supervisor.supervise.context import Context, Counters
from supervisor.supervise.handlers import make_handlers
from supervisor.supervise.requests import budget_facts, decision_paths, lane_paths, path_specs
from supervisor.target.resolve import init_lane

# How many notifications the loop handles back to back before letting other tasks run.
BATCH = 32

_LANE_NOT_TRIED = lanes.NOT_TRIED
_LANE_FOLLOW = {
    Follow.ALWAYS: lanes.FOLLOW_ALWAYS,
    Follow.NEVER: lanes.FOLLOW_NEVER,
    Follow.UNLESS_FLAG: lanes.FOLLOW_UNLESS_FLAG,
    Follow.IF_FLAG: lanes.FOLLOW_IF_FLAG,
}

# How _route() says a notification is handled.
_UNKNOWN, _PLAIN, _PATHS, _HANDLER = "unknown", "plain", "paths", "handler"


def _no_handler(n: Notification, name: str) -> None:
    raise AssertionError(f"no handler routed for {name}")


@dataclass(slots=True)
class _Route:
    name: str
    arch: str
    kind: str
    specs: tuple[PathArg, ...]
    handler: Callable[[Notification, str], None] = _no_handler  # set for _HANDLER routes


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
        self.log = log or structlog.get_logger("seccomp-supervisor")
        # What every handler works with (made once: the hot path adds no object per call).
        self.context = ctx = Context(
            listener, Engine(policy), self.log, max_blocking_opens=max_blocking_opens
        )
        self.counters: Counters = ctx.counters
        self._handlers = make_handlers(ctx)
        self._names = syscall_names()
        # _route() of each (arch, nr) seen under the current policy.
        self._routes: dict[tuple[int, int], _Route] = {}
        # sv_lane_next's routes and outputs (see _route and requests.lane_paths).
        self._lane: Any = lanes.new_lane()
        init_lane(self._lane)

    @property
    def engine(self) -> Engine:
        return self.context.engine

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
        self.context.engine = Engine(policy)
        self._routes.clear()
        lanes.reset_routes(self._lane)

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve notifications until every task using the filter is gone."""
        self.listener.enable_sync_wakeup()
        ctx = self.context
        try:
            async with trio.open_nursery() as nursery:
                ctx.nursery = nursery
                nursery.start_soon(self._flush_logs)
                await self._serve()
                nursery.cancel_scope.cancel()
        finally:
            ctx.nursery = None
            ctx.decisions.flush()

    async def _serve(self) -> None:
        listener = self.listener
        ctx = self.context
        handled = 0
        lane = self._lane
        receive, deny_then_receive = reply.receivers(listener)
        try:
            while True:
                denial = ctx.denial
                if denial is None:
                    got = receive(lane)
                else:  # the last notification's answer, sent with this receive
                    ctx.denial = None
                    got = deny_then_receive(denial[0], denial[1], lane)
                if got is Readiness.IDLE:
                    handled = 0
                    await listener.wait_readable()
                    continue
                if got is Readiness.GONE:
                    return
                if got is not Readiness.PENDING:
                    ctx.defer = True
                    try:
                        self.handle(got)
                    finally:
                        ctx.defer = False
                handled += 1
                if handled >= self.batch:
                    handled = 0
                    reply.flush_denial(ctx)
                    await trio.lowlevel.checkpoint()
        finally:
            # Leaving (every target gone, or cancelled): nobody may be left waiting, but the
            # listener may be closed or the target gone by now.
            with contextlib.suppress(OSError, ValueError):
                reply.flush_denial(ctx)

    async def _flush_logs(self) -> None:
        while True:
            await trio.sleep(1.0)
            self.context.decisions.flush()

    # -- routes -------------------------------------------------------------------------------
    def _route(self, key: tuple[int, int]) -> _Route:
        """How notifications of one (arch, nr) are handled under the current policy: worked out
        once, not per notification (set_policy() forgets them). Handlers first
        (supervise/handlers.py), then the loop's own path and plain routes."""
        name = self._names.get(key)
        arch = arch_name(key[0])
        if name is None:
            route = _Route(f"nr{key[1]}", arch, _UNKNOWN, ())
        else:
            handler = next((h for h in self._handlers.table if h.wants(name)), None)
            if handler is not None:
                route = _Route(name, arch, _HANDLER, (), handler.handle)
            elif self.context.engine.needs_paths(name):
                route = _Route(name, arch, _PATHS, path_specs(name, arch))
                self._lane_route(key, name, route.specs)
            else:
                route = _Route(name, arch, _PLAIN, ())
        self._routes[key] = route
        return route

    def _lane_route(self, key: tuple[int, int], name: str, specs: tuple[PathArg, ...]) -> None:
        """Let sv_lane_next read and resolve this syscall's path when requests.resolve_arg
        would do no more than that: one path argument, not NULL-able, no open_how to read
        first."""
        if len(specs) != 1 or name == "openat2":
            return
        spec = specs[0]
        if spec.nullable:
            return
        lanes.set_route(
            self._lane,
            key[0],
            key[1],
            path_arg=spec.path,
            dirfd_arg=spec.dirfd,
            flags_arg=spec.flags_arg,
            follow=_LANE_FOLLOW[spec.follow],
            flag=spec.flag,
        )

    # -- one notification -------------------------------------------------------------------
    def handle(self, n: Notification) -> None:
        lane = self._lane
        lane_fd = lane.fd  # what sv_lane_next did with this notification's path, if anything
        if lane_fd != _LANE_NOT_TRIED:
            lane.fd = _LANE_NOT_TRIED  # consumed: a later handle() of another source sees none
        ctx = self.context
        counters = ctx.counters
        counters.notifications += 1
        key = (n.arch, n.nr)
        route = self._routes.get(key) or self._route(key)
        name = route.name
        kind = route.kind
        if kind is _UNKNOWN:
            # Cannot happen with our filters (only known syscalls are notified); fail closed.
            reply.refuse(ctx, n, name, errno.ENOSYS, reason="unknown syscall")
            return
        counters.by_syscall[name] += 1
        try:
            if kind is _HANDLER:
                route.handler(n, name)  # supervise/handlers.py
                return
            if kind is _PATHS:
                if lane_fd != _LANE_NOT_TRIED:
                    paths = lane_paths(ctx, lane, n, name, route.specs[0], lane_fd)
                else:
                    paths = decision_paths(ctx, n, name, route.specs)
                if paths is None:
                    return
                request = Request(n.pid, name, route.arch, n.args, paths)
            else:
                request = Request(n.pid, name, route.arch, n.args)
            engine = ctx.engine
            if engine.has_budgets:
                request = budget_facts(ctx, n, request)
            act(ctx, n, request, engine.decide(request), True)
        except TargetGone:
            pass
        except Exception as e:  # never let one notification take the supervisor down
            self.log.error(
                "supervisor.internal_error",
                pid=n.pid,
                syscall=name,
                error=f"{type(e).__name__}: {e}",
            )
            reply.refuse(ctx, n, name, errno.EPERM, reason="internal error")
