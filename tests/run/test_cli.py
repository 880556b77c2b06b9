"""The command line's own surface: --version, --help, and the two log renderings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from supervisor import __version__
from tests.helpers.run import SUPERVISOR


def cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SUPERVISOR), *args], capture_output=True, text=True, timeout=60, **kw
    )  # type: ignore[call-overload, no-any-return]


def test_version() -> None:
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"seccomp-supervisor {__version__}"


def test_help_names_every_command() -> None:
    r = cli("--help")
    assert r.returncode == 0
    for command in ("run", "daemon", "status", "ps", "reload", "policy"):
        assert command in r.stdout
    r = cli("run", "--help")
    assert r.returncode == 0 and "--daemon" in r.stdout and "-p" in r.stdout


def test_unknown_command_is_a_usage_error() -> None:
    r = cli("frobnicate")
    assert r.returncode == 2 and "usage:" in r.stderr


def test_logs_render_as_json_lines_or_for_a_terminal(tmp_path: Path) -> None:
    """JSON lines with --log-format json (and by default when not on a terminal), the console
    renderer with --log-format console: the same denial either way."""
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    policy = tmp_path / "p.toml"
    policy.write_text(
        f'default = "allow"\n[[rule]]\nname = "s"\npath = ["{secret}"]\naction = "deny"\n'
    )
    as_json = cli("run", "-p", str(policy), "--", "cat", str(secret))
    assert as_json.returncode == 1
    events = [json.loads(line) for line in as_json.stderr.splitlines() if line.startswith("{")]
    (denied,) = [e for e in events if e["event"] == "syscall.denied"]
    assert denied["path"] == str(secret) and denied["rule"] == "s" and denied["level"] == "warning"
    console = cli("--log-format", "console", "run", "-p", str(policy), "--", "cat", str(secret))
    assert console.returncode == 1
    line = next(x for x in console.stderr.splitlines() if "syscall.denied" in x)
    assert not line.startswith("{") and f"path={secret}" in line and "rule=s" in line
