"""The trio supervisor loop in-process (pytest-trio): real targets under real filters.

These check what the end-to-end tests cannot see from outside: the loop ends by itself when the
target tree is gone, leaves no fd behind, keeps serving while an open blocks on a worker thread,
and counts what it did.
"""

from __future__ import annotations

import os
import sys
import textwrap
import threading
from pathlib import Path

import trio

from supervisor.kernel.filter import build_filter
from supervisor.policy import Policy, parse_policy, plan_filter
from supervisor.supervise.loop import Supervisor
from supervisor.target.launch import Launched, launch
from tests.helpers.wait import wait_until_async


def _policy(tmp: Path) -> Policy:
    return parse_policy(
        textwrap.dedent(
            f"""
            default = "allow"
            [[rule]]
            name = "secret"
            path = ["{tmp}/secret"]
            action = "deny"
            errno = "EACCES"
            """
        ),
        name="loop-test",
    )


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _close(launched: Launched) -> int:
    _, status = os.waitpid(launched.pid, 0)
    os.close(launched.pidfd)
    os.close(launched.exec_status_fd)
    return status


async def test_loop_serves_until_the_tree_is_gone_and_leaks_nothing(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    (tmp_path / "public").write_text("p")
    policy = _policy(tmp_path)
    program = build_filter(plan_filter(policy))
    before = _open_fds()
    script = (
        "import os\n"
        f"open('{tmp_path}/public').read()\n"
        "try:\n"
        f"    open('{tmp_path}/secret').read()\n"
        "except PermissionError:\n"
        "    os._exit(7)\n"
        "os._exit(1)\n"
    )
    launched = launch([sys.executable, "-S", "-c", script], program)
    sup = Supervisor(launched.listener, policy)
    with trio.fail_after(30):
        await sup.run()
    launched.listener.close()
    status = _close(launched)
    assert os.WEXITSTATUS(status) == 7
    assert sup.counters.denied == 1
    assert sup.counters.allowed >= 1
    assert sup.counters.by_syscall["openat"] >= 2
    assert _open_fds() == before


async def test_a_blocked_open_does_not_stall_other_notifications(tmp_path: Path) -> None:
    """One thread opens a FIFO with no writer (the supervisor performs that open on a worker
    thread); the other thread's opens must still be served meanwhile."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "public").write_text("p")
    done = tmp_path / "done"
    policy = parse_policy(
        textwrap.dedent(
            f"""
            default = "allow"
            [[rule]]
            name = "watched"
            syscalls = ["openat"]
            path = ["{tmp_path}/**"]
            action = "allow"
            """
        ),
        name="fifo-test",
    )
    script = textwrap.dedent(
        f"""
        import os, threading
        t = threading.Thread(target=lambda: open('{fifo}').read())
        t.start()
        for _ in range(200):
            os.close(os.open('{tmp_path}/public', os.O_RDONLY))
        os.close(os.open('{done}', os.O_WRONLY | os.O_CREAT, 0o600))
        t.join()
        """
    )
    launched = launch([sys.executable, "-S", "-c", script], build_filter(plan_filter(policy)))
    sup = Supervisor(launched.listener, policy)

    released_by: list[str] = []

    def release(who: str) -> None:
        if not released_by:
            released_by.append(who)
            os.close(os.open(fifo, os.O_WRONLY))

    # If the loop itself blocked in the FIFO open, nothing in trio could run: a plain thread
    # unblocks it after a while so that the test fails instead of hanging.
    watchdog = threading.Timer(20, release, args=("watchdog",))
    watchdog.start()

    async def release_fifo_when_done() -> None:
        await wait_until_async(done.exists, "the other opens done")
        release("loop")

    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(release_fifo_when_done)
                await sup.run()
    finally:
        watchdog.cancel()
    launched.listener.close()
    assert os.WEXITSTATUS(_close(launched)) == 0
    # The 200 opens and the create were served while the FIFO open was still blocked.
    assert released_by == ["loop"]
    assert sup.counters.allowed >= 202
