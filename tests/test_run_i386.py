"""The i386 entry: a 64-bit process doing `int $0x80` uses i386 syscall numbers (open is 5,
mkdir is 39). Filters and the supervisor must treat them like their 64-bit twins."""

from __future__ import annotations

from .run_helpers import HARMLESS, SECRET, Files, Supervise, deny_list, policy_text, rule


def test_i386_open_of_denied_file(supervise: Supervise, target_bin, files: Files) -> None:
    policy = supervise.policy(deny_list(files.secret))
    r = supervise(
        policy,
        [target_bin("sysops"), "i386_open", files.allowed, "i386_open", files.secret,
         "open", files.secret],
    )  # fmt: skip
    assert r.returncode == 0, r.explain()
    # The harmless open shows the int $0x80 path works (and the supervisor performed it for an
    # i386 caller); the secret is denied like the 64-bit open.
    assert r.lines == [f"OK:{HARMLESS}", "EACCES", "EACCES"], r.explain()
    assert SECRET not in r.stdout
    denied = [e for e in r.named("syscall.denied") if e.get("arch") == "i386"]
    assert denied and denied[0]["syscall"] == "open", r.explain()


def test_i386_open_under_allow_list(supervise: Supervise, target_bin, files: Files) -> None:
    from .run_helpers import allow_list

    policy = supervise.policy(allow_list(files.allowed))
    r = supervise(
        policy, [target_bin("sysops"), "i386_open", files.allowed, "i386_open", files.secret]
    )
    assert r.lines == [f"OK:{HARMLESS}", "EACCES"], r.explain()


def test_i386_mkdir_kernel_decided(supervise: Supervise, target_bin, files: Files) -> None:
    policy = supervise.policy(
        policy_text("t", "allow", rule("no-mkdir", "deny", syscalls=["mkdir"]))
    )
    made32 = files.root / "made-i386"
    made64 = files.root / "made-x86_64"
    r = supervise(policy, [target_bin("sysops"), "i386_mkdir", made32, "mkdir", made64])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EPERM", "EPERM"], r.explain()
    assert not made32.exists() and not made64.exists()


def test_i386_mkdir_allowed_without_rule(supervise: Supervise, target_bin, files: Files) -> None:
    """Control: with no rule on mkdir the i386 mkdir works, so the EPERM above is the filter's."""
    policy = supervise.policy(
        policy_text("t", "allow", rule("no-rmdir", "deny", syscalls=["rmdir"]))
    )
    made32 = files.root / "made-i386"
    r = supervise(policy, [target_bin("sysops"), "i386_mkdir", made32])
    assert r.lines == ["OK"], r.explain()
    assert made32.is_dir()
