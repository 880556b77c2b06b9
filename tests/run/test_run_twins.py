"""A rule on an x86_64 syscall also covers its i386 twin (supervisor/policy/twins.py): a target
entering the i386 table with `int $0x80` calls stat64 or fstatat64, not stat or newfstatat."""

from __future__ import annotations

from tests.helpers.run import Files, Supervise, policy_text, rule


def test_path_rule_on_stat_names_covers_i386_twins(
    supervise: Supervise, target_bin, files: Files
) -> None:
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            rule(
                "no-stat-of-secret",
                "deny",
                syscalls=["newfstatat", "stat", "lstat"],
                path=[files.secret],
                errno="EACCES",
            ),
        )
    )
    ops = ["stat64", "fstatat64", "lstat64", "oldstat", "stat"]
    argv = [target_bin("abi32")]
    for op in ops:
        argv += [op, files.secret]
    argv += ["stat64", files.allowed, "fstatat64", files.allowed]
    r = supervise(policy, argv)
    assert r.returncode == 0, r.explain()
    # Every i386 spelling of stat is refused for the secret; the harmless file is stat-ed, so
    # the EACCES is the rule's and the int $0x80 calls work.
    assert r.lines == ["EACCES"] * len(ops) + ["OK", "OK"], r.explain()
    denied = {e["syscall"] for e in r.named("syscall.denied") if e.get("arch") == "i386"}
    assert denied == {"stat64", "fstatat64", "lstat64", "oldstat", "stat"}, r.explain()


def test_value_rule_on_newfstatat_covers_fstatat64_in_the_kernel(
    supervise: Supervise, target_bin, files: Files
) -> None:
    # With a condition (the loader's own newfstatat, AT_EMPTY_PATH, must work): it holds for
    # fstatat64 too, whose arguments are newfstatat's.
    nofollow = '[{ arg = 3, op = "&=", value = 0x100 }]'
    policy = supervise.policy(
        policy_text(
            "t", "allow", rule("no-lstatat", "deny", syscalls=["newfstatat"], args=nofollow)
        )
    )
    r = supervise(
        policy, [target_bin("abi32"), "fstatat64", files.allowed, "stat64", files.allowed]
    )
    assert r.returncode == 0, r.explain()
    # fstatat64 refused by the kernel filter (nothing reached the supervisor), stat64 untouched.
    assert r.lines == ["EPERM", "OK"], r.explain()
    assert not r.named("syscall.denied"), r.explain()


def test_chown_rule_covers_chown32(supervise: Supervise, target_bin, files: Files) -> None:
    policy = supervise.policy(
        policy_text("t", "allow", rule("no-chown", "deny", syscalls=["chown"], errno="EACCES"))
    )
    r = supervise(policy, [target_bin("abi32"), "chown32", files.allowed])
    assert r.lines == ["EACCES"], r.explain()


def test_ipc_multiplexer_cannot_bypass_a_rule_on_shmget(supervise: Supervise, target_bin) -> None:
    """i386 programs reach shmget through ipc(2) (117), whose per-call arguments the kernel
    filter cannot check: a policy that decides shmget by its key (here in the supervisor: the
    rules disagree in order) would let every key through ipc. The plan refuses ipc instead."""
    key_1234 = '[{ arg = 0, op = "==", value = 1234 }]'
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            rule("one-key", "allow", syscalls=["shmget"], args=key_1234),
            rule("no-other-keys", "deny", syscalls=["shmget"]),
        )
    )
    r = supervise(policy, [target_bin("abi32"), "shmget-ipc", "9999", "shmget-ipc", "1234"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["ENOSYS", "ENOSYS"], r.explain()
    warnings = [e["detail"] for e in r.named("policy.advisory")]
    assert any("ipc(2)" in w for w in warnings), warnings
