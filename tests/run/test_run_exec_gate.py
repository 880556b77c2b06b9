"""The exec gate: an inspected exec allow is stopped before the new program's first instruction
(ptrace, PTRACE_EVENT_EXEC) and verified there, so a raced exec of a denied program runs none of
it; an exec that fails, a thread's exec, signals and stops during the exec, and a target traced
by someone else, under `run` and under the daemon (`run --daemon`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.daemon import RunClient, running_daemon
from tests.helpers.run import Supervise, policy_text, rule

TRUE = os.path.realpath("/usr/bin/true")
SH = os.path.realpath("/bin/sh")
GREP = os.path.realpath("/usr/bin/grep")
EXECS = ("execve", "execveat")


@dataclass
class Outcome:
    returncode: int
    stdout: str
    events: list[dict[str, Any]]
    text: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


Runner = Callable[..., Outcome]


@pytest.fixture(params=["run", "daemon"])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    """Run a command under a policy text with the embedded `run` or with `run --daemon`."""
    if request.param == "run":
        supervise = Supervise(tmp_path)

        def embedded(text: str, cmd: Sequence[Any], timeout: float = 120, **kw: Any) -> Outcome:
            r = supervise(supervise.policy(text), cmd, timeout=timeout, **kw)
            return Outcome(r.returncode, r.stdout, r.events, r.explain())

        yield embedded
        return
    with running_daemon(tmp_path) as daemon:
        count = [0]

        def via_daemon(text: str, cmd: Sequence[Any], timeout: float = 120, **kw: Any) -> Outcome:
            assert not kw, kw
            count[0] += 1
            name = daemon.policy(f"gate{count[0]}", text)
            before = len(daemon.events())
            run = RunClient(daemon, name, cmd)
            code, out, err = run.wait(timeout)
            events = daemon.events()[before:]
            return Outcome(code, out, events, f"{out}\n{err}\n{daemon.log_text()[-3000:]}")

        yield via_daemon


def gate_policy(launcher: Path, *allowed: str | Path) -> str:
    """Inspected allows (path rules) for the launcher's program and ``allowed``; no other exec."""
    return policy_text(
        "gate",
        "allow",
        rule("launcher", "allow", syscalls=EXECS, path=[os.path.realpath(launcher)]),
        rule("allowed", "allow", syscalls=EXECS, path=[str(a) for a in allowed]),
        rule("no-other-exec", "deny", syscalls=EXECS, errno="EACCES"),
    )


@pytest.mark.slow
def test_raced_exec_runs_no_instruction_of_the_denied_program(
    runner: Runner, target_bin, world_dir: Path
) -> None:
    """A thread flips the execve path between an allowed program and a denied one whose first
    instructions write MARKER to stdout (a raw syscall the filter does not notify). Over 400
    children: the allowed one ran, the denied one was refused or killed, and it never wrote a
    byte."""
    execs = target_bin("execs")
    allowed, denied = world_dir / "prog-a", world_dir / "prog-b"
    shutil.copy(TRUE, allowed)
    shutil.copy(target_bin("marker"), denied)
    r = runner(gate_policy(execs, allowed), [execs, "race", allowed, denied, "400"], timeout=300)
    assert r.returncode == 0, r.text
    assert "MARKER" not in r.stdout, r.text
    counts = dict(item.split("=") for item in r.lines[-1].split())
    assert int(counts["other"]) == 0, r.text
    killed = r.named("syscall.killed")
    assert int(counts["killed"]) > 0 and len(killed) == int(counts["killed"]), r.text
    reason = f"exec raced: executed {denied}, checked {allowed}"
    assert all(k["reason"] == reason for k in killed), r.text
    assert int(counts["ran"]) > 0, r.text
    assert r.named("syscall.denied"), r.text  # the supervisor read the denied path too


def test_failed_exec_leaves_the_process_untraced(
    runner: Runner, target_bin, world_dir: Path
) -> None:
    """An allowed exec the kernel refuses (EACCES: not executable) gives no exec event: the
    process goes on with its old program, untraced, and can fork and wait."""
    gate = target_bin("execgate")
    plain = world_dir / "not-executable"
    plain.write_text("data\n")
    plain.chmod(0o644)
    r = runner(gate_policy(gate, plain), [gate, "failexec", plain, "20"])
    assert r.returncode == 0 and r.lines == ["EACCES", "untraced", "child=7"], r.text
    assert not r.named("syscall.killed"), r.text


def test_exec_of_a_thread_that_is_not_the_leader(runner: Runner, target_bin) -> None:
    """A second thread execs (the kernel kills the others and gives it the process's pid): the
    gate follows it, and the new program runs untraced as the same process."""
    gate = target_bin("execgate")
    script = "exec grep TracerPid /proc/self/status"
    r = runner(gate_policy(gate, SH, GREP), [gate, "thread", SH, "-c", script])
    assert r.returncode == 0, r.text
    assert [line.split() for line in r.lines] == [["TracerPid:", "0"]], r.text
    assert not r.named("syscall.killed"), r.text


def test_stop_and_continue_during_the_exec(runner: Runner, target_bin, world_dir: Path) -> None:
    """SIGSTOP as the child execs, then SIGCONT: the stop takes effect (the parent sees it) and
    the child goes on to run the program; nothing hangs, nothing is lost."""
    gate = target_bin("execgate")
    prog = world_dir / "prog"
    shutil.copy(TRUE, prog)
    r = runner(gate_policy(gate, prog), [gate, "stopcont", prog, "100"])
    assert r.returncode == 0, r.text
    counts = dict(item.split("=") for item in r.lines[-1].split())
    assert counts["ok"] == "100", r.text
    assert int(counts["stopped"]) > 0, r.text


def test_handled_signals_during_failing_execs_are_all_delivered(
    runner: Runner, target_bin, world_dir: Path
) -> None:
    """Real-time signals (queued, each one counted) sent to a thread while it execs an allowed
    program the kernel refuses: every one reaches its handler, none swallowed by the gate."""
    gate = target_bin("execgate")
    plain = world_dir / "not-executable"
    plain.write_text("data\n")
    r = runner(gate_policy(gate, plain), [gate, "rtsig", plain, "300"])
    assert r.returncode == 0 and r.lines == ["handled=300 of 300"], r.text


def test_exec_of_a_process_traced_by_another_is_refused(
    runner: Runner, target_bin, world_dir: Path
) -> None:
    """A process someone else traces cannot be stopped at its exec by the supervisor: its
    inspected exec allow is refused (EPERM, logged), not left unverified."""
    gate = target_bin("execgate")
    prog = world_dir / "prog"
    shutil.copy(TRUE, prog)
    r = runner(gate_policy(gate, prog), [gate, "traced", prog])
    assert r.returncode == 0 and r.lines == ["EPERM", "child exit=1"], r.text
    (refused,) = r.named("syscall.refused")
    assert refused["syscall"] == "execve" and "traced" in refused["reason"], r.text
