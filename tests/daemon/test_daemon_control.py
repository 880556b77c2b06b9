"""The control socket of a real daemon: commands, authorisation, bad input, subscriptions,
reload and shutdown. Targets are real processes under real filters (`run --daemon`)."""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from supervisor.daemon.client import Client, DaemonError
from supervisor.daemon.protocol import MAX_LINE
from tests.helpers.daemon import DaemonProcess, RunClient, running_daemon
from tests.helpers.run import HARMLESS, SECRET, SUPERVISOR, Files, deny_list
from tests.helpers.wait import wait_until


def cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SUPERVISOR), *args, "--control", daemon.control],
        capture_output=True,
        text=True,
        timeout=30,
    )


def raw_connect(daemon: DaemonProcess) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(daemon.control)
    return s


def read_lines(s: socket.socket) -> list[dict[str, Any]]:
    """Every line until the daemon closes the connection."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return [json.loads(line) for line in data.splitlines() if line]


def gated_target(files: Files, gate: Path, *paths: Path) -> list[str]:
    """A shell that waits for ``gate`` to exist, then cats ``paths``."""
    cats = "; ".join(f"cat {p}" for p in paths)
    return ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done; {cats}; true"]


def test_socket_mode_and_status_ps_show(tmp_path: Path, files: Files) -> None:
    with running_daemon(tmp_path) as daemon:
        st = os.stat(daemon.control)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert stat.S_IMODE(os.stat(os.path.dirname(daemon.control)).st_mode) == 0o755
        status = cli(daemon, "status")
        assert status.returncode == 0 and "targets: 0" in status.stdout
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        gate = files.root / "gate"
        run = RunClient(daemon, policy, gated_target(files, gate, files.secret, files.allowed))
        wait_until(lambda: daemon.request("ps")["targets"], what="target attached")
        ps = cli(daemon, "ps")
        assert ps.returncode == 0 and " p " in ps.stdout and "sh -c" in ps.stdout
        gate.touch()
        code, out, err = run.wait(30)
        assert code == 0 and SECRET not in out and HARMLESS in out, err
        # The target is gone once every process of the filter exited.
        wait_until(lambda: not daemon.request("ps")["targets"], what="target detached")
        detached = daemon.wait_for("target.detached")[0]
        assert detached["denied"] >= 1 and detached["notifications"] >= detached["allowed"]
        status_json = json.loads(cli(daemon, "status", "--json").stdout)
        assert status_json["totals"]["denied"] >= 1 and status_json["totals"]["targets"] == 1
        with Client(daemon.control) as c:
            with pytest.raises(DaemonError) as e:
                c.request("show", target=999)
            assert e.value.code == "not_found"
            assert c.request("status")["clients"] >= 1  # the connection survived the error


def test_show_counts_by_syscall(tmp_path: Path, files: Files) -> None:
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        gate = files.root / "gate"
        script = f"cat {files.secret}; while [ ! -e {gate} ]; do sleep 0.05; done"
        run = RunClient(daemon, policy, ["sh", "-c", script])
        wait_until(lambda: daemon.request("ps")["targets"], what="target attached")
        tid = daemon.request("ps")["targets"][0]["target"]
        wait_until(
            lambda: daemon.request("show", target=tid)["counters"]["denied"] >= 1,
            what="the denial counted",
        )
        shown = daemon.request("show", target=tid)
        assert shown["counters"]["by_syscall"].get("openat", 0) >= 1
        assert shown["peer"]["pid"] == run.proc.pid
        gate.touch()
        assert run.wait(30)[0] == 0


def test_commands_without_a_daemon(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    for cmd in ("status", "ps", "reload"):
        r = cli(daemon, cmd)
        assert r.returncode == 3 and "daemon is not running" in r.stderr


@pytest.mark.parametrize("how", ["cli", "sighup"])
def test_reload_changes_decisions_and_a_broken_policy_keeps_the_old(
    tmp_path: Path, files: Files, how: str
) -> None:
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        gate1, gate2 = files.root / "gate1", files.root / "gate2"
        cmd = [
            "sh",
            "-c",
            f"while [ ! -e {gate1} ]; do sleep 0.05; done; cat {files.secret} {files.allowed}; "
            f"while [ ! -e {gate2} ]; do sleep 0.05; done; cat {files.secret} {files.allowed}; "
            "true",
        ]
        run = RunClient(daemon, policy, cmd)
        wait_until(lambda: daemon.request("ps")["targets"], what="target attached")
        # Swap: the secret becomes readable, the harmless file is denied.
        daemon.policy("p", deny_list(files.allowed, name="p"))
        if how == "cli":
            r = cli(daemon, "reload")
            assert r.returncode == 0 and "changed p" in r.stdout, r.stderr
        else:
            daemon.send(signal.SIGHUP)
            daemon.wait_for("daemon.reloaded")
        gate1.touch()
        # The first cats ran under the new policy: the harmless file was denied.
        wait_until(
            lambda: any(
                e.get("path") == str(files.allowed) for e in daemon.events("syscall.denied")
            ),
            "the harmless file denied after the reload",
        )
        # A policy that does not load: the running one stays in force.
        daemon.policy("p", "this is = = not toml")
        if how == "cli":
            r = cli(daemon, "reload")
            assert r.returncode == 1 and "kept the old 'p'" in r.stdout
        else:
            daemon.send(signal.SIGHUP)
            daemon.wait_for("daemon.reloaded", 2)
        assert daemon.events("policy.reload_failed")
        gate2.touch()
        code, out, _ = run.wait(30)
        assert out.count(SECRET) == 2 and HARMLESS not in out
        assert daemon.request("status")["reloads"] == 2


def test_attach_refuses_what_is_not_a_listener_and_closes_the_fds(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as daemon:
        before = daemon.file_count()  # started: it answered a request
        meta = {"policy": "default", "pid": os.getpid(), "argv": ["x"], "uid": 0}
        r, w = os.pipe()
        try:
            for fds, code in (([r], "not_a_listener"), ([r, w], "bad_fds"), ([], "bad_fds")):
                s = raw_connect(daemon)
                line = json.dumps({"v": 1, "id": 1, "op": "attach", **meta}).encode() + b"\n"
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
                s.sendmsg([line], anc if fds else [])
                answers = read_lines(s)
                s.close()
                assert answers[-1]["error"]["code"] == code
            # fds sent with a request that takes none
            s = raw_connect(daemon)
            s.sendmsg(
                [b'{"v":1,"id":2,"op":"status"}\n'],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]).tobytes())],
            )
            assert read_lines(s)[-1]["error"]["code"] == "bad_fds"
            s.close()
        finally:
            os.close(r)
            os.close(w)
        wait_until(
            lambda: daemon.file_count() <= before,
            lambda: f"every fd sent closed: {os.listdir(f'/proc/{daemon.pid}/fd')}",
        )


def test_bad_input_closes_only_that_connection(tmp_path: Path) -> None:
    with running_daemon(tmp_path, "--client-timeout", "1") as daemon:
        keeper = Client(daemon.control)
        keeper.request("subscribe")  # held: no idle timeout
        cases = [
            (b"garbage\n", "bad_json"),
            (b"[1,2]\n", "bad_request"),
            (b'{"v":2,"id":1,"op":"status"}\n', "unsupported_version"),
            (b'{"v":1,"op":"status"}\n', "bad_request"),
            (b"x" * (MAX_LINE + 10), "line_too_long"),
            (b'{"v":1,"id":1,"op":"sta', "timeout"),  # a peer that stalls mid-line
            (b"", "timeout"),  # a peer that connects and says nothing
        ]
        for data, code in cases:
            s = raw_connect(daemon)
            s.sendall(data)
            answers = read_lines(s)
            s.close()
            assert answers and answers[-1]["error"]["code"] == code, (data[:40], answers)
        # A peer that closes early, mid-line.
        s = raw_connect(daemon)
        s.sendall(b'{"v":1,')
        s.close()
        # An unknown op is an error answer; the connection stays.
        with Client(daemon.control) as c:
            with pytest.raises(DaemonError):
                c.request("frobnicate")
            assert c.request("status")
        assert keeper.request("status")["targets"] == 0
        keeper.close()


def test_a_refused_client_is_told_and_logged(world_dir: Path) -> None:
    with running_daemon(world_dir) as daemon:
        os.chmod(daemon.control, 0o666)  # let the unprivileged user reach SO_PEERCRED
        answer = _as_nobody(daemon.control)
        assert answer["error"]["code"] == "not_authorised"
        refused = daemon.wait_for("control.refused")[0]
        assert refused["peer_uid"] == 65534


def test_a_member_of_the_group_is_allowed(world_dir: Path) -> None:
    with running_daemon(world_dir, "--group", "nogroup") as daemon:
        st = os.stat(daemon.control)
        assert st.st_gid == 65534
        answer = _as_nobody(daemon.control)
        assert answer["ok"] and answer["result"]["targets"] == 0


def _as_nobody(path: str) -> dict[str, Any]:
    code = (
        "import socket, sys, json\n"
        "s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
        "try:\n"
        '    s.sendall(b\'{"v":1,"id":1,"op":"status"}\\n\')\n'
        "except BrokenPipeError:\n"
        "    pass  # a refused client may be closed before it writes\n"
        "print(s.makefile().readline())\n"
    )
    r = subprocess.run(
        ["/usr/bin/python3", "-c", code, path],
        capture_output=True,
        text=True,
        timeout=30,
        user=65534,
        group=65534,
        extra_groups=[],
    )
    assert r.returncode == 0, r.stderr
    result: dict[str, Any] = json.loads(r.stdout)
    return result


def test_subscribers_get_events_and_a_slow_one_is_dropped(tmp_path: Path, files: Files) -> None:
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(f"{files.dir}/nope-*", name="p"))
        fast = Client(daemon.control, timeout=None)
        fast.request("subscribe")
        events: list[dict[str, Any]] = []

        def drain() -> None:
            with contextlib.suppress(OSError, ValueError):
                while True:
                    events.append(fast.read_message())

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        slow = raw_connect(daemon)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b'{"v":1,"id":1,"op":"subscribe"}\n')
        wait_until(lambda: daemon.request("status")["subscribers"] == 2, what="two subscribers")
        # Thousands of distinct denials (distinct paths are not folded), never read by `slow`;
        # paced so that a reader that does read keeps up even on a busy machine.
        script = (
            "import time\n"
            "for i in range(5000):\n"
            "    try: open(f'" + str(files.dir) + "/nope-{i}')\n"
            "    except OSError: pass\n"
            "    if i % 20 == 0: time.sleep(0.004)\n"
        )
        run = RunClient(daemon, policy, [sys.executable, "-c", script])
        assert run.wait(60)[0] == 0
        wait_until(lambda: daemon.request("status")["subscribers"] == 1, what="slow one dropped")
        assert daemon.wait_for("control.dropped")
        wait_until(
            lambda: sum(e.get("event") == "syscall.denied" for e in events) >= 5000,
            what="every denial seen by the subscriber that reads",
        )
        denied = [e for e in events if e.get("event") == "syscall.denied"]
        assert denied[0]["target"] >= 1 and denied[0]["path"].startswith(str(files.dir))
        assert not [e for e in events if e.get("error")]  # the reader was never dropped
        fast.close()
        slow.close()


def test_sigterm_is_bounded_and_leaves_no_socket(tmp_path: Path, files: Files) -> None:
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        gate = files.root / "gate"
        run = RunClient(daemon, policy, gated_target(files, gate, files.allowed))
        wait_until(lambda: daemon.request("ps")["targets"], what="target attached")
        idle = raw_connect(daemon)
        sub = Client(daemon.control)
        sub.request("subscribe")
        # It stops although a client, a subscriber and a target are attached (stop() fails the
        # test if it does not, after a deadline: how fast is not the question here).
        assert daemon.stop(signal.SIGTERM, timeout=30) == 0
        assert not os.path.exists(daemon.control)
        assert daemon.events("daemon.stopped")
        idle.close()
        sub.close()
        # The target waits for a daemon (run holds its listener copy); give it one.
        daemon.start()
        run.wait_for("daemon.reattached")
        gate.touch()
        code, out, _ = run.wait(30)
        assert code == 0 and HARMLESS in out


@pytest.mark.parametrize(
    ("policy", "message"),
    [("no-such-policy", "no policy named"), ("/etc/passwd", "policy name the daemon knows")],
)
def test_run_daemon_with_a_policy_the_daemon_lacks_starts_nothing(
    tmp_path: Path, world_dir: Path, policy: str, message: str
) -> None:
    with running_daemon(tmp_path) as daemon:
        marker = world_dir / "started"
        code, _, err = RunClient(daemon, policy, ["touch", marker]).wait(30)
        assert code == 125 and message in err
        assert not marker.exists()
        assert not daemon.request("ps")["targets"]
