"""PathResolver against real target processes: the kernel's answer for the TARGET, not for us."""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.kernel.creds import Creds, current_creds, parse_status, read_creds
from supervisor.target.resolve import (
    RESOLVE_BENEATH,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    PathResolver,
    Resolved,
)
from tests.helpers.paths import NOBODY, Target, open_fds, spawn, world

__all__ = ["spawn", "world"]

R = PathResolver()


def res(t: Target, path: bytes | str, dirfd: int | None = None, **kw: Any) -> Resolved:
    kw.setdefault("follow", True)
    if isinstance(path, str):
        path = path.encode()
    return R.resolve(t.pid, dirfd, path, **kw)


def rpath(t: Target, path: bytes | str, dirfd: int | None = None, **kw: Any) -> str:
    r = res(t, path, dirfd, **kw)
    try:
        assert r.exists
        return r.path
    finally:
        r.close()


def rerr(t: Target, path: bytes | str, dirfd: int | None = None, **kw: Any) -> int:
    with pytest.raises(OSError) as e:
        res(t, path, dirfd, **kw).close()
    assert e.value.errno is not None
    return e.value.errno


@pytest.fixture
def tree(world: str) -> Iterator[str]:
    """world/{a/f, a/sub/, b/g, links...}"""
    w = world
    os.makedirs(f"{w}/a/sub")
    os.makedirs(f"{w}/b")
    for p in ("a/f", "b/g", "a/sub/h"):
        with open(f"{w}/{p}", "w") as f:
            f.write(p)
    os.symlink("f", f"{w}/a/rel")  # relative
    os.symlink(f"{w}/b/g", f"{w}/a/abs")  # absolute
    os.symlink("rel", f"{w}/a/chain")  # chain
    os.symlink("loop2", f"{w}/a/loop1")
    os.symlink("loop1", f"{w}/a/loop2")
    os.symlink("nowhere/x", f"{w}/a/dangling_deep")
    os.symlink("newfile", f"{w}/a/dangling")
    os.symlink("../b", f"{w}/a/tob")
    yield w


# ---- credentials ----------------------------------------------------------------------------


def test_read_creds(spawn: Any) -> None:
    t = spawn(uid=NOBODY, groups=[1, 2], gid=NOBODY, umask=0o027)
    c = read_creds(t.pid)
    assert (c.fsuid, c.fsgid, c.groups, c.cap_effective) == (NOBODY, NOBODY, (1, 2), 0)
    assert c.umask == 0o027
    me = current_creds()
    assert me.fsuid == os.geteuid()


def test_parse_status_rejects_odd_text() -> None:
    good = (
        "Umask:\t0022\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\n"
        "Groups:\t9 10 \nCapEff:\t00000000000000ff\n"
    )
    c = parse_status(good)
    assert c == Creds(4, 8, (9, 10), 0xFF)
    for bad in (
        good.replace("Uid:\t1\t2\t3\t4", "Uid:\t1\t2\t3"),
        good.replace("\t4\n", "\t-4\n"),
        good.replace("\t4\n", "\t99999999999\n"),
        good.replace("00000000000000ff", "xyz"),
        good.replace("Groups:\t9 10 ", "Groups:\t9 a"),
        good.replace("CapEff", "CapXXX"),
        good + "Uid:\t0\t0\t0\t0\n",
    ):
        with pytest.raises(ValueError):
            parse_status(bad)
    many = good.replace("9 10", " ".join(str(i) for i in range(300)))
    with pytest.raises(OSError) as e:
        parse_status(many)
    assert e.value.errno == errno.EINVAL


# ---- plain paths ----------------------------------------------------------------------------


def test_absolute_relative_dirfd(spawn: Any, tree: str) -> None:
    w = tree
    t = spawn(chdir=f"{w}/a", open={"b": [f"{w}/b", os.O_RDONLY | os.O_DIRECTORY]})
    assert rpath(t, f"{w}/a/f") == f"{w}/a/f"
    assert rpath(t, f"{w}//a/./sub/../f") == f"{w}/a/f"
    assert rpath(t, "f") == f"{w}/a/f"
    assert rpath(t, "./sub/") == f"{w}/a/sub"
    assert rpath(t, "../b/g") == f"{w}/b/g"
    assert rpath(t, ".") == f"{w}/a"
    assert rpath(t, "g", dirfd=t.fds["b"]) == f"{w}/b/g"
    assert rpath(t, "../a/f", dirfd=t.fds["b"]) == f"{w}/a/f"
    # an absolute path ignores the dirfd, even a bad one (as the kernel does)
    assert rpath(t, f"{w}/b/g", dirfd=999) == f"{w}/b/g"
    r = res(t, "f")
    assert stat.S_ISREG(r.st_mode) and r.name is None
    assert os.fstat(r.fd).st_ino == os.stat(f"{w}/a/f").st_ino
    assert os.get_inheritable(r.fd) is False
    r.close()
    assert r.fd == -1


def test_dotdot_above_root(spawn: Any, tree: str) -> None:
    t = spawn(chdir=f"{tree}/a")
    depth = tree.count("/") + 3
    assert rpath(t, "../" * depth + tree.lstrip("/") + "/a/f") == f"{tree}/a/f"
    assert rpath(t, "/../../..") == "/"


def test_missing_and_errors(spawn: Any, tree: str) -> None:
    w = tree
    t = spawn(chdir=f"{w}/a", open={"f": [f"{w}/a/f", os.O_RDONLY]})
    r = res(t, "newname")
    assert (r.exists, r.name, r.path, r.full_path, r.st_mode) == (
        False,
        "newname",
        f"{w}/a",
        f"{w}/a/newname",
        0,
    )
    assert os.fstat(r.fd).st_ino == os.stat(f"{w}/a").st_ino
    r.close()
    assert rerr(t, "nodir/x") == errno.ENOENT
    assert rerr(t, "f/x") == errno.ENOTDIR
    assert rerr(t, "f/") == errno.ENOTDIR
    assert rerr(t, "x", dirfd=999) == errno.EBADF
    assert rerr(t, "x", dirfd=-5) == errno.EBADF
    assert rerr(t, "x", dirfd=t.fds["f"]) == errno.ENOTDIR
    assert rerr(t, "a" * 256) == errno.ENAMETOOLONG
    assert rerr(t, "a/" * 2048) == errno.ENAMETOOLONG
    assert rerr(t, "") == errno.ENOENT
    assert rerr(t, "x", resolve_flags=1 << 20) == errno.EINVAL


def test_empty_path(spawn: Any, tree: str) -> None:
    t = spawn(chdir=f"{tree}/a", open={"f": [f"{tree}/a/f", os.O_RDONLY]})
    assert rpath(t, "", dirfd=t.fds["f"], empty_path_ok=True) == f"{tree}/a/f"
    assert rpath(t, "", empty_path_ok=True) == f"{tree}/a"
    pipe = t.fds["pipe_r"]
    r = res(t, "", dirfd=pipe, empty_path_ok=True)
    assert r.path == f"/proc/{t.pid}/fd/{pipe}" and stat.S_ISFIFO(r.st_mode)
    r.close()
    assert rerr(t, "", dirfd=999, empty_path_ok=True) == errno.EBADF


# ---- symlinks -------------------------------------------------------------------------------


def test_symlinks(spawn: Any, tree: str) -> None:
    w = tree
    t = spawn(chdir=f"{w}/a")
    assert rpath(t, "rel") == f"{w}/a/f"
    assert rpath(t, "abs") == f"{w}/b/g"
    assert rpath(t, "chain") == f"{w}/a/f"
    assert rpath(t, "tob/g") == f"{w}/b/g"
    assert rpath(t, "rel", follow=False) == f"{w}/a/rel"
    r = res(t, "rel", follow=False)
    assert stat.S_ISLNK(r.st_mode)
    r.close()
    assert rerr(t, "loop1") == errno.ELOOP
    assert rerr(t, "dangling_deep") == errno.ENOENT
    assert rerr(t, "rel", resolve_flags=RESOLVE_NO_SYMLINKS) == errno.ELOOP


def test_dangling_symlink_is_followed_for_create(spawn: Any, tree: str) -> None:
    t = spawn(chdir=f"{tree}/a")
    r = res(t, "dangling")
    assert (r.exists, r.name, r.full_path) == (False, "newfile", f"{tree}/a/newfile")
    assert r.path == f"{tree}/a"
    r.close()
    r = res(t, "dangling", follow=False)
    assert r.exists and stat.S_ISLNK(r.st_mode) and r.path == f"{tree}/a/dangling"
    r.close()
    # a dangling link to a dangling link to a name in another directory
    os.symlink(f"{tree}/b/created", f"{tree}/a/d2")
    os.symlink("d2", f"{tree}/a/d1")
    r = res(t, "d1")
    assert (r.exists, r.name, r.full_path) == (False, "created", f"{tree}/b/created")
    r.close()


@pytest.mark.parametrize("n", [39, 40, 41])
def test_symlink_limit_matches_kernel(spawn: Any, world: str, n: int) -> None:
    open(f"{world}/end", "w").close()
    os.symlink("end", f"{world}/l{n}")
    for i in range(n - 1, -1, -1):
        os.symlink(f"l{i + 1}", f"{world}/l{i}")
    t = spawn(chdir=world)

    def kernel(path: str) -> int:  # our own lookup of the same path: same root, same counting
        try:
            os.close(os.open(path, os.O_PATH))
            return 0
        except OSError as e:
            return e.errno or -1

    # the careful walk (forced by /proc/self) counts self and the magic link as the kernel does
    for path in (f"{world}/l0", f"/proc/self/root{world}/l0", f"/proc/self/root{world}/l2"):
        want = kernel(path)
        if want:
            assert rerr(t, path) == want
        else:
            assert rpath(t, path) == f"{world}/end"


def test_non_utf8_names(spawn: Any, world: str) -> None:
    raw = os.fsencode(world) + b"/caf\xe9\xff"
    os.mkdir(raw)
    with open(raw + b"/x", "w"):
        pass
    t = spawn(chdir=world)
    for path in (raw + b"/x", b"caf\xe9\xff/x", b"/proc/self/cwd/caf\xe9\xff/x"):
        p = rpath(t, path)
        assert os.fsencode(p) == raw + b"/x"
        assert fnmatch.fnmatch(p, f"{world}/*/x")
        assert not fnmatch.fnmatch(p, f"{world}/x")
    r = res(t, b"caf\xe9\xff/new\x80")
    assert not r.exists and os.fsencode(r.full_path) == raw + b"/new\x80"
    assert os.fsencode(r.name or "") == b"new\x80"
    r.close()


# ---- /proc/self and magic links: the TARGET's, never the supervisor's -------------------------


def test_proc_self_is_the_target(spawn: Any, tree: str) -> None:
    t = spawn(chdir=f"{tree}/a")
    pid = t.pid
    assert rpath(t, "/proc/self/status") == f"/proc/{pid}/status"
    assert rpath(t, "/proc/self") == f"/proc/{pid}"
    assert rpath(t, "/proc/thread-self/comm") == f"/proc/{pid}/task/{pid}/comm"
    assert rpath(t, "/proc/self/cwd/f") == f"{tree}/a/f"
    assert rpath(t, "/proc/self/cwd") == f"{tree}/a"
    assert rpath(t, f"/proc/self/root{tree}/b/g") == f"{tree}/b/g"
    assert rpath(t, "/proc/self/cwd/../b/g") == f"{tree}/b/g"
    assert rpath(t, "/proc/net/dev") == f"/proc/{pid}/net/dev"
    # through a symlink that leads into /proc/self
    os.symlink("/proc/self/cwd", f"{tree}/b/cwdlink")
    assert rpath(t, f"{tree}/b/cwdlink/f") == f"{tree}/a/f"
    # a supervisor thread's directory is not the target's
    assert rerr(t, f"/proc/self/task/{os.getpid()}/../../../../etc") == errno.ENOENT
    assert rpath(t, f"/proc/self/task/{pid}/../../../../etc") == "/etc"
    r = res(t, "/proc/self/status")
    with open(f"/proc/self/fd/{r.fd}") as f:  # the target's status, not ours
        assert f"\nPid:\t{pid}\n" in f.read()
    r.close()
    r = res(t, "/proc/self", follow=False)
    assert stat.S_ISLNK(r.st_mode)
    r.close()


def test_dev_fd_and_stdin_name_the_targets_fds(spawn: Any, tree: str) -> None:
    t = spawn(chdir=tree)
    pr = t.fds["pipe_r"]
    want = os.stat(f"/proc/{t.pid}/fd/{pr}").st_ino
    for path, want_path in (
        (f"/dev/fd/{pr}", f"/proc/{t.pid}/fd/{pr}"),
        (f"/proc/self/fd/{pr}", f"/proc/{t.pid}/fd/{pr}"),
        (f"/proc/thread-self/fd/{pr}", f"/proc/{t.pid}/task/{t.pid}/fd/{pr}"),
    ):
        r = res(t, path)
        assert r.path == want_path
        assert stat.S_ISFIFO(r.st_mode) and os.fstat(r.fd).st_ino == want
        r.close()
    r = res(t, "/dev/stdin")  # the target's stdin is a pipe from us
    assert r.path == f"/proc/{t.pid}/fd/0"
    assert os.fstat(r.fd).st_ino == os.stat(f"/proc/{t.pid}/fd/0").st_ino
    r.close()
    # an fd the supervisor has and the target has not
    mine = os.open("/", os.O_PATH)
    try:
        if mine not in t.fds.values() and not os.path.exists(f"/proc/{t.pid}/fd/{mine}"):
            r = res(t, f"/proc/self/fd/{mine}")  # a missing final name, not our fd
            assert not r.exists and r.full_path == f"/proc/{t.pid}/fd/{mine}"
            r.close()
    finally:
        os.close(mine)
    # an fd of a file: continue by path, in the target's view
    t2 = spawn(open={"f": [f"{tree}/a/f", os.O_RDONLY]})
    assert rpath(t2, f"/dev/fd/{t2.fds['f']}") == f"{tree}/a/f"
    r = res(t2, f"/dev/fd/{t2.fds['f']}", follow=False)
    assert stat.S_ISLNK(r.st_mode) and r.path == f"/proc/{t2.pid}/fd/{t2.fds['f']}"
    r.close()
    assert rerr(t, f"/dev/fd/{pr}", resolve_flags=RESOLVE_NO_MAGICLINKS) == errno.ELOOP


def test_dev_fd_of_an_o_path_dir(spawn: Any, tree: str) -> None:
    # /dev/fd/N walks through /proc/self: an error from the supervisor's fd table (it may not
    # have fd N, or it is a file) must not leak into the answer
    t = spawn(open={"d": [f"{tree}/a/sub", os.O_PATH], "f": [f"{tree}/a/f", os.O_RDONLY]})
    for fd in range(t.fds["d"], t.fds["d"] + 20):
        if fd == t.fds["d"]:
            assert rpath(t, f"/dev/fd/{fd}/../f") == f"{tree}/a/f"
            assert rpath(t, f"/dev/fd/{fd}/h") == f"{tree}/a/sub/h"
        elif fd == t.fds["f"]:
            assert rerr(t, f"/dev/fd/{fd}/../f") == errno.ENOTDIR
        elif fd not in t.fds.values():
            assert rerr(t, f"/dev/fd/{fd}/../f") == errno.ENOENT


def test_other_process_magic_links_refused(spawn: Any, tree: str) -> None:
    t = spawn(chdir=tree)
    other = spawn(chdir="/")
    assert rerr(t, f"/proc/{other.pid}/cwd") == errno.EACCES
    assert rerr(t, f"/proc/{other.pid}/fd/0") == errno.EACCES
    assert rerr(t, "/proc/1/root/etc") == errno.EACCES
    assert rpath(t, f"/proc/{other.pid}/status") == f"/proc/{other.pid}/status"
    # its own pid by number is fine
    assert rpath(t, f"/proc/{t.pid}/cwd") == tree


def test_deleted_file_via_magic_link_is_the_link(spawn: Any, world: str) -> None:
    with open(f"{world}/gone", "w"):
        pass
    t = spawn(open={"g": [f"{world}/gone", os.O_RDONLY]})
    os.unlink(f"{world}/gone")
    fd = t.fds["g"]
    r = res(t, f"/proc/self/fd/{fd}")
    assert r.exists and r.path == f"/proc/{t.pid}/fd/{fd}" and stat.S_ISREG(r.st_mode)
    r.close()
    assert rerr(t, f"/proc/self/fd/{fd}/x") == errno.ENOTDIR


# ---- another root ---------------------------------------------------------------------------


@pytest.fixture
def jail(world: str) -> str:
    root = f"{world}/root"
    for d in ("etc", "home/u", "lib"):
        os.makedirs(f"{root}/{d}")
    with open(f"{root}/etc/x", "w") as f:
        f.write("inside")
    os.makedirs(f"{world}/etc")
    with open(f"{world}/etc/x", "w") as f:
        f.write("outside")
    os.symlink("/etc/x", f"{root}/home/u/abs")  # must stay inside
    os.symlink("../../../../../../etc/x", f"{root}/home/u/up")
    os.symlink("/", f"{root}/home/u/rootlink")
    return root


def test_chrooted_target(spawn: Any, jail: str) -> None:
    t = spawn(chroot=jail, chdir="/home/u", open={"lib": [f"{jail}/lib", os.O_RDONLY]})
    assert rpath(t, "/etc/x") == "/etc/x"
    assert rpath(t, "abs") == "/etc/x"
    assert rpath(t, "up") == "/etc/x"
    assert rpath(t, "../../../../etc/x") == "/etc/x"
    assert rpath(t, "/../../etc/x") == "/etc/x"
    assert rpath(t, "rootlink/etc/x") == "/etc/x"
    assert rpath(t, ".") == "/home/u"
    assert rpath(t, "../..") == "/"
    assert rpath(t, "", dirfd=t.fds["lib"], empty_path_ok=True) == "/lib"
    assert rpath(t, "../etc/x", dirfd=t.fds["lib"]) == "/etc/x"
    for p in ("abs", "/etc/x", "up"):
        r = res(t, p)
        with open(f"/proc/self/fd/{r.fd}") as f:
            assert f.read() == "inside"
        r.close()
    r = res(t, "rootlink/etc/new")
    assert not r.exists and r.full_path == "/etc/new" and r.path == "/etc"
    r.close()
    # the jail has no /proc: /proc/self does not exist for it
    assert rerr(t, "/proc/self/status") == errno.ENOENT


def test_chrooted_target_with_cwd_outside_root(spawn: Any, jail: str, world: str) -> None:
    t = spawn(pre_chdir=world, chroot=jail, open={"out": [world, os.O_RDONLY]})
    # chroot without chdir: the cwd is outside the root; refuse rather than guess
    assert rerr(t, "etc/x") == errno.EACCES
    assert rerr(t, "x", dirfd=t.fds["out"]) == errno.EACCES
    assert rpath(t, "/etc/x") == "/etc/x"


# ---- openat2 RESOLVE_* flags of the target --------------------------------------------------


def test_target_resolve_flags(spawn: Any, tree: str) -> None:
    t = spawn(chdir=tree, open={"a": [f"{tree}/a", os.O_RDONLY | os.O_DIRECTORY]})
    a = t.fds["a"]
    assert rpath(t, "f", dirfd=a, resolve_flags=RESOLVE_BENEATH) == f"{tree}/a/f"
    assert rerr(t, "../b/g", dirfd=a, resolve_flags=RESOLVE_BENEATH) == errno.EXDEV
    assert rerr(t, "abs", dirfd=a, resolve_flags=RESOLVE_BENEATH) == errno.EXDEV
    assert rerr(t, "/etc", dirfd=a, resolve_flags=RESOLVE_BENEATH) == errno.EXDEV
    assert rpath(t, "/f", dirfd=a, resolve_flags=RESOLVE_IN_ROOT) == f"{tree}/a/f"
    assert rpath(t, "../../f", dirfd=a, resolve_flags=RESOLVE_IN_ROOT) == f"{tree}/a/f"
    assert rpath(t, "sub/h", dirfd=a, resolve_flags=RESOLVE_NO_XDEV) == f"{tree}/a/sub/h"
    assert rerr(t, "/proc/self/status", resolve_flags=RESOLVE_NO_XDEV) == errno.EXDEV
    assert rerr(t, "x", resolve_flags=RESOLVE_BENEATH | RESOLVE_IN_ROOT) == errno.EINVAL
    assert rerr(t, "/proc/self/cwd", resolve_flags=RESOLVE_NO_MAGICLINKS) == errno.ELOOP


# ---- the target's credentials ---------------------------------------------------------------


def test_search_permission_under_target_creds(spawn: Any, world: str) -> None:
    os.makedirs(f"{world}/private/d")
    os.chmod(f"{world}/private", 0o700)
    with open(f"{world}/private/d/f", "w"):
        pass
    t = spawn(chdir=world, uid=NOBODY)
    creds = read_creds(t.pid)
    assert rpath(t, "private/d/f") == f"{world}/private/d/f"  # as the supervisor
    assert rerr(t, "private/d/f", creds=creds) == errno.EACCES
    assert rerr(t, "private/new", creds=creds) == errno.EACCES
    assert rerr(t, f"/proc/self/root{world}/private/d/f", creds=creds) == errno.EACCES
    assert rpath(t, "private", creds=creds) == f"{world}/private"  # the dir itself is visible
    assert current_creds().fsuid == os.geteuid()  # restored


def test_no_fd_leaks(spawn: Any, tree: str, jail: str) -> None:
    t = spawn(chdir=f"{tree}/a")
    j = spawn(chroot=jail, chdir="/home/u")
    before = 0
    for i in range(3):
        if i == 1:
            before = open_fds()  # after the first round has warmed the caches
        for path in ("f", "newname", "/proc/self/status", "/dev/stdin", "dangling", "abs"):
            res(t, path).close()
        for path in ("loop1", "nodir/x", "/proc/1/cwd"):
            rerr(t, path)
        for path in ("abs", "up", "/etc/x", "nothere"):
            res(j, path).close()
    assert open_fds() == before


@given(
    st.lists(
        st.sampled_from(
            [
                "Uid:",
                "Gid:",
                "Groups:",
                "CapEff:",
                "Umask:",
                "\t",
                " ",
                "\n",
                "0",
                "7",
                "9",
                "f",
                "ffffffffffffffff",
                "4294967295",
                "4294967296",
                "-",
                "x",
                "Name:\tUid:",
            ]
        ),
        max_size=60,
    ).map("".join)
    | st.text(max_size=300)
)
def test_parse_status_never_crashes_on_any_text(text: str) -> None:
    """sv_parse_status is C: any text gives Creds or a clean error, never a crash."""
    try:
        c = parse_status(text)
    except ValueError:
        return
    except OSError as e:
        assert e.errno == errno.EINVAL
        return
    assert 0 <= c.fsuid <= 0xFFFFFFFF and 0 <= c.cap_effective < 1 << 64
