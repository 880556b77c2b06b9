"""End to end: a phase that ends. `init` lasts until the workload (sysops) is executed; mkdir is
allowed only in init, so the workload's mkdir is denied."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.run import Supervise


def test_a_phase_that_ends_at_the_workloads_exec(
    supervise: Supervise, target_bin, world_dir: Path
) -> None:
    workload = os.path.realpath(target_bin("sysops"))
    text = f"""\
version = 1
name = "phases"
default = "allow"
phases = ["init", "run"]

[[rule]]
name = "setup"
syscalls = ["mkdir", "mkdirat"]
phase = "init"
action = "allow"

[[rule]]
name = "start-workload"
syscalls = ["execve"]
path = ["{workload}"]
phase = "init"
action = "allow"
enter = "run"

[[rule]]
name = "no-mkdir"
syscalls = ["mkdir", "mkdirat"]
action = "deny"
errno = "EACCES"
"""
    before, after = world_dir / "before", world_dir / "after"
    cmd = [target_bin("calls"), "mkdir", before, "exec", workload, "mkdir", after]
    r = supervise(supervise.policy(text), cmd)
    assert r.returncode == 0, r.explain()
    # the launcher's exec of `calls` did not end init; the exec of the workload did
    assert r.lines == ["OK:0", "EACCES"], r.explain()
    assert before.is_dir() and not after.exists()
    entered = r.named("policy.phase")
    assert len(entered) == 1, r.explain()
    assert entered[0]["phase"] == "run" and entered[0]["rule"] == "start-workload"
    assert entered[0]["syscall"] == "execve"
    denied = r.named("syscall.denied")
    assert denied and denied[0]["rule"] == "no-mkdir" and denied[0]["syscall"].startswith("mkdir")
