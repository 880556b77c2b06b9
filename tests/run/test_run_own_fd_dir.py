"""A target may always list its own /proc/self/fd, as the kernel lets a thread group into its
own fd directories whatever their mode (proc_fd_permission). A non-dumpable process's are
root's, mode 0500: an open the supervisor performs for it under its credentials alone would be
refused where the kernel allows it (runc's init in a user namespace of its own hit that)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.run import Supervise, policy_text, rule

# Drops to uid 65534, makes itself non-dumpable, lists its own fd directory (the kernel lets
# it), then tries another process's (pid 1: refused natively too) and prints both outcomes.
SCRIPT = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
os.setgroups([]); os.setgid(65534); os.setuid(65534)
assert libc.prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE 0
def ls(path):
    try:
        return "OK" if os.listdir(path) else "EMPTY"
    except OSError as e:
        return os.strerror(e.errno)
print(ls("/proc/self/fd"), ls("/proc/self/task/%d/fd" % os.getpid()), ls("/proc/1/fd"))
"""


def test_a_non_dumpable_target_lists_its_own_fd_dir(supervise: Supervise, tmp_path: Path) -> None:
    script = tmp_path / "fds.py"
    script.write_text(SCRIPT)
    native = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert native.returncode == 0, native.stderr
    expected = native.stdout.split()
    assert expected[:2] == ["OK", "OK"] and expected[2] != "OK", native.stdout  # the control
    # Every open under /proc is allowed by path, so the supervisor performs it.
    policy = policy_text(
        "own-fd",
        "allow",
        rule("proc-opens", "allow", syscalls=["open", "openat", "openat2"], path=["/proc/**"]),
    )
    r = supervise(supervise.policy(policy), [sys.executable, str(script)])
    assert r.returncode == 0, r.explain()
    assert r.stdout.split() == expected, r.explain()
