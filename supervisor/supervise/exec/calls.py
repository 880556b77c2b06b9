"""The exec handler: decide an execve/execveat; let an inspected allow through the exec gate
(``gate``), which verifies what it runs before its first instruction (see the package
docstring)."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import os
from dataclasses import dataclass

import trio

from supervisor.kernel import proc
from supervisor.kernel.filter import arch_name
from supervisor.kernel.memory import TargetGone, TargetMemoryError
from supervisor.kernel.seccomp import Notification
from supervisor.policy import Action, Decision, Request
from supervisor.policy.match.argv import EXEC_SYSCALLS
from supervisor.supervise import reply
from supervisor.supervise.act import act, allowed
from supervisor.supervise.context import Context
from supervisor.supervise.exec.argv import read_argv
from supervisor.supervise.exec.gate import Gate, Outcome, Pass, Result, gate_job
from supervisor.supervise.exec.tracers import TracerPool
from supervisor.supervise.exec.verify import executed_path, expected_files
from supervisor.supervise.records import record
from supervisor.supervise.requests import budget_facts, process_pidfd, read_paths

# The tracer threads of every Supervisor of this process: at most 64 execs in the gate at once
# (more wait, in order, for a thread).
TRACERS = TracerPool(limit=64)


@dataclass(slots=True)
class _Exec:
    """What a gate's Pass carries back for the log."""

    n: Notification
    request: Request
    decision: Decision
    logged: bool = False  # counted (and its phase entered): once, by _log_allowed

    @property
    def name(self) -> str:
        return self.request.syscall


class ExecCalls:
    """The exec handler of one Supervisor."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.gates: dict[int, Gate] = {}  # by tid: the gate that traces it

    def wants(self, name: str) -> bool:
        return name in EXEC_SYSCALLS and self.ctx.engine.checks_exec(name)

    # -- deciding --------------------------------------------------------------------------------
    def handle(self, n: Notification, name: str) -> None:
        ctx = self.ctx
        arch = arch_name(n.arch)
        call = read_paths(ctx, n, name, arch)
        if call is None:
            return  # answered with the kernel's errno
        try:
            if not call.resolved[0].exists:
                # The kernel fails the exec with ENOENT: nothing to decide (and a `once` stays
                # unspent while execvp tries the directories of PATH).
                reply.error(ctx, n, errno.ENOENT)
                return
            argv_arg = n.args[1] if name == "execve" else n.args[2]
            try:
                argv = read_argv(ctx.memory, n, argv_arg, arch)
            except TargetMemoryError as e:
                reply.refuse(ctx, n, name, e.errno or errno.EFAULT, reason="bad pointer")
                return
            request = Request(
                pid=n.pid, syscall=name, arch=arch, args=n.args, paths=call.paths, argv=argv
            )
            if ctx.engine.has_budgets:
                request = budget_facts(ctx, n, request)
            decision = ctx.engine.decide(request)
            if decision.action not in (Action.ALLOW, Action.LOG) or not decision.inspected:
                act(ctx, n, request, decision)
                return
            self._resume_and_verify(n, request, decision, call.resolved[0].fd)
        finally:
            call.close()

    # -- after an inspected allow -----------------------------------------------------------------
    def _resume_and_verify(
        self, n: Notification, request: Request, decision: Decision, checked_fd: int
    ) -> None:
        ctx = self.ctx
        tgid, pidfd = process_pidfd(ctx, n)
        try:
            if not ctx.listener.id_valid(n.id):
                raise TargetGone()  # the pidfd may name another process by now
            expected = frozenset(expected_files(ctx.resolver, n.pid, checked_fd))
        except BaseException:
            os.close(pidfd)
            raise
        this = Pass(functools.partial(reply.resume, ctx, n), expected, _Exec(n, request, decision))
        previous = self.gates.get(n.pid)
        if previous is not None:
            replaced = previous.adopt(this)
            if replaced is not None:
                # The gate still traces this thread: it takes this exec too (see Gate.adopt).
                os.close(pidfd)
                self._log_allowed(replaced)
                self._log_allowed(this)
                reply.resume(ctx, n)
                return
        gate = Gate(n.pid, tgid, pidfd, this, after=previous)
        token = trio.lowlevel.current_trio_token()

        def judge(p: Pass) -> str | None:  # on the tracer thread
            return trio.from_thread.run_sync(
                self._judge, gate.tgid, p.about.request, trio_token=token
            )

        def seized(p: Pass) -> None:  # on the tracer thread, before the CONTINUE
            if p.about.decision.enters is not None:  # a phase change: before the exec runs
                trio.from_thread.run_sync(self._log_allowed, p, trio_token=token)

        def finished(result: Result | BaseException) -> None:  # on the tracer thread
            with contextlib.suppress(trio.RunFinishedError):  # the supervisor has stopped
                token.run_sync_soon(self._finished, gate, result)

        if this.about.decision.enters is None:
            self._log_allowed(this)  # now: counted before it runs, like any allow
        try:
            TRACERS.submit(gate_job(gate, judge, seized, finished))
        except RuntimeError:  # no thread: nothing was resumed
            os.close(pidfd)
            gate.done.set()
            ctx.counters.allowed -= this.about.logged
            reply.refuse(ctx, n, request.syscall, errno.EPERM, reason="no tracer thread")
            return
        self.gates[n.pid] = gate

    def _finished(self, gate: Gate, result: Result | BaseException) -> None:
        """On the trio thread, once the gate let go: log what came of it."""
        ctx = self.ctx
        if self.gates.get(gate.tid) is gate:
            del self.gates[gate.tid]
        if isinstance(result, BaseException):  # the gate killed the process
            ctx.log.error(
                "supervisor.internal_error",
                pid=gate.tgid,
                syscall=gate.first.about.name,
                error=f"{type(result).__name__}: {result}",
            )
            return
        ex = result.last.about
        outcome = result.outcome
        if outcome is Outcome.UNTRACEABLE:
            ctx.counters.allowed -= ex.logged
            reason = f"cannot stop the exec to verify it: {_untraceable(result.err)}"
            reply.refuse(ctx, ex.n, ex.name, errno.EPERM, reason=reason)
            return
        self._log_allowed(result.last)
        if outcome is Outcome.KILLED:
            ctx.counters.allowed -= 1
            ctx.counters.killed += 1
            record(
                ctx,
                "syscall.killed",
                ex.n,
                ex.request,
                Decision(Action.KILL, 0, ex.decision.rule, True),
                level="error",
                reason=f"exec raced: executed {result.executed}, checked {ex.request.paths[0]}",
            )

    def _log_allowed(self, p: Pass) -> None:
        """Count and log an exec that was resumed, once (a phase it enters, before it runs)."""
        ex = p.about
        if not ex.logged:
            ex.logged = True
            allowed(self.ctx, ex.n, ex.request, ex.decision)

    def _judge(self, tgid: int, request: Request) -> str | None:
        """At the gate's stop, for an executable that is none of the checked files: None when
        it may run anyway (its path is the checked path: the file was replaced, e.g. by a
        package upgrade; or a path the policy allows), else its path for the log."""
        path = executed_path(self.ctx.resolver, tgid)
        if path is None:
            return "?"
        if path == request.paths[0]:
            return None
        again = self.ctx.engine.peek(dataclasses.replace(request, paths=(path,)))
        return None if again.action in (Action.ALLOW, Action.LOG) else path


def _untraceable(err: int) -> str:
    if err != errno.EPERM:
        return os.strerror(err)
    if proc.yama_ptrace_scope() == 3:
        return "ptrace is disabled (kernel.yama.ptrace_scope = 3)"
    return "it is traced by another process"
