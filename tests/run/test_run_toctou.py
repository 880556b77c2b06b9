"""TOCTOU: a thread flips the path buffer between an allowed and a denied file while another
thread opens it in a loop. The supervisor must never let the denied file's content through: it
performs allowed opens itself with the path it checked."""

from __future__ import annotations

import re

import pytest

from tests.helpers.run import SECRET, Files, Supervise, allow_list, deny_list

OPENS = 12_000


def run_toctou(
    supervise: Supervise, target_bin, files: Files, policy_text: str, *, link: bool = False
) -> dict[str, int]:
    assert len(str(files.allowed)) == len(str(files.secret))
    policy = supervise.policy(policy_text)
    cmd = [target_bin("toctou"), files.allowed, files.secret, str(OPENS), SECRET]
    if link:
        # The thread flips a symlink's target instead of the path buffer.
        (files.dir / "flip").symlink_to(files.allowed)
        cmd.append(files.dir / "flip")
    r = supervise(policy, cmd, timeout=240)
    assert r.returncode == 0, r.explain()
    m = re.fullmatch(
        r"opens=(\d+) ok_allowed=(\d+) ok_secret=(\d+) denied=(\d+) other=(\d+)", r.stdout.strip()
    )
    assert m, r.explain()
    counts = dict(
        zip(
            ("opens", "ok_allowed", "ok_secret", "denied", "other"),
            map(int, m.groups()),
            strict=True,
        )
    )
    assert counts["opens"] >= 10_000
    assert counts["ok_secret"] == 0, f"the denied file was read: {counts}\n{r.explain()}"
    # Both sides of the race were seen, so the test did exercise it.
    assert counts["ok_allowed"] > 0, counts
    assert counts["denied"] > 0, counts
    return counts


@pytest.mark.slow
def test_toctou_allow_list(supervise: Supervise, target_bin, files: Files) -> None:
    run_toctou(supervise, target_bin, files, allow_list(files.allowed))


@pytest.mark.slow
def test_toctou_deny_list(supervise: Supervise, target_bin, files: Files) -> None:
    run_toctou(supervise, target_bin, files, deny_list(files.secret))


@pytest.mark.slow
def test_toctou_symlink_flip_allow_list(supervise: Supervise, target_bin, files: Files) -> None:
    run_toctou(supervise, target_bin, files, allow_list(files.allowed), link=True)


@pytest.mark.slow
def test_toctou_symlink_flip_deny_list(supervise: Supervise, target_bin, files: Files) -> None:
    run_toctou(supervise, target_bin, files, deny_list(files.secret), link=True)
