"""The exec handler: decide an execve/execveat, resume an inspected allow and verify what it
ran (see the package docstring)."""

from __future__ import annotations

import dataclasses
import errno
import os
import time

import trio

from supervisor.kernel import proc
from supervisor.kernel.filter import arch_name
from supervisor.kernel.memory import TargetGone, TargetMemoryError
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal
from supervisor.kernel.seccomp import Notification
from supervisor.policy import Action, Decision, Request
from supervisor.policy.match.argv import EXEC_SYSCALLS
from supervisor.supervise import reply
from supervisor.supervise.act import act, allowed
from supervisor.supervise.context import Context
from supervisor.supervise.exec.argv import read_argv
from supervisor.supervise.exec.verify import (
    PendingExec,
    exe_or_none,
    executed_path,
    expected_files,
    wait_for_exe_change,
)
from supervisor.supervise.records import record
from supervisor.supervise.requests import budget_facts, read_paths
from supervisor.target.tree import kill_tree


class ExecCalls:
    """The exec handler of one Supervisor, and the execs it still has to verify."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # By the tid that exec'd AND by its tgid (after an exec the process has only the tgid).
        self.pending: dict[int, PendingExec] = {}
        self._threads = trio.CapacityLimiter(16)  # threads watching execs land

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
        try:
            tgid = proc.tgid(n.pid)
            pidfd = pidfd_open(tgid)
        except OSError:
            # Gone, or a failure of ours (EMFILE...): that one is answered (EPERM), never left
            # waiting for ever.
            if not ctx.listener.id_valid(n.id):
                raise TargetGone() from None
            raise
        try:
            if not ctx.listener.id_valid(n.id):
                raise TargetGone()  # the pidfd may name another process by now
            expected = expected_files(ctx.resolver, n.pid, checked_fd)
            old_exe = exe_or_none(tgid)
        except BaseException:
            os.close(pidfd)
            raise
        pending = PendingExec(
            n, request, decision, tgid, pidfd, old_exe, expected, request.paths[0]
        )
        previous = self.pending.get(tgid)
        if previous is not None and not previous.done:
            # Two execs in flight in one process (two threads): whichever lands must be one of
            # the files checked for either.
            pending.expected |= previous.expected
            self._finish(previous)
        self.pending[tgid] = pending
        self.pending[n.pid] = pending
        allowed(ctx, n, request, decision)
        reply.resume(ctx, n)
        ctx.spawn(self._watch, pending)

    async def _watch(self, p: PendingExec) -> None:
        try:
            # First on a worker thread that looks every 50 us (trio's own sleeps are rounded up
            # to whole milliseconds by epoll): an exec usually completes within a millisecond.
            # When every watcher thread is busy, straight to the polls below.
            if self._threads.available_tokens > 0:
                await trio.to_thread.run_sync(
                    wait_for_exe_change,
                    p,
                    limiter=self._threads,
                    abandon_on_cancel=True,
                )
            delay = 0.001
            while not p.done:
                self.check(p, final=False)
                if p.done:
                    return
                await trio.sleep(delay)
                age = time.monotonic() - p.started
                delay = 0.001 if age < 1.0 else 0.005 if age < 10.0 else 0.25
        except trio.Cancelled:
            self._finish(p)  # the supervisor is stopping: every target is gone
            raise
        except Exception as e:  # never take the supervisor down; fail closed: the check failed
            self.ctx.log.error(
                "supervisor.internal_error",
                pid=p.tgid,
                syscall=p.request.syscall,
                error=f"{type(e).__name__}: {e}",
            )
            if not p.done:
                kill_tree(p.pidfd, p.tgid)
                self._finish(p)

    def before_notification(self, n: Notification) -> bool:
        """Called for a notification of a thread or process with an exec pending: check now.
        False when the process was killed (the caller answers the notification with an
        error)."""
        p = self.pending.get(n.pid)
        if p is None:
            return True
        # The exec-ing thread itself making a syscall: its execve has returned.
        return self.check(p, final=n.pid == p.n.pid)

    def check(self, p: PendingExec, *, final: bool) -> bool:
        """Compare the process's executable with what was checked; kill on a mismatch. Returns
        False when the process was killed or is gone. ``final``: the exec syscall is over, so
        an unchanged executable ends the check."""
        if p.done:
            return True
        try:
            exe = proc.exe_identity(p.tgid)
            # The pid still names our process (and so /proc/TGID was its) while the pidfd
            # can signal it.
            pidfd_send_signal(p.pidfd, 0)
        except OSError:
            self._finish(p)  # exited (or a kernel oddity: no exe): nothing runs
            return False
        if exe == p.old_exe:
            if final:
                self._finish(p)
            return True
        if exe in p.expected or self._allowed_anyway(p):
            self._finish(p)
            return True
        self._kill(p)
        return False

    def _allowed_anyway(self, p: PendingExec) -> bool:
        """The executed file differs from the checked one, but its path is the checked path
        (replaced in between, e.g. by a package upgrade) or one the policy lets through."""
        path = executed_path(self.ctx.resolver, p.tgid)
        if path is None:
            return False
        if path == p.checked:
            return True
        again = self.ctx.engine.peek(dataclasses.replace(p.request, paths=(path,)))
        return again.action in (Action.ALLOW, Action.LOG)

    def _kill(self, p: PendingExec) -> None:
        ctx = self.ctx
        executed = executed_path(ctx.resolver, p.tgid) or "?"
        kill_tree(p.pidfd, p.tgid)
        ctx.counters.allowed -= 1
        ctx.counters.killed += 1
        decision = Decision(Action.KILL, 0, p.decision.rule, True)
        record(
            ctx,
            "syscall.killed",
            p.n,
            p.request,
            decision,
            level="error",
            reason=f"exec raced: executed {executed}, checked {p.checked}",
        )
        self._finish(p)

    def _finish(self, p: PendingExec) -> None:
        if p.done:
            return
        p.done = True
        for key in (p.tgid, p.n.pid):
            if self.pending.get(key) is p:
                del self.pending[key]
        os.close(p.pidfd)

    def close(self) -> None:
        """Forget every pending check (the supervisor is stopping)."""
        for p in list(self.pending.values()):
            self._finish(p)
