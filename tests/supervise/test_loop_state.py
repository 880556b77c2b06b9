"""The loop in-process with stateful rules: Supervisor.set_policy (a reload) starts the
counters of `limit` rules afresh."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import trio

from supervisor.kernel.filter import build_filter
from supervisor.policy import parse_policy, plan_filter
from supervisor.supervise.loop import Supervisor
from supervisor.target.launch import launch
from tests.helpers.wait import wait_until_async

SYS_GETPPID = 110  # x86_64


async def test_set_policy_resets_counters(tmp_path: Path) -> None:
    ready, go, out = tmp_path / "ready", tmp_path / "go", tmp_path / "out"
    policy = parse_policy(
        'default = "allow"\n[[rule]]\nname = "two"\nsyscalls = ["getppid"]\n'
        'action = "allow"\nlimit = 2\nover_errno = "EAGAIN"\n',
        name="reload-test",
    )
    script = textwrap.dedent(
        f"""
        import ctypes, os, time
        libc = ctypes.CDLL(None, use_errno=True)
        def calls(n):
            return "".join("o" if libc.syscall({SYS_GETPPID}) >= 0 else "x" for _ in range(n))
        first = calls(3)
        open({str(ready)!r}, "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        open({str(out)!r}, "w").write(first + "/" + calls(3))
        """
    )
    launched = launch([sys.executable, "-S", "-c", script], build_filter(plan_filter(policy)))
    sup = Supervisor(launched.listener, policy)

    async def reload_when_ready() -> None:
        await wait_until_async(ready.exists, "the target ready")
        sup.set_policy(policy)
        go.touch()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reload_when_ready)
            await sup.run()
    launched.listener.close()
    _, status = os.waitpid(launched.pid, 0)
    os.close(launched.pidfd)
    os.close(launched.exec_status_fd)
    assert os.WEXITSTATUS(status) == 0
    assert out.read_text() == "oox/oox"  # without the reset: "oox/xxx"
    assert sup.counters.denied == 2
