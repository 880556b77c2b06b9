"""Targets killed in the middle of notified syscalls, many threads at once, and a flood of
notifications: answers stay correct and the supervisor neither hangs nor crashes."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.run import HARMLESS, Files, Supervise, allow_list, deny_list, read_line
from tests.helpers.wait import wait_until

KILLED = 128 + signal.SIGKILL


@pytest.fixture
def fifo(files: Files) -> Path:
    path = files.dir / "fifo"
    os.mkfifo(path, 0o644)
    return path


def test_killed_by_itself_while_fifo_open_waits(
    supervise: Supervise, target_bin, files: Files, fifo: Path
) -> None:
    """The FIFO open (allowed, performed by the supervisor on a worker thread) never completes:
    the target SIGKILLs itself meanwhile."""
    policy = supervise.policy(allow_list(fifo))
    r = supervise(policy, [target_bin("killme"), "fifo-self", fifo], timeout=30)
    # It ended (no hang: supervise() fails the test after its timeout) as the target died.
    assert r.returncode == KILLED, r.explain()
    assert not [e for e in r.events if e.get("event") == "supervisor.failed"], r.explain()


def test_killed_from_outside_while_fifo_open_waits(
    supervise: Supervise, target_bin, files: Files, fifo: Path
) -> None:
    policy = supervise.policy(deny_list(files.secret))
    run_and_kill(supervise, policy, [target_bin("killme"), "fifo-wait", str(fifo)])


def test_killed_from_outside_during_many_opens(
    supervise: Supervise, target_bin, files: Files
) -> None:
    policy = supervise.policy(deny_list(files.secret))
    run_and_kill(supervise, policy, [target_bin("killme"), "loop-wait", str(files.allowed)])


def test_killed_by_itself_during_many_opens(supervise: Supervise, target_bin, files: Files) -> None:
    policy = supervise.policy(allow_list(files.allowed))
    r = supervise(policy, [target_bin("killme"), "loop-self", files.allowed], timeout=30)
    assert r.returncode == KILLED, r.explain()


def test_killed_during_denied_opens(supervise: Supervise, target_bin, files: Files) -> None:
    policy = supervise.policy(deny_list(files.secret))
    r = supervise(policy, [target_bin("killme"), "loop-self", files.secret], timeout=30)
    assert r.returncode == KILLED, r.explain()


def run_and_kill(supervise: Supervise, policy: Path, cmd: list[str]) -> None:
    log = supervise.log_file()
    proc = subprocess.Popen(
        supervise.argv(policy, cmd, log), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = read_line(proc, 20)
        m = re.fullmatch(r"pid=(\d+)\n", line)
        assert m, line
        os.kill(int(m.group(1)), signal.SIGKILL)
        rc = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the supervisor hung after its target was killed\n{log.read_text()}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert rc == KILLED, f"{rc}\n{stderr}\n{log.read_text()}"


def test_fifo_open_completes_when_a_writer_comes(
    supervise: Supervise, target_bin, files: Files, fifo: Path
) -> None:
    """A blocking open performed by the supervisor returns once the other end shows up, while
    the loop goes on serving others."""
    policy = supervise.policy(allow_list(fifo))
    log = supervise.log_file()
    proc = subprocess.Popen(
        supervise.argv(policy, [target_bin("killme"), "fifo-read", str(fifo)], log),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # A non-blocking open for writing fails with ENXIO until the target's open (performed
        # by the supervisor) is waiting at the other end.
        def writer() -> int | None:
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO or proc.poll() is not None:
                    raise
                return None

        w = wait_until(writer, "the target's open waiting at the other end of the FIFO")
        os.write(w, b"through the pipe\n")
        os.close(w)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"{out}\n{err}\n{log.read_text()}"
    assert out.strip() == "OK:through the pipe"


def threads_run(supervise: Supervise, target_bin, files: Files, policy: Path) -> None:
    r = supervise(
        policy,
        [target_bin("threads"), files.allowed, HARMLESS, files.secret, "32", "500"],
        timeout=240,
    )
    assert r.returncode == 0, r.explain()
    assert r.stdout.strip() == "allowed_ok=8000 denied_ok=8000 wrong=0", r.explain()


@pytest.mark.slow
def test_many_threads_deny_list(supervise: Supervise, target_bin, files: Files) -> None:
    threads_run(supervise, target_bin, files, supervise.policy(deny_list(files.secret)))


@pytest.mark.slow
def test_many_threads_allow_list(supervise: Supervise, target_bin, files: Files) -> None:
    threads_run(supervise, target_bin, files, supervise.policy(allow_list(files.allowed)))


@pytest.mark.slow
def test_flood(supervise: Supervise, target_bin, files: Files) -> None:
    """Four threads flood the supervisor with denied opens for 2 s; the main thread's allowed
    open in the middle of it completes, and the folded log counts every denial exactly."""
    policy = supervise.policy(deny_list(files.secret))
    r = supervise(policy, [target_bin("flood"), files.secret, files.allowed, "4", "2"], timeout=120)
    assert r.returncode == 0, r.explain()
    lines = r.lines
    assert len(lines) == 2, r.explain()
    m = re.fullmatch(r"main_open=(\S+) main_ms=([\d.]+)", lines[0])
    assert m and m.group(1) == f"OK:{HARMLESS}", r.explain()
    m2 = re.fullmatch(r"flood_calls=(\d+) flood_eacces=(\d+)", lines[1])
    assert m2, r.explain()
    calls, eacces = int(m2.group(1)), int(m2.group(2))
    assert calls == eacces > 1000, r.explain()
    # Identical events within 1 s are folded: far fewer lines than calls, and nothing lost.
    denied = [e for e in r.named("syscall.denied") if e.get("path") == str(files.secret)]
    assert len(denied) < calls / 10, f"{len(denied)} lines for {calls} calls"
    counted = sum(e.get("repeats", 1) for e in denied)
    assert counted == calls, f"log counts {counted} denials, the target saw {calls}"


def test_supervisor_stopped_and_continued_during_emulated_opens(
    supervise: Supervise, target_bin, files: Files
) -> None:
    """The supervisor itself is stopped and continued (SIGSTOP/SIGCONT, as job control, a
    debugger or the cgroup freezer do) hundreds of times while it performs opens for its
    target. Every open must still give the target the file it asked for, and the supervisor
    must carry on. With ADDFD_FLAG_SEND an interrupted ADDFD left the syscall answered with 0,
    an fd never given (the target read its stdin as the file), and the restarted ADDFD failed
    with EINPROGRESS (an internal error that took the supervisor down)."""
    data = files.dir / "data"
    data.write_bytes(b"x" * 3000)
    policy = supervise.policy(
        deny_list(files.secret)
    )  # every open inspected, allowed ones performed
    log = supervise.log_file()
    cmd = [target_bin("reopen"), data, "60000", "3000"]
    proc = subprocess.Popen(
        supervise.argv(policy, cmd, log),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        stops = 0
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGSTOP)
                os.kill(proc.pid, signal.SIGCONT)
                stops += 1
            time.sleep(0.002)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert stops > 50, stops  # the race was really run
    assert proc.returncode == 0 and out == "OK n=60000\n", f"{out}\n{err}\n{log.read_text()}"
    assert "supervisor.internal_error" not in log.read_text()
