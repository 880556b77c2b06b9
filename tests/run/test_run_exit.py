"""Exit statuses and signals: the target's status passes through; 128+N when signal N killed
it; 126/127 when it cannot be executed or found; SIGTERM to the launcher is relayed; SIGINT to
the process group reaches the target while the launcher survives. The target's argv,
environment, cwd and stdio are its own."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers.run import Files, Supervise, deny_list, read_line
from tests.helpers.wait import wait_until


@pytest.fixture
def policy(supervise: Supervise, files: Files) -> Path:
    return supervise.policy(deny_list(files.secret))


@pytest.mark.parametrize("status", [0, 3, 255])
def test_exit_status_passthrough(
    supervise: Supervise, policy: Path, target_bin, status: int
) -> None:
    r = supervise(policy, [target_bin("sysops"), "exit", str(status)])
    assert r.returncode == status, r.explain()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGSEGV])
def test_killed_by_signal(supervise: Supervise, policy: Path, target_bin, sig: int) -> None:
    r = supervise(policy, [target_bin("sysops"), "raise", str(int(sig))])
    assert r.returncode == 128 + sig, r.explain()


def test_shell_exit_status(supervise: Supervise, policy: Path) -> None:
    r = supervise(policy, ["sh", "-c", "exit 3"])
    assert r.returncode == 3, r.explain()


def test_not_executable(supervise: Supervise, policy: Path, tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    r = supervise(policy, [script])
    assert r.returncode == 126, r.explain()
    assert r.stdout == ""
    assert str(script) in r.stderr


def test_directory_is_not_executable(supervise: Supervise, policy: Path, tmp_path: Path) -> None:
    r = supervise(policy, [tmp_path])
    assert r.returncode == 126, r.explain()


@pytest.mark.parametrize("cmd", ["/nonexistent/command", "no-such-command-e2e"])
def test_not_found(supervise: Supervise, policy: Path, cmd: str) -> None:
    r = supervise(policy, [cmd])
    assert r.returncode == 127, r.explain()
    assert cmd in r.stderr


def test_argv_env_cwd_stdio(supervise: Supervise, policy: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    env = {**os.environ, "SV_E2E_VAR": "value with spaces"}
    script = (
        'printf "[%s]" "$0" "$@"; echo; pwd; echo "$SV_E2E_VAR"; '
        'read line; echo "stdin:$line"; echo to-stderr >&2; exit 7'
    )
    r = supervise(
        policy,
        ["sh", "-c", script, "zero", "a b", "", "c*"],
        cwd=workdir,
        env=env,
        input="hello from stdin\n",
    )
    assert r.returncode == 7, r.explain()
    assert r.lines == [
        "[zero][a b][][c*]",
        str(workdir),
        "value with spaces",
        "stdin:hello from stdin",
    ], r.explain()
    # The supervisor logs to its --log-file: stderr is the target's alone.
    assert r.stderr == "to-stderr\n", r.explain()


def test_sigterm_to_launcher_is_relayed(supervise: Supervise, policy: Path, target_bin) -> None:
    log = supervise.log_file()
    proc = subprocess.Popen(
        supervise.argv(policy, [target_bin("signals")], log),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert read_line(proc, 20) == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 42, f"{out}\n{err}\n{log.read_text()}"
    assert out == "got SIGTERM\n"


def test_sigint_to_process_group(supervise: Supervise, policy: Path, target_bin) -> None:
    """A terminal's ^C goes to the whole foreground group: the target dies of it; the launcher
    survives it and reports 128+2."""
    log = supervise.log_file()
    proc = subprocess.Popen(
        supervise.argv(policy, [target_bin("signals")], log),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert read_line(proc, 20) == "ready\n"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGINT, f"{out}\n{err}\n{log.read_text()}"
    assert "Traceback" not in err


def test_sigkill_to_target_only(supervise: Supervise, policy: Path, target_bin) -> None:
    """SIGKILL to the target (not the launcher): 137, the launcher is not confused."""
    log = supervise.log_file()
    proc = subprocess.Popen(
        supervise.argv(policy, [target_bin("signals")], log),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert read_line(proc, 20) == "ready\n"
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)
        # run ends once its target is killed (a hang fails at communicate's deadline).
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 137, f"{out}\n{err}\n{log.read_text()}"


def _processes_naming(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_launcher_out_of_fds_fails_cleanly(policy: Path, target_bin) -> None:
    """Whatever step runs out of file descriptors (the filter, the pipes, the listener copy,
    trio's start-up, the target's own opens), `run` ends with one line on stderr and an exit
    status, never a traceback, and leaves no process behind (a child that could not be
    supervised, waiting for ever in a notified syscall)."""
    from tests.helpers.run import SUPERVISOR

    statuses = set()
    for limit in range(6, 26):
        cmd = [str(SUPERVISOR), "--log-format", "json", "--log-file", "/dev/null", "run"]
        cmd += ["-p", str(policy), "--", str(target_bin("sysops")), "exit", "0"]
        proc = subprocess.run(
            ["prlimit", f"--nofile={limit}", *cmd], capture_output=True, text=True, timeout=30
        )
        statuses.add(proc.returncode)
        assert "Traceback" not in proc.stderr, (limit, proc.stderr)
        if proc.returncode != 0:
            assert proc.returncode in (125, 126, 127), (limit, proc.returncode, proc.stderr)
            assert len(proc.stderr.strip().splitlines()) == 1, (limit, proc.stderr)
    assert 0 in statuses and 125 in statuses, statuses  # the range spans failure and success
    wait_until(
        lambda: not _processes_naming(str(policy)),
        lambda: f"no process left behind: {_processes_naming(str(policy))}",
    )
