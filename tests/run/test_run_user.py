"""`run --user USER`: the target runs as USER, with the user database's groups (issue 14)."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers.run import SUPERVISOR

NOBODY = pwd.getpwnam("nobody")


def run_as(user: str, *cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SUPERVISOR), "--log-format", "json", "run", "--user", user, "--", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.mark.parametrize("user", ["nobody", str(NOBODY.pw_uid)])
def test_target_runs_as_the_user_with_its_groups(user: str) -> None:
    r = run_as(
        user, "sh", "-c", "id -u; id -g; id -G; grep -E '^Cap(Eff|Prm|Inh|Amb)' /proc/self/status"
    )
    assert r.returncode == 0, r.stderr
    groups = sorted({NOBODY.pw_gid, *os.getgrouplist("nobody", NOBODY.pw_gid)})
    lines = r.stdout.splitlines()
    assert lines[:3] == [str(NOBODY.pw_uid), str(NOBODY.pw_gid), " ".join(map(str, groups))]
    # no capability left anywhere; /proc/self readable (the supervisor opens it for the target
    # with the target's credentials)
    assert [ln.split()[1] for ln in lines[3:]] == ["0000000000000000"] * 4, r.stdout


def test_uid_gid_form() -> None:
    r = run_as("12345:54321", "sh", "-c", "id -u; id -g; id -G")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["12345", "54321", "54321"]


def test_unknown_user_is_a_launcher_failure(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    r = run_as("no-such-user-here", "touch", str(marker))
    assert r.returncode == 125
    assert "no such user" in r.stderr
    assert not marker.exists()


def test_opens_are_the_users() -> None:
    # pytest's tmp_path is under a 0700 directory of root's: nobody needs a way in.
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        check_opens(Path(d))


def check_opens(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o777)
    (tmp_path / "mine").write_text("readable\n")
    os.chmod(tmp_path / "mine", 0o644)
    private = tmp_path / "private"
    private.write_text("root only\n")
    os.chmod(private, 0o600)
    made = tmp_path / "made"
    r = run_as(
        "nobody", "sh", "-c", f"cat {tmp_path}/mine; cat {private}; echo x > {made}; echo done"
    )
    assert r.returncode == 0, r.stderr
    assert "Permission denied" in r.stderr and "root only" not in r.stdout
    assert r.stdout.split() == ["readable", "done"]
    assert made.stat().st_uid == NOBODY.pw_uid
