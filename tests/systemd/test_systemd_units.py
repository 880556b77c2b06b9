"""The shipped units (systemd/) pass `systemd-analyze verify` without a word of warning.

verify checks that ExecStart's binary exists: the units run /usr/local/bin/seccomp-supervisor
(scripts/install-units links it), so the test verifies copies whose command paths point at this
tree's .venv, and /usr/bin/app (the example's placeholder) at /bin/true.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").glob("*.s*"))
COMMAND = str(Path(sys.executable).parent / "seccomp-supervisor")

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def localised(dest: Path) -> list[Path]:
    out = []
    for unit in UNITS:
        text = unit.read_text()
        text = text.replace("/usr/local/bin/seccomp-supervisor", COMMAND)
        text = text.replace("/usr/bin/app", "/bin/true")
        (dest / unit.name).write_text(text)
        out.append(dest / unit.name)
    return out


def test_units_shipped() -> None:
    names = {u.name for u in UNITS}
    assert names == {
        "seccomp-supervisor.service",
        "seccomp-supervisor.socket",
        "seccomp-supervisor-oci.socket",
        "example-app.service",
    }


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    units = localised(tmp_path)
    r = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr  # unknown keys are only warnings: none allowed


def test_verify_catches_mistakes(tmp_path: Path) -> None:
    """The check above has teeth: a misspelt key is reported, a missing binary fails."""
    (service,) = (u for u in localised(tmp_path) if u.name == "seccomp-supervisor.service")
    service.write_text(service.read_text().replace("Restart=", "Restrat=", 1))
    r = subprocess.run(["systemd-analyze", "verify", str(service)], capture_output=True, text=True)
    assert "Unknown key" in r.stderr
    service.write_text(service.read_text().replace(COMMAND, "/nonexistent/seccomp-supervisor"))
    r = subprocess.run(["systemd-analyze", "verify", str(service)], capture_output=True, text=True)
    assert r.returncode != 0


def directives(unit: Path) -> configparser.RawConfigParser:
    p = configparser.RawConfigParser(strict=False, delimiters=("=",))
    p.optionxform = str  # type: ignore[assignment,method-assign]
    p.read_string(unit.read_text())
    return p


def test_service_essentials() -> None:
    s = directives(ROOT / "systemd" / "seccomp-supervisor.service")["Service"]
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert s["Restart"] == "on-failure" and s["WatchdogSec"]
    assert int(s["FileDescriptorStoreMax"]) >= 2
    caps = set(s["CapabilityBoundingSet"].split())
    assert "CAP_SYS_PTRACE" in caps and "CAP_SYS_ADMIN" not in caps
    # Anything giving the daemon its own mount namespace would break emulated opens.
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert key not in s
    sock = directives(ROOT / "systemd" / "seccomp-supervisor.socket")["Socket"]
    assert sock["ListenStream"] == "/run/seccomp-supervisor/control.sock"
    assert sock["SocketMode"] == "0660" and sock["FileDescriptorName"] == "control"
