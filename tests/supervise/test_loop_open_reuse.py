"""The emulated open checks its notification (ID_VALID) after the resolver has taken its handles
on /proc/TID/{root,cwd,fd/N} and before it opens anything: a thread that is gone by then (its tid
free for reuse by another process) gets no open performed, so no O_CREAT/O_TRUNC side effect in
whatever /proc/TID names by then. In-process, a real target under a real filter; the resolver is
wrapped to kill the target right after it resolved the emulated open's path."""

from __future__ import annotations

import os
import select
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import trio

from supervisor.kernel.filter import build_filter
from supervisor.policy import parse_policy, plan_filter
from supervisor.supervise.loop import Supervisor
from supervisor.target.launch import launch
from supervisor.target.resolve import PathResolver, Resolved


class _KillAfterResolving(PathResolver):
    """Resolves as usual; when the emulated open (the call with the target's creds) has resolved
    ``victim``, kills the target and waits until it has exited."""

    def __init__(self, victim: bytes, pidfd: int, pid: int) -> None:
        self.victim, self.pidfd, self.pid = victim, pidfd, pid
        self.killed = False

    def resolve(self, tid: int, dirfd: int | None, path: bytes, **kw: Any) -> Resolved:
        r = super().resolve(tid, dirfd, path, **kw)
        if path == self.victim and kw.get("creds") is not None and not self.killed:
            self.killed = True
            os.kill(self.pid, signal.SIGKILL)
            select.select([self.pidfd], [], [], 10)  # readable once the process has exited
        return r


async def test_no_open_for_a_thread_gone_after_resolution(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    policy = parse_policy(
        textwrap.dedent(
            f"""
            default = "allow"
            [[rule]]
            name = "secret"
            path = ["{tmp_path}/secret"]
            action = "deny"
            """
        ),
        name="reuse-test",
    )
    script = f"import os\nos.open({str(victim)!r}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n"
    launched = launch([sys.executable, "-S", "-c", script], build_filter(plan_filter(policy)))
    sup = Supervisor(launched.listener, policy)
    hook = _KillAfterResolving(os.fsencode(victim), launched.pidfd, launched.pid)
    sup.context.resolver = hook
    with trio.fail_after(30):
        await sup.run()
    launched.listener.close()
    _, status = os.waitpid(launched.pid, 0)
    os.close(launched.pidfd)
    os.close(launched.exec_status_fd)
    assert hook.killed
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not victim.exists()  # the open was never performed
