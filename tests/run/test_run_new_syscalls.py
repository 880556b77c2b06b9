"""Syscalls newer than libseccomp 2.5.4 under real policies (issue 14, route 2): open_tree_attr
is a mount call (@mount), the *xattrat calls and file_getattr/file_setattr are path syscalls
like their older twins, on x86_64 and through int $0x80. Each attack has its control: the same
call on an allowed file (or outside the supervisor) does what the attack wants."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.run import (
    HARMLESS,
    POLICIES,
    SECRET,
    Files,
    Supervise,
    deny_list,
    policy_text,
    rule,
)

DEFAULT = POLICIES / "default.toml"


def _control(target: Path, *ops: str | os.PathLike[str]) -> list[str]:
    r = subprocess.run([str(target), *map(os.fspath, ops)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.mark.parametrize("op", ["tree_read", "i386_tree_read"])
def test_open_tree_attr_clone_under_default(supervise: Supervise, target_bin, op: str) -> None:
    """The issue's attack: a detached copy of /etc (open_tree_attr OPEN_TREE_CLONE) and a read
    of shadow relative to it. `default` denies @mount, which now includes open_tree_attr."""
    if not os.path.exists("/etc/shadow"):
        pytest.skip("no /etc/shadow here")
    exe = target_bin("newcalls")
    assert _control(exe, op, "/etc", "shadow")[0].startswith("OK:")  # the attack works bare
    r = supervise(DEFAULT, [exe, op, "/etc", "shadow"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EPERM"], r.explain()


def test_open_tree_attr_clone_of_a_denied_file(
    supervise: Supervise, target_bin, files: Files
) -> None:
    exe = target_bin("newcalls")
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            rule("mounts", "deny", syscalls=["@mount"]),
            rule("secret", "deny", path=[files.secret], errno="EACCES"),
        )
    )
    leaf = files.secret.name
    assert _control(exe, "tree_read", files.dir, leaf)[0] == f"OK:{SECRET}"
    r = supervise(policy, [exe, "tree_read", files.dir, leaf, "i386_tree_read", files.dir, leaf])
    assert r.lines == ["EPERM", "EPERM"], r.explain()
    assert SECRET not in r.stdout
    # Control: with open_tree_attr allowed, the clone is made (and the read relative to it is
    # the resolver's business: issue 14, route "lookups relative to fds").
    allowed = supervise.policy(
        policy_text("t", "allow", rule("mounts", "deny", syscalls=["mount"]))
    )
    r = supervise(allowed, [exe, "tree_read", files.dir, files.allowed.name])
    assert r.lines[0] == f"OK:{HARMLESS}", r.explain()


@pytest.mark.parametrize("op", ["setacl", "i386_setacl"])
def test_setxattrat_acl_cannot_chmod_a_denied_file(
    supervise: Supervise, target_bin, files: Files, op: str
) -> None:
    exe = target_bin("newcalls")
    files.secret.chmod(0o600)
    files.allowed.chmod(0o600)
    policy = supervise.policy(deny_list(files.secret))
    r = supervise(policy, [exe, op, files.secret, op, files.allowed])
    assert r.returncode == 0, r.explain()
    # The control: the same ACL on the allowed file is a chmod to 0644.
    assert r.lines == ["EACCES", "OK"], r.explain()
    assert files.secret.stat().st_mode & 0o7777 == 0o600
    assert files.allowed.stat().st_mode & 0o7777 == 0o644
    denied = r.named("syscall.denied")
    assert denied and denied[0]["syscall"] == "setxattrat", r.explain()


def test_xattrat_and_file_attr_calls_on_a_denied_path(
    supervise: Supervise, target_bin, files: Files
) -> None:
    exe = target_bin("newcalls")
    for f in (files.secret, files.allowed):
        os.setxattr(f, "user.k", b"v1")
    link = files.sub / "link"
    link.symlink_to(files.secret)
    policy = supervise.policy(deny_list(files.secret))
    s, a, d = files.secret, files.allowed, files.dir
    ops: list[tuple[list[str | os.PathLike[str]], str]] = [
        (["getx", s, "user.k"], "EACCES"),
        (["getx", a, "user.k"], "OK:v1"),
        (["getx_empty", a, "user.k"], "OK:v1"),  # "" + AT_EMPTY_PATH: the fd's file
        (["getx_dirfd", d, s.name, "user.k"], "EACCES"),  # relative to a dirfd
        (["getx_dirfd", d, a.name, "user.k"], "OK:v1"),
        (["getx", link, "user.k"], "EACCES"),  # the last symlink is followed
        (["listx", s], "EACCES"),
        (["listx", a], "OK:user.k"),
        (["removex", s, "user.k"], "EACCES"),
        (["fgetattr", s], "EACCES"),
        (["fsetattr", s], "EACCES"),
        (["i386_getx", s, "user.k"], "EACCES"),
        (["i386_getx", a, "user.k"], "OK:v1"),
        (["i386_listx", s], "EACCES"),
        (["i386_removex", s, "user.k"], "EACCES"),
    ]
    argv: list[str | os.PathLike[str]] = [exe]
    for op, _ in ops:
        argv += op
    r = supervise(policy, argv)
    assert r.returncode == 0, r.explain()
    assert r.lines == [want for _, want in ops], r.explain()
    assert SECRET not in r.stdout and HARMLESS not in r.stdout
    assert os.getxattr(files.secret, "user.k") == b"v1"  # removexattrat did not run
    names = {e["syscall"] for e in r.named("syscall.denied")}
    assert names == {"getxattrat", "listxattrat", "removexattrat", "file_getattr",
                     "file_setattr"}, r.explain()  # fmt: skip


def test_getxattrat_empty_path_on_an_inherited_fd_of_a_denied_file(
    supervise: Supervise, target_bin, files: Files
) -> None:
    """AT_EMPTY_PATH: the call is on the dirfd itself, resolved to the file it names."""
    exe = target_bin("newcalls")
    os.setxattr(files.secret, "user.k", b"v1")
    policy = supervise.policy(deny_list(files.secret))
    fd = os.open(files.secret, os.O_RDONLY)
    try:
        log = supervise.log_file()
        argv = supervise.argv(policy, [exe, "getx_fd", str(fd), "user.k"], log)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert _control(exe, "getx_fd", "0", "user.k") != ["EACCES"]  # fd 0 is not the file
    assert r.stdout.splitlines() == ["EACCES"], (r.stdout, r.stderr, log.read_text()[-2000:])


def test_the_allowed_file_attr_calls_run(supervise: Supervise, target_bin, files: Files) -> None:
    """Control for the test above: on an allowed file, what the kernel answers bare."""
    exe = target_bin("newcalls")
    policy = supervise.policy(deny_list(files.secret))
    ops = ["fgetattr", files.allowed, "removex", files.allowed, "user.none"]
    r = supervise(policy, [exe, *ops])
    assert r.lines == _control(exe, *ops), r.explain()


@pytest.mark.parametrize("abi", ["", "i386_"])
def test_a_value_rule_on_a_new_syscall_is_applied(
    supervise: Supervise, target_bin, files: Files, abi: str
) -> None:
    """A rule with `args` on getxattrat (which libseccomp cannot name): the filter notifies it
    and the supervisor decides by value, the same first-match order as any rule."""
    exe = target_bin("newcalls")
    os.setxattr(files.allowed, "user.k", b"v1")
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            rule(
                "no-nofollow",
                "deny",
                syscalls=["getxattrat"],
                args='[{ arg = 2, op = "&=", mask = "AT_SYMLINK_NOFOLLOW", '
                'value = "AT_SYMLINK_NOFOLLOW" }]',
                errno="EXDEV",
            ),
        )
    )
    r = supervise(
        policy,
        [exe, f"{abi}getx", files.allowed, "user.k", f"{abi}getx_nofollow", files.allowed,
         "user.k"],
    )  # fmt: skip
    assert r.lines == ["OK:v1", "EXDEV"], r.explain()
