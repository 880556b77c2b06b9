"""Helpers for the daemon tests: a real `seccomp-supervisor daemon` subprocess on a temporary
control socket, with a policy directory the test writes, and `run --daemon` clients."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from supervisor.daemon.client import DaemonUnavailable, request
from tests.helpers.run import SUPERVISOR, parse_log


class DaemonProcess:
    def __init__(self, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.env = env  # added to the daemon's environment
        self.policy_dir = tmp / "policies"
        self.policy_dir.mkdir(exist_ok=True)
        self.control = str(tmp / "run" / "control.sock")
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.logs: list[Path] = []

    def policy(self, name: str, text: str) -> str:
        (self.policy_dir / f"{name}.toml").write_text(text)
        return name

    def start(self, timeout: float = 20.0) -> None:
        self.starts += 1
        log = self.tmp / f"daemon-{self.starts}.log"
        self.logs.append(log)
        argv = [
            str(SUPERVISOR), "--log-format", "json", "--log-file", str(log), "daemon",
            "--control", self.control, "--policy-dir", str(self.policy_dir), *self.extra,
        ]  # fmt: skip
        env = None if self.env is None else {**os.environ, **self.env}
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(DaemonUnavailable):
                request(self.control, "status")
                return
            if self.proc.poll() is not None:
                pytest.fail(f"the daemon exited with {self.proc.returncode}\n{self.log_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the daemon did not answer within {timeout}s\n{self.log_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        return request(self.control, op, **fields)

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the daemon did not stop within {timeout}s after {sig}")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def file_count(self) -> int:
        """The daemon's open fds that are not sockets (client connections close on their own
        time): for checking that the fds it was sent are closed."""
        count = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            with contextlib.suppress(OSError):
                count += not os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith("socket:")
        return count

    def log_text(self) -> str:
        return "".join(p.read_text() for p in self.logs if p.exists())

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        events = parse_log(self.log_text())
        return [e for e in events if name is None or e.get("event") == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        pytest.fail(f"no {name} event (x{count}) within {timeout}s\n{self.log_text()[-3000:]}")


@contextlib.contextmanager
def running_daemon(
    tmp: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp, *extra, env=env)
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        internal = [
            e
            for e in d.events()
            if e.get("event")
            in ("supervisor.internal_error", "target.failed", "control.internal_error")
        ]
        assert not internal, internal


class RunClient:
    """`seccomp-supervisor run --daemon=CONTROL -p POLICY -- CMD` as a subprocess."""

    def __init__(
        self,
        daemon: DaemonProcess,
        policy: str,
        cmd: Sequence[str | os.PathLike[str]],
        stdin: int = subprocess.DEVNULL,
    ):
        self.log = daemon.tmp / f"run-{os.urandom(4).hex()}.log"
        self.argv = [
            str(SUPERVISOR), "--log-format", "json", "--log-file", str(self.log), "run",
            f"--daemon={daemon.control}", "-p", policy, "--", *map(os.fspath, cmd),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            self.argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def wait(self, timeout: float = 60.0) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            try:
                out, err = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # a descendant of the target holds the pipes
                self.proc.wait()
                out, err = b"", b"(stdout and stderr still held by a descendant)"
            pytest.fail(f"run --daemon hung: {self.argv}\n{err.decode()}\n{self.log_text()}")
        return self.proc.returncode, out.decode(), err.decode()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in parse_log(self.log_text()) if e.get("event") == name]

    def wait_for(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if found:
                return found[0]
            time.sleep(0.05)
        pytest.fail(f"run --daemon logged no {name} within {timeout}s\n{self.log_text()}")
