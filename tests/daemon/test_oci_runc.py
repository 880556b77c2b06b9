"""Containers run by the real runc (Debian's 1.1.5) whose seccomp profile, written by `oci
profile`, names the daemon's OCI socket as listenerPath: the container's init and every `runc
exec` into it are supervised under the policy, paths resolved in the container's root; a
container whose policy cannot be found does not start."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.daemon.client import Client
from tests.helpers.daemon import DaemonProcess, running_daemon
from tests.helpers.oci import Runc, bundle, need_runc, profile
from tests.helpers.wait import wait_until

POLICY = """
version = 1
name = "ctest"
description = "containers: /etc/secret is denied"
default = "allow"

[[rule]]
name = "no-secret"
syscalls = ["open", "openat", "openat2"]
path = ["/etc/secret"]
action = "deny"
errno = "EACCES"
"""
FILES = {"/etc/secret": "TOPSECRET-oci\n", "/etc/ok": "harmless-oci\n"}
PROBE = "cat /etc/ok; cat /etc/secret; echo rc=$?"


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Runc]:
    need_runc()
    r = Runc(tmp_path / "runc")
    try:
        yield r
    finally:
        r.cleanup()


@contextlib.contextmanager
def oci_daemon(tmp_path: Path, *extra: str) -> Iterator[tuple[DaemonProcess, str]]:
    """A daemon with an OCI socket and the policy ``ctest``; (daemon, OCI socket path)."""
    oci = str(tmp_path / "run" / "oci.sock")
    with running_daemon(tmp_path, "--oci-socket", oci, *extra) as daemon:
        daemon.policy("ctest", POLICY)
        yield daemon, oci


def test_container_and_exec_are_supervised(tmp_path: Path, runc: Runc) -> None:
    with oci_daemon(tmp_path) as (daemon, oci):
        seccomp = profile("ctest", oci, daemon.policy_dir)
        assert seccomp["listenerPath"] == oci
        assert seccomp["listenerMetadata"] == "policy=ctest"

        # The init: the denied path is refused in the container's root, the other one read.
        b1 = bundle(tmp_path / "b1", ["sh", "-c", PROBE], seccomp, files=FILES)
        stream = Client(daemon.control)
        stream.request("subscribe")
        got = runc.run("oci-a", b1)
        assert got.returncode == 0, got.stderr
        assert "harmless-oci" in got.stdout
        assert "TOPSECRET" not in got.stdout
        assert "rc=1" in got.stdout
        assert "Permission denied" in got.stderr
        denied = [e for e in daemon.wait_for("syscall.denied") if e.get("container") == "oci-a"]
        assert denied and denied[0]["path"] == "/etc/secret"
        handed = [e for e in daemon.events("oci.handover") if e["container"] == "oci-a"]
        assert handed[0]["status"] == "creating"
        # The event stream: the target with its container, its decisions tagged with it.
        attached = stream.read_message()
        assert attached["event"] == "target.attached", attached
        assert attached["container"] == {"id": "oci-a", "status": "creating", "bundle": str(b1)}
        while (event := stream.read_message())["event"] != "syscall.denied":
            assert event.get("container") == "oci-a", event
        assert event["container"] == "oci-a" and event["path"] == "/etc/secret"
        stream.close()

        # A running container, and runc exec into it: a second target of the same container.
        b2 = bundle(
            tmp_path / "b2",
            ["sleep", "1000"],
            seccomp,
            files=FILES,
            annotations={"org.example.team": "qa"},
        )
        rc, output = runc.start("oci-b", b2)
        assert rc == 0, output
        secret = runc.exec("oci-b", "cat", "/etc/secret")
        assert secret.returncode != 0
        assert "TOPSECRET" not in secret.stdout
        assert "Permission denied" in secret.stderr
        ok = runc.exec("oci-b", "cat", "/etc/ok")
        assert ok.returncode == 0 and "harmless-oci" in ok.stdout

        ps = daemon.request("ps")["targets"]
        mine = [t for t in ps if t.get("container", {}).get("id") == "oci-b"]
        assert [t["container"]["status"] for t in mine] == ["creating"], ps  # execs are gone
        show = daemon.request("show", target=mine[0]["target"])
        assert show["container"]["annotations"]["org.example.team"] == "qa"
        assert show["container"]["bundle"] == str(b2)
        runs = [
            e for e in daemon.events("oci.handover")
            if e["container"] == "oci-b" and e["status"] == "running"
        ]  # fmt: skip
        assert len(runs) == 2
        denied_exec = [
            e for e in daemon.events("syscall.denied")
            if e.get("container") == "oci-b" and e["target"] == runs[0]["target"]
        ]  # fmt: skip
        assert denied_exec, daemon.events("syscall.denied")
        subprocess.run(runc.argv("kill", "oci-b", "KILL"), capture_output=True, timeout=30)
        wait_until(
            lambda: not [
                t for t in daemon.request("ps")["targets"]
                if t.get("container", {}).get("id") == "oci-b"
            ],
            what="the container's target gone",
        )  # fmt: skip


def test_unknown_policy_container_does_not_start(tmp_path: Path, runc: Runc) -> None:
    with oci_daemon(tmp_path) as (daemon, oci):
        seccomp = profile("ctest", oci, daemon.policy_dir)
        seccomp["listenerMetadata"] = "policy=nosuch"
        marker = "/tmp/started"
        b = bundle(tmp_path / "b", ["sh", "-c", f"echo > {marker}; cat /etc/ok"], seccomp)
        got = runc.run("oci-bad", b)
        assert got.returncode != 0
        assert "harmless" not in got.stdout
        refused = daemon.wait_for("oci.refused")
        assert refused[0]["container"] == "oci-bad"
        assert "nosuch" in refused[0]["reason"]
        assert refused[0]["killed"] is True
        assert not (b / "rootfs" / marker.lstrip("/")).exists()
        assert daemon.request("status")["targets"] == 0


def test_policy_from_annotation_or_daemon_default(tmp_path: Path, runc: Runc) -> None:
    with oci_daemon(tmp_path, "--oci-default-policy", "ctest") as (daemon, oci):
        seccomp = profile("ctest", oci, daemon.policy_dir)
        del seccomp["listenerMetadata"]
        # No metadata, no annotation: the daemon's default policy.
        b1 = bundle(tmp_path / "b1", ["sh", "-c", PROBE], seccomp, files=FILES)
        got = runc.run("oci-default", b1)
        assert got.returncode == 0 and "rc=1" in got.stdout, (got.stdout, got.stderr)
        # The annotation wins over the default: naming a policy the daemon lacks refuses.
        b2 = bundle(
            tmp_path / "b2",
            ["sh", "-c", PROBE],
            seccomp,
            files=FILES,
            annotations={"org.seccomp-supervisor.policy": "absent"},
        )
        got = runc.run("oci-annotated", b2)
        assert got.returncode != 0
        refused = daemon.wait_for("oci.refused")
        assert refused[0]["container"] == "oci-annotated" and "absent" in refused[0]["reason"]
        # A reserved listenerMetadata key is refused, not ignored.
        seccomp["listenerMetadata"] = "policy=ctest\nprofile=2"
        b3 = bundle(tmp_path / "b3", ["sh", "-c", PROBE], seccomp, files=FILES)
        got = runc.run("oci-reserved", b3)
        assert got.returncode != 0
        refused = daemon.wait_for("oci.refused", count=2)
        assert "reserved" in refused[1]["reason"]


NET_POLICY = """
version = 1
name = "cnet"
description = "containers: connects to 127.0.0.1:8080 only"
default = "allow"

[[rule]]
name = "local-8080"
syscalls = ["connect"]
address = ["127.0.0.1:8080"]
action = "allow"

[[rule]]
name = "no-other-inet"
syscalls = ["connect"]
address = ["0.0.0.0/0"]
action = "deny"
errno = "EACCES"
"""
# A listener in the container's own network namespace; the client retries until it is up.
NET_PROBE = (
    "nc -l -p 8080 < /etc/ok & "
    "for i in $(seq 100); do nc 127.0.0.1 8080 < /dev/null && break; sleep 0.1; done; "
    "nc 127.0.0.1 9999 < /dev/null; echo rc=$?"
)


def test_connects_performed_in_the_container_network_namespace(tmp_path: Path, runc: Runc) -> None:
    with oci_daemon(tmp_path) as (daemon, oci):
        daemon.policy("cnet", NET_POLICY)
        seccomp = profile("cnet", oci, daemon.policy_dir)
        b = bundle(tmp_path / "b", ["sh", "-c", NET_PROBE], seccomp, files=FILES)
        got = runc.run("oci-net", b)
        assert got.returncode == 0, got.stderr
        # The allowed connect reached the container's listener (its own loopback), the other
        # was refused by the policy, not by the network.
        assert "harmless-oci" in got.stdout, (got.stdout, got.stderr)
        assert "rc=1" in got.stdout and "Permission denied" in got.stderr
        denied = [e for e in daemon.events("syscall.denied") if e.get("container") == "oci-net"]
        assert denied and denied[0]["address"] == "127.0.0.1:9999"


ONCE_POLICY = """
version = 1
name = "conce"
description = "containers: the runtime's exec of the workload, and no other"
default = "allow"

[[rule]]
name = "the-workload"
syscalls = ["execve", "execveat"]
once = true
errno = "EACCES"
action = "allow"
"""


def test_exec_once_of_the_workload_holds(tmp_path: Path, runc: Runc) -> None:
    with oci_daemon(tmp_path) as (daemon, oci):
        daemon.policy("conce", ONCE_POLICY)
        seccomp = profile("conce", oci, daemon.policy_dir)
        probe = "echo started; /bin/cat /etc/ok; echo rc=$?"
        b = bundle(tmp_path / "b", ["/bin/sh", "-c", probe], seccomp, files=FILES)
        got = runc.run("oci-once", b)
        assert got.returncode == 0, got.stderr
        assert "started" in got.stdout  # runc's exec of the workload was the one allowed
        assert "harmless-oci" not in got.stdout and "rc=126" in got.stdout, got.stdout
        denied = [e for e in daemon.events("syscall.denied") if e.get("container") == "oci-once"]
        assert denied and denied[0]["syscall"] == "execve", denied
