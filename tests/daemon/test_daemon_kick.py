"""The kernel hazard behind supervisor/recover.py, on the bare listener: a notification that was
received (RECV: state SENT) and never answered is not delivered again — but SIGSTOP+SIGCONT
(``kick``) restarts the syscall and notifies it afresh, unless the filter has
WAIT_KILLABLE_RECV, where only a fatal signal ends that wait."""

from __future__ import annotations

import os
import select
import signal

import pytest

from supervisor.kernel.filter import build_filter
from supervisor.kernel.proc import process_tree
from supervisor.target.launch import launch
from supervisor.target.recover import kick
from tests.helpers.kernel import next_notification, notify_plan
from tests.helpers.wait import wait_until


def _pending(fd: int, timeout: float) -> bool:
    r, _, _ = select.select([fd], [], [], timeout)
    return bool(r)


@pytest.mark.parametrize("wait_killable", [False, True], ids=["interruptible", "killable"])
def test_kick_redelivers_a_received_notification(wait_killable: bool) -> None:
    # sh -c 'mkdir ...': the mkdir is notified; nothing else is.
    launched = launch(
        ["/bin/sh", "-c", "mkdir /nonexistent-dir/x 2>/dev/null; exit 7"],
        build_filter(notify_plan("mkdir", "mkdirat")),
        wait_killable=wait_killable,
    )
    listener = launched.listener
    try:
        first = next_notification(listener)
        assert first is not None
        # Received and never answered, as by a daemon that died right after RECV.
        assert listener.id_valid(first.id)
        assert not _pending(listener.fileno(), 0.5), "the kernel delivered it twice"
        kicked = kick(launched.pid)
        assert launched.pid in kicked
        if wait_killable:
            # The wait is killable only: still the same, still waiting, nothing new.
            assert not _pending(listener.fileno(), 1.0)
            assert listener.id_valid(first.id)
            listener.send_error(first.id, 1)
        else:
            again = next_notification(listener)
            assert again is not None and again.id != first.id
            assert (again.nr, again.args[:2]) == (first.nr, first.args[:2])
            assert not listener.id_valid(first.id)
            listener.send_error(again.id, 1)
        _, status = os.waitpid(launched.pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7
    finally:
        listener.close()
        os.close(launched.pidfd)
        os.close(launched.exec_status_fd)
        try:
            os.kill(launched.pid, signal.SIGKILL)
            os.waitpid(launched.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_process_tree_finds_descendants() -> None:
    import subprocess

    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        wait_until(lambda: len(process_tree(proc.pid)) >= 3, "the shell and its two sleeps")
        assert process_tree(proc.pid)[0] == proc.pid
    finally:
        for p in reversed(process_tree(proc.pid)):
            os.kill(p, signal.SIGKILL)
        proc.wait()
