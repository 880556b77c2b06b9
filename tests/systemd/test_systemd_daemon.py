"""The real `seccomp-supervisor daemon` under a service manager played by the test: sd_notify
messages over a NOTIFY_SOCKET the test owns (READY, STATUS, WATCHDOG, FDSTORE with the
listener fd, FDSTOREREMOVE, STOPPING), a restart that takes the targets back from the fd store
(LISTEN_FDS with their FDNAMEs, as systemd passes them), and socket activation with
`systemd-socket-activate`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.daemon.client import Client, request
from supervisor.kernel.filter import build_filter
from supervisor.policy import load_policy, plan_filter
from supervisor.policy_path import find_policy
from supervisor.target.launch import launch
from tests.helpers.run import SUPERVISOR
from tests.helpers.systemd import NotifySocket
from tests.helpers.wait import held_by_supervisor, thread_states, wait_until

LISTENER_LINK = "anon_inode:seccomp notify"
# Re-creates systemd's hand-over: the fds given (inherited at high numbers) become 3, 4, ...
# with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, then exec (the pid stays, so LISTEN_PID is right).
EXEC_WITH_FDS = """
import os, sys
fds = [int(x) for x in sys.argv[1].split(",")] if sys.argv[1] else []
for i, fd in enumerate(fds):
    os.dup2(fd, 3 + i)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=sys.argv[2])
os.execv(sys.argv[3], sys.argv[3:])
"""


class Service:
    """The daemon as a notify service: our NOTIFY_SOCKET, a watchdog, a control socket."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.notify = NotifySocket(str(tmp / "notify"))
        self.control = str(tmp / "run" / "control.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        self.starts += 1
        log = self.tmp / f"daemon-{self.starts}.log"
        return [str(SUPERVISOR), "--log-format", "json", "--log-file", str(log), "daemon",
                "--control", self.control]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**os.environ, "NOTIFY_SOCKET": self.notify.env_value, "WATCHDOG_USEC": "400000"}

    def start(self, stored: list[tuple[int, str]] = ()) -> None:  # type: ignore[assignment]
        high = [os.dup(fd) for fd, _ in stored]
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", EXEC_WITH_FDS, ",".join(map(str, high)),
                 ":".join(n for _, n in stored), *self.argv()],
                env=self.env(), pass_fds=high, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            for fd in high:
                os.close(fd)

    def log_text(self) -> str:
        return "".join(p.read_text() for p in sorted(self.tmp.glob("daemon-*.log")))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        return self.proc.wait(15)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path)
    yield s
    s.close()


def run_daemon_target(service: Service, script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(SUPERVISOR), "--log-format", "json", "--log-file", str(service.tmp / "run.log"),
         "run", f"--daemon={service.control}", "-p", "default", "--", "sh", "-c", script],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def target_held(run: subprocess.Popen[bytes]) -> bool:
    """The target of ``run`` (its child) waits for an answer to a notified syscall."""
    children = Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()
    return bool(children) and all(held_by_supervisor(int(c)) for c in children)


def kill_tree(run: subprocess.Popen[bytes]) -> None:
    """After a failure: the target too (an orphan with no supervisor would loop for ever)."""
    if run.poll() is None:
        for child in Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        run.kill()
        run.wait()


def take_stored_target(service: Service) -> tuple[dict[str, object], list[tuple[int, str]]]:
    """The FDSTORE pair of one target: (its metadata, [(fd, FDNAME), ...])."""
    fields, (meta_fd,) = service.notify.wait_for("FDSTORE")
    assert fields["FDNAME"].startswith("meta-")
    key = fields["FDNAME"].removeprefix("meta-")
    fields, (listener,) = service.notify.wait_for("FDSTORE")
    assert fields["FDNAME"] == f"listener-{key}"
    assert os.readlink(f"/proc/self/fd/{listener}") == LISTENER_LINK
    meta = json.loads(os.pread(meta_fd, 1 << 16, 0))
    return meta, [(meta_fd, f"meta-{key}"), (listener, f"listener-{key}")]


def test_notify_messages_of_the_daemon(service: Service) -> None:
    service.start()
    fields, _ = service.notify.wait_for("READY", timeout=20)
    assert fields == {"READY": "1", "STATUS": "supervising 0 targets"}
    # READY=1 means the control socket accepts.
    assert request(service.control, "status")["targets"] == 0
    # The pings keep coming (at half of WATCHDOG_USEC: test_systemd_notify checks the period
    # on trio's virtual clock; a timed check here would measure the machine's load).
    for _ in range(3):
        service.notify.wait_for("WATCHDOG", "1", timeout=60)

    stop = service.tmp / "stop"
    run = run_daemon_target(service, f"while [ ! -e {stop} ]; do sleep 0.05; done")
    try:
        meta, stored = take_stored_target(service)
        assert meta["policy"] == "default" and meta["uid"] == 0 and meta["id"] == 1
        assert meta["argv"][:2] == ["sh", "-c"] and isinstance(meta["pid"], int)
        assert isinstance(meta["start_time"], int)  # with the pid, names the process
        service.notify.wait_for("STATUS", "supervising 1 target")
        stop.touch()
        assert run.wait(20) == 0
    finally:
        kill_tree(run)
    removed = {service.notify.wait_for("FDSTOREREMOVE")[0]["FDNAME"] for _ in range(2)}
    assert removed == {name for _, name in stored}
    service.notify.wait_for("STATUS", "supervising 0 targets")
    for fd, _ in stored:
        os.close(fd)
    assert service.stop() == 0
    service.notify.wait_for("STOPPING", "1")


def test_restart_takes_targets_back_from_the_fd_store(service: Service) -> None:
    """kill -9 the daemon while a target keeps making notified syscalls; none is allowed while
    no daemon runs (the stored listener copy keeps them waiting); a new daemon given the fd
    store's contents supervises the target again, as a recovered target."""
    service.start()
    service.notify.wait_for("READY", timeout=20)
    out = service.tmp / "count"
    stop = service.tmp / "stop"
    run = run_daemon_target(
        service, f"while [ ! -e {stop} ]; do cat /etc/hostname >/dev/null; echo x >> {out}; done"
    )
    try:
        meta, stored = take_stored_target(service)
        wait_until(lambda: out.exists() and out.stat().st_size > 0, "the target running")
        service.stop(signal.SIGKILL)
        # A syscall answered just before the kill completes; then the tree waits for answers.
        wait_until(
            lambda: target_held(run),
            lambda: f"the target waiting for an answer: {thread_states(run.pid)}",
        )
        down = out.stat().st_size
        time.sleep(1.0)  # a window in which nothing may happen: a pause by nature
        assert out.stat().st_size == down, "a notified syscall ran while no daemon was up"

        service.start(stored)
        for fd, _ in stored:
            os.close(fd)
        service.notify.wait_for("READY", timeout=20)
        targets = request(service.control, "ps")["targets"]
        assert [(t["pid"], t["recovered"]) for t in targets] == [(meta["pid"], True)]
        wait_until(lambda: out.stat().st_size > down, "the target carrying on")
        stop.touch()
        assert run.wait(20) == 0
        # Gone: the recovered target leaves the store under the name it was stored with.
        removed = {service.notify.wait_for("FDSTOREREMOVE")[0]["FDNAME"] for _ in range(2)}
        assert removed == {name for _, name in stored}
    finally:
        kill_tree(run)
    assert service.stop() == 0, service.log_text()


def test_a_target_only_the_fd_store_holds_survives_a_restart(service: Service) -> None:
    """No `run` waits for this target: the test launches it, attaches its listener and closes
    its own copy, so the daemon's and the fd store's are the only ones (as for a target whose
    launcher has gone). kill -9 the daemon: the store's copy keeps the notified syscalls waiting;
    the next daemon takes it back from the store, kicks it, and the target carries on."""
    service.start()
    service.notify.wait_for("READY", timeout=20)
    out, stop = service.tmp / "count", service.tmp / "stop"
    policy = load_policy(find_policy("default"))
    script = f"while [ ! -e {stop} ]; do cat /etc/hostname >/dev/null; echo x >> {out}; done"
    launched = launch(["sh", "-c", script], build_filter(plan_filter(policy)), wait_killable=False)
    try:
        with Client(service.control) as client:
            meta = {"policy": "default", "pid": launched.pid, "argv": ["sh"], "uid": 0}
            client.request("attach", fd=launched.listener.fileno(), **meta)
            launched.listener.close()  # from here only the daemon's and the store's
            stored_meta, stored = take_stored_target(service)
        assert stored_meta["pid"] == launched.pid and isinstance(stored_meta["start_time"], int)
        wait_until(lambda: out.exists() and out.stat().st_size > 0, "the target running")
        service.stop(signal.SIGKILL)
        # A syscall answered just before the kill completes; then the tree waits for answers.
        wait_until(
            lambda: held_by_supervisor(launched.pid),
            lambda: f"the target waiting for an answer: {thread_states(launched.pid)}",
        )
        down = out.stat().st_size
        time.sleep(1.0)  # a window in which nothing may happen: a pause by nature
        assert out.stat().st_size == down, "a notified syscall ran while no daemon was up"
        assert os.waitpid(launched.pid, os.WNOHANG) == (0, 0)  # waiting, not failed

        service.start(stored)
        for fd, _ in stored:
            os.close(fd)
        service.notify.wait_for("READY", timeout=20)
        (target,) = request(service.control, "ps")["targets"]
        assert target["pid"] == launched.pid and target["recovered"]
        # The stored process, alive, is kicked.
        wait_until(lambda: '"target.kicked"' in service.log_text(), "the recovered target kicked")
        wait_until(lambda: out.stat().st_size > down, "the target carrying on")
        stop.touch()
        _, raw = os.waitpid(launched.pid, 0)
        assert os.waitstatus_to_exitcode(raw) == 0
    finally:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.kill(launched.pid, signal.SIGKILL)
            os.waitpid(launched.pid, 0)
        launched.listener.close()
        os.close(launched.pidfd)
        os.close(launched.exec_status_fd)
    assert service.stop() == 0, service.log_text()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="no activator")
@pytest.mark.parametrize("fdname", [True, False])
def test_socket_activation(tmp_path: Path, fdname: bool) -> None:
    path = str(tmp_path / "control.sock")
    activator = subprocess.Popen(
        ["systemd-socket-activate", "-l", path, *(["--fdname=control"] if fdname else []),
         "--", str(SUPERVISOR), "--log-format", "json", "--log-file", str(tmp_path / "log"),
         "daemon", "--control", path],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until(lambda: os.path.exists(path), "the activator listening")
        # Nothing started before the first client: a window for a wrong start to show.
        time.sleep(0.2)
        exe = os.readlink(f"/proc/{activator.pid}/exe")
        assert exe.endswith("/systemd-socket-activate"), exe
        r = subprocess.run(
            [str(SUPERVISOR), "status", "--control", path, "--json"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        status = json.loads(r.stdout)
        assert status["pid"] == activator.pid  # the activator exec'd the daemon in its place
        log = (tmp_path / "log").read_text()
        assert '"systemd.activated"' in log
        # The socket stays the activator's: a second client is served by the same daemon.
        assert request(path, "status")["pid"] == activator.pid
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.close()
    finally:
        activator.send_signal(signal.SIGTERM)
        code = activator.wait(15)
    assert code == 0, (tmp_path / "log").read_text()
