"""`default` keeps a root target's hands off the kernel's global state (issue 14, route 1).

The attack: write ``|/prog`` into /proc/sys/kernel/core_pattern and crash; the kernel runs /prog
as root with no filter. These tests never let a write land on this machine: the target only
ever writes the value the file already holds (or opens without writing), and core_pattern is
saved and restored in a finally should anything get through.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.run import Supervise

CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
# Opening one of these for writing changes nothing until something is written.
SYSFS_KNOBS = [
    "/sys/kernel/uevent_helper",
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/kernel/mm/ksm/run",
    "/sys/power/state",
    "/sys/kernel/profiling",
]

# The target: try OPS on PATH, print one line per op: OK or the errno name. It never writes
# anything but the bytes the file held when it started (``same``).
TARGET = r"""
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
path = sys.argv[1]
saved = open(path, "rb").read() if sys.argv[2] == "same" else None
def result(fn):
    try:
        fn()
        print("OK", flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno], flush=True)
def open_write(flags):
    def go():
        fd = os.open(path, flags)
        try:
            if saved is not None:
                os.write(fd, saved)
        finally:
            os.close(fd)
    return go
def sys_open(flags):  # open(2) itself, not openat
    def go():
        fd = libc.syscall(2, path.encode(), flags, 0)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "open")
        if saved is not None:
            os.write(fd, saved)
        os.close(fd)
    return go
for op in sys.argv[3:]:
    if op == "read":
        result(lambda: open(path, "rb").read())
    elif op == "wronly":
        result(open_write(os.O_WRONLY))
    elif op == "rdwr":
        result(open_write(os.O_RDWR))
    elif op == "sys-open":
        result(sys_open(os.O_WRONLY))
    elif op == "truncate":  # a size of the current length: nothing changes if it runs
        result(lambda: os.truncate(path, len(saved) if saved is not None else 0))
"""


@pytest.fixture
def core_pattern() -> Iterator[bytes]:
    saved = CORE_PATTERN.read_bytes()
    try:
        yield saved
    finally:
        if CORE_PATTERN.read_bytes() != saved:
            CORE_PATTERN.write_bytes(saved)
            pytest.fail("a write to core_pattern got through (restored)")


def run_target(supervise: Supervise, tmp: Path, path: str, mode: str, *ops: str) -> list[str]:
    script = tmp / "knob.py"
    script.write_text(TARGET)
    r = supervise("default", [sys.executable, str(script), path, mode, *ops])
    assert r.returncode == 0, r.explain()
    return r.lines


def test_core_pattern_write_refused(
    supervise: Supervise, tmp_path: Path, core_pattern: bytes
) -> None:
    lines = run_target(
        supervise, tmp_path, str(CORE_PATTERN), "same", "read", "wronly", "rdwr", "sys-open"
    )
    assert lines == ["OK", "EACCES", "EACCES", "EACCES"]
    assert CORE_PATTERN.read_bytes() == core_pattern


def test_core_pattern_through_a_symlink_refused(
    supervise: Supervise, tmp_path: Path, core_pattern: bytes
) -> None:
    link = tmp_path / "innocent"
    link.symlink_to(CORE_PATTERN)
    lines = run_target(supervise, tmp_path, str(link), "same", "read", "wronly", "truncate")
    assert lines == ["OK", "EACCES", "EACCES"]
    assert CORE_PATTERN.read_bytes() == core_pattern


def test_proc_sys_modprobe_and_binfmt_refused(supervise: Supervise, tmp_path: Path) -> None:
    for knob in ("/proc/sys/kernel/modprobe", "/proc/sys/vm/drop_caches"):
        if not os.path.exists(knob):
            continue
        # drop_caches: the target opens for writing and would write nothing.
        mode = "same" if knob.endswith("modprobe") else "none"
        saved = Path(knob).read_bytes() if mode == "same" else b""
        try:
            assert run_target(supervise, tmp_path, knob, mode, "wronly") == ["EACCES"], knob
        finally:
            if mode == "same" and Path(knob).read_bytes() != saved:
                Path(knob).write_bytes(saved)
                pytest.fail(f"a write to {knob} got through (restored)")


def test_sysfs_knob_open_for_writing_refused(supervise: Supervise, tmp_path: Path) -> None:
    knobs = [k for k in SYSFS_KNOBS if os.path.exists(k)]
    if not knobs:
        pytest.skip("none of the sysfs knobs exists here")
    for knob in knobs:
        # "none": the target only opens; nothing is written even if the open got through.
        assert run_target(supervise, tmp_path, knob, "none", "read", "wronly") == [
            "OK",
            "EACCES",
        ], knob


def test_sysrq_trigger_open_for_writing_refused(supervise: Supervise, tmp_path: Path) -> None:
    # Only the open: no byte is ever written to the trigger.
    assert run_target(supervise, tmp_path, "/proc/sysrq-trigger", "none", "wronly") == ["EACCES"]


def _block_device() -> str | None:
    for name in sorted(os.listdir("/dev")):
        path = f"/dev/{name}"
        if name.startswith(("sd", "vd", "nvme", "loop", "xvd")) and stat.S_ISBLK(
            os.stat(path).st_mode
        ):
            return path
    return None


def test_block_device_open_refused(supervise: Supervise, tmp_path: Path) -> None:
    dev = _block_device()
    if dev is None:
        pytest.skip("no block device here")
    link = tmp_path / "disk"
    link.symlink_to(dev)
    assert run_target(supervise, tmp_path, dev, "none", "read", "wronly") == ["EACCES", "EACCES"]
    assert run_target(supervise, tmp_path, str(link), "none", "read") == ["EACCES"]
    # stat stays allowed (lsblk, ls -l /dev)
    r = supervise("default", ["stat", "-c", "%F", dev])
    assert r.returncode == 0 and r.lines == ["block special file"], r.explain()


MKNOD = r"""
import os, stat, sys
d = sys.argv[1]
for name, mode, dev in (
    ("blk", stat.S_IFBLK | 0o600, os.makedev(7, 0)),
    ("chr", stat.S_IFCHR | 0o600, os.makedev(1, 3)),
    ("fifo", stat.S_IFIFO | 0o600, 0),
):
    try:
        os.mknod(os.path.join(d, name), mode, dev)
        print(name, "OK")
    except OSError as e:
        print(name, os.strerror(e.errno))
"""


def test_device_nodes_refused(supervise: Supervise, tmp_path: Path) -> None:
    script = tmp_path / "mknod.py"
    script.write_text(MKNOD)
    r = supervise("default", [sys.executable, str(script), str(tmp_path)])
    assert r.returncode == 0, r.explain()
    eperm = os.strerror(errno.EPERM)
    assert r.lines == [f"blk {eperm}", f"chr {eperm}", "fifo OK"], r.explain()
    assert not (tmp_path / "blk").exists() and not (tmp_path / "chr").exists()
