"""Helpers for the end-to-end tests: compiling C targets, writing policies, running the CLI.

End-to-end tests (``tests/test_run_*.py``) run ``.venv/bin/seccomp-supervisor run`` as a
subprocess with a policy written into a temporary directory, a real target (a C program from
``tests/targets/`` or a shell) and a timeout, and look at the exit status, the target's output
and the supervisor's JSON log. Nothing of the kernel is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
TARGETS = TESTS / "targets"
BIN = TARGETS / "bin"
SUPERVISOR = Path(sys.prefix) / "bin" / "seccomp-supervisor"
if not SUPERVISOR.exists():
    SUPERVISOR = ROOT / ".venv" / "bin" / "seccomp-supervisor"
POLICIES = ROOT / "policies"

# What a dynamically linked target needs to open before main(): allow-list policies start here.
LOADER_PATHS = ("/etc/ld.so.cache", "/lib/**", "/lib64/**", "/usr/lib/**", "/usr/lib64/**")
OPEN_FAMILY = ("open", "openat", "openat2", "creat")
# The marker that must never be read from a denied file.
SECRET = "TOPSECRET-e2e"
HARMLESS = "harmless"
# Log events that mean the supervisor itself went wrong.
INTERNAL_ERRORS = ("supervisor.failed", "supervisor.internal_error")


# The capabilities issue 14 says `default` drops at least (tests of the policy and of a target).
DEFAULT_DROPS = [
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_NET_ADMIN",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYSLOG",
]


def compile_target(name: str) -> Path:
    """Compile tests/targets/NAME.c into tests/targets/bin/NAME when the source (or common.h,
    the targets' shared helpers) is newer."""
    src = TARGETS / f"{name}.c"
    exe = BIN / name
    newest = max(src.stat().st_mtime, (TARGETS / "common.h").stat().st_mtime)
    if not exe.exists() or exe.stat().st_mtime < newest:
        BIN.mkdir(exist_ok=True)
        tmp = exe.with_name(f".{name}.{os.getpid()}.tmp")
        # A first line "/* cflags: ... */" replaces -pthread (a static program without libc).
        first = src.read_text().split("\n", 1)[0].replace("*/", "")
        flags = first.split("cflags:", 1)[1].split() if "cflags:" in first else ["-pthread"]
        subprocess.run(["cc", "-O2", "-Wall", *flags, "-o", str(tmp), str(src)], check=True)
        tmp.rename(exe)
    return exe


# -- policies ---------------------------------------------------------------------------------
def toml_list(items: Sequence[str | os.PathLike[str]]) -> str:
    """A TOML array of basic strings (JSON string syntax is valid TOML for these)."""
    return "[" + ", ".join(json.dumps(os.fspath(i)) for i in items) + "]"


def rule(
    name: str,
    action: str,
    *,
    syscalls: Sequence[str] | None = None,
    path: Sequence[str | os.PathLike[str]] | None = None,
    args: str | None = None,
    errno: str | None = None,
) -> str:
    """One ``[[rule]]`` table; ``args`` is the TOML text of the array."""
    lines = ["[[rule]]", f"name = {json.dumps(name)}"]
    if syscalls is not None:
        lines.append(f"syscalls = {toml_list(syscalls)}")
    if path is not None:
        lines.append(f"path = {toml_list(path)}")
    if args is not None:
        lines.append(f"args = {args}")
    lines.append(f"action = {json.dumps(action)}")
    if errno is not None:
        lines.append(f"errno = {json.dumps(errno)}")
    return "\n".join(lines) + "\n"


def policy_text(name: str, default: str, *rules: str) -> str:
    head = f'version = 1\nname = "{name}"\ndescription = "e2e test policy"\ndefault = "{default}"\n'
    return "\n".join([head, *rules])


def deny_list(
    *paths: str | os.PathLike[str], errno: str = "EACCES", name: str = "deny-list"
) -> str:
    """Everything allowed except the given paths (every path syscall), which fail with errno."""
    return policy_text(name, "allow", rule("secrets", "deny", path=paths, errno=errno))


def allow_list(*paths: str | os.PathLike[str], name: str = "allow-list") -> str:
    """Opens allowed only for the loader's files and the given paths; every other open fails
    with EACCES. Other syscalls are allowed."""
    return policy_text(
        name,
        "allow",
        rule("loader", "allow", syscalls=OPEN_FAMILY, path=LOADER_PATHS),
        rule("allowed", "allow", syscalls=OPEN_FAMILY, path=paths),
        rule("no-other-opens", "deny", syscalls=OPEN_FAMILY, errno="EACCES"),
    )


# -- running the CLI --------------------------------------------------------------------------
@dataclass
class Result:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    log_text: str
    elapsed: float
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    def explain(self) -> str:
        return (
            f"command: {self.cmd}\nexit: {self.returncode} after {self.elapsed:.2f}s\n"
            f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}\n"
            f"--- log ---\n{self.log_text[-3000:]}"
        )


def parse_log(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            events.append({"event": "<not json>", "line": line})
    return events


class Supervise:
    """Runs ``seccomp-supervisor --log-format json --log-file LOG run -p POLICY -- CMD``.

    Each call gets its own log file in the test's temporary directory.
    """

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.count = 0

    def policy(self, text: str) -> Path:
        self.count += 1
        path = self.tmp / f"policy-{self.count}.toml"
        path.write_text(text)
        return path

    def argv(
        self, policy: str | Path | None, cmd: Sequence[str | os.PathLike[str]], log: Path
    ) -> list[str]:
        argv = [str(SUPERVISOR), "--log-format", "json", "--log-file", str(log), "run"]
        if policy is not None:
            argv += ["-p", str(policy)]
        return [*argv, "--", *(os.fspath(c) for c in cmd)]

    def log_file(self) -> Path:
        self.count += 1
        return self.tmp / f"supervisor-{self.count}.log"

    def __call__(
        self,
        policy: str | Path | None,
        cmd: Sequence[str | os.PathLike[str]],
        *,
        timeout: float = 60,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> Result:
        log = self.log_file()
        argv = self.argv(policy, cmd, log)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=cwd,
                env=env,
                input=input if input is not None else "",
            )
        except subprocess.TimeoutExpired as e:
            log_text = log.read_text() if log.exists() else ""
            pytest.fail(
                f"timed out after {timeout}s (supervisor or target hung): {argv}\n"
                f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}\nlog: {log_text[-3000:]}"
            )
        elapsed = time.monotonic() - start
        log_text = log.read_text() if log.exists() else ""
        result = Result(
            argv, proc.returncode, proc.stdout, proc.stderr, log_text, elapsed, parse_log(log_text)
        )
        # Whatever the test checks: the supervisor itself must not have failed on the way.
        internal = [e for e in result.events if e.get("event") in INTERNAL_ERRORS]
        if internal or "Traceback (most recent call last)" in proc.stderr:
            pytest.fail(f"the supervisor reported an internal error\n{result.explain()}")
        return result


@dataclass
class Files:
    """A secret file, a harmless one (same name length) and a sub-directory, in ``root/d``."""

    root: Path
    dir: Path
    secret: Path
    allowed: Path
    sub: Path


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of the process's stdout, or fail after ``timeout`` seconds."""
    result: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    t = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        proc.kill()
        pytest.fail(f"no output from the target within {timeout}s")
    return result[0]


def race_counts(r: Result, attempts: int) -> dict[str, int]:
    """The counts a racing target prints (one line "OK:ok=N,denied=M,..."), checked: every
    attempt was counted, and both sides of the race were seen (else it proved nothing)."""
    (line,) = r.lines
    counts = {k: int(v) for k, v in (kv.split("=") for kv in line.removeprefix("OK:").split(","))}
    assert counts["ok"] + counts["denied"] == attempts, r.explain()
    assert counts["ok"] > 0 and counts["denied"] > 0, r.explain()
    return counts
