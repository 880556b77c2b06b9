"""Unknown syscalls fail closed (issue 14): the project's syscall tables come from the kernel's
own tables, every number they do not name is refused with ENOSYS by the kernel filter whatever
the policy's default, and syscalls libseccomp 2.5.4 cannot name are still ruled by the policy.

The exported programs are run through a classic-BPF interpreter for every (arch, nr), and real
targets check a few numbers against the real kernel."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.kernel.filter import build_filter, filter_arches, syscall_names
from supervisor.policy import (
    KNOWN_SYSCALLS,
    ArgCondition,
    FilterPlan,
    KernelAction,
    KernelRule,
    load_policy,
    plan_filter,
)
from supervisor.policy.tables.syscalls import I386_NUMBERS, X86_64_NUMBERS
from tests.helpers import cbpf
from tests.helpers.kernel import finish, next_notification, notify_plan, start
from tests.helpers.run import POLICIES, ROOT, compile_target

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_X32_AS_ARM = 0x40000028  # any other arch: killed
X32_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_USER_NOTIF = 0x7FC00000
RET_ERRNO = 0x00050000
ENOSYS = RET_ERRNO | errno.ENOSYS
HIGHEST_CHECKED = 1024  # beyond the highest number of any table, with a margin
NUMBERS = {AUDIT_ARCH_X86_64: X86_64_NUMBERS, AUDIT_ARCH_I386: I386_NUMBERS}

ALLOW = KernelAction("allow")
KILL = KernelAction("kill")
NOTIFY = KernelAction("notify")
EPERM = KernelAction("errno", errno.EPERM)


def _plan(default: KernelAction, *rules: KernelRule) -> FilterPlan:
    names = frozenset(r.syscall for r in rules)
    return FilterPlan(default, rules, notified=frozenset(), kernel_decided=names)


def _verdicts(plan: FilterPlan, arch: int, numbers: range | list[int]) -> dict[int, int]:
    program = cbpf.decode(build_filter(plan))
    return {nr: cbpf.run(program, cbpf.seccomp_data(nr, arch)) for nr in numbers}


def test_generated_tables_are_up_to_date() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_syscall_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_tables_are_the_kernels() -> None:
    # Spot checks against the kernel's numbering, including the calls libseccomp 2.5.4 lacks.
    assert X86_64_NUMBERS["open"] == 2 and I386_NUMBERS["open"] == 5
    for name, nr in {
        "statmount": 457, "listmount": 458, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460,
        "lsm_list_modules": 461, "mseal": 462, "setxattrat": 463, "getxattrat": 464,
        "listxattrat": 465, "removexattrat": 466, "open_tree_attr": 467, "file_getattr": 468,
        "file_setattr": 469,
    }.items():  # fmt: skip
        assert X86_64_NUMBERS[name] == nr and I386_NUMBERS[name] == nr
    assert X86_64_NUMBERS["uretprobe"] == 335 and "uretprobe" not in I386_NUMBERS
    # x32-only entries (512-547) are not x86_64 syscalls.
    assert max(X86_64_NUMBERS.values()) < 512
    names = syscall_names()
    assert names[(AUDIT_ARCH_X86_64, 467)] == "open_tree_attr"
    assert names[(AUDIT_ARCH_I386, 463)] == "setxattrat"
    assert set(KNOWN_SYSCALLS) >= set(X86_64_NUMBERS) | set(I386_NUMBERS)


def test_libseccomp_never_names_a_number_otherwise() -> None:
    """The filter lets libseccomp's program decide every number libseccomp can name: its name
    for a number must be the kernel's, or libseccomp rules on one name would hit another."""
    from supervisor._native import ffi, lib

    for arch in filter_arches():
        for nr in range(HIGHEST_CHECKED + 1):
            p = lib.seccomp_syscall_resolve_num_arch(arch, nr)
            if p == ffi.NULL:
                continue
            name = ffi.string(p).decode()
            lib.free(p)
            assert syscall_names().get((arch, nr)) == name, (hex(arch), nr, name)


@pytest.mark.parametrize(
    "plan",
    [
        _plan(ALLOW),
        _plan(EPERM),
        _plan(KILL),
        _plan(NOTIFY),
        _plan(KILL, *(KernelRule(n, ALLOW) for n in sorted(KNOWN_SYSCALLS))),
        plan_filter(load_policy(POLICIES / "default.toml")),
    ],
    ids=["allow", "errno", "kill", "notify", "kill-but-all-allowed", "shipped-default"],
)
def test_every_number_is_known_or_refused(plan: FilterPlan) -> None:
    known_action = None if plan.rules else _kernel_value(plan.default)
    for arch in filter_arches():
        table = set(NUMBERS[arch].values())
        verdicts = _verdicts(plan, arch, range(HIGHEST_CHECKED + 1))
        for nr, verdict in verdicts.items():
            if nr not in table:
                assert verdict == ENOSYS, (hex(arch), nr, hex(verdict))
            elif known_action is not None:
                assert verdict == known_action, (hex(arch), nr, hex(verdict))
        if plan.rules and plan.default == KILL:  # every known syscall allowed by a rule
            assert all(verdicts[nr] == RET_ALLOW for nr in table)
    # x32 (the x32 bit on the x86_64 arch) and any other arch stay killed.
    x32 = _verdicts(plan, AUDIT_ARCH_X86_64, [X32_BIT | nr for nr in range(0, 1024, 7)])
    assert set(x32.values()) == {RET_KILL_PROCESS}
    other = _verdicts(plan, AUDIT_ARCH_X32_AS_ARM, [0, 2, 5, 467])
    assert set(other.values()) == {RET_KILL_PROCESS}


def _kernel_value(action: KernelAction) -> int:
    return {
        "allow": RET_ALLOW,
        "kill": RET_KILL_PROCESS,
        "notify": RET_USER_NOTIF,
        "errno": RET_ERRNO | action.errno,
    }[action.kind]


@pytest.mark.parametrize("name", ["open_tree_attr", "setxattrat", "file_setattr", "mseal"])
def test_rules_on_syscalls_libseccomp_cannot_name(name: str) -> None:
    """Decided by number in the kernel, on both ABIs: an unconditioned rule is the kernel's
    answer; a conditioned one is notified (the supervisor decides by value)."""
    for arch in filter_arches():
        nr = NUMBERS[arch][name]
        other = NUMBERS[arch]["getpid"]
        v = _verdicts(_plan(ALLOW, KernelRule(name, EPERM)), arch, [nr, other])
        assert v == {nr: RET_ERRNO | errno.EPERM, other: RET_ALLOW}
        v = _verdicts(_plan(EPERM, KernelRule(name, ALLOW)), arch, [nr, other])
        assert v == {nr: RET_ALLOW, other: RET_ERRNO | errno.EPERM}
        cond = KernelRule(name, EPERM, (ArgCondition(2, "&=", 1, 1),))
        v = _verdicts(_plan(ALLOW, cond), arch, [nr, other])
        assert v == {nr: RET_USER_NOTIF, other: RET_ALLOW}


def test_mount_group_has_the_new_mount_api() -> None:
    from supervisor.policy.tables.groups import expand

    assert {"open_tree", "open_tree_attr", "mount_setattr", "move_mount", "fsopen", "fsmount",
            "fspick", "fsconfig"} <= expand(["@mount"])  # fmt: skip


# -- the real kernel ----------------------------------------------------------------------------
def _holes(numbers: dict[str, int] | object, top: int) -> list[int]:
    known = set(numbers.values())  # type: ignore[attr-defined]
    return [nr for nr in range(top + 1) if nr not in known]


def test_the_kernel_knows_no_number_the_tables_lack() -> None:
    """Unfiltered, every number outside the tables is ENOSYS in this kernel (x86_64 and i386):
    the tables cover everything the kernel accepts, up to a margin beyond its highest."""
    exe = compile_target("newcalls")
    ops: list[str] = []
    for nr in _holes(X86_64_NUMBERS, HIGHEST_CHECKED):
        ops += ["nr", str(nr)]
    for nr in _holes(I386_NUMBERS, HIGHEST_CHECKED):
        ops += ["i386_nr", str(nr)]
    r = subprocess.run([str(exe), *ops], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["ENOSYS"] * (len(ops) // 2)


def _run_target(plan: FilterPlan, *ops: str) -> tuple[int, list[str]]:
    exe = compile_target("newcalls")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"newcalls-{os.getpid()}.out"
    launched = start(plan, ["/bin/sh", "-c", f'exec "$0" "$@" >{out}', str(exe), *ops])
    try:
        assert next_notification(launched.listener) is None
        status = finish(launched)
        return status, out.read_text().splitlines()
    finally:
        out.unlink(missing_ok=True)


def test_unknown_numbers_get_enosys_under_a_killing_default() -> None:
    plan = _plan(KILL, *(KernelRule(n, ALLOW) for n in sorted(KNOWN_SYSCALLS)))
    status, lines = _run_target(
        plan, "nr", "470", "nr", "1000", "i386_nr", "470", "i386_nr", "415", "nr", "400"
    )
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, lines)
    assert lines == ["ENOSYS"] * 5


def test_x32_is_still_killed() -> None:
    status, lines = _run_target(_plan(ALLOW), "nr", "39", "x32", "39")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, (status, lines)
    assert lines == ["OK"]  # getpid ran; the x32 getpid killed the target


def test_new_syscall_is_notified_by_number(tmp_path: Path) -> None:
    """A notify rule on getxattrat (464, unknown to libseccomp) reaches the supervisor, on
    both ABIs, and is named by the project's tables."""
    f = tmp_path / "f"
    f.write_text("x")
    os.setxattr(f, "user.k", b"v")
    exe = compile_target("newcalls")
    launched = start(
        notify_plan("getxattrat"),
        [str(exe), "getx", str(f), "user.k", "i386_getx", str(f), "user.k"],
    )
    seen = []
    for _ in range(2):
        n = next_notification(launched.listener)
        assert n is not None
        seen.append((n.arch, n.nr, syscall_names()[(n.arch, n.nr)]))
        assert launched.listener.send_error(n.id, errno.EXDEV)
    assert next_notification(launched.listener) is None
    finish(launched)
    assert seen == [
        (AUDIT_ARCH_X86_64, 464, "getxattrat"),
        (AUDIT_ARCH_I386, 464, "getxattrat"),
    ]
