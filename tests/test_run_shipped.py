"""Every shipped policy runs ordinary programs; the default one keeps /etc/shadow secret."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from .run_helpers import POLICIES, Supervise

SHIPPED = sorted(POLICIES.glob("*.toml"))
WORKLOAD = "ls / >/dev/null && cat /etc/hostname && echo hi | sort | wc -l && id -u"


def test_policies_are_shipped() -> None:
    assert "default" in {p.stem for p in SHIPPED}


@pytest.mark.parametrize("policy", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_runs_ordinary_commands(supervise: Supervise, policy: Path) -> None:
    r = supervise(policy.stem, ["sh", "-c", WORKLOAD])
    assert r.returncode == 0, r.explain()
    assert r.lines == [Path("/etc/hostname").read_text().strip(), "1", "0"], r.explain()


@pytest.mark.parametrize("policy", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_runs_python(supervise: Supervise, policy: Path, tmp_path: Path) -> None:
    out = tmp_path / "py-out"
    code = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(sorted(os.listdir('/'))))"
    # build-sandbox executes only system programs: the system's python3, not the venv's.
    python = "/usr/bin/python3" if policy.stem == "build-sandbox" else sys.executable
    r = supervise(policy.stem, [python, "-c", code], cwd=tmp_path)
    assert r.returncode == 0, r.explain()
    assert out.exists(), r.explain()


@pytest.mark.parametrize("policy", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_by_path(supervise: Supervise, policy: Path) -> None:
    r = supervise(policy, ["cat", "/etc/hostname"])
    assert r.returncode == 0, r.explain()


def test_default_denies_etc_shadow(supervise: Supervise) -> None:
    assert os.access("/etc/shadow", os.R_OK)
    r = supervise("default", ["cat", "/etc/shadow"])
    assert r.returncode == 1, r.explain()
    assert r.stdout == ""
    assert "Permission denied" in r.stderr, r.explain()
    denied = r.named("syscall.denied")
    assert denied and denied[0]["path"] == "/etc/shadow", r.explain()


def test_default_is_the_default(supervise: Supervise) -> None:
    r = supervise(None, ["cat", "/etc/shadow"])
    assert r.returncode == 1, r.explain()
    assert "Permission denied" in r.stderr


def test_default_denies_chroot(supervise: Supervise, target_bin, tmp_path: Path) -> None:
    """Path rules are in the target's view; `default` keeps the target from changing that view."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "shadow").write_text("fake\n")
    r = supervise("default", [target_bin("sysops"), "chroot", tmp_path, "open", "/etc/shadow"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EPERM", "EACCES"], r.explain()
