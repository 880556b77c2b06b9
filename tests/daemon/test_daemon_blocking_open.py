"""An emulated open that blocks (a FIFO with no writer) runs on a worker thread. When its target
goes away the thread is abandoned, still blocked; if its open succeeds later, the fd it gets is
closed by the thread itself, not leaked in the daemon."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from tests.helpers.daemon import DaemonProcess, RunClient, running_daemon
from tests.helpers.run import Files, deny_list
from tests.helpers.wait import wait_until


def _daemon_fds_on(daemon: DaemonProcess, path: Path) -> list[str]:
    found = []
    for fd in os.listdir(f"/proc/{daemon.pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{daemon.pid}/fd/{fd}") == str(path):
                found.append(fd)
    return found


def test_an_abandoned_blocking_open_closes_its_fd(
    tmp_path: Path, files: Files, world_dir: Path
) -> None:
    fifo = world_dir / "fifo"
    os.mkfifo(fifo, 0o644)
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        run = RunClient(daemon, policy, ["cat", fifo])
        # The daemon resolved the path (its O_PATH fd on the FIFO) and is opening it.
        wait_until(lambda: _daemon_fds_on(daemon, fifo), "the daemon's open of the FIFO")
        (child,) = Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split()
        os.kill(int(child), signal.SIGKILL)
        code, _, err = run.wait(30)
        assert code == 128 + signal.SIGKILL, err
        daemon.wait_for("target.detached")
        # The abandoned thread is still in open(); a writer lets it finish.
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            wait_until(lambda: not _daemon_fds_on(daemon, fifo), "no daemon fd on the FIFO")
        finally:
            os.close(writer)
        assert daemon.request("status")["targets"] == 0
