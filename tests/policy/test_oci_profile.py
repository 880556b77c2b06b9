"""policy/oci.py: a filter plan as an OCI linux.seccomp object (pure: no runtime here; the
runc tests in tests/daemon/test_oci_*.py install what it writes)."""

from __future__ import annotations

import errno

import pytest

from supervisor.policy import parse_policy, plan_filter
from supervisor.policy.oci import OciProfileError, merge_into_base, oci_seccomp

HEAD = 'version = 1\nname = "t"\ndescription = "t"\n'


def _profile(body: str, default: str = "allow", **kw: object) -> dict[str, object]:
    plan = plan_filter(parse_policy(HEAD + f'default = "{default}"\n' + body, name="t"))
    profile, _ = oci_seccomp(plan, policy_name="t", listener_path="/run/x.sock", **kw)  # type: ignore[arg-type]
    return profile


def _entries(profile: dict[str, object], name: str) -> list[dict[str, object]]:
    syscalls = profile["syscalls"]
    assert isinstance(syscalls, list)
    return [e for e in syscalls if name in e["names"]]


def test_listener_architectures_and_notified_paths() -> None:
    p = _profile('[[rule]]\nsyscalls = ["openat"]\npath = ["/etc/shadow"]\naction = "deny"\n')
    assert p["defaultAction"] == "SCMP_ACT_ALLOW"
    assert p["listenerPath"] == "/run/x.sock" and p["listenerMetadata"] == "policy=t"
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    (entry,) = _entries(p, "openat")
    assert entry["action"] == "SCMP_ACT_NOTIFY" and "args" not in entry
    assert not _entries(p, "getpid")  # the default's: no rule


def test_kernel_rules_with_errno_and_arguments() -> None:
    p = _profile(
        '[[rule]]\nsyscalls = ["chroot"]\naction = "deny"\nerrno = "EXDEV"\n'
        '[[rule]]\nsyscalls = ["socket"]\nargs = [{ arg = 0, op = "==", value = "AF_INET" }]\n'
        'action = "deny"\nerrno = "EACCES"\n'
        '[[rule]]\nsyscalls = ["clone"]\n'
        'args = [{ arg = 0, op = "&=", mask = 0x10000000, value = 0x10000000 }]\n'
        'action = "kill"\n'
    )
    (chroot,) = _entries(p, "chroot")
    assert chroot["action"] == "SCMP_ACT_ERRNO" and chroot["errnoRet"] == errno.EXDEV
    (socket_rule,) = _entries(p, "socket")
    assert socket_rule["args"] == [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]
    (clone,) = _entries(p, "clone")
    assert clone["action"] == "SCMP_ACT_KILL_PROCESS"
    assert clone["args"] == [
        {"index": 0, "value": 0x10000000, "valueTwo": 0x10000000, "op": "SCMP_CMP_MASKED_EQ"}
    ]


def test_deny_default_carries_its_errno() -> None:
    p = _profile('[[rule]]\nsyscalls = ["read", "write", "exit_group"]\naction = "allow"\n', "deny")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == errno.EPERM
    (allowed,) = _entries(p, "read")
    assert allowed["action"] == "SCMP_ACT_ALLOW" and "write" in allowed["names"]


def test_log_default_names_every_notified_syscall() -> None:
    # runc refuses SCMP_ACT_NOTIFY as defaultAction: every notified syscall is named, the rest
    # (numbers outside the tables) fail with ENOSYS as under our own filter.
    p = _profile(
        '[[rule]]\nsyscalls = ["write"]\naction = "allow"\n'
        '[[rule]]\nsyscalls = ["socket"]\nargs = [{ arg = 0, op = "==", value = "AF_INET" }]\n'
        'action = "deny"\n',
        "log",
    )
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == errno.ENOSYS
    (openat,) = _entries(p, "openat")
    assert openat["action"] == "SCMP_ACT_NOTIFY"
    (write,) = _entries(p, "write")
    assert write["action"] == "SCMP_ACT_ALLOW"
    # socket's conditioned rule is left to the engine: the whole syscall is notified.
    (socket_rule,) = _entries(p, "socket")
    assert socket_rule["action"] == "SCMP_ACT_NOTIFY" and "args" not in socket_rule


def test_notified_write_cannot_be_exported() -> None:
    with pytest.raises(OciProfileError, match="write"):
        _profile('[[rule]]\nsyscalls = ["write"]\naction = "log"\n')


def test_unnameable_syscalls_are_reported() -> None:
    plan = plan_filter(
        parse_policy(
            HEAD + 'default = "allow"\n[[rule]]\nsyscalls = ["openat"]\npath = ["/x"]\n'
            'action = "deny"\n',
            name="t",
        )
    )
    profile, warnings = oci_seccomp(
        plan, policy_name="t", listener_path="/x", unnameable={"openat"}
    )
    assert not _entries(profile, "openat")
    assert warnings and "openat" in warnings[0]


BASE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
    "syscalls": [
        {"names": ["read", "write", "openat", "close", "socket"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
    ],
}  # fmt: skip


def _merged(body: str, default: str = "allow") -> tuple[dict[str, object], list[str]]:
    plan = plan_filter(parse_policy(HEAD + f'default = "{default}"\n' + body, name="t"))
    return merge_into_base(plan, BASE, policy_name="t", listener_path="/run/x.sock")


def test_merge_notifies_only_where_the_base_allows() -> None:
    merged, changes = _merged(
        '[[rule]]\nsyscalls = ["openat", "mkdirat"]\npath = ["/secret/**"]\naction = "deny"\n'
    )
    assert merged["defaultAction"] == "SCMP_ACT_ERRNO" and merged["archMap"] == BASE["archMap"]
    assert merged["listenerPath"] == "/run/x.sock" and merged["listenerMetadata"] == "policy=t"
    (openat,) = _entries(merged, "openat")
    assert openat["action"] == "SCMP_ACT_NOTIFY"
    (read,) = _entries(merged, "read")
    assert read["action"] == "SCMP_ACT_ALLOW" and "openat" not in read["names"]
    assert not _entries(merged, "mkdirat")  # the base refuses it: stays refused
    assert any("openat" in c for c in changes)
    assert any("never apply" in c and "mkdirat" in c for c in changes)


def test_merge_stricter_refusals_win_and_conditions_are_kept() -> None:
    merged, changes = _merged(
        '[[rule]]\nsyscalls = ["chroot"]\naction = "deny"\nerrno = "EXDEV"\n'
        '[[rule]]\nsyscalls = ["socket"]\nargs = [{ arg = 0, op = "==", value = "AF_INET" }]\n'
        'action = "deny"\n'
        '[[rule]]\nsyscalls = ["personality"]\naction = "log"\n'
    )
    (chroot,) = _entries(merged, "chroot")  # both base entries replaced by the policy's
    assert chroot["action"] == "SCMP_ACT_ERRNO" and chroot["errnoRet"] == errno.EXDEV
    (socket_rule,) = _entries(merged, "socket")  # a value rule: the engine decides it
    assert socket_rule["action"] == "SCMP_ACT_NOTIFY"
    (personality,) = _entries(merged, "personality")
    assert personality["action"] == "SCMP_ACT_NOTIFY"
    assert personality["args"] == [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]
    assert any("chroot" in c and "instead of the base" in c for c in changes)


def test_merge_refuses_a_notified_write() -> None:
    with pytest.raises(OciProfileError, match="write"):
        _merged('[[rule]]\nsyscalls = ["write"]\naction = "log"\n')
