"""Answered syscalls (issue 14, "enforce, don't advise"): an allowed stat, statx, access,
readlink or getxattr/listxattr whose path was inspected is performed by the supervisor on the
object it checked, and the result written into the target's memory. Resumed with CONTINUE, a
thread flipping the path buffer would make the kernel stat, read the link or the xattrs of a
denied file (its size, link target, xattr value leak): here never, over >=10,000 calls each, on
x86_64 and through int $0x80; the answers are byte for byte the kernel's (a control run outside
the supervisor); a read-only output buffer is EFAULT; the lookup is the target's (its uid)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.run import Supervise, deny_list

CALLS = 10_500
NOBODY = 65534


@dataclass
class Tree:
    """Allowed and denied objects, their paths of equal length, and their distinct keys."""

    root: Path
    pub: Path  # 0644 "harmless\n" (9 bytes), user.tag=harmless
    sec: Path  # 0755 "TOPSECRET-e2e\n" (14 bytes), user.tag=TOPSECRETVAL, user.secret=1
    pub_lnk: Path  # -> "harmless-target"
    sec_lnk: Path  # -> "TOPSECRET-target"
    lonely_lnk: Path  # a link nothing reads (its atime stays): for lstat dumps
    private: Path  # a 0700 root directory holding file.txt (0755) and lnk


@pytest.fixture
def tree(world_dir: Path) -> Tree:
    d = world_dir / "d"
    d.mkdir()
    d.chmod(0o755)
    pub, sec = d / "pub.txt", d / "sec.txt"
    pub.write_text("harmless\n")
    sec.write_text("TOPSECRET-e2e\n")
    pub.chmod(0o644)
    sec.chmod(0o755)
    os.setxattr(pub, "user.tag", b"harmless")
    os.setxattr(sec, "user.tag", b"TOPSECRETVAL")
    os.setxattr(sec, "user.secret", b"1")
    (d / "pub.lnk").symlink_to("harmless-target")
    (d / "sec.lnk").symlink_to("TOPSECRET-target")
    (d / "one.lnk").symlink_to("pub.txt")
    private = world_dir / "private"
    private.mkdir()
    (private / "file.txt").write_text("x\n")
    (private / "file.txt").chmod(0o755)
    os.setxattr(private / "file.txt", "user.tag", b"harmless")
    (private / "lnk").symlink_to("file.txt")
    private.chmod(0o700)
    return Tree(world_dir, pub, sec, d / "pub.lnk", d / "sec.lnk", d / "one.lnk", private)


def policy(supervise: Supervise, tree: Tree) -> Path:
    """Everything allowed but the denied objects (every path syscall: EPERM)."""
    return supervise.policy(deny_list(tree.sec, tree.sec_lnk, errno="EPERM"))


# op -> (uses the links, key of the allowed object, key of the denied one)
_FILES = ("9", "14")
RACES = {
    "stat": _FILES,
    "lstat": _FILES,
    "newfstatat": _FILES,
    "statx": _FILES,
    "readlink": ("harml", "TOPSE"),  # bufsiz 5: cut, no NUL
    "readlinkat": ("harmless-target", "TOPSECRET-target"),
    "access": ("E:EACCES", "0"),  # X_OK: the allowed file is 0644, the denied one 0755
    "faccessat2": ("E:EACCES", "0"),
    "getxattr": ("harmless", "TOPSECRETVAL"),
    "lgetxattr": ("harmless", "TOPSECRETVAL"),
    "getxattrat": ("harmless", "TOPSECRETVAL"),
    "listxattr": ("user.tag,", "user.tag,user.secret,"),
    "stat32": _FILES,
    "stat64-32": _FILES,
    "fstatat64-32": _FILES,
    "statx32": _FILES,
    "readlink32": ("harmless-target", "TOPSECRET-target"),
    "access32": ("E:EACCES", "0"),
    "getxattr32": ("harmless", "TOPSECRETVAL"),
}
_LINK_OPS = {"readlink", "readlinkat", "readlink32"}


@pytest.mark.slow
@pytest.mark.parametrize("op", sorted(RACES))
def test_flipped_path_never_answers_for_the_denied_file(
    supervise: Supervise, target_bin, tree: Tree, op: str
) -> None:
    allowed_key, denied_key = RACES[op]
    a, d = (tree.pub_lnk, tree.sec_lnk) if op in _LINK_OPS else (tree.pub, tree.sec)
    cmd = [target_bin("answers"), "race", op, a, d, str(CALLS), allowed_key, denied_key]
    r = supervise(policy(supervise, tree), cmd, timeout=300)
    assert r.returncode == 0, r.explain()
    m = re.fullmatch(
        r"calls=(\d+) allowed=(\d+) leaked=(\d+) refused=(\d+) other=(\d+)", r.stdout.strip()
    )
    assert m, r.explain()
    calls, allowed, leaked, refused, other = map(int, m.groups())
    assert calls >= 10_000
    assert leaked == 0, f"the denied object's answer reached the target: {m.group(0)}"
    assert other == 0, r.explain()
    assert allowed > 0 and refused > 0, m.group(0)  # both sides of the race were seen


def _dumps(tree: Tree) -> list[str]:
    pub, lnk, one, missing = tree.pub, tree.pub_lnk, tree.lonely_lnk, tree.root / "d" / "nope"
    ops = [
        ("stat", pub), ("stat", one), ("lstat", one), ("newfstatat", pub),
        ("newfstatat-nofollow", one), ("statx", pub), ("statx-nofollow", one),
        ("statx", tree.root), ("stat", missing), ("statx", missing),
        ("stat32", pub), ("lstat32", one), ("oldstat32", pub), ("stat64-32", pub),
        ("lstat64-32", one), ("fstatat64-32", pub), ("statx32", pub), ("stat64-32", missing),
        ("readlink", lnk), ("readlinkat", lnk), ("readlink32", lnk), ("readlinkat", pub),
        ("access", pub), ("faccessat", one), ("faccessat2", tree.root), ("access32", missing),
        ("getxattr", pub), ("lgetxattr", one), ("getxattrat", pub), ("getxattr32", pub),
        ("listxattr", pub), ("listxattrat", pub), ("getxattr", tree.root),
        # the target's own magic links: its exe, not the supervisor's
        ("readlinkat", "/proc/self/exe"), ("stat", "/proc/self/exe"),
        ("readlink32", "/proc/self/exe"),
    ]  # fmt: skip
    return [str(x) for op, path in ops for x in ("dump", op, path)]


def test_answers_are_the_kernels_bytes(supervise: Supervise, target_bin, tree: Tree) -> None:
    """Each answer (return value and every byte of the output buffer, filled with 0xAA before:
    the padding the kernel leaves, too) equals the unsupervised kernel's."""
    cmd = [str(target_bin("answers")), *_dumps(tree)]
    control = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    r = supervise(policy(supervise, tree), cmd)
    assert r.returncode == 0, r.explain()
    assert len(control) == len(r.lines) == len(_dumps(tree)) // 3
    for i, (want, got) in enumerate(zip(control, r.lines, strict=True)):
        assert got == want, f"{_dumps(tree)[3 * i + 1]}: differs from the kernel's\n{r.explain()}"
    # The control saw real answers (not all errors): the comparison means something.
    assert sum(line.startswith("RET  ") for line in control) >= 20


def test_bad_output_pointer_is_efault(supervise: Supervise, target_bin, tree: Tree) -> None:
    ops = ["stat", "newfstatat", "statx", "stat32", "stat64-32", "statx32", "readlinkat",
           "readlink32", "getxattr", "getxattrat", "getxattr32", "listxattr"]  # fmt: skip
    cmd = [target_bin("answers")]
    for op in ops:
        cmd += ["efault", op, tree.pub_lnk if "readlink" in op else tree.pub]
    r = supervise(policy(supervise, tree), cmd)
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EFAULT"] * len(ops), r.explain()
    # The denied file is refused before anything is written.
    r = supervise(policy(supervise, tree), [target_bin("answers"), "efault", "stat", tree.sec])
    assert r.lines == ["EPERM"], r.explain()


def test_lookup_with_the_targets_credentials(supervise: Supervise, target_bin, tree: Tree) -> None:
    """A uid-65534 target cannot look into a 0700 root directory: EACCES, as from the kernel;
    access(2) checks with the real uid, faccessat2(AT_EACCESS) with the effective one."""
    f, lnk = tree.private / "file.txt", tree.private / "lnk"
    probe = [
        "dump", "stat", f, "dump", "statx", f, "dump", "stat64-32", f, "dump", "readlinkat", lnk,
        "dump", "getxattr", f, "dump", "access", f,
    ]  # fmt: skip
    real = ["dump", "access", f, "dump", "faccessat2", f, "dump", "access32", f]
    for cmd, want in (
        (["dropuid", str(NOBODY), *probe], ["OK"] + ["RET EACCES "] * 6),
        (["realuid", str(NOBODY), *real], ["OK", "RET EACCES ", "RET  0 ", "RET EACCES "]),
    ):
        argv = [str(target_bin("answers")), *map(str, cmd)]
        control = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        r = supervise(policy(supervise, tree), argv)
        assert r.returncode == 0, r.explain()
        assert r.lines == control.splitlines(), r.explain()
        assert [line[: len(w)] for line, w in zip(r.lines, want, strict=True)] == want


@pytest.fixture
def two_tmpfs(world_dir: Path):
    """Two tmpfs mounts of different sizes (256 and 512 blocks of 4 KiB), a file in each, at
    paths of the same length: statfs of one tells them apart."""
    mounts = [world_dir / "ma", world_dir / "mb"]
    done = []
    try:
        for m, size in zip(mounts, ("1m", "2m"), strict=True):
            m.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", m], check=True)
            done.append(m)
            (m / "f").write_text("x\n")
        yield mounts[0] / "f", mounts[1] / "f"
    finally:
        for m in done:
            subprocess.run(["umount", "-l", m], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["statfs", "statfs32", "statfs64-32"])
def test_statfs_is_answered(supervise: Supervise, target_bin, two_tmpfs, op: str) -> None:
    """statfs of the flipped path never reports the denied file's filesystem, and its struct is
    the kernel's (on a tmpfs nothing else writes to)."""
    a, d = two_tmpfs
    pol = supervise.policy(deny_list(d, errno="EPERM"))
    r = supervise(pol, [target_bin("answers"), "race", op, a, d, str(CALLS), "256", "512"])
    m = re.fullmatch(
        r"calls=(\d+) allowed=(\d+) leaked=(\d+) refused=(\d+) other=(\d+)", r.stdout.strip()
    )
    assert r.returncode == 0 and m, r.explain()
    _calls, allowed, leaked, refused, other = map(int, m.groups())
    assert leaked == 0 and other == 0, m.group(0)
    assert allowed > 0 and refused > 0, m.group(0)
    cmd = [str(target_bin("answers")), "dump", op, str(a), "dump", op, str(a.parent / "nope")]
    control = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    r = supervise(pol, cmd)
    assert r.lines == control, r.explain()
    assert control[0].startswith("RET  0 "), control
