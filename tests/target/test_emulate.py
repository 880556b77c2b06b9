"""Emulated opens for real target processes: never more than the kernel would grant them."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from supervisor.kernel.creds import current_creds, in_own_userns, parse_status, read_creds
from supervisor.target.emulate import PreparedOpen, Refused, prepare_open
from supervisor.target.resolve import PathResolver
from tests.helpers.paths import NOBODY, Target, open_fds, spawn, world

__all__ = ["spawn", "world"]

R = PathResolver()


def prep(
    t: Target,
    path: bytes | str,
    flags: int,
    mode: int = 0o666,
    dirfd: int | None = None,
    allowed: Callable[[str], bool] = lambda p: True,
    resolve_flags: int = 0,
) -> PreparedOpen:
    if isinstance(path, str):
        path = path.encode()
    creds = read_creds(t.pid)
    return prepare_open(R, t.pid, creds, dirfd, path, flags, mode, resolve_flags, allowed)


def emu(t: Target, path: bytes | str, flags: int, mode: int = 0o666, **kw: Any) -> int:
    return prep(t, path, flags, mode, **kw).open()


def emu_err(t: Target, path: bytes | str, flags: int, mode: int = 0o666, **kw: Any) -> int:
    with pytest.raises(OSError) as e:
        os.close(emu(t, path, flags, mode, **kw))
    assert e.value.errno is not None
    return e.value.errno


@pytest.fixture
def files(world: str) -> str:
    w = world
    with open(f"{w}/secret", "w") as f:
        f.write("root only")
    os.chmod(f"{w}/secret", 0o600)
    os.mkdir(f"{w}/private", 0o700)
    with open(f"{w}/private/f", "w") as f:
        f.write("hidden")
    os.chmod(f"{w}/private/f", 0o644)
    os.mkdir(f"{w}/pub", 0o777)
    os.chmod(f"{w}/pub", 0o777)
    with open(f"{w}/pub/data", "w") as f:
        f.write("0123456789")
    os.chmod(f"{w}/pub/data", 0o666)
    os.symlink("data", f"{w}/pub/link")
    os.symlink("created-by-link", f"{w}/pub/dangling")
    return w


def test_nobody_cannot_read_root_files(spawn: Any, files: str) -> None:
    t = spawn(chdir=files, uid=NOBODY)
    assert emu_err(t, "secret", os.O_RDONLY) == errno.EACCES
    assert emu_err(t, "private/f", os.O_RDONLY) == errno.EACCES  # no search permission
    assert emu_err(t, "private/new", os.O_WRONLY | os.O_CREAT) == errno.EACCES
    assert emu_err(t, "/proc/self/root" + files + "/secret", os.O_RDONLY) == errno.EACCES
    assert not os.path.exists(f"{files}/private/new")
    fd = emu(t, "pub/data", os.O_RDONLY)
    assert os.read(fd, 4) == b"0123"
    os.close(fd)
    # a root target (the supervisor's creds: no switch) may
    root = spawn(chdir=files)
    fd = emu(root, "secret", os.O_RDONLY)
    assert os.read(fd, 100) == b"root only"
    os.close(fd)
    assert current_creds().fsuid == os.geteuid()


def test_create_with_target_owner_and_umask(spawn: Any, files: str) -> None:
    t = spawn(chdir=f"{files}/pub", uid=NOBODY, umask=0o027)
    old = os.umask(0o002)
    try:
        fd = emu(t, "new", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        assert os.umask(0o002) == 0o002  # ours is untouched
    finally:
        os.umask(old)
    os.write(fd, b"x")
    os.close(fd)
    st = os.stat(f"{files}/pub/new")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)
    # through a dangling symlink: the link's target is created
    fd = emu(t, "dangling", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    assert os.stat(f"{files}/pub/created-by-link").st_uid == NOBODY
    assert emu_err(t, "newdir/", os.O_WRONLY | os.O_CREAT) == errno.EISDIR
    assert emu_err(t, "missing", os.O_RDONLY) == errno.ENOENT
    assert emu_err(t, "nodir/x", os.O_WRONLY | os.O_CREAT) == errno.ENOENT


def test_excl_trunc_append(spawn: Any, files: str) -> None:
    t = spawn(chdir=f"{files}/pub", uid=NOBODY)
    assert emu_err(t, "data", os.O_WRONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    # O_CREAT|O_EXCL does not follow a symlink, even a dangling one
    assert emu_err(t, "dangling", os.O_WRONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    assert not os.path.exists(f"{files}/pub/created-by-link")
    fd = emu(t, "excl", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    os.close(fd)
    fd = emu(t, "data", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"AB")
    os.close(fd)
    with open(f"{files}/pub/data") as f:
        assert f.read() == "0123456789AB"
    fd = emu(t, "link", os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert os.path.getsize(f"{files}/pub/data") == 0
    fd = emu(t, "data", os.O_RDWR | os.O_CREAT)  # O_CREAT on an existing file: just opens it
    os.close(fd)


def test_directory_nofollow_path_tmpfile(spawn: Any, files: str) -> None:
    t = spawn(chdir=f"{files}/pub", uid=NOBODY)
    assert emu_err(t, "data", os.O_RDONLY | os.O_DIRECTORY) == errno.ENOTDIR
    fd = emu(t, ".", os.O_RDONLY | os.O_DIRECTORY)
    assert stat.S_ISDIR(os.fstat(fd).st_mode)
    os.close(fd)
    assert emu_err(t, ".", os.O_WRONLY) == errno.EISDIR
    assert emu_err(t, "link", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    fd = emu(t, "link", os.O_PATH | os.O_NOFOLLOW)
    assert os.readlink(b"", dir_fd=fd) == b"data"
    os.close(fd)
    assert prep(t, "data", os.O_PATH).path_only
    fd = emu(t, "data", os.O_PATH)
    assert os.fstat(fd).st_ino == os.stat(f"{files}/pub/data").st_ino
    with pytest.raises(OSError):
        os.read(fd, 1)  # an O_PATH fd, as asked
    os.close(fd)
    assert emu_err(t, "data", os.O_PATH | os.O_DIRECTORY) == errno.ENOTDIR
    assert emu_err(t, "x", os.O_RDONLY | os.O_CREAT | os.O_DIRECTORY) == errno.EINVAL
    fd = emu(t, ".", os.O_TMPFILE | os.O_RDWR, 0o644)
    os.write(fd, b"tmp")
    st = os.fstat(fd)
    assert st.st_uid == NOBODY and st.st_nlink == 0
    os.close(fd)
    assert emu_err(t, "data", os.O_TMPFILE | os.O_RDWR) == errno.ENOTDIR
    assert emu_err(t, "private-tmp", os.O_TMPFILE | os.O_RDWR) == errno.ENOENT
    assert emu_err(t, "../private", os.O_TMPFILE | os.O_RDWR) == errno.EACCES


def test_refused_has_no_side_effect(spawn: Any, files: str) -> None:
    t = spawn(chdir=f"{files}/pub", uid=NOBODY)
    seen: list[str] = []

    def no(p: str) -> bool:
        seen.append(p)
        return False

    before = open_fds()
    for path, flags in (
        ("data", os.O_WRONLY | os.O_TRUNC),
        ("new-refused", os.O_WRONLY | os.O_CREAT),
        ("dangling", os.O_WRONLY | os.O_CREAT),
        ("link", os.O_RDONLY),
    ):
        with pytest.raises(Refused) as e:
            prep(t, path, flags, allowed=no)
        assert e.value.path == seen[-1]
    assert seen == [
        f"{files}/pub/data",
        f"{files}/pub/new-refused",
        f"{files}/pub/created-by-link",
        f"{files}/pub/data",
    ]
    assert os.path.getsize(f"{files}/pub/data") == 10
    assert not os.path.exists(f"{files}/pub/new-refused")
    assert not os.path.exists(f"{files}/pub/created-by-link")
    assert open_fds() == before
    p = prep(t, "data", os.O_RDONLY)
    p.close()
    assert open_fds() == before


def test_targets_own_pipe_through_dev_fd(spawn: Any, world: str) -> None:
    t = spawn(chdir=world, uid=NOBODY)
    w = emu(t, f"/dev/fd/{t.fds['pipe_w']}", os.O_WRONLY)
    p = prep(t, f"/proc/self/fd/{t.fds['pipe_r']}", os.O_RDONLY)
    assert p.may_block and p.path == f"/proc/{t.pid}/fd/{t.fds['pipe_r']}"
    r = p.open()
    os.write(w, b"hello")
    assert os.read(r, 5) == b"hello"
    os.close(r)
    os.close(w)
    assert not prep(t, "/dev/null", os.O_PATH).may_block
    q = prep(t, "/dev/null", os.O_RDWR)
    assert q.may_block
    os.close(q.open())


def test_chrooted_create_stays_inside(spawn: Any, world: str) -> None:
    root = f"{world}/root"
    os.makedirs(f"{root}/etc")
    os.symlink("/etc/made", f"{root}/abs")
    os.makedirs(f"{world}/etc")
    t = spawn(chroot=root, chdir="/")
    fd = emu(t, "abs", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    assert os.path.exists(f"{root}/etc/made")
    assert not os.path.exists(f"{world}/etc/made")
    p = prep(t, "../../etc/made", os.O_RDONLY)
    assert p.path == "/etc/made"
    p.close()


def test_procfs_other_processes(spawn: Any, world: str) -> None:
    """The test process plays the supervisor: none of its /proc/PID (threads included) opens
    for a target; another target's entries that check the opener are refused, what ps reads
    opens; the target's own /proc/PID opens whole."""
    t = spawn()
    other = spawn()
    me, o = os.getpid(), other.pid
    assert emu_err(t, f"/proc/{me}/status", os.O_RDONLY) == errno.EACCES
    assert emu_err(t, f"/proc/{me}/mem", os.O_RDWR) == errno.EACCES
    assert emu_err(t, f"/proc/{me}/task/{me}/stat", os.O_RDONLY) == errno.EACCES
    started, stop = threading.Event(), threading.Event()
    tids: list[int] = []

    def helper() -> None:
        tids.append(threading.get_native_id())
        started.set()
        stop.wait()

    th = threading.Thread(target=helper)
    th.start()
    try:
        started.wait()
        assert emu_err(t, f"/proc/{tids[0]}/stat", os.O_RDONLY) == errno.EACCES
    finally:
        stop.set()
        th.join()
    for name in ("mem", "environ", "maps", "auxv", "fdinfo/0", "task/{o}/environ", "fd/0"):
        path = f"/proc/{o}/" + name.format(o=o)
        assert emu_err(t, path, os.O_RDONLY) == errno.EACCES, path
    assert emu_err(t, f"/proc/{o}/made-up", os.O_WRONLY | os.O_CREAT) == errno.EACCES
    assert emu_err(t, f"/proc/{o}/made-up", os.O_RDONLY) == errno.ENOENT  # as the kernel
    for name in ("stat", "status", "cmdline", "task", f"task/{o}/stat", ""):
        os.close(emu(t, f"/proc/{o}/{name}", os.O_RDONLY))
    for path in (f"/proc/{t.pid}/environ", "/proc/self/maps", "/proc/self/fdinfo/0"):
        os.close(emu(t, path, os.O_RDONLY))
    os.close(emu(t, "/proc/self/mem", os.O_RDWR))
    os.close(emu(t, "/proc/meminfo", os.O_RDONLY))


def test_capabilities_of_another_user_namespace(world: str) -> None:
    """A target that made itself a user namespace holds a full CapEff there: read_creds gives
    no capabilities for it (they would be applied in our namespace)."""
    script = (
        "import ctypes, sys\n"
        "assert ctypes.CDLL(None, use_errno=True).unshare(0x10000000) == 0  # CLONE_NEWUSER\n"
        "print(flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"\n"
        with open(f"/proc/{proc.pid}/status") as f:
            assert parse_status(f.read()).cap_effective != 0
        assert not in_own_userns(proc.pid)
        creds = read_creds(proc.pid)
        assert creds.cap_effective == 0
        assert creds.fsuid == 0  # not mapped in its namespace, still root (kuid 0) in ours
    finally:
        proc.kill()
        proc.wait()
    assert in_own_userns(os.getpid())
    assert read_creds(os.getpid()).cap_effective == current_creds().cap_effective
