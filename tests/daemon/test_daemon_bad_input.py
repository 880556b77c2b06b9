"""Input that used to take the daemon down: JSON nested deeper than the decoder's recursion
limit on the control socket, a policy file nested deeper than tomllib's, and (in-process) a bug
while serving one connection. Each closes or fails only what it concerns; the daemon keeps
serving its other clients and keeps the policy in force."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from supervisor.daemon import ops
from supervisor.daemon.client import Client, DaemonError
from supervisor.daemon.server import Daemon, DaemonConfig, open_control_socket
from tests.helpers.daemon import RunClient, running_daemon
from tests.helpers.run import HARMLESS, SECRET, SUPERVISOR, Files, deny_list

NESTED_POLICY = "a = " + "[" * 3000 + "]" * 3000 + "\n"


def _ask(path: str, data: bytes) -> list[dict[str, Any]]:
    """Send raw bytes; every line the daemon answers until it closes the connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(data)
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    s.close()
    return [json.loads(line) for line in got.splitlines() if line]


def test_deeply_nested_json_closes_only_that_connection(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as daemon:
        keeper = Client(daemon.control)
        keeper.request("subscribe")  # another client, connected throughout
        for data in (
            b"[" * 2000 + b"\n",
            b'{"a":' * 5000 + b"\n",
            b'{"v":1,"id":1,"op":"status","x":' + b"[" * 30000 + b"\n",
        ):
            answers = _ask(daemon.control, data)
            assert answers and answers[-1]["error"]["code"] == "bad_json", answers
            assert "nested too deeply" in answers[-1]["error"]["message"]
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert keeper.request("status")["pid"] == daemon.pid
        assert daemon.request("status")["clients"] >= 1
        keeper.close()
        assert len(daemon.events("control.bad_input")) == 3


def test_reload_of_a_deeply_nested_policy_keeps_the_old_one(tmp_path: Path, files: Files) -> None:
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        gate = files.root / "gate"
        cmd = [
            "sh",
            "-c",
            f"while [ ! -e {gate} ]; do sleep 0.05; done; cat {files.secret} {files.allowed}; true",
        ]
        run = RunClient(daemon, policy, cmd)
        run.wait_for("daemon.attached")
        # Would allow the secret if it loaded; it cannot, so the deny-list stays in force.
        (daemon.policy_dir / "p.toml").write_text(
            deny_list(files.allowed, name="p") + NESTED_POLICY
        )
        daemon.send(signal.SIGHUP)
        daemon.wait_for("daemon.reloaded")
        failed = daemon.wait_for("policy.reload_failed")[0]
        assert "nested too deeply" in failed["error"] and "p.toml" in failed["error"]
        # ... and through the control socket: the same answer, the daemon still there.
        result = daemon.request("reload")
        assert "p" in result["failed"] and result["changed"] == []
        gate.touch()
        code, out, _ = run.wait(30)
        assert code == 0 and HARMLESS in out and SECRET not in out
        assert daemon.proc is not None and daemon.proc.poll() is None
        # A target started now gets the policy in force too, not the broken file.
        later = RunClient(daemon, policy, ["cat", files.secret, files.allowed])
        code, out, _ = later.wait(30)
        assert HARMLESS in out and SECRET not in out


def test_policy_check_and_run_report_a_deeply_nested_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text('version = 1\ndefault = "allow"\n' + NESTED_POLICY)
    for argv in (["policy", "check", str(path)], ["run", "-p", str(path), "--", "true"]):
        r = subprocess.run(
            [str(SUPERVISOR), *argv], capture_output=True, text=True, timeout=60, check=False
        )
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert len(lines) == 1 and str(path) in lines[0] and "nested too deeply" in lines[0]
        if argv[0] == "run":
            assert r.returncode == 125


class _Log:
    """A structlog-like logger that records events (bind returns itself)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def bind(self, **_: Any) -> _Log:
        return self

    def __getattr__(self, level: str) -> Any:
        def emit(event: str, **fields: Any) -> None:
            self.events.append((event, fields))

        return emit


async def test_a_bug_serving_one_connection_closes_only_that_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort in _serve_connection: an exception nothing else handles (here a broken
    ``ps`` in the op table) is logged with the peer, answered ``internal_error``, and only that
    connection closes."""
    path = str(tmp_path / "control.sock")
    log = _Log()
    daemon = Daemon(DaemonConfig(control=path), open_control_socket(path), log=log)

    def buggy_ps(host: Any, call: Any) -> dict[str, Any]:
        raise RuntimeError("a bug in ps")

    monkeypatch.setitem(ops.OPS, "ps", ops.Op(buggy_ps))
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        other = await trio.to_thread.run_sync(Client, path)
        victim = await trio.to_thread.run_sync(Client, path)
        try:
            assert (await trio.to_thread.run_sync(other.request, "status"))["clients"] == 2

            def ask_ps() -> str:
                try:
                    victim.request("ps")
                except DaemonError as e:
                    return e.code
                return "answered"

            assert await trio.to_thread.run_sync(ask_ps) == "internal_error"
            assert await trio.to_thread.run_sync(victim.sock.recv, 100) == b""  # closed
            status = await trio.to_thread.run_sync(other.request, "status")
            assert status["clients"] == 1 and status["pid"] > 0
        finally:
            other.close()
            victim.close()
        errors = [f for e, f in log.events if e == "control.internal_error"]
        assert len(errors) == 1 and "a bug in ps" in errors[0]["error"]
        assert errors[0]["peer_pid"] > 0
        daemon.stop()
