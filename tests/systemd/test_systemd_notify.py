"""supervisor.daemon.systemd over a real NOTIFY_SOCKET that the test owns (no systemd needed): the
datagrams, the fds they carry, the watchdog task, socket activation and fd-store recovery."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from supervisor.daemon import fdstore, systemd
from supervisor.daemon.systemd import Notifier
from supervisor.kernel import proc as proc_facts
from tests.helpers.systemd import NotifySocket
from tests.helpers.wait import wait_until_async


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(str(tmp_path / "notify"))
    yield s
    s.close()


def same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def test_notify_address() -> None:
    assert systemd.notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert systemd.notify_address("@abstract/name") == b"\0abstract/name"
    assert systemd.notify_address("vsock:2:1234") is None
    assert systemd.notify_address("relative") is None


def test_disabled_without_notify_socket() -> None:
    env: dict[str, str] = {}
    n = Notifier.from_environ(env)
    assert not n.enabled
    assert not n.ready()
    assert not n.store_target("k", 0, {"pid": 1})


def test_from_environ_unsets(notify_socket: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.env_value}
    n = Notifier.from_environ(env, unset=True)
    assert n.enabled and "NOTIFY_SOCKET" not in env
    n.close()


def test_ready_status_stopping(notify_socket: NotifySocket) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": notify_socket.env_value})
    assert n.ready(status="supervising 0 targets")
    assert notify_socket.recv() == ({"READY": "1", "STATUS": "supervising 0 targets"}, [])
    assert n.status("supervising\n3 targets")  # one line, whatever the caller passes
    assert notify_socket.recv() == ({"STATUS": "supervising 3 targets"}, [])
    assert n.stopping() and notify_socket.recv() == ({"STOPPING": "1"}, [])
    assert n.watchdog() and notify_socket.recv() == ({"WATCHDOG": "1"}, [])
    with pytest.raises(ValueError):
        n.notify("READY=1\nSTATUS=x")
    n.close()


def test_abstract_address() -> None:
    name = b"\0seccomp-supervisor-test-%d" % os.getpid()
    s = NotifySocket(name)
    try:
        n = Notifier.from_environ({"NOTIFY_SOCKET": s.env_value})
        assert s.env_value.startswith("@")
        assert n.ready()
        assert s.recv() == ({"READY": "1"}, [])
        n.close()
    finally:
        s.close()


def test_send_failure_does_not_raise(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"))
    assert n.enabled
    assert not n.ready()
    n.close()


def test_fdstore_passes_the_fd(notify_socket: NotifySocket, tmp_path: Path) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": notify_socket.env_value})
    f = tmp_path / "f"
    f.write_text("x")
    fd = os.open(f, os.O_RDONLY)
    try:
        assert n.fdstore(fd, "listener-abc")
        fields, fds = notify_socket.recv()
        assert fields == {"FDSTORE": "1", "FDNAME": "listener-abc"}
        assert len(fds) == 1 and fds[0] != fd and same_file(fds[0], fd)
        os.close(fds[0])
        with pytest.raises(ValueError):
            n.fdstore(fd, "bad:name")
        assert n.fdstore_remove("listener-abc")
        assert notify_socket.recv() == ({"FDSTOREREMOVE": "1", "FDNAME": "listener-abc"}, [])
    finally:
        os.close(fd)
        n.close()


def test_store_target_with_sealed_metadata(notify_socket: NotifySocket) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": notify_socket.env_value})
    meta = {"id": 7, "pid": 1234, "policy": "default", "argv": ["/bin/true"], "uid": 0}
    key = fdstore.new_store_key(meta)
    assert key.startswith("1234-")
    r, w = os.pipe()  # stands in for a listener fd
    try:
        assert n.store_target(key, r, meta)
        fields, (meta_fd,) = notify_socket.recv()
        assert fields == {"FDSTORE": "1", "FDNAME": f"meta-{key}"}
        fields, (listener,) = notify_socket.recv()
        assert fields == {"FDSTORE": "1", "FDNAME": f"listener-{key}"}
        assert same_file(listener, r)
        assert fdstore.read_metadata(meta_fd) == meta
        seals = fcntl.fcntl(meta_fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        with pytest.raises(PermissionError):
            os.pwrite(meta_fd, b"{}", 0)
        os.close(meta_fd)
        os.close(listener)
        assert n.remove_target(key)
        names = {notify_socket.recv()[0]["FDNAME"] for _ in range(2)}
        assert names == {f"listener-{key}", f"meta-{key}"}
    finally:
        os.close(r)
        os.close(w)
        n.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30_000_000),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "OURS"}, 2_000_000),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_usec(env: dict[str, str], expected: int | None) -> None:
    env = {k: str(os.getpid()) if v == "OURS" else v for k, v in env.items()}
    assert systemd.watchdog_usec(env) == expected


async def test_watchdog_pings_at_half_the_interval(
    notify_socket: NotifySocket, autojump_clock: trio.abc.Clock
) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": notify_socket.env_value})
    with trio.move_on_after(2.1):
        await systemd.run_watchdog(n, 1_000_000)
    assert notify_socket.pending() == 5  # at 0, 0.5, 1, 1.5 and 2 s
    n.close()


async def test_a_hung_loop_stops_the_pings(notify_socket: NotifySocket) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": notify_socket.env_value})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(systemd.run_watchdog, n, 100_000)
        seen = 0

        def pings(count: int) -> bool:
            nonlocal seen
            seen += notify_socket.pending()
            return seen >= count

        await wait_until_async(lambda: pings(3), "three pings")
        time.sleep(0.4)  # the event loop hangs (the behaviour under test): no ping goes out
        assert notify_socket.pending() == 0
        seen = 0
        await wait_until_async(lambda: pings(1), "a ping once the loop runs again")
        nursery.cancel_scope.cancel()
    n.close()


def test_listen_fds_other_pid_and_unset() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b", "OTHER": "x"}
    assert systemd.listen_fds(env) == []
    assert env == {"OTHER": "x"}


# A child that finds fds from 3 the way a service manager leaves them.
CHILD = """
import json, os, sys
from supervisor.daemon import fdstore, systemd
srcs = [int(x) for x in sys.argv[1].split(",")]
high = [os.dup(fd) for fd in srcs]
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = str(len(srcs))
if sys.argv[2]:
    os.environ["LISTEN_FDNAMES"] = sys.argv[2]
fds = systemd.listen_fds()
cloexec = [not os.get_inheritable(fd) for fd, _ in fds]
got = fdstore.recover(fds)
print(json.dumps({
    "fds": fds, "cloexec": cloexec,
    "env": [k for k in os.environ if k.startswith("LISTEN_")],
    "control": got.control.fileno() if got.control else None,
    "targets": [[t.key, t.listener_fd, t.metadata] for t in got.targets],
    "discarded": [[n, why] for _, n, why in got.discarded],
}))
"""


def run_child(fds: list[int], names: str) -> dict[str, object]:
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 50) for fd in fds]
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, ",".join(map(str, high)), names],
            pass_fds=high,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        for fd in high:
            os.close(fd)
    result: dict[str, object] = json.loads(out)
    return result


def test_socket_activation_and_recovery(tmp_path: Path) -> None:
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(str(tmp_path / "control.sock"))
    control.listen()
    meta = {"id": 3, "pid": 42, "policy": "default", "argv": ["app"], "uid": 1000}
    meta_fd = fdstore.metadata_memfd(meta)
    orphan_meta = fdstore.metadata_memfd({"id": 9})
    r, w = os.pipe()
    r2, w2 = os.pipe()
    try:
        fds = [meta_fd, control.fileno(), r, r2, orphan_meta]
        names = "meta-42-aa:control:listener-42-aa:listener-43-bb:meta-44-cc"
        got = run_child(fds, names)
        assert got["fds"] == [[3 + i, n] for i, n in enumerate(names.split(":"))]
        assert got["cloexec"] == [True] * 5
        assert got["env"] == []
        assert got["control"] == 4
        assert got["targets"] == [["42-aa", 5, meta]]
        assert got["discarded"] == [
            ["listener-43-bb", "no metadata"],
            ["meta-44-cc", "no listener"],
        ]
        # systemd-socket-activate without --fdname: the listening unix socket is the control.
        got = run_child([r, control.fileno()], "")
        assert got["control"] == 4
        assert got["discarded"] == [["unknown", "not a control socket or a stored target"]]
    finally:
        for fd in (meta_fd, orphan_meta, r, w, r2, w2):
            os.close(fd)
        control.close()


class FakeListener:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


class FakeTarget:
    """What the daemon's hooks are given (daemon.targets.Target), reduced to what they use."""

    def __init__(self, tid: int, fd: int, recovered: bool = False) -> None:
        self.id = tid
        self.listener = FakeListener(fd)
        self.metadata = {"policy": "default", "pid": os.getpid(), "argv": ["x"], "uid": 0}
        self.recovered = recovered


def test_daemon_hooks_store_and_forget(notify_socket: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.env_value}
    sd = systemd.daemon_integration(env)
    assert "NOTIFY_SOCKET" not in env and sd.control_socket is None and sd.recovered == []
    hooks = sd.hooks()
    r, w = os.pipe()
    try:
        hooks.attached(FakeTarget(5, r))
        fields, (meta_fd,) = notify_socket.recv()
        key = fields["FDNAME"].removeprefix("meta-")
        meta = fdstore.read_metadata(meta_fd)
        assert meta["id"] == 5 and meta["start_time"] == proc_facts.start_time(os.getpid())
        fields, (listener,) = notify_socket.recv()
        assert fields["FDNAME"] == f"listener-{key}" and same_file(listener, r)
        os.close(meta_fd)
        os.close(listener)
        hooks.targets_changed(1)
        assert notify_socket.recv() == ({"STATUS": "supervising 1 target"}, [])
        hooks.detached(FakeTarget(5, r))
        names = {notify_socket.recv()[0]["FDNAME"] for _ in range(2)}
        assert names == {f"listener-{key}", f"meta-{key}"}
        hooks.stopping()
        assert notify_socket.recv() == ({"STOPPING": "1"}, [])
    finally:
        os.close(r)
        os.close(w)
        sd.notifier.close()


async def test_daemon_hooks_recovered_targets(notify_socket: NotifySocket) -> None:
    """A recovered target keeps its key (not stored again); one the daemon could not take back
    leaves the store at READY."""
    sd = systemd.DaemonIntegration(
        notifier=Notifier(notify_socket.env_value),
        control_socket=None,
        recovered=[],
        watchdog_usec=None,
        recovered_keys={40: "1-aa", 41: "2-bb"},
        recovered_start={40: None, 41: None},  # no start time: never kicked
    )
    hooks = sd.hooks()
    hooks.attached(FakeTarget(1, 40, recovered=True))
    hooks.ready(1)  # the number of targets
    got = [notify_socket.recv()[0] for _ in range(3)]
    assert got == [
        {"READY": "1", "STATUS": "supervising 1 target"},
        {"FDSTOREREMOVE": "1", "FDNAME": "listener-2-bb"},
        {"FDSTOREREMOVE": "1", "FDNAME": "meta-2-bb"},
    ]
    assert sd.keys == {1: "1-aa"}
    sd.notifier.close()
