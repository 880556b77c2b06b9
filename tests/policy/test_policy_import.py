"""policy/from_oci.py: Docker/OCI seccomp profiles as policies (pure). The round trip through
Podman is tests/daemon/test_oci_podman.py."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from supervisor.policy import Request, parse_policy
from supervisor.policy.engine import Engine
from supervisor.policy.from_oci import ImportError_, import_profile


def _policy(profile: dict[str, Any], **kw: Any) -> Any:
    text = import_profile(profile, name="imp", source="test.json", **kw)
    return text, parse_policy(text, name="imp")


def test_actions_errnos_args_and_default() -> None:
    text, policy = _policy(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["ptrace"], "action": "SCMP_ACT_KILL_THREAD"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0,
                           "op": "SCMP_CMP_MASKED_EQ"}]},
            ],
        }
    )  # fmt: skip
    assert 'default = "deny"' in text and 'default_errno = "ENOSYS"' in text
    assert policy.default_errno == errno.ENOSYS
    by_name = {r.spec[0] if r.spec else "": r for r in policy.rules}
    assert by_name["kexec_load"].errno == errno.EPERM  # runc's default errnoRet
    assert by_name["ptrace"].action.value == "kill"
    (cond,) = by_name["clone"].args
    assert (cond.op, cond.mask, cond.value) == ("&=", 0x7E020000, 0)
    (pers,) = by_name["personality"].args
    assert (pers.index, pers.op, pers.value) == (0, "==", 8)


def test_includes_and_excludes_are_evaluated() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["chroot"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["s390_runtime_instr", "getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["futex_waitv"], "action": "SCMP_ACT_ALLOW",
             "includes": {"minKernel": "99.0"}},
        ],
    }  # fmt: skip
    with_cap, _ = _policy(profile, caps=["CAP_SYS_CHROOT"])
    without, _ = _policy(profile, caps=[])
    assert "syscalls[1] (chroot): excluded with CAP_SYS_CHROOT" in with_cap
    assert "syscalls[0] (chroot): only with CAP_SYS_CHROOT" in without
    assert "only from Linux 99.0" in without and "futex_waitv" not in without.split("version")[1]
    assert '"arch_prctl"' in without
    assert "other architectures, left out: s390_runtime_instr" in without


def test_unlisted_i386_twins_get_the_default() -> None:
    text, policy = _policy(
        {"defaultAction": "SCMP_ACT_ERRNO",
         "syscalls": [{"names": ["fstat"], "action": "SCMP_ACT_ALLOW"}]}
    )  # fmt: skip
    first = policy.rules[0]
    assert first.action.value == "deny" and "fstat64" in first.spec
    engine = Engine(policy)
    assert engine.decide(Request(1, "fstat64", "i386", (0,) * 6)).action.value == "deny"
    assert engine.decide(Request(1, "fstat", "x86_64", (0,) * 6)).action.value == "allow"


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"defaultAction": "SCMP_ACT_TRAP"}, "SCMP_ACT_TRAP"),
        ({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}, "SCMP_ACT_NOTIFY"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"]},
         "SCMP_ARCH_X86"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}, "socket"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]}, "SCMP_CMP_BOGUS"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "seccompFlags": []}, "seccompFlags"),
    ],
)  # fmt: skip
def test_what_cannot_be_mapped_is_an_error_naming_it(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(ImportError_, match=message):
        import_profile(profile, name="imp", source="test.json")
