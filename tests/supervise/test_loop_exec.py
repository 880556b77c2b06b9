"""The loop in-process with an exec `once` rule: Supervisor.set_policy (a reload) starts it
afresh, so the next exec after a reload is allowed again."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from supervisor.kernel.filter import build_filter
from supervisor.policy import parse_policy, plan_filter
from supervisor.supervise.loop import Supervisor
from supervisor.target.launch import launch
from tests.helpers.wait import wait_until_async


async def test_set_policy_resets_once(tmp_path: Path) -> None:
    ready, go, out = tmp_path / "ready", tmp_path / "go", tmp_path / "out"
    policy = parse_policy(
        'default = "allow"\n[[rule]]\nname = "workload"\nsyscalls = ["execve", "execveat"]\n'
        'once = true\nerrno = "EACCES"\naction = "allow"\n',
        name="once-reload",
    )
    # The launcher's exec of sh is the first exec; /bin/true is refused, then allowed once more
    # after the reload, then refused again.
    script = (
        f"/bin/true 2>/dev/null; a=$?; : > {ready}; "
        f"while [ ! -e {go} ]; do :; done; "
        f"/bin/true; b=$?; /bin/true 2>/dev/null; c=$?; echo $a/$b/$c > {out}"
    )
    launched = launch(["/bin/sh", "-c", script], build_filter(plan_filter(policy)))
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
    assert out.read_text().strip() == "126/0/126"  # without the reset: 126/126/126
    assert sup.counters.denied == 2
