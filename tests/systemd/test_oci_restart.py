"""A container survives a daemon kill -9 as a `run --daemon` target does: its listener is in
the fd store (the test plays systemd's part, as in test_systemd_daemon.py), nothing of it runs
while no daemon is up, and the next daemon takes it back, container facts and all."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.daemon.client import request
from tests.daemon.test_oci_runc import FILES, POLICY
from tests.helpers.oci import Runc, bundle, need_runc, profile
from tests.helpers.wait import wait_until
from tests.systemd.test_systemd_daemon import Service, take_stored_target


class OciService(Service):
    def argv(self) -> list[str]:
        return [*super().argv(), "--oci-socket", self.oci, "--policy-dir", str(self.policies)]

    @property
    def oci(self) -> str:
        return str(self.tmp / "run" / "oci.sock")

    @property
    def policies(self) -> Path:
        return self.tmp / "policies"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[OciService]:
    need_runc()
    s = OciService(tmp_path)
    s.policies.mkdir()
    (s.policies / "ctest.toml").write_text(POLICY)
    yield s
    s.close()


def test_a_container_waits_through_a_daemon_kill(tmp_path: Path, service: OciService) -> None:
    runc = Runc(tmp_path / "runc")
    service.start()
    service.notify.wait_for("READY", timeout=20)
    loop = "while [ ! -e /tmp/stop ]; do cat /etc/ok > /dev/null; echo x >> /tmp/count; done"
    b = bundle(
        tmp_path / "b", ["sh", "-c", loop], profile("ctest", service.oci, service.policies),
        files=FILES,
    )  # fmt: skip
    count, stop = b / "rootfs" / "tmp" / "count", b / "rootfs" / "tmp" / "stop"
    try:
        rc, output = runc.start("oci-restart", b)
        assert rc == 0, output
        meta, stored = take_stored_target(service)
        assert meta["container"]["id"] == "oci-restart"  # type: ignore[index]
        wait_until(lambda: count.exists() and count.stat().st_size > 0, what="the loop running")
        service.stop(signal.SIGKILL)
        time.sleep(0.3)  # a syscall answered just before the kill may still complete
        down = count.stat().st_size
        time.sleep(1.0)
        assert count.stat().st_size == down, "a notified syscall ran while no daemon was up"

        service.start(stored)
        for fd, _ in stored:
            os.close(fd)
        service.notify.wait_for("READY", timeout=20)
        (target,) = request(service.control, "ps")["targets"]
        assert target["recovered"] is True
        assert target["container"]["id"] == "oci-restart"
        wait_until(lambda: count.stat().st_size > down, what="the container carrying on")
        stop.touch()
        wait_until(
            lambda: (runc.state_of("oci-restart") or {}).get("status") == "stopped",
            what="the container exiting",
        )
        log = service.log_text()
        assert '"target.kicked"' in log, log[-2000:]
    finally:
        subprocess.run(runc.argv("kill", "oci-restart", "KILL"), capture_output=True)
        runc.cleanup()
    assert service.stop() == 0, service.log_text()
