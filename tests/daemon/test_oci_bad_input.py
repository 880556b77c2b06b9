"""Bad input on the OCI socket: each hand-over is refused and logged (``oci.refused``), the
process it names is killed when it is the one handed over (a seccomp-filtered child of the peer)
and left alone otherwise, and nothing else changes: the daemon serves on, leaks no fd, and takes
the next good hand-over."""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.target.launch import Launched
from tests.helpers.daemon import DaemonProcess, running_daemon
from tests.helpers.kernel import notify_plan, start
from tests.helpers.oci import hand_over, state_message
from tests.helpers.wait import wait_until

POLICY = 'version = 1\nname = "plain"\ndescription = "allow"\ndefault = "allow"\n'


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    oci = str(tmp_path / "run" / "oci.sock")
    with running_daemon(tmp_path, "--oci-socket", oci, "--oci-timeout", "2") as d:
        d.policy("plain", POLICY)
        yield d


def _oci(d: DaemonProcess) -> str:
    return str(Path(d.control).with_name("oci.sock"))


def _child() -> Launched:
    """A child of ours under a filter with a listener: what runc hands over."""
    return start(notify_plan("mkdirat"), ["/bin/sleep", "1000"])


def _killed(child: Launched) -> bool:
    _, status = os.waitpid(child.pid, 0)
    child.listener.close()
    os.close(child.pidfd)
    os.close(child.exec_status_fd)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _msg(pid: int, **kw: object) -> bytes:
    return json.dumps(state_message(pid, metadata="policy=plain", **kw)).encode()  # type: ignore[arg-type]


def _refusals(d: DaemonProcess, n: int) -> list[dict[str, object]]:
    return d.wait_for("oci.refused", count=n)


def test_bad_hand_overs_are_refused_and_kill_only_the_process_handed_over(
    daemon: DaemonProcess,
) -> None:
    oci = _oci(daemon)
    baseline = daemon.fd_count()
    cases: list[tuple[str, bool]] = []  # (reason fragment, whether the child was killed)

    # The process handed over, with a bad message: killed.
    for payload_of, fds_of, reason in (
        (lambda c: _msg(c.pid), lambda c: [], '"fds" names 1 fds, 0 came'),
        (lambda c: _msg(c.pid), lambda c: [c.listener.fileno(), 0], '"fds" names 1 fds, 2 came'),
        (lambda c: _msg(c.pid, fds=("other",)), lambda c: [c.listener.fileno()], "seccompFd"),
        (lambda c: _msg(c.pid), lambda c: [0], "not a seccomp listener"),
        (
            lambda c: _msg(c.pid)[:-1] + b',"x":' + b"[" * 100000,
            lambda c: [c.listener.fileno()],
            "nested too deeply",
        ),
        (
            lambda c: json.dumps(state_message(c.pid, metadata="policy=plain\nlog=debug")).encode(),
            lambda c: [c.listener.fileno()],
            "reserved",
        ),
        (
            lambda c: json.dumps(state_message(c.pid, metadata="colour=blue")).encode(),
            lambda c: [c.listener.fileno()],
            "unknown key",
        ),
        (lambda c: _msg(c.pid) + b"{}", lambda c: [c.listener.fileno()], "data after"),
    ):
        child = _child()
        hand_over(oci, payload_of(child), fds_of(child))
        refused = _refusals(daemon, len(cases) + 1)[-1]
        assert reason in str(refused["reason"]), refused
        assert refused["pid"] == child.pid and refused["killed"] is True, refused
        assert _killed(child)
        cases.append((reason, True))

    # Oversized, and a peer that stalls mid-JSON: refused, the process killed.
    for parts, reason in (
        (lambda c: [b'{"pid":%d,"x":"' % c.pid + b"a" * (2 << 20) + b'"}'], "larger than"),
        (lambda c: [b'{"pid":%d,"fds":["seccompFd"],' % c.pid], "no complete hand-over"),
    ):
        child = _child()
        held = hand_over(oci, parts(child), [child.listener.fileno()], close=False)
        refused = _refusals(daemon, len(cases) + 1)[-1]
        assert reason in str(refused["reason"]), refused
        assert refused["killed"] is True
        assert _killed(child)
        assert held is not None
        held.close()
        cases.append((reason, True))

    # Garbage: nobody to kill; the fd is closed.
    child = _child()
    hand_over(oci, b"\x00garbage\xff", [child.listener.fileno()])
    refused = _refusals(daemon, len(cases) + 1)[-1]
    assert "bad JSON" in str(refused["reason"]) and refused["killed"] is False
    cases.append(("bad JSON", False))
    os.kill(child.pid, signal.SIGKILL)
    _killed(child)

    # A pid that is not the process handed over (no filter): refused, left alone.
    bystander = subprocess.Popen(["/bin/sleep", "1000"])
    child = _child()
    try:
        hand_over(oci, _msg(bystander.pid), [child.listener.fileno()])
        refused = _refusals(daemon, len(cases) + 1)[-1]
        assert "not under a seccomp filter" in str(refused["reason"])
        assert refused["killed"] is False
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        os.kill(child.pid, signal.SIGKILL)
        _killed(child)
    cases.append(("not under a seccomp filter", False))

    # The init died during the hand-over.
    child = _child()
    os.kill(child.pid, signal.SIGKILL)
    os.waitpid(child.pid, 0)
    hand_over(oci, _msg(child.pid), [child.listener.fileno()])
    refused = _refusals(daemon, len(cases) + 1)[-1]
    assert "no process" in str(refused["reason"]) and refused["killed"] is False
    child.listener.close()
    os.close(child.pidfd)
    os.close(child.exec_status_fd)

    # Nothing else changed: the daemon serves, holds no fd more, takes a good hand-over.
    assert daemon.request("status")["targets"] == 0
    wait_until(
        lambda: daemon.fd_count() <= baseline,  # a status probe may still be open in it
        what="the daemon's fds back to baseline",
    )
    child = _child()
    try:
        hand_over(oci, _msg(child.pid, cid="good"), [child.listener.fileno()])
        daemon.wait_for("oci.handover")
        targets = daemon.request("ps")["targets"]
        assert [t["container"]["id"] for t in targets] == ["good"]
        assert targets[0]["pid"] == child.pid
    finally:
        os.kill(child.pid, signal.SIGKILL)
        _killed(child)
    wait_until(lambda: daemon.request("status")["targets"] == 0, what="the target gone")


def test_several_messages_fds_in_the_first(daemon: DaemonProcess) -> None:
    oci = _oci(daemon)
    child = _child()
    try:
        data = _msg(child.pid, cid="split")
        hand_over(oci, [data[:10], data[10:50], data[50:]], [child.listener.fileno()])
        daemon.wait_for("oci.handover")
        assert [t["container"]["id"] for t in daemon.request("ps")["targets"]] == ["split"]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        _killed(child)
    # Fds with a later message too: refused (the kernel ends a read at the fds of a message,
    # so the second ones are seen after the first bytes), the process killed.
    child = _child()
    data = _msg(child.pid, cid="split2")
    sock = hand_over(oci, [data[:10]], [child.listener.fileno()], close=False)
    assert sock is not None
    r, w = os.pipe()
    sock.sendmsg(
        [data[10:]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]).tobytes())]
    )
    refused = daemon.wait_for("oci.refused")[-1]
    sock.close()
    os.close(r)
    os.close(w)
    assert refused["reason"] == "fds after the first message", refused
    assert refused["killed"] is True
    assert _killed(child)
