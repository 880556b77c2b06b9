"""Under a real systemd: PID 1 of a runc container over an overlay of this machine's / (set up by
scripts/systemd-container), the shipped units installed by scripts/install-units, everything
driven through systemctl.

* the service is active only once the daemon said READY=1 (not when its process started);
* socket activation starts it on the first client;
* `systemctl restart`, a kill -9 (Restart=) and a hung event loop (the watchdog) bring it back
  with the listener fds from the fd store, and a target started under it before (the example
  unit running a loop of opens) carries on, with no syscall allowed while the daemon was down;
* `systemctl stop` empties the fd store, and the target's `run --daemon` reconnecting activates
  the daemon again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "systemd-container"
SV = "/usr/local/bin/seccomp-supervisor"
COUNT = "/var/lib/sv-test/count"
LOOP = f"while :; do cat /etc/hostname >/dev/null; echo x >> {COUNT}; sleep 0.01; done"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc (scripts/setup)"),
    pytest.mark.skipif(not Path("/lib/systemd/systemd").exists(), reason="needs systemd"),
]


class Box:
    def __init__(self, name: str, bundle: Path) -> None:
        self.name = name
        self.bundle = bundle

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> str:
        r = subprocess.run(
            ["runc", "exec", self.name, "/bin/sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"{script!r}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout.strip()

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines())

    def main_pid(self) -> int:
        return int(self.show("seccomp-supervisor.service", "MainPID")["MainPID"])

    def count(self) -> int:
        return int(self.sh(f"stat -c %s {COUNT} 2>/dev/null || echo 0"))

    def wait(self, what: str, predicate: object, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            if time.monotonic() > deadline:
                journal = self.sh("journalctl --no-pager -n 60", check=False)
                raise AssertionError(f"timed out waiting for {what}\n{journal}")
            time.sleep(0.1)

    def grows(self, timeout: float = 20) -> None:
        start = self.count()
        self.wait("the target to carry on", lambda: self.count() > start, timeout)

    def targets(self) -> list[dict[str, object]]:
        import json

        return json.loads(self.sh(f"{SV} ps --json"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    name = f"sv-systemd-{os.getpid()}"
    bundle = Path(tempfile.mkdtemp(prefix="sv-systemd-", dir="/var/tmp"))
    r = subprocess.run([str(SCRIPT), "up", name, str(bundle)], capture_output=True, text=True)
    try:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() in ("running", "degraded")
        b = Box(name, bundle)
        b.sh(f"{ROOT}/scripts/install-units")
        b.sh("systemctl enable --now seccomp-supervisor.socket")
        yield b
    finally:
        subprocess.run([str(SCRIPT), "down", name, str(bundle)], capture_output=True)


def test_systemd_boots_as_pid1(box: Box) -> None:
    # The script waits for "running" or "degraded" (so that the other tests can still run);
    # a healthy boot is "running", with no failed unit.
    state = box.sh("systemctl is-system-running", check=False)
    assert state == "running", box.sh("systemctl --failed --no-legend", check=False)
    assert box.sh("cat /proc/1/comm") == "systemd"
    assert box.sh("systemd-detect-virt --container", check=False) == "container-other"


def test_active_only_after_ready(box: Box) -> None:
    """A start-up that takes 2 s before the daemon runs: the unit stays `activating` until the
    daemon's READY=1, then is active with the STATUS= it sent."""
    box.sh("systemctl stop seccomp-supervisor.service")
    box.sh(
        "mkdir -p /run/systemd/system/seccomp-supervisor.service.d && printf '%s\\n' "
        "'[Service]' 'ExecStart=' "
        f"'ExecStart=/bin/sh -c \"sleep 2; exec {SV} --log-format json daemon\"' "
        "> /run/systemd/system/seccomp-supervisor.service.d/slow.conf && systemctl daemon-reload"
    )
    try:
        box.sh("systemctl start --no-block seccomp-supervisor.service")
        time.sleep(1)
        assert box.show("seccomp-supervisor.service", "ActiveState")["ActiveState"] == "activating"
        box.wait(
            "active",
            lambda: (
                box.sh("systemctl is-active seccomp-supervisor.service", check=False) == "active"
            ),
        )
        props = box.show("seccomp-supervisor.service", "StatusText", "MainPID")
        assert props["StatusText"] == "supervising 0 targets"
        assert f'"pid": {props["MainPID"]}' in box.sh(f"{SV} status --json")
    finally:
        box.sh("rm -r /run/systemd/system/seccomp-supervisor.service.d && systemctl daemon-reload")
        box.sh("systemctl stop seccomp-supervisor.service")


def test_socket_activation_starts_the_daemon(box: Box) -> None:
    box.sh("systemctl stop seccomp-supervisor.service")
    assert box.sh("systemctl is-active seccomp-supervisor.service", check=False) == "inactive"
    assert box.sh("systemctl is-active seccomp-supervisor.socket") == "active"
    out = box.sh(f"{SV} status")  # the first client
    assert box.sh("systemctl is-active seccomp-supervisor.service") == "active"
    assert f"daemon pid {box.main_pid()}" in out
    # The hardening of the shipped unit is in force (and the daemon works under it).
    status = dict(
        line.split(":\t", 1)
        for line in box.sh(f"cat /proc/{box.main_pid()}/status").splitlines()
        if ":\t" in line
    )
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # MemoryDenyWriteExecute=, SystemCallArchitectures=, ...
    kept = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
            "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7,
            "CAP_NET_BIND_SERVICE": 10, "CAP_SYS_PTRACE": 19}  # fmt: skip
    assert int(status["CapBnd"], 16) == sum(1 << bit for bit in kept.values())


def test_targets_survive_restarts_with_the_fd_store(box: Box) -> None:
    example = (ROOT / "systemd" / "example-app.service").read_text()
    unit = example.replace("/usr/bin/app", f'/bin/sh -c "{LOOP}"')
    assert unit != example
    box.sh(
        f"mkdir -p /var/lib/sv-test && rm -f {COUNT} && cat > /etc/systemd/system/sv-loop.service"
        f" <<'EOF'\n{unit}EOF\nsystemctl daemon-reload && systemctl start sv-loop.service"
    )
    try:
        box.grows()
        (target,) = box.targets()
        pid = target["pid"]
        store = box.show("seccomp-supervisor.service", "NFileDescriptorStore", "StatusText")
        assert store == {"NFileDescriptorStore": "2", "StatusText": "supervising 1 target"}

        # systemctl restart: a new daemon, the target handed back by the fd store.
        before = box.main_pid()
        box.sh("systemctl restart seccomp-supervisor.service")
        assert box.main_pid() != before
        assert [(t["pid"], t["recovered"]) for t in box.targets()] == [(pid, True)]
        box.grows()

        # kill -9: nothing allowed while no daemon runs (RestartSec=1s), then Restart= brings
        # it back with the stored listener.
        for _attempt in range(3):
            before = box.main_pid()
            a, b, main = box.sh(
                f"kill -9 {before}; sleep 0.3; stat -c %s {COUNT}; sleep 0.5; stat -c %s {COUNT};"
                " systemctl show -P MainPID seccomp-supervisor.service"
            ).split()
            box.wait("the restart", lambda b=before: box.main_pid() not in (0, b))
            if main == "0":  # the daemon was down for the whole measurement
                assert a == b, "a notified syscall ran while the daemon was down"
                break
        else:
            pytest.fail("the daemon was never down long enough to measure")
        assert [(t["pid"], t["recovered"]) for t in box.targets()] == [(pid, True)]
        box.grows()
        props = box.show("seccomp-supervisor.service", "NRestarts", "NFileDescriptorStore")
        assert int(props["NRestarts"]) >= 1
        assert props["NFileDescriptorStore"] == "2"  # taken back, not stored twice

        # A hung event loop: the watchdog (2 s here) has it killed and restarted.
        box.sh(
            "mkdir -p /run/systemd/system/seccomp-supervisor.service.d && printf '%s\\n' "
            "'[Service]' 'WatchdogSec=2s' "
            "> /run/systemd/system/seccomp-supervisor.service.d/wd.conf && systemctl daemon-reload"
        )
        try:
            box.sh("systemctl restart seccomp-supervisor.service")
            box.grows()
            before = box.main_pid()
            box.sh(f"kill -STOP {before}")
            box.wait("the watchdog", lambda: box.main_pid() not in (0, before), timeout=30)
            assert [(t["pid"], t["recovered"]) for t in box.targets()] == [(pid, True)]
            box.grows()
        finally:
            box.sh(
                "rm -r /run/systemd/system/seccomp-supervisor.service.d; systemctl daemon-reload"
            )

        # systemctl stop flushes the fd store (systemd 252); `run --daemon`, still holding its
        # copy, reconnects, and that connection activates the daemon again through the socket.
        box.sh("systemctl stop seccomp-supervisor.service")
        box.wait(
            "re-activation by run's reconnect",
            lambda: (
                box.sh("systemctl is-active seccomp-supervisor.service", check=False) == "active"
            ),
        )
        box.wait("the target re-attached", lambda: [t["pid"] for t in box.targets()] == [pid])
        box.grows()
        assert box.show("seccomp-supervisor.service", "NFileDescriptorStore") == {
            "NFileDescriptorStore": "2"
        }

        # No syscall of the target ever failed for want of a supervisor (ENOSYS).
        journal = box.sh("journalctl --no-pager -u sv-loop.service")
        assert "Function not implemented" not in journal
    finally:
        box.sh("systemctl stop sv-loop.service", check=False)
    # Gone: out of the fd store.
    box.wait(
        "the fd store to empty",
        lambda: (
            box.show("seccomp-supervisor.service", "NFileDescriptorStore")
            == {"NFileDescriptorStore": "0"}
        ),
    )
