"""What an `attach` may claim. The daemon may signal the target's pid (the kick of a target
recovered from systemd's fd store), so a client other than root may only name its own child,
and the uid is read from /proc, not taken from the client. The kick itself re-checks that the
pid still names the process recorded at attach."""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.daemon import systemd
from supervisor.kernel import proc as proc_facts
from supervisor.kernel.filter import build_filter
from supervisor.kernel.kcmp import same_file
from supervisor.target.launch import Launched, launch
from tests.helpers.daemon import DaemonProcess, RunClient, running_daemon
from tests.helpers.kernel import next_notification, notify_plan
from tests.helpers.run import Files, deny_list
from tests.helpers.wait import wait_until

NOBODY = 65534

# Run as nobody (a member of the daemon's --group) with /usr/bin/python3: the project's venv
# is not readable by nobody, and the client needs nothing but a socket. argv: control path,
# listener fd (inherited), then the pids to claim, "child" meaning a child it starts itself.
_CLIENT = r"""
import array, json, os, socket, subprocess, sys
path, fd = sys.argv[1], int(sys.argv[2])
child = subprocess.Popen(["sleep", "60"])
answers, keep = [], []
for claim in sys.argv[3:]:
    pid = child.pid if claim == "child" else int(claim)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    req = {"v": 1, "id": 1, "op": "attach", "policy": "p", "pid": pid, "argv": ["x"], "uid": 0}
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
    s.sendmsg([json.dumps(req).encode() + b"\n"], anc)
    answers.append({"claimed": pid, **json.loads(s.makefile().readline())})
    keep.append(s)
print(json.dumps({"child": child.pid, "answers": answers}), flush=True)
sys.stdin.readline()
child.kill()
"""


@pytest.fixture
def listener_target() -> Iterator[Launched]:
    """A real target under a real filter (its notified syscall never happens), for its
    listener fd."""
    launched = launch(["sleep", "60"], build_filter(notify_plan("mkdir", "mkdirat")))
    try:
        yield launched
    finally:
        os.kill(launched.pid, signal.SIGKILL)
        os.waitpid(launched.pid, 0)
        launched.listener.close()
        os.close(launched.pidfd)
        os.close(launched.exec_status_fd)


def _attach(daemon: DaemonProcess, fd: int, **meta: Any) -> tuple[socket.socket, dict[str, Any]]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(daemon.control)
    req = {"v": 1, "id": 1, "op": "attach", "policy": "p", "argv": ["x"], "uid": 0, **meta}
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
    s.sendmsg([json.dumps(req).encode() + b"\n"], anc)
    return s, json.loads(s.makefile().readline())


def test_a_group_member_may_claim_only_its_own_child(
    world_dir: Path, files: Files, listener_target: Launched
) -> None:
    with running_daemon(world_dir, "--group", "nogroup") as daemon:
        daemon.policy("p", deny_list(files.secret, name="p"))
        fd = listener_target.listener.fileno()
        client = subprocess.Popen(
            ["/usr/bin/python3", "-c", _CLIENT, daemon.control, str(fd)]
            + ["1", str(os.getpid()), str(listener_target.pid), "child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=[fd],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
        )
        try:
            assert client.stdout is not None and client.stdin is not None
            report = json.loads(client.stdout.readline())
            init, me, other, child = report["answers"]
            # pid 1, this (root) test process and the root target: not the client's children.
            for refused in (init, me, other):
                assert not refused["ok"] and refused["error"]["code"] == "bad_pid", refused
                assert "not a child of the client" in refused["error"]["message"]
            assert child["ok"] and not child["result"]["existing"], json.dumps(child)
            (target,) = daemon.request("ps")["targets"]
            # The uid is the process's own (nobody), not the 0 the client claimed.
            assert target["pid"] == report["child"] and target["uid"] == NOBODY
            shown = daemon.request("show", target=target["target"])
            assert shown["peer"]["uid"] == NOBODY
            refusals = daemon.wait_for("control.attach_refused", 3)
            assert {r["peer_uid"] for r in refusals} == {NOBODY}
            client.stdin.write("\n")
            client.stdin.flush()
            assert client.wait(30) == 0
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()


def test_root_must_name_a_live_process_unless_it_says_exited(
    tmp_path: Path, files: Files, listener_target: Launched
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: no process has this pid (until it is reused, unlikely this soon)
    with running_daemon(tmp_path) as daemon:
        daemon.policy("p", deny_list(files.secret, name="p"))
        fd = listener_target.listener.fileno()
        for pid in (2**40, 2**31, -3, 0):  # no pid at all (once an OverflowError in cffi)
            s, answer = _attach(daemon, fd, pid=pid)
            s.close()
            assert not answer["ok"] and answer["error"]["code"] == "bad_request", answer
        s, answer = _attach(daemon, fd, pid=gone.pid)
        s.close()
        assert not answer["ok"] and answer["error"]["code"] == "bad_pid", answer
        assert f"no process {gone.pid}" in answer["error"]["message"]
        # A re-attach after `run` reaped its child: recorded, never checked or acted on.
        s, answer = _attach(daemon, fd, pid=gone.pid, exited=True, uid=1234)
        assert answer["ok"], answer
        (target,) = daemon.request("ps")["targets"]
        assert target["pid"] == gone.pid and target["uid"] == 1234
        s.close()


def test_the_kick_skips_a_pid_that_names_another_process() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        start = proc_facts.start_time(proc.pid)
        assert start is not None
        assert systemd.kick_if_same(proc.pid, start + 1) is None
        assert systemd.kick_if_same(proc.pid, None) is None
        # Never stopped and continued: the parent would see the continue with WCONTINUED.
        assert os.waitpid(proc.pid, os.WCONTINUED | os.WNOHANG) == (0, 0)
        assert systemd.kick_if_same(proc.pid, start) == [proc.pid]
        waited, raw = os.waitpid(proc.pid, os.WCONTINUED | os.WNOHANG)
        assert waited == proc.pid and os.WIFCONTINUED(raw)
    finally:
        proc.kill()
        proc.wait()


def test_run_daemon_reattaches_after_its_child_was_reaped(
    tmp_path: Path, files: Files, world_dir: Path
) -> None:
    """The child exits, its background grandchild goes on; the daemon is killed and restarted:
    `run` re-attaches with `exited` (its pid may name another process by now) and the
    grandchild's opens are decided by the new daemon. The grandchild waits in a read of a pipe
    (no notified syscall): a notification the killed daemon had received would never come
    again, and without the child's pid `run` cannot kick the tree (README, "Crash and
    restart": a grandchild that left the tree is not kicked)."""
    out = world_dir / "out"
    script = f"exec 3<&0; (read go <&3; cat {files.secret} {files.allowed} > {out} 2>&1) & exit 0"
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        run = RunClient(daemon, policy, ["sh", "-c", script], stdin=subprocess.PIPE)
        run.wait_for("daemon.attached")
        assert run.proc is not None
        _wait_no_children(run.proc.pid)  # its child `sh` exited and was reaped
        daemon.stop(signal.SIGKILL)
        daemon.start()
        run.wait_for("daemon.reattached")
        assert run.proc.stdin is not None
        run.proc.stdin.write(b"go\n")
        run.proc.stdin.flush()  # communicate() in run.wait closes it
        code, _, err = run.wait(60)
        assert code == 0, err
        text = out.read_text()
        assert "harmless" in text and "TOPSECRET" not in text, text
        assert not run.events("target.kicked")


def _wait_no_children(pid: int) -> None:
    def children() -> list[str]:
        return [
            c
            for tid in os.listdir(f"/proc/{pid}/task")
            for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        ]

    wait_until(lambda: not children(), lambda: f"process {pid} still has children {children()}")


def test_kcmp_tells_listeners_apart(listener_target: Launched) -> None:
    """Also the launcher's: a process that holds a listener already (``listener_target``'s)
    passes it to the next child over fork; that copy is not the new target's listener."""
    other = launch(
        ["sh", "-c", "mkdir /nonexistent-kcmp/x 2>/dev/null; exit 0"],
        build_filter(notify_plan("mkdir", "mkdirat")),
    )
    fd = listener_target.listener.fileno()
    copy = os.dup(fd)
    try:
        assert same_file(fd, copy)
        assert not same_file(fd, other.listener.fileno())
        # Another process's copy (the launcher took ours from the child the same way).
        assert same_file(fd, fd, os.getpid(), os.getpid())
        # The other target's notification comes on its own listener, not on the first one.
        note = next_notification(other.listener)
        assert note is not None and note.nr >= 0
    finally:
        os.close(copy)
        os.kill(other.pid, signal.SIGKILL)
        os.waitpid(other.pid, 0)
        other.listener.close()
        os.close(other.pidfd)
        os.close(other.exec_status_fd)


def test_one_listener_is_never_supervised_twice(
    tmp_path: Path, files: Files, listener_target: Launched
) -> None:
    with running_daemon(tmp_path) as daemon:
        daemon.policy("p", deny_list(files.secret, name="p"))
        daemon.policy("weak", deny_list(files.allowed, name="weak"))
        fd, pid = listener_target.listener.fileno(), listener_target.pid
        first, answer = _attach(daemon, fd, pid=pid, session="s1")
        assert answer["ok"] and not answer["result"]["existing"]
        tid = answer["result"]["target"]
        # The daemon served a request after the attach: the target's task has started.
        assert [t["target"] for t in daemon.request("ps")["targets"]] == [tid]
        fds_before = daemon.file_count()
        # The same listener again, same policy, no session (a dup of it, too): that target.
        copy = os.dup(fd)
        try:
            for which in (fd, copy):
                s, answer = _attach(daemon, which, pid=pid)
                s.close()
                assert answer["ok"] and answer["result"] == {"target": tid, "existing": True}
        finally:
            os.close(copy)
        # Under another policy: refused, whatever the session says.
        for session in (None, "s1", "s2"):
            extra = {} if session is None else {"session": session}
            s, answer = _attach(daemon, fd, pid=pid, policy="weak", **extra)
            s.close()
            assert not answer["ok"] and answer["error"]["code"] == "already_attached", answer
            assert f"target {tid}" in answer["error"]["message"]
        assert len(daemon.wait_for("control.attach_refused", 3)) == 3
        # A session token naming another listener's target is refused too.
        other = launch(["sleep", "60"], build_filter(notify_plan("mkdir", "mkdirat")))
        try:
            s, answer = _attach(daemon, other.listener.fileno(), pid=other.pid, session="s1")
            s.close()
            assert not answer["ok"] and answer["error"]["code"] == "bad_session", answer
        finally:
            os.kill(other.pid, signal.SIGKILL)
            os.waitpid(other.pid, 0)
            other.listener.close()
            os.close(other.pidfd)
            os.close(other.exec_status_fd)
        (target,) = daemon.request("ps")["targets"]
        assert target["target"] == tid and target["policy"] == "p"
        # Every refused or duplicate fd is closed (connections aside: sockets are not counted).
        wait_until(lambda: daemon.file_count() <= fds_before, "every refused fd closed")
        first.close()
