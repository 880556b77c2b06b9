"""The daemon dies (kill -9, or SIGTERM) while targets wait in notified syscalls: nothing is
allowed while it is down, `run --daemon` re-attaches when it is back, and the targets finish.

Also the kernel hazard of supervisor/recover.py: a notification the dead daemon had *received*
(here an open of a FIFO, performed on a worker thread, so it stays received and unanswered) is
never delivered again by the kernel; `run` kicks the target after re-attaching, so the syscall
is restarted and notified to the new daemon."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.daemon import RunClient, running_daemon
from tests.helpers.run import Files, deny_list
from tests.helpers.wait import held_by_supervisor, thread_states, wait_until


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_lines(path: Path, count: int) -> None:
    wait_until(lambda: len(_lines(path)) >= count, f"{path}: {count} lines")


def _targets_held(runs: list[RunClient]) -> bool:
    """Every target (the child of its `run`) waits for an answer that no daemon will give."""
    return all(
        held_by_supervisor(int(child))
        for run in runs
        for child in Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split()
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_targets_wait_while_the_daemon_is_down_and_finish_after_restart(
    tmp_path: Path, files: Files, target_bin: Callable[[str], Path], sig: int
) -> None:
    exe = target_bin("daemon_opener")
    threads, iters = 2, 150
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("restart", deny_list(files.secret, name="restart"))
        outs = [files.root / f"out-{i}.txt" for i in range(3)]
        runs = [
            RunClient(
                daemon,
                policy,
                [exe, out, files.allowed, files.secret, str(threads), str(iters), "5000"],
            )
            for out in outs
        ]
        for out in outs:
            _wait_lines(out, 10)
        daemon.stop(sig)
        # Answers sent before the daemon died are used up: every thread waits in a notification.
        wait_until(
            lambda: _targets_held(runs),
            lambda: (
                "every target waiting for an answer: "
                + "; ".join(str(thread_states(r.proc.pid)) for r in runs)
            ),
        )
        frozen = [len(_lines(out)) for out in outs]
        # No progress while the daemon is down (every iteration needs notified opens answered):
        # a window in which nothing may happen, a pause by nature.
        time.sleep(1.5)
        assert [len(_lines(out)) for out in outs] == frozen
        assert all(r.proc.poll() is None for r in runs), "a target ended while the daemon was down"
        for out, n in zip(outs, frozen, strict=True):
            assert n < threads * iters, f"{out} finished before the daemon was stopped"
        daemon.start()
        for run, out in zip(runs, outs, strict=True):
            code, _, err = run.wait(60)
            text = out.read_text()
            ok = "allowed=ok denied=EACCES"
            odd = [line for line in text.splitlines() if not line.endswith(ok)]
            assert code == 0, f"{err}\nunexpected lines: {odd}\n{run.log_text()}"
            assert "LEAK" not in text
            assert text.splitlines()[-1] == "done"
            assert len(text.splitlines()) == threads * iters + 1
            assert run.events("daemon.lost") and run.events("daemon.reattached")
        # The restarted daemon served them: it saw their notifications.
        assert len(daemon.events("target.attached")) >= 6


def test_a_notification_the_dead_daemon_had_received_is_delivered_again(
    tmp_path: Path, files: Files, target_bin: Callable[[str], Path]
) -> None:
    exe = target_bin("daemon_opener")
    fifo = files.dir / "fifo"
    os.mkfifo(fifo)
    out = files.root / "out.txt"
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("fifo", deny_list(files.secret, name="fifo"))
        run = RunClient(
            daemon, policy, [exe, out, files.allowed, files.secret, "1", "5", "0", fifo]
        )
        # The daemon has received the FIFO open and performs it on a worker thread: it blocks
        # there until a writer comes. Wait until that thread is inside the open.
        _wait_daemon_thread_in(daemon.pid, "wait_for_partner")
        daemon.stop(signal.SIGKILL)
        daemon.start()
        run.wait_for("daemon.reattached")
        run.wait_for("target.kicked")
        # The new daemon must now be the reader blocked in the FIFO open: a writer can open.
        fd = _open_writer(fifo)
        os.close(fd)
        code, _, err = run.wait(30)
        assert code == 0, f"{err}\n{run.log_text()}"
        assert _lines(out)[0] == "fifo opened"
        assert _lines(out)[-1] == "done"


def _wait_daemon_thread_in(pid: int, wchan: str) -> None:
    def found() -> bool:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/task/{tid}/wchan").read_text() == wchan:
                    return True
        return False

    wait_until(found, f"a thread of the daemon waiting in {wchan}")


def _open_writer(fifo: Path) -> int:
    """A writer on ``fifo``, once a reader has it open (ENXIO until then)."""

    def writer() -> int | None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            return None

    return wait_until(writer, "a reader of the FIFO")  # an fd > 2 (stdio is open): true


def test_no_daemon_no_target(tmp_path: Path, world_dir: Path) -> None:
    from tests.helpers.daemon import DaemonProcess

    daemon = DaemonProcess(tmp_path)  # never started
    marker = world_dir / "started"
    run = RunClient(daemon, "default", ["sh", "-c", f"touch {marker}"])
    code, _, err = run.wait(30)
    assert code == 125
    assert "daemon is not running" in err
    assert not marker.exists()
