"""Path resolution bypass attempts against a denied file.

The policy denies one secret file (every path syscall, EACCES); each trick reaches it through a
different spelling: relative to the cwd or a dirfd, `..`, symlinks, /proc magic links, openat2
with RESOLVE_* flags, hard links, renames, O_CREAT through a dangling symlink. Every trick is run
on a harmless file in the same directory too, in the same process: that open must work, which
shows the trick itself reaches the file (a denial is not just a broken path).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.run import HARMLESS, SECRET, Files, Supervise, allow_list, deny_list

Op = tuple[str, ...]
# A trick builds the ops that reach the file NAME (in files.dir) a particular way.
Trick = Callable[[Files, str], list[Op]]


def rel(p: Path) -> str:
    return str(p).lstrip("/")


TRICKS: dict[str, Trick] = {
    "absolute": lambda f, n: [("open", f"{f.dir}/{n}")],
    "openat-absolute": lambda f, n: [("openat", f"{f.dir}/{n}")],
    "relative-to-cwd": lambda f, n: [("chdir", str(f.dir)), ("open", n)],
    "dot-slash": lambda f, n: [("chdir", str(f.dir)), ("openat", f"./{n}")],
    "dotdot-from-cwd": lambda f, n: [("chdir", str(f.sub)), ("open", f"../{n}")],
    "dotdot-absolute": lambda f, n: [("open", f"{f.sub}/../{n}")],
    "dotdot-up-and-down": lambda f, n: [("open", f"{f.sub}/../../d/./sub/../{n}")],
    "dotdot-above-root": lambda f, n: [("open", f"/../../..{f.dir}/{n}")],
    "double-slashes": lambda f, n: [("open", "/" + str(f.dir).replace("/", "//") + "///" + n)],
    "cwd-root-relative": lambda f, n: [("chdir", "/"), ("open", f"{rel(f.dir)}/{n}")],
    "dirfd": lambda f, n: [("dirfd", str(f.dir)), ("openat_fd", n)],
    "dirfd-o-path": lambda f, n: [("pathfd", str(f.dir)), ("openat_fd", n)],
    "dirfd-dotdot": lambda f, n: [("dirfd", str(f.sub)), ("openat_fd", f"../{n}")],
    "dirfd-absolute-path": lambda f, n: [("dirfd", str(f.sub)), ("openat_fd", f"{f.dir}/{n}")],
    "symlink-relative": lambda f, n: [("open", f"{f.dir}/link-{n}")],
    "symlink-absolute": lambda f, n: [("open", f"{f.root}/abs-{n}")],
    "symlink-chain": lambda f, n: [("open", f"{f.root}/chain-{n}")],
    "symlink-to-parent-dir": lambda f, n: [("open", f"{f.sub}/up/{n}")],
    "symlink-to-dir": lambda f, n: [("chdir", str(f.root)), ("open", f"alias/{n}")],
    "symlink-to-slash": lambda f, n: [("open", f"{f.root}/slash/{rel(f.dir)}/{n}")],
    "symlink-loop-dirfd": lambda f, n: [("dirfd", str(f.root)), ("openat_fd", f"alias/sub/up/{n}")],
    "proc-self-root": lambda f, n: [("open", f"/proc/self/root{f.dir}/{n}")],
    "proc-self-cwd": lambda f, n: [("chdir", str(f.dir)), ("open", f"/proc/self/cwd/{n}")],
    "proc-thread-self-cwd": lambda f, n: [
        ("chdir", str(f.dir)),
        ("open", f"/proc/thread-self/cwd/{n}"),
    ],
    "proc-self-cwd-dotdot": lambda f, n: [
        ("chdir", str(f.sub)),
        ("open", f"/proc/self/cwd/../{n}"),
    ],
    "proc-self-fd-dir": lambda f, n: [("dirfd", str(f.dir)), ("open", f"/proc/self/fd/{{fd}}/{n}")],
    "dev-fd-dir": lambda f, n: [("dirfd", str(f.dir)), ("open", f"/dev/fd/{{fd}}/{n}")],
    "dev-fd-o-path-dir": lambda f, n: [("pathfd", str(f.sub)), ("open", f"/dev/fd/{{fd}}/../{n}")],
    "proc-self-root-via-dirfd": lambda f, n: [
        ("dirfd", "/proc/self/root"),
        ("openat_fd", f"{rel(f.dir)}/{n}"),
    ],
    "openat2-plain": lambda f, n: [("openat2", "cwd", f"{f.dir}/{n}", "0")],
    "openat2-no-symlinks": lambda f, n: [("openat2", "cwd", f"{f.dir}/{n}", "no_symlinks")],
    "openat2-no-magiclinks-xdev": lambda f, n: [
        ("openat2", "cwd", f"{f.dir}/{n}", "no_magiclinks,no_xdev")
    ],
    "openat2-beneath": lambda f, n: [("dirfd", str(f.dir)), ("openat2", "fd", n, "beneath")],
    "openat2-beneath-dotdot": lambda f, n: [
        ("dirfd", str(f.root)),
        ("openat2", "fd", f"d/sub/../{n}", "beneath"),
    ],
    "openat2-in-root-slash": lambda f, n: [
        ("dirfd", str(f.dir)),
        ("openat2", "fd", f"/{n}", "in_root"),
    ],
    "openat2-in-root-dotdot": lambda f, n: [
        ("dirfd", str(f.dir)),
        ("openat2", "fd", f"/../../{n}", "in_root"),
    ],
    "openat2-in-root-symlink": lambda f, n: [
        ("dirfd", str(f.dir)),
        ("openat2", "fd", f"link-{n}", "in_root"),
    ],
    "openat2-in-root-from-top": lambda f, n: [
        ("dirfd", str(f.root)),
        ("openat2", "fd", f"/d/{n}", "in_root"),
    ],
    "openat2-proc-self-cwd": lambda f, n: [
        ("chdir", str(f.dir)),
        ("openat2", "cwd", f"/proc/self/cwd/{n}", "0"),
    ],
    "stat-absolute": lambda f, n: [("stat", f"{f.dir}/{n}")],
    "stat-via-symlink": lambda f, n: [("stat", f"{f.dir}/link-{n}")],
}


def make_links(f: Files) -> None:
    for name in ("secret.txt", "public.txt"):
        (f.dir / f"link-{name}").symlink_to(name)
        (f.root / f"abs-{name}").symlink_to(f.dir / name)
        (f.root / f"chain-{name}").symlink_to(f"d/link-{name}")
    (f.sub / "up").symlink_to("..")
    (f.root / "alias").symlink_to("d")
    (f.root / "slash").symlink_to("/")


@pytest.fixture
def secret_policy(supervise: Supervise, files: Files) -> Path:
    make_links(files)
    return supervise.policy(deny_list(files.secret, files.dir / "new-secret.txt"))


def run_ops(supervise: Supervise, policy: Path, sysops: Path, *groups: list[Op]):
    argv: list[str] = [str(sysops)]
    for group in groups:
        for op in group:
            argv += op
    r = supervise(policy, argv)
    assert r.returncode == 0, r.explain()
    lines = r.lines
    assert len(lines) == sum(len(g) for g in groups), r.explain()
    out = []
    for group in groups:
        part, lines = lines[: len(group)], lines[len(group) :]
        # Set-up ops (chdir, dirfd) must work; the last op is the one under test.
        assert all(x.startswith("OK") for x in part[:-1]), r.explain()
        out.append(part[-1])
    return r, out


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_trick_is_denied(
    trick: str, supervise: Supervise, target_bin, files: Files, secret_policy: Path
) -> None:
    build = TRICKS[trick]
    r, (public, secret) = run_ops(
        supervise,
        secret_policy,
        target_bin("sysops"),
        build(files, "public.txt"),
        build(files, "secret.txt"),
    )
    assert public.startswith("OK"), f"the trick does not even reach a harmless file\n{r.explain()}"
    if public.startswith("OK:") and not public.startswith("OK:0:"):
        assert public == f"OK:{HARMLESS}", r.explain()
    assert secret == "EACCES", r.explain()
    assert SECRET not in r.stdout
    assert r.named("syscall.denied"), r.explain()


def test_hard_link_of_denied_file(
    supervise: Supervise, target_bin, files: Files, secret_policy: Path
) -> None:
    d = files.dir
    r, out = run_ops(
        supervise,
        secret_policy,
        target_bin("sysops"),
        [("link", str(files.secret), f"{d}/hl1")],
        [("linkat", str(files.secret), f"{d}/hl2")],
        [("chdir", str(d)), ("link", "secret.txt", "sub/hl3")],
        [("linkat_follow", f"{d}/link-secret.txt", f"{d}/hl4")],
        [("linkat", str(files.allowed), f"{d}/public-hl")],
        [("open", f"{d}/public-hl")],
    )
    assert out == ["EACCES", "EACCES", "EACCES", "EACCES", "OK", f"OK:{HARMLESS}"], r.explain()
    for name in ("hl1", "hl2", "sub/hl3", "hl4"):
        assert not (d / name).exists(), name
    assert files.secret.stat().st_nlink == 1


def test_rename_of_denied_file(
    supervise: Supervise, target_bin, files: Files, secret_policy: Path
) -> None:
    d = files.dir
    r, out = run_ops(
        supervise,
        secret_policy,
        target_bin("sysops"),
        [("rename", str(files.secret), f"{d}/moved.txt")],
        [("renameat2", str(files.secret), f"{d}/moved2.txt")],
        [("chdir", str(d)), ("rename", "secret.txt", "sub/moved3.txt")],
        [("rename", str(files.allowed), f"{d}/moved-public.txt")],
        # Renaming something else onto the denied name would replace the secret: denied too.
        [("rename", f"{d}/moved-public.txt", str(files.secret))],
    )
    assert out == ["EACCES", "EACCES", "EACCES", "OK", "EACCES"], r.explain()
    assert files.secret.read_text() == SECRET + "\n"
    assert not (d / "moved.txt").exists()
    assert not (d / "moved2.txt").exists()


def test_rename_of_parent_dir_of_denied_file(
    supervise: Supervise, target_bin, files: Files, secret_policy: Path
) -> None:
    """Moving the directory that holds the denied file, then opening the file at its new name."""
    r, out = run_ops(
        supervise,
        secret_policy,
        target_bin("sysops"),
        [("rename", str(files.dir), f"{files.root}/moved-d")],
        [("open", f"{files.root}/moved-d/secret.txt")],
        [("rename", str(files.root), f"{files.root}-moved")],
        [("open", f"{files.root}-moved/d/secret.txt")],
        [("chdir", str(files.root)), ("rename", "d", "moved-again")],
        [("open", f"{files.root}/moved-again/secret.txt")],
        [("rename", str(files.sub), f"{files.root}/moved-sub")],
    )
    assert SECRET not in r.stdout, r.explain()
    assert out[0] == out[2] == out[4] == "EACCES", r.explain()
    assert out[6] == "OK", r.explain()  # a directory beside the secret moves freely
    assert files.secret.read_text() == SECRET + "\n"


def test_rename_exchange_of_parent_dir(
    supervise: Supervise, target_bin, files: Files, secret_policy: Path
) -> None:
    """RENAME_EXCHANGE swaps the secret's directory with an empty one: refused either way round."""
    other = files.root / "other"
    other.mkdir()
    r, out = run_ops(
        supervise,
        secret_policy,
        target_bin("sysops"),
        [("rename_exchange", str(files.dir), str(other))],
        [("rename_exchange", str(other), str(files.dir))],
        [("open", f"{other}/secret.txt")],
        [("rename_exchange", str(files.secret), str(files.allowed))],
        [("open", str(files.allowed))],
    )
    assert SECRET not in r.stdout, r.explain()
    assert out == ["EACCES", "EACCES", "ENOENT", "EACCES", f"OK:{HARMLESS}"], r.explain()


def test_creat_through_dangling_symlink(
    supervise: Supervise, target_bin, files: Files, secret_policy: Path
) -> None:
    d = files.dir
    (d / "dangle").symlink_to("new-secret.txt")
    (files.root / "dangle-abs").symlink_to(d / "new-secret.txt")
    (d / "dangle-public").symlink_to("new-public.txt")
    r, out = run_ops(
        supervise,
        secret_policy,
        target_bin("sysops"),
        [("creat", f"{d}/dangle")],
        [("creat", f"{files.root}/dangle-abs")],
        [("chdir", str(files.sub)), ("creat", "../dangle")],
        [("creat", f"{d}/dangle-public")],
    )
    assert out == ["EACCES", "EACCES", "EACCES", "OK"], r.explain()
    assert not (d / "new-secret.txt").exists()
    assert (d / "new-public.txt").read_text() == "created\n"


ETC_SHADOW_TRICKS: list[list[Op]] = [
    [("open", "/etc/shadow")],
    [("openat", "/etc/./shadow")],
    [("open", "//etc//shadow")],
    [("chdir", "/etc"), ("open", "shadow")],
    [("chdir", "/tmp"), ("open", "../etc/shadow")],
    [("open", "/proc/self/root/etc/shadow")],
    [("chdir", "/etc"), ("open", "/proc/self/cwd/shadow")],
    [("dirfd", "/etc"), ("openat_fd", "shadow")],
    [("dirfd", "/etc"), ("open", "/dev/fd/{fd}/shadow")],
    [("openat2", "cwd", "/etc/shadow", "0")],
    [("i386_open", "/etc/shadow")],
]


def test_etc_shadow(supervise: Supervise, target_bin, files: Files) -> None:
    """The real /etc/shadow (root could read it) under a policy that denies it."""
    link = files.root / "shadow-link"
    link.symlink_to("/etc/shadow")
    policy = supervise.policy(deny_list("/etc/shadow"))
    groups = [*ETC_SHADOW_TRICKS, [("open", str(link))], [("open", "/etc/hostname")]]
    r, out = run_ops(supervise, policy, target_bin("sysops"), *groups)
    assert out[:-1] == ["EACCES"] * (len(groups) - 1), r.explain()
    assert out[-1].startswith("OK"), r.explain()
    assert os.access("/etc/shadow", os.R_OK)  # so the denials above were the supervisor's


def test_inside_a_chroot(supervise: Supervise, target_bin, files: Files) -> None:
    """Paths are the target's view: after chroot(d) the secret is /secret.txt; `..` and
    absolute symlinks stay inside the new root."""
    make_links(files)
    policy = supervise.policy(deny_list("/secret.txt"))
    r, out = run_ops(
        supervise,
        policy,
        target_bin("sysops"),
        [("chroot", str(files.dir)), ("chdir", "/"), ("open", "/public.txt")],
        [("open", "/secret.txt")],
        [("open", "/../../secret.txt")],
        [("open", "/sub/up/secret.txt")],
        [("chdir", "/sub"), ("open", "../secret.txt")],
        [("open", "../link-secret.txt")],
        [("openat2", "cwd", "/secret.txt", "0")],
        [("i386_open", "/secret.txt")],
    )
    assert out == [f"OK:{HARMLESS}"] + ["EACCES"] * 7, r.explain()
    assert SECRET not in r.stdout


def test_answers_like_the_kernel(supervise: Supervise, target_bin, files: Files) -> None:
    """Bad pointers and over-long paths get the kernel's errno, and the supervisor goes on."""
    policy = supervise.policy(deny_list(files.secret))
    r, out = run_ops(
        supervise,
        policy,
        target_bin("sysops"),
        [("open_badptr",)],
        [("open_long", "5000")],
        [("open_long", "300")],
        [("open", f"{files.dir}/missing.txt")],
        [("open", f"{files.allowed}/")],
        [("open", f"{files.secret}/")],
        [("open", str(files.allowed))],
    )
    assert out == [
        "EFAULT",
        "ENAMETOOLONG",
        "ENAMETOOLONG",
        "ENOENT",
        "ENOTDIR",
        "ENOTDIR",
        f"OK:{HARMLESS}",
    ], r.explain()


def test_answers_like_the_kernel_allow_list(supervise: Supervise, target_bin, files: Files) -> None:
    policy = supervise.policy(allow_list(files.allowed))
    r, out = run_ops(
        supervise,
        policy,
        target_bin("sysops"),
        [("open_badptr",)],
        [("open_long", "5000")],
        [("open", str(files.allowed))],
    )
    assert out == ["EFAULT", "ENAMETOOLONG", f"OK:{HARMLESS}"], r.explain()
