"""Emulated opens of /proc/PID files: the supervisor is the opener, so open-time ptrace checks
would be made against it. Another process's entries that check the opener are refused, and all
of the supervisor's own /proc/PID; the target's own /proc/self keeps working.

Under `run` the target's parent ({ppid}) is the supervisor. The target drops CAP_SYS_PTRACE,
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH first (as the audit did with setpriv): natively it can
then not open the supervisor's mem."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.run import Files, Supervise, deny_list

WEAK_ROOT = ("dropcaps", "sys_ptrace,dac_override,dac_read_search")


def native(binary: Path, *ops: str) -> list[str]:
    """The same ops without any supervisor (the parent is then pytest, root like it)."""
    r = subprocess.run([binary, *ops], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def first_words(lines: list[str]) -> list[str]:
    """OK:<content> -> OK (content varies run to run), errno names as they are."""
    return [line.split(":", 1)[0] for line in lines]


def test_supervisor_proc_refused_under_default(supervise: Supervise, target_bin) -> None:
    """The reproduced attack: a root target without CAP_SYS_PTRACE opened the supervisor's
    /proc/PID/mem read-write under the default policy. Natively EACCES."""
    ops = [*WEAK_ROOT, "openrw", "/proc/{ppid}/mem"]
    binary = target_bin("credops")
    assert native(binary, *ops) == ["OK", "EACCES"]
    # The supervisor's own /proc/PID is refused whole, files the kernel would let the target
    # read too (environ and maps check PTRACE_MODE_READ only; stat checks nothing at open).
    ops += ["open", "/proc/{ppid}/environ", "open", "/proc/{ppid}/maps"]
    ops += ["open", "/proc/{ppid}/stat", "open", "/proc/{ppid}/fdinfo/0", "open", "/proc/{ppid}"]
    ops += ["open", "/proc/{ppid}/task/{ppid}/mem"]
    r = supervise("default", [binary, *ops])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["OK"] + ["EACCES"] * 7, r.explain()


def test_other_process_entries(supervise: Supervise, target_bin, files: Files) -> None:
    """Another process's (here the target's child's) files that check the opener at open time
    are refused, stricter than the kernel (the same uid may open them natively); what ps and top
    read works, and so does the target's own /proc/self."""
    refused = ["mem", "environ", "auxv", "maps", "smaps", "pagemap", "fd", "fdinfo", "ns", "cwd"]
    readable = ["stat", "status", "statm", "cmdline", "comm", "limits", "task", "task/{child}/stat"]
    own = ["/proc/self/maps", "/proc/self/environ", "/proc/thread-self/status", "/proc/self/fd"]
    ops = [*WEAK_ROOT, "child"]
    for name in refused:
        ops += ["open", f"/proc/{{child}}/{name}"]
    for name in readable:
        ops += ["open", f"/proc/{{child}}/{name}"]
    ops += ["open", "/proc/{child}", "open", "/proc/{child}/task/{child}/environ"]
    ops += ["openrw", "/proc/{child}/mem"]
    for path in own:
        ops += ["open", path]
    ops += ["openrw", "/proc/self/mem"]
    r = supervise(supervise.policy(deny_list(files.secret)), [target_bin("credops"), *ops])
    assert r.returncode == 0, r.explain()
    want = ["OK", "OK"] + ["EACCES"] * len(refused) + ["OK"] * len(readable)
    want += ["OK", "EACCES", "EACCES"] + ["OK"] * len(own) + ["OK"]
    assert first_words(r.lines) == want, r.explain()
    # ps-like reads give real content: the child's stat names it.
    stat_line = r.lines[2 + len(refused)]
    assert "(credops)" in stat_line, r.explain()
    maps_line = r.lines[2 + len(refused) + len(readable) + 3]
    assert "credops" in maps_line, r.explain()


def test_o_path_fd_of_supervisor_mem(supervise: Supervise, target_bin, files: Files) -> None:
    """The object is identified by the fd the resolver holds, not by the path spelt: an O_PATH
    fd on the supervisor's mem (resumed, the kernel allows O_PATH) reopened via /proc/self/fd."""
    ops = [*WEAK_ROOT, "pathfd", "/proc/{ppid}/mem", "openrw", "/proc/self/fd/{fd}"]
    ops += ["pathfd", "/proc/self/environ", "open", "/dev/fd/{fd}"]
    r = supervise(supervise.policy(deny_list(files.secret)), [target_bin("credops"), *ops])
    assert first_words(r.lines) == ["OK", "OK", "EACCES", "OK", "OK"], r.explain()


@pytest.fixture
def proc_mount(world_dir: Path) -> Iterator[Path]:
    """A second mount of procfs, outside /proc."""
    where = world_dir / "proc2"
    where.mkdir()
    subprocess.run(["mount", "-t", "proc", "proc", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_other_proc_mount(supervise: Supervise, target_bin, files: Files, proc_mount: Path) -> None:
    """procfs is recognised by the filesystem of the object, not by the string /proc."""
    p = proc_mount
    ops = [*WEAK_ROOT, "child", "openrw", f"{p}/{{ppid}}/mem", "open", f"{p}/{{ppid}}/stat"]
    ops += ["open", f"{p}/{{child}}/environ", "open", f"{p}/{{child}}/stat"]
    ops += ["open", f"{p}/self/maps", "open", f"{p}/meminfo"]
    r = supervise(supervise.policy(deny_list(files.secret)), [target_bin("credops"), *ops])
    want = ["OK", "OK", "EACCES", "EACCES", "EACCES", "OK", "OK", "OK"]
    assert first_words(r.lines) == want, r.explain()
    assert r.lines[5].split(":", 1)[1].startswith(r.lines[1].split(":", 1)[1] + " (credops)")


def test_bind_mounted_proc_dirs(supervise: Supervise, target_bin, files: Files) -> None:
    """A bind mount of part of procfs, made by the target in its own mount namespace: the
    supervisor's /proc/PID there is refused; a per-process directory on such a partial mount is
    refused whoever's it is (no procfs root to tell); /proc/sys bound elsewhere still works."""
    mnt = files.root / "mnt"
    for d in ("sv", "child", "sys"):
        (mnt / d).mkdir(parents=True)
    ops = [*WEAK_ROOT, "child", "unshare_mount"]
    ops += ["bind", "/proc/{ppid}", f"{mnt}/sv", "openrw", f"{mnt}/sv/mem"]
    ops += ["open", f"{mnt}/sv/stat"]
    ops += ["bind", "/proc/{child}", f"{mnt}/child", "open", f"{mnt}/child/environ"]
    ops += ["bind", "/proc/sys", f"{mnt}/sys", "open", f"{mnt}/sys/kernel/ostype"]
    r = supervise(supervise.policy(deny_list(files.secret)), [target_bin("credops"), *ops])
    want = ["OK", "OK", "OK", "OK", "EACCES", "EACCES", "OK", "EACCES", "OK", "OK"]
    assert first_words(r.lines) == want, r.explain()
    assert r.lines[-1] == "OK:Linux", r.explain()
