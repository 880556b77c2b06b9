"""Fuzzing the control socket of a real, running daemon: random bytes, random JSON requests and
random fds attached. Whatever arrives, the daemon keeps answering `status`, holds no fd it was
sent, and other clients are unaffected."""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.daemon.ops import OPS as KNOWN_OPS
from tests.helpers.daemon import DaemonProcess, running_daemon
from tests.helpers.wait import wait_until

OPS = [*KNOWN_OPS, "frobnicate", ""]
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 1, 1, 0, 2, "1", True]),
        "id": st.integers(-5, 2**70) | st.text(max_size=3),
        "op": st.sampled_from(OPS) | st.text(max_size=6),
        "policy": st.sampled_from(["default", "../../etc/passwd", "x" * 300]) | st.text(),
        "pid": st.integers(-1, 2**40),
        "argv": st.lists(st.text(max_size=5), max_size=3) | json_values,
        "uid": st.integers(-1, 70000),
        "target": st.integers(-1, 5) | json_values,
        "name": st.sampled_from(["default", "nope", "/etc/shadow"]) | json_values,
    },
)
# Deeper than the JSON decoder's recursion limit (once a RecursionError that killed the daemon).
nested_lines = st.builds(
    lambda n, opener, prefix: prefix + opener * n + b"\n",
    st.integers(500, 30000),
    st.sampled_from([b"[", b'{"a":', b'[{"x":']),
    st.sampled_from([b"", b'{"v":1,"id":1,"op":"status","x":', b'{"v":1,"id":1,"op":"attach",']),
)
FD_KINDS = ["pipe", "devnull", "socket", "dir", "memfd"]


def _make_fd(kind: str) -> int:
    if kind == "pipe":
        r, w = os.pipe()
        os.close(w)
        return r
    if kind == "devnull":
        return os.open("/dev/null", os.O_RDONLY)
    if kind == "socket":
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).detach()
    if kind == "dir":
        return os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    return os.memfd_create("fuzz")


@pytest.fixture
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with running_daemon(tmp_path_factory.mktemp("fuzz"), "--client-timeout", "0.5") as d:
        yield d


def _exchange(
    daemon: DaemonProcess, chunks: list[bytes], fds: list[int], close_early: bool
) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(daemon.control)
        for i, chunk in enumerate(chunks):
            anc = []
            if i == 0 and fds:
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if chunk or anc:
                    s.sendmsg([chunk or b" "], anc)
        if close_early:
            return
        # Read what comes back until the daemon closes or stays quiet (a valid request keeps
        # the connection open): every line must be a JSON object of protocol version 1.
        s.settimeout(0.3)
        data = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := s.recv(65536):
                data += chunk
        for line in data.splitlines():
            obj = json.loads(line)
            assert obj["v"] == 1
    finally:
        s.close()
        for fd in fds:
            os.close(fd)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    parts=st.lists(
        st.binary(max_size=200)
        | requests.map(lambda r: json.dumps(r).encode() + b"\n")
        | json_values.map(lambda v: json.dumps(v).encode() + b"\n")
        | st.just(b"\n")
        | st.just(b"{" * 5000)
        | nested_lines,
        max_size=4,
    ),
    fd_kinds=st.lists(st.sampled_from(FD_KINDS), max_size=3),
    close_early=st.booleans(),
)
def _fuzz(
    daemon: DaemonProcess, parts: list[bytes], fd_kinds: list[str], close_early: bool
) -> None:
    _exchange(daemon, parts, [_make_fd(k) for k in fd_kinds], close_early)
    assert daemon.request("status")["pid"] == daemon.pid


def test_fuzz_the_control_socket_and_no_fd_it_was_sent_stays(daemon: DaemonProcess) -> None:
    """The fuzzing (every example on the same daemon), then: no fd it was sent is still open.
    One test, so that the check cannot run before the fuzzing (or on another daemon)."""
    _fuzz(daemon)
    kinds: dict[str, str] = {}

    def clean() -> bool:
        kinds.clear()
        for fd in os.listdir(f"/proc/{daemon.pid}/fd"):
            if int(fd) <= 2:
                continue  # stdio (stdin is /dev/null)
            with contextlib.suppress(OSError):
                kinds[fd] = os.readlink(f"/proc/{daemon.pid}/fd/{fd}")
        stray = [k for k in kinds.values() if "memfd:fuzz" in k or k == "/dev/null" or k == "/"]
        pipes = [k for k in kinds.values() if k.startswith("pipe:")]
        return not stray and len(pipes) <= 4 and daemon.request("status")["clients"] <= 1

    wait_until(clean, what=lambda: f"the daemon closing every fd it was sent (it holds {kinds})")


def test_long_lines_split_anywhere_are_refused(daemon: DaemonProcess) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(daemon.control)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(10):
            s.sendall(b"a" * 10000)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(65536):
            data += chunk
    s.close()
    assert json.loads(data.splitlines()[-1])["error"]["code"] == "line_too_long"
    assert Path(daemon.control).exists()
