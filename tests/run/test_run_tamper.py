"""A target cannot signal, trace or re-limit the process that supervises it (issue 14,
"Tampering"), and `default` refuses whole-system observers (route 4: fanotify).

The tamper guard is a filter of its own under every policy: tests use `default` and an
allow-everything policy, where nothing else would stop the calls.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.run import Supervise, policy_text

# Each op prints OK or the errno name. "sup" is the supervisor: our parent under `run`.
TARGET = r"""
import ctypes, errno, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS = {"tgkill": 234, "tkill": 200, "pidfd_open": 434, "fanotify_init": 300,
       "prlimit64": 302, "sched_setaffinity": 203, "ptrace": 101, "rt_sigqueueinfo": 129,
       "setpriority": 141, "process_vm_readv": 310}
sup = os.getppid()
def sc(name, *args):
    r = libc.syscall(SYS[name], *[ctypes.c_long(a) for a in args])
    if r < 0:
        raise OSError(ctypes.get_errno(), name)
    return r
def result(fn):
    try:
        fn()
        print("OK", flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno], flush=True)
mask = ctypes.c_ulong(1)
info = ctypes.create_string_buffer(128)
ops = {
    "kill": lambda: os.kill(sup, 0),
    "tkill-upper": lambda: sc("tkill", sup | (1 << 32), 0),  # the kernel ignores bits 32-63
    "kill-all": lambda: os.kill(-1, 0),
    "kill-group": lambda: os.kill(0, 0),
    "killpg": lambda: os.killpg(os.getpgrp(), 0),
    "tgkill": lambda: sc("tgkill", sup, sup, 0),
    "tkill": lambda: sc("tkill", sup, 0),
    "pidfd_open": lambda: os.close(sc("pidfd_open", sup, 0)),
    "prlimit": lambda: sc("prlimit64", sup, 7, 0, 0),
    "affinity": lambda: sc("sched_setaffinity", sup, 8, ctypes.addressof(mask)),
    "ptrace": lambda: sc("ptrace", 16, sup, 0, 0),  # PTRACE_ATTACH
    "sigqueue": lambda: sc("rt_sigqueueinfo", sup, 0, ctypes.addressof(info)),
    "renice": lambda: sc("setpriority", 0, sup, 0),
    "vm_readv": lambda: sc("process_vm_readv", sup, 0, 0, 0, 0, 0),
    "self-kill": lambda: os.kill(os.getpid(), 0),
    "self-pidfd": lambda: os.close(sc("pidfd_open", os.getpid(), 0)),
    "self-prlimit": lambda: sc("prlimit64", 0, 7, 0, 0),
    "fanotify": lambda: os.close(sc("fanotify_init", 0, os.O_RDONLY)),
    "kill-for-real": lambda: os.kill(sup, signal.SIGKILL),
    "shadow": lambda: open("/etc/shadow").close(),
}
for op in sys.argv[1:]:
    result(ops[op])
"""

TAMPER_OPS = [
    "kill",
    "tkill-upper",
    "kill-all",
    "kill-group",
    "killpg",
    "tgkill",
    "tkill",
    "pidfd_open",
    "prlimit",
    "affinity",
    "ptrace",
    "sigqueue",
    "renice",
    "vm_readv",
]
# The same calls on the target itself: untouched.
SELF_OPS = ["self-kill", "self-pidfd", "self-prlimit"]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "tamper.py"
    path.write_text(TARGET)
    return path


@pytest.fixture(params=["default", "allow-all"])
def policy(request: pytest.FixtureRequest, supervise: Supervise) -> str | Path:
    if request.param == "default":
        return "default"
    return supervise.policy(policy_text("allow-all", "allow"))


def test_calls_naming_the_supervisor_are_refused(
    supervise: Supervise, script: Path, policy: str | Path
) -> None:
    r = supervise(policy, [sys.executable, str(script), *TAMPER_OPS, *SELF_OPS])
    assert r.returncode == 0, r.explain()
    got = dict(zip(TAMPER_OPS + SELF_OPS, r.lines, strict=True))
    assert got == {**dict.fromkeys(TAMPER_OPS, "EPERM"), **dict.fromkeys(SELF_OPS, "OK")}, (
        r.explain()
    )


def test_i386_calls_naming_the_supervisor_are_refused(
    supervise: Supervise, target_bin, policy: str | Path
) -> None:
    r = supervise(policy, [target_bin("tamper32")])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EPERM"] * 5 + ["OK"], r.explain()


def test_supervisor_survives_a_real_sigkill(supervise: Supervise, script: Path) -> None:
    # If the SIGKILL landed, the launcher would be gone: the target's notified open of
    # /etc/shadow would fail with ENOSYS (fail-closed) and run would not report its exit.
    r = supervise("default", [sys.executable, str(script), "kill-for-real", "shadow"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EPERM", "EACCES"], r.explain()
    assert r.named("target.exited"), r.explain()


def test_fanotify_refused_under_default(supervise: Supervise, script: Path) -> None:
    control = subprocess.run(
        [sys.executable, str(script), "fanotify"], capture_output=True, text=True, check=True
    )
    assert control.stdout.split() == ["OK"], "positive control: fanotify_init works unfiltered"
    r = supervise("default", [sys.executable, str(script), "fanotify"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EPERM"], r.explain()


def test_terminal_signals_still_reach_the_target(supervise: Supervise, tmp_path: Path) -> None:
    """The target stays in run's process group (Ctrl-C from a terminal reaches it): a SIGINT
    sent to the whole group, as a terminal does, ends the target and run reports it."""
    log = supervise.log_file()
    ready = tmp_path / "ready"
    code = f"import time, pathlib; pathlib.Path({str(ready)!r}).touch(); time.sleep(600)"
    proc = subprocess.Popen(
        supervise.argv("default", [sys.executable, "-c", code], log),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(6000):
            if ready.exists():
                break
            try:
                proc.wait(0.01)
                pytest.fail("run exited before its target was ready")
            except subprocess.TimeoutExpired:
                pass
        assert ready.exists()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 128 + signal.SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
