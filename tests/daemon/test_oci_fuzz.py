"""Fuzzing the OCI socket of a real, running daemon, as the control socket is fuzzed: random
bytes, random and state-shaped JSON, in one or several messages, with random fds (a real
seccomp listener among them). Every hand-over is refused, the daemon keeps answering, takes no
target, and holds no fd it was sent."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.target.launch import Launched
from tests.daemon.test_daemon_fuzz import FD_KINDS, json_values
from tests.daemon.test_daemon_fuzz import _make_fd as make_fd
from tests.helpers.daemon import DaemonProcess, running_daemon
from tests.helpers.kernel import notify_plan, start
from tests.helpers.oci import hand_over
from tests.helpers.wait import wait_until

metadata = st.sampled_from(["policy=plain", "policy=nope", "policy=../x", "log=1", "a", ""])
states = st.fixed_dictionaries(
    {},
    optional={
        "ociVersion": st.sampled_from(["1.0.2-dev", ""]) | json_values,
        "fds": st.lists(st.sampled_from(["seccompFd", "pidFd", ""]), max_size=3) | json_values,
        "pid": st.integers(-1, 2**40) | json_values,
        "metadata": metadata | json_values,
        "state": st.fixed_dictionaries(
            {},
            optional={
                "id": st.text(max_size=20) | json_values,
                "status": st.sampled_from(["creating", "running"]) | json_values,
                "pid": st.integers(-1, 2**40),
                "bundle": st.text(max_size=20),
                "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8))
                | json_values,
            },
        )
        | json_values,
    },
)


@pytest.fixture(scope="module")
def listener_holder() -> Iterator[Launched]:
    """A process under a filter, whose listener the fuzzing sends (never its pid)."""
    child = start(notify_plan("mkdirat"), ["/bin/sleep", "1000"])
    yield child
    os.kill(child.pid, 9)
    os.waitpid(child.pid, 0)
    child.listener.close()
    os.close(child.pidfd)
    os.close(child.exec_status_fd)


@pytest.fixture
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    tmp = tmp_path_factory.mktemp("ocifuzz")
    oci = str(tmp / "run" / "oci.sock")
    with running_daemon(tmp, "--oci-socket", oci, "--oci-timeout", "0.3") as d:
        d.policy("plain", 'version = 1\nname = "plain"\ndescription = "x"\ndefault = "allow"\n')
        yield d


def _fds(d: DaemonProcess) -> list[str]:
    where = f"/proc/{d.pid}/fd"
    return sorted(os.readlink(f"{where}/{fd}") for fd in os.listdir(where))


def _oci(d: DaemonProcess) -> str:
    return str(Path(d.control).with_name("oci.sock"))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    parts=st.lists(
        st.binary(max_size=200)
        | states.map(lambda s: json.dumps(s).encode())
        | json_values.map(lambda v: json.dumps(v).encode())
        | st.just(b"{" * 5000),
        min_size=1,
        max_size=3,
    ),
    fd_kinds=st.lists(st.sampled_from([*FD_KINDS, "listener"]), max_size=3),
)
def _fuzz(daemon: DaemonProcess, holder: Launched, parts: list[bytes], fd_kinds: list[str]) -> None:
    fds = [os.dup(holder.listener.fileno()) if k == "listener" else make_fd(k) for k in fd_kinds]
    try:
        hand_over(_oci(daemon), [p or b" " for p in parts], fds, timeout=5)
    finally:
        for fd in fds:
            os.close(fd)
    assert daemon.request("status")["pid"] == daemon.pid


def test_fuzz_the_oci_socket(daemon: DaemonProcess, listener_holder: Launched) -> None:
    baseline = daemon.fd_count()
    before = _fds(daemon)
    _fuzz(daemon, listener_holder)
    assert daemon.request("status")["targets"] == 0
    wait_until(
        lambda: daemon.fd_count() <= baseline,  # a status probe may still be open in it
        what=lambda: f"the daemon's fds back to baseline: {before} -> {_fds(daemon)}",
    )
    assert daemon.events("oci.refused")
    assert not daemon.events("oci.internal_error")
    # The process whose listener was sent is untouched (its pid was never named).
    os.kill(listener_holder.pid, 0)
    with socket.socket(socket.AF_UNIX) as s:  # the socket still accepts
        s.connect(_oci(daemon))
