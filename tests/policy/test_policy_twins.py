"""The i386 twins of x86_64 syscalls (supervisor/policy/twins.py): the table, and rules that
name a syscall covering its twins in the plan and the engine."""

from __future__ import annotations

import pytest

from supervisor.policy import (
    I386_SYSCALLS,
    PATH_SYSCALLS,
    X86_64_SYSCALLS,
    Action,
    Engine,
    KernelAction,
    KernelRule,
    PolicyError,
    Request,
    parse_policy,
    plan_filter,
)
from supervisor.policy.twins import ALL_ARGS, I386_SAME_NAME, TWINS

EPERM = KernelAction("errno", 1)


def pol(body: str, default: str = "allow"):  # type: ignore[no-untyped-def]
    return parse_policy(f'default = "{default}"\n' + body, source="t.toml")


def test_every_name_in_the_table_is_libseccomps() -> None:
    for base, twins in TWINS.items():
        assert base in X86_64_SYSCALLS, base
        for twin in twins:
            # an i386-only name: a rule on the base does not reach it by name
            assert twin.name in I386_SYSCALLS and twin.name not in X86_64_SYSCALLS, twin
            assert twin.same_args <= ALL_ARGS
            assert (twin.same_args == ALL_ARGS) == (twin.differs == ""), twin
    for name, same in I386_SAME_NAME.items():
        assert name in X86_64_SYSCALLS and name in I386_SYSCALLS, name
        assert same.id16 <= same.same_args


def test_path_twins_take_the_path_where_the_base_does() -> None:
    for base, twins in TWINS.items():
        if base not in PATH_SYSCALLS:
            continue
        for twin in twins:
            assert twin.name in PATH_SYSCALLS, twin
            here = [(a.path, a.dirfd) for a in PATH_SYSCALLS[base]]
            there = [(a.path, a.dirfd) for a in PATH_SYSCALLS[twin.name]]
            assert here == there, twin


@pytest.mark.parametrize(
    ("name", "twins"),
    [
        ("newfstatat", {"fstatat64"}),
        ("stat", {"stat64", "oldstat"}),
        ("lstat", {"lstat64", "oldlstat"}),
        ("fstat", {"fstat64", "oldfstat"}),
        ("chown", {"chown32"}),
        ("fchown", {"fchown32"}),
        ("truncate", {"truncate64"}),
        ("ftruncate", {"ftruncate64"}),
        ("statfs", {"statfs64"}),
        ("fcntl", {"fcntl64"}),
        ("mmap", {"mmap2"}),
        ("setuid", {"setuid32"}),
        ("setresgid", {"setresgid32"}),
        ("setgroups", {"setgroups32"}),
        ("setfsuid", {"setfsuid32"}),
        ("getrlimit", {"ugetrlimit"}),
        ("select", {"_newselect"}),
        ("sendfile", {"sendfile64"}),
        ("fadvise64", {"fadvise64_64"}),
        ("clock_gettime", {"clock_gettime64"}),
        ("futex", {"futex_time64"}),
        ("ppoll", {"ppoll_time64"}),
        ("pselect6", {"pselect6_time64"}),
        ("utimensat", {"utimensat_time64"}),
        ("recvmmsg", {"recvmmsg_time64"}),
        ("rt_sigtimedwait", {"rt_sigtimedwait_time64"}),
        ("clock_nanosleep", {"clock_nanosleep_time64"}),
        ("timer_settime", {"timer_settime64"}),
        ("timerfd_settime", {"timerfd_settime64"}),
        ("clock_settime", {"clock_settime64"}),
        ("clock_adjtime", {"clock_adjtime64"}),
        ("semtimedop", {"semtimedop_time64"}),
        ("mq_timedsend", {"mq_timedsend_time64"}),
        ("mq_timedreceive", {"mq_timedreceive_time64"}),
        ("io_pgetevents", {"io_pgetevents_time64"}),
        ("sched_rr_get_interval", {"sched_rr_get_interval_time64"}),
        ("umount2", {"umount"}),
        ("wait4", {"waitpid"}),
    ],
)
def test_a_rule_covers_the_twins(name: str, twins: set[str]) -> None:
    p = pol(f'[[rule]]\nsyscalls = ["{name}"]\naction = "deny"\n')
    rule = p.rules[0]
    assert rule.syscalls == {name} | twins and rule.twins == twins
    plan = plan_filter(p)
    for twin in twins:
        # decided in the kernel for the i386 name, as for the x86_64 one
        assert KernelRule(twin, EPERM) in plan.rules and twin in plan.kernel_decided
        assert Engine(p).decide(Request(1, twin, "i386", (0,) * 6)).action is Action.DENY


def test_no_twins_for_names_without_them_and_groups_keep_their_own() -> None:
    assert pol('[[rule]]\nsyscalls = ["read"]\naction = "deny"\n').rules[0].twins == frozenset()
    # @file-system already has stat64, fstatat64 ...: added are only the twins it lacks
    rule = pol('[[rule]]\nsyscalls = ["@file-system"]\naction = "deny"\n').rules[0]
    assert "fstatat64" in rule.syscalls and "fstatat64" not in rule.twins
    # both written: nothing to add
    rule = pol('[[rule]]\nsyscalls = ["stat", "stat64", "oldstat"]\naction = "deny"\n').rules[0]
    assert rule.twins == frozenset()


def test_path_rule_covers_path_twins_and_the_engine_decides_them() -> None:
    p = pol(
        '[[rule]]\nsyscalls = ["newfstatat", "stat"]\npath = ["/etc/shadow"]\naction = "deny"\n'
    )
    assert p.rules[0].twins == {"fstatat64", "stat64", "oldstat"}
    plan = plan_filter(p)
    assert {"fstatat64", "stat64", "oldstat", "newfstatat", "stat"} <= plan.notified
    engine = Engine(p)
    for name in ("fstatat64", "stat64", "oldstat"):
        assert engine.needs_paths(name)
        d = engine.decide(Request(1, name, "i386", (0,) * 6, ("/etc/shadow",)))
        assert (d.action, d.inspected) == (Action.DENY, True), name
        assert engine.decide(Request(1, name, "i386", (0,) * 6, ("/etc/hosts",))).action is (
            Action.ALLOW
        )


def test_conditions_carry_over_where_the_arguments_are_the_same() -> None:
    # fcntl64's arguments are fcntl's; mmap2's first five are mmap's
    p = pol(
        '[[rule]]\nsyscalls = ["fcntl"]\nargs = [{ arg = 1, op = "==", value = 4 }]\n'
        'action = "deny"\n'
        '[[rule]]\nsyscalls = ["mmap"]\nargs = [{ arg = 2, op = "&=", value = 4 }]\n'
        'action = "deny"\n'
    )
    assert p.rules[0].twins == {"fcntl64"} and p.rules[1].twins == {"mmap2"}
    engine = Engine(p)
    assert engine.decide(Request(1, "fcntl64", "i386", (3, 4, 0, 0, 0, 0))).action is Action.DENY
    assert engine.decide(Request(1, "fcntl64", "i386", (3, 3, 0, 0, 0, 0))).action is Action.ALLOW
    assert engine.decide(Request(1, "mmap2", "i386", (0, 4096, 5, 0, 0, 0))).action is Action.DENY
    cond = [r for r in plan_filter(p).rules if r.syscall == "mmap2"]
    assert cond and cond[0].conditions == p.rules[1].args


@pytest.mark.parametrize(
    ("syscall", "arg", "twin"),
    [
        ("mmap", 5, "mmap2"),  # the offset is in pages
        ("truncate", 1, "truncate64"),  # the length takes two registers
        ("fadvise64", 3, "fadvise64_64"),  # advice moves to arg5
        ("statfs", 1, "statfs64"),  # the struct size comes first
        ("umount2", 1, "umount"),  # no flags
    ],
)
def test_conditions_that_cannot_cover_the_twin_are_refused(
    syscall: str, arg: int, twin: str
) -> None:
    body = (
        f'[[rule]]\nsyscalls = ["{syscall}"]\nargs = [{{ arg = {arg}, op = "==", value = 1 }}]\n'
        'action = "deny"\n'
    )
    with pytest.raises(PolicyError) as e:
        pol(body)
    message = str(e.value)
    assert e.value.key == "rule[1].args" and e.value.line == 4
    assert f"cannot cover its i386 twin {twin}" in message and f"names {twin}" in message
    # A rule that names the twin itself (with its own conditions) makes the policy load; the
    # first rule then leaves the twin to it.
    p = pol(body + f'[[rule]]\nsyscalls = ["{twin}"]\naction = "deny"\n')
    assert twin not in (p.rules[0].syscalls or ()) and p.rules[0].twins == frozenset()


def cond_deny(syscall: str, condition: str):  # type: ignore[no-untyped-def]
    return pol(f'[[rule]]\nsyscalls = ["{syscall}"]\nargs = [{condition}]\naction = "deny"\n')


def test_i386_same_name_layouts_warn() -> None:
    # i386 mmap (old_mmap) passes its arguments in memory
    p = cond_deny("mmap", '{ arg = 2, op = "&=", value = 4 }')
    (w,) = [w for w in p.warnings if "i386" in w]
    assert "i386 mmap takes one pointer to its arguments in memory" in w and "arg2" in w
    # i386 setuid takes 16-bit ids: a value above 0xffff never matches
    p = cond_deny("setuid", '{ arg = 0, op = "==", value = 70000 }')
    (w,) = [w for w in p.warnings if "i386" in w]
    assert "16-bit ids" in w and "above 0xffff in arg0" in w
    # ... but uid 0 is uid 0 in both
    p = cond_deny("setuid", '{ arg = 0, op = "==", value = 0 }')
    assert not [w for w in p.warnings if "i386" in w]
    # pread64's offset takes two i386 registers: a condition on it (arg3) is not the same
    p = cond_deny("pread64", '{ arg = 3, op = ">", value = 9 }')
    assert any("i386 pread64" in w and "arg3" in w for w in p.warnings)
    p = cond_deny("pread64", '{ arg = 0, op = "==", value = 9 }')
    assert not [w for w in p.warnings if "i386" in w]
