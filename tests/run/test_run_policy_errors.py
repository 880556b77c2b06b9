"""Bad policies: `run` exits 125 with one line naming the file, line and key, and never starts
the command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.run import SUPERVISOR, Supervise

GOOD_HEAD = 'version = 1\nname = "t"\ndefault = "allow"\n'

# (case, policy text, line, key or None, a word the message must contain). Keys inside a rule
# are named `rule[N].key` (docs/policy.md).
CASES = [
    (
        "misspelt-rule-key",
        GOOD_HEAD + '\n[[rule]]\nname = "r"\nsyscall = ["mkdir"]\naction = "deny"\n',
        7,
        "rule[1].syscall",
        "unknown",
    ),
    (
        "misspelt-top-key",
        'version = 1\nname = "t"\ndefualt = "allow"\n',
        3,
        "defualt",
        "unknown",
    ),
    (
        "unknown-syscall",
        GOOD_HEAD + '\n[[rule]]\nname = "r"\nsyscalls = ["mkdir", "frobnicate"]\naction = "deny"\n',
        7,
        "rule[1].syscalls",
        "frobnicate",
    ),
    (
        "unknown-group",
        GOOD_HEAD + '\n[[rule]]\nname = "r"\nsyscalls = ["@nonsense"]\naction = "deny"\n',
        7,
        "rule[1].syscalls",
        "@nonsense",
    ),
    (
        "relative-path",
        GOOD_HEAD + '\n[[rule]]\nname = "r"\npath = ["etc/shadow"]\naction = "deny"\n',
        7,
        "rule[1].path",
        "etc/shadow",
    ),
    (
        "bad-glob",
        GOOD_HEAD + '\n[[rule]]\nname = "r"\npath = ["/etc/[abc"]\naction = "deny"\n',
        7,
        "rule[1].path",
        "[",
    ),
    (
        "dotdot-in-glob",
        GOOD_HEAD + '\n[[rule]]\nname = "r"\npath = ["/etc/../shadow"]\naction = "deny"\n',
        7,
        "rule[1].path",
        "..",
    ),
    (
        "unknown-errno",
        GOOD_HEAD
        + '\n[[rule]]\nname = "r"\nsyscalls = ["mkdir"]\naction = "deny"\nerrno = "EWHATEVER"\n',
        9,
        "rule[1].errno",
        "EWHATEVER",
    ),
    (
        "unknown-action",
        GOOD_HEAD + '\n[[rule]]\nname = "r"\nsyscalls = ["mkdir"]\naction = "forbid"\n',
        8,
        "rule[1].action",
        "forbid",
    ),
    (
        "bad-default",
        'version = 1\nname = "t"\ndefault = "maybe"\n',
        3,
        "default",
        "maybe",
    ),
    (
        "toml-syntax",
        GOOD_HEAD + '\n[[rule]]\nname = "r"\nsyscalls = ["mkdir"\naction = "deny"\n',
        None,  # tomllib reports the line where it noticed; only require a line number
        None,
        "TOML",
    ),
]


@pytest.mark.parametrize(("case", "text", "line", "key", "word"), CASES, ids=[c[0] for c in CASES])
def test_policy_error(
    case: str,
    text: str,
    line: int | None,
    key: str | None,
    word: str,
    supervise: Supervise,
    tmp_path: Path,
) -> None:
    policy = supervise.policy(text)
    marker = tmp_path / "started"
    r = supervise(policy, ["sh", "-c", f"touch {marker}"], timeout=30)
    assert r.returncode == 125, r.explain()
    assert not marker.exists(), "the command was started despite the policy error"
    err_lines = r.stderr.strip().splitlines()
    assert len(err_lines) == 1, r.explain()
    msg = err_lines[0]
    prefix = f"seccomp-supervisor: policy error: {policy}:"
    assert msg.startswith(prefix), msg
    rest = msg[len(prefix) :]
    m = re.match(r"(\d+): (.*)$", rest)
    assert m, f"no line number: {msg}"
    if line is not None:
        assert int(m.group(1)) == line, msg
    if key is not None:
        assert m.group(2).startswith(f"{key}: "), msg
    assert word in m.group(2), msg


def test_policy_error_in_check(supervise: Supervise) -> None:
    bad = supervise.policy(CASES[2][1])
    good = supervise.policy(GOOD_HEAD)
    r = subprocess.run(
        [SUPERVISOR, "policy", "check", good, bad], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{bad}:7: rule[1].syscalls: " in r.stderr
    assert str(good) in r.stdout


def test_missing_policy_file(supervise: Supervise, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    r = supervise(tmp_path / "nope.toml", ["sh", "-c", f"touch {marker}"], timeout=30)
    assert r.returncode == 125, r.explain()
    assert not marker.exists()
    assert len(r.stderr.strip().splitlines()) == 1, r.explain()


def test_unknown_policy_name(supervise: Supervise, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    r = supervise("no-such-policy", ["sh", "-c", f"touch {marker}"], timeout=30)
    assert r.returncode == 125, r.explain()
    assert not marker.exists()
    assert "no-such-policy" in r.stderr
