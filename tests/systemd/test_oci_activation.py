"""The OCI agent's socket from the service manager: its unit (root-only, named ``oci``), and a
daemon socket-activated with both sockets (systemd-socket-activate, as systemd passes them)
that serves a hand-over on the one named ``oci``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from supervisor.daemon.client import request
from tests.helpers.kernel import notify_plan, start
from tests.helpers.oci import hand_over, state_message
from tests.helpers.run import SUPERVISOR
from tests.helpers.wait import wait_until
from tests.systemd.test_systemd_units import ROOT, directives


def test_oci_socket_unit() -> None:
    sock = directives(ROOT / "systemd" / "seccomp-supervisor-oci.socket")["Socket"]
    assert sock["ListenStream"] == "/run/seccomp-supervisor/oci.sock"
    assert sock["SocketMode"] == "0600" and sock["FileDescriptorName"] == "oci"
    assert sock["Service"] == "seccomp-supervisor.service"
    service = directives(ROOT / "systemd" / "seccomp-supervisor.service")["Service"]
    assert "seccomp-supervisor-oci.socket" in service["Sockets"].split()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="no activator")
def test_socket_activated_oci_socket(tmp_path: Path) -> None:
    control, oci = str(tmp_path / "control.sock"), str(tmp_path / "oci.sock")
    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "plain.toml").write_text(
        'version = 1\nname = "plain"\ndescription = "allow"\ndefault = "allow"\n'
    )
    log = tmp_path / "log"
    activator = subprocess.Popen(
        ["systemd-socket-activate", "-l", control, "-l", oci, "--fdname=control:oci",
         "--", str(SUPERVISOR), "--log-format", "json", "--log-file", str(log),
         "daemon", "--control", control, "--policy-dir", str(tmp_path / "pol")],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    child = None
    try:
        wait_until(lambda: os.path.exists(oci) and os.path.exists(control), what="the sockets")
        assert request(control, "status")["pid"] == activator.pid
        child = start(notify_plan("mkdirat"), ["/bin/sleep", "1000"])
        message = state_message(child.pid, cid="activated", metadata="policy=plain")
        hand_over(oci, json.dumps(message).encode(), [child.listener.fileno()])
        wait_until(lambda: request(control, "status")["targets"] == 1, what="the target")
        (target,) = request(control, "ps")["targets"]
        assert target["container"]["id"] == "activated"
        assert '"oci_socket": true' in log.read_text()
    finally:
        if child is not None:
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
            child.listener.close()
            os.close(child.pidfd)
            os.close(child.exec_status_fd)
        activator.send_signal(signal.SIGTERM)
        code = activator.wait(15)
    assert code == 0, log.read_text()
    assert os.path.exists(oci)  # the activator's socket file: the daemon does not remove it
