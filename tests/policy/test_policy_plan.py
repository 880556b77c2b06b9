"""plan_filter, advisory warnings and explain output."""

from __future__ import annotations

from supervisor.policy import (
    KNOWN_SYSCALLS,
    PATH_SYSCALLS,
    ArgCondition,
    KernelAction,
    KernelRule,
    explain,
    parse_policy,
    plan_filter,
)

ALLOW, KILL, NOTIFY = KernelAction("allow"), KernelAction("kill"), KernelAction("notify")
EPERM, EACCES = KernelAction("errno", 1), KernelAction("errno", 13)


def plan(text: str):  # type: ignore[no-untyped-def]
    return plan_filter(parse_policy(text))


def rules_for(p, name):  # type: ignore[no-untyped-def]
    return [r for r in p.rules if r.syscall == name]


def test_default_mapping() -> None:
    assert plan('default = "allow"').default == ALLOW
    assert plan('default = "deny"\ndefault_errno="EACCES"').default == EACCES
    assert plan('default = "kill"').default == KILL
    p = plan('default = "log"')
    assert p.default == NOTIFY and p.rules == () and p.notified == KNOWN_SYSCALLS


def test_value_rules_kernel_decided_and_only_differences_emitted() -> None:
    p = plan(
        'default = "deny"\n[[rule]]\nsyscalls=["read","write"]\naction="allow"\n'
        '[[rule]]\nsyscalls=["read","ptrace"]\naction="deny"\n'
        '[[rule]]\nsyscalls=["reboot"]\naction="kill"\n'
    )
    assert p.default == EPERM
    assert set(p.rules) == {
        KernelRule("read", ALLOW),
        KernelRule("write", ALLOW),
        KernelRule("reboot", KILL),
    }
    assert p.notified == frozenset() and p.kernel_decided == KNOWN_SYSCALLS


def test_path_and_log_rules_notify() -> None:
    p = plan(
        'default = "allow"\n[[rule]]\nsyscalls=["openat"]\npath=["/x"]\naction="deny"\n'
        '[[rule]]\nsyscalls=["getpid"]\naction="log"\n'
        '[[rule]]\nsyscalls=["openat","getpid"]\naction="kill"\n'
    )
    assert rules_for(p, "openat") == [KernelRule("openat", NOTIFY)]
    assert rules_for(p, "getpid") == [KernelRule("getpid", NOTIFY)]
    assert p.notified == {"openat", "getpid"}
    assert p.notified | p.kernel_decided == KNOWN_SYSCALLS
    assert not p.notified & p.kernel_decided


def test_terminal_before_path_rule_stays_in_kernel() -> None:
    p = plan(
        'default = "allow"\n[[rule]]\nsyscalls=["chroot"]\naction="deny"\n'
        '[[rule]]\npath=["/x"]\naction="deny"\n'
    )
    assert rules_for(p, "chroot") == [KernelRule("chroot", EPERM)]
    assert "chroot" in p.kernel_decided
    assert p.notified == set(PATH_SYSCALLS) - {"chroot"}


SOCK = 'default = "allow"\n' + "".join(
    f'[[rule]]\nsyscalls=["socket"]\nargs=[{{arg=0, value={v}}}]\naction="deny"\n' for v in (2, 10)
)


def test_conditioned_same_action_in_kernel() -> None:
    p = plan(SOCK)
    assert rules_for(p, "socket") == [
        KernelRule("socket", EPERM, (ArgCondition(0, "==", 2),)),
        KernelRule("socket", EPERM, (ArgCondition(0, "==", 10),)),
    ]
    assert "socket" in p.kernel_decided


def test_trailing_rule_with_fallback_action_dropped() -> None:
    p = plan(SOCK + '[[rule]]\nsyscalls=["socket"]\nargs=[{arg=0, value=1}]\naction="allow"\n')
    assert len(rules_for(p, "socket")) == 2 and "socket" in p.kernel_decided


def test_conditioned_mixed_actions_notify() -> None:
    p = plan(SOCK + '[[rule]]\nsyscalls=["socket"]\nargs=[{arg=0, value=1}]\naction="kill"\n')
    assert rules_for(p, "socket") == [KernelRule("socket", NOTIFY)]
    # an allow before a deny: first-match order matters
    p = plan(
        'default = "allow"\n[[rule]]\nsyscalls=["socket"]\nargs=[{arg=1, value=1}]\n'
        'action="allow"\n' + SOCK.split("\n", 1)[1]
    )
    assert rules_for(p, "socket") == [KernelRule("socket", NOTIFY)]


def test_conditioned_with_terminal_fallback_differing_from_default_notifies() -> None:
    p = plan(SOCK + '[[rule]]\nsyscalls=["socket"]\naction="kill"\n')
    assert rules_for(p, "socket") == [KernelRule("socket", NOTIFY)]
    p = plan(SOCK + '[[rule]]\nsyscalls=["socket"]\naction="allow"\n')
    assert len(rules_for(p, "socket")) == 2


def test_repeated_arg_notifies() -> None:
    p = plan(
        'default = "allow"\n[[rule]]\nsyscalls=["ioctl"]\n'
        'args=[{arg=1, op=">", value=1}, {arg=1, op="<", value=9}]\naction="deny"\n'
    )
    assert rules_for(p, "ioctl") == [KernelRule("ioctl", NOTIFY)]


def path_advisories(pol) -> list[str]:  # type: ignore[no-untyped-def]
    """The warnings about allows after path inspection of other syscalls than the opens."""
    return [w for w in pol.warnings if "after path inspection" in w]


def test_advisory_warnings() -> None:
    pol = parse_policy(
        'default = "allow"\n\n[[rule]]\nname = "protect"\nsyscalls = ["openat", "execve", '
        '"chdir"]\npath = ["/s/**"]\naction = "deny"\n'
    )
    (w,) = path_advisories(pol)
    assert w.startswith("rule 'protect' (line 3): allows of chdir, execve after path")
    assert "openat" not in w
    # deny default after a deny path rule: nothing can be allowed after inspection
    pol = parse_policy(
        'default = "deny"\n[[rule]]\nsyscalls=["execve"]\npath=["/s"]\naction="deny"\n'
    )
    assert pol.warnings == ()
    # an allow path rule is advisory even with a deny default; open is emulated
    pol = parse_policy(
        'default = "deny"\n[[rule]]\nsyscalls=["execve","open"]\npath=["/s"]\naction="allow"\n'
    )
    (w,) = path_advisories(pol)
    assert "execve" in w and "open," not in w
    # an unconditional deny after the path rule hides the default allow
    pol = parse_policy(
        'default = "allow"\n[[rule]]\nsyscalls=["execve"]\npath=["/s"]\n'
        'action="deny"\n[[rule]]\nsyscalls=["execve"]\naction="deny"\n'
    )
    assert pol.warnings == ()


def test_advisory_summary_is_short() -> None:
    pol = parse_policy('default = "allow"\n[[rule]]\npath=["/s"]\naction="deny"\n')
    (w,) = path_advisories(pol)
    # Eight names and a count, whatever the tables hold.
    assert "and " in w and " more" in w and len(w) < 450


def test_explain() -> None:
    pol = parse_policy(
        'default = "allow"\n'
        + SOCK.split("\n", 1)[1]
        + '[[rule]]\nname="sec"\npath=["/s/**"]\naction="deny"\nerrno="EACCES"\n'
        + '[[rule]]\nname="mixed"\nsyscalls=["openat","getpid"]\naction="kill"\n',
        source="t.toml",
    )
    lines = explain(pol, plan_filter(pol))
    assert lines[0] == "policy 'unnamed' (t.toml)"
    assert lines[1].startswith("rule-1 (line 2): socket if arg0 == 0x2 -> deny EPERM [kernel]")
    sec = next(ln for ln in lines if ln.startswith("sec "))
    assert "any path in /s/**" in sec and "deny EACCES [supervisor]" in sec
    assert "ADVISORY for: " in sec
    mixed = next(ln for ln in lines if ln.startswith("mixed "))
    assert "kernel for getpid; supervisor for openat" in mixed
    assert any(ln.startswith("default: allow [kernel: allow]") for ln in lines)
    warnings = [ln for ln in lines if ln.startswith("warning: ")]
    assert warnings[0].startswith("warning: rule 'sec'")
    # openat: the kill of `mixed` decides after the check, nothing lets it through
    assert "O_PATH opens ADVISORY (resumed after the check): open, openat2" in sec


def test_i386_ipc_is_refused_when_a_sysv_ipc_rule_cannot_apply_to_it() -> None:
    def ipc_rules(text: str) -> list[str]:
        return [r.action.describe() for r in plan(text).rules if r.syscall == "ipc"]

    plain = 'default = "allow"\n[[rule]]\nsyscalls = ["shmget"]\naction = "deny"\n'
    assert ipc_rules(plain) == []  # libseccomp maps a plain rule onto ipc(SHMGET) itself
    conditioned = (
        'default = "allow"\n[[rule]]\nsyscalls = ["msgget"]\n'
        'args = [{ arg = 0, op = "==", value = 7 }]\naction = "deny"\n'
    )
    assert ipc_rules(conditioned) == ["errno ENOSYS"]
    logged = 'default = "allow"\n[[rule]]\nsyscalls = ["semop"]\naction = "log"\n'
    assert ipc_rules(logged) == ["errno ENOSYS"]
    assert "ipc" in plan(logged).kernel_decided
    assert any("ipc(2)" in w for w in parse_policy(logged).warnings)
    # A log default notifies everything, ipc too: decided alike, nothing to refuse.
    assert ipc_rules('default = "log"\n') == []
