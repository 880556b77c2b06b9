"""`default` and its copies keep the kernel's global state from a root target (issue 14), and
the tamper guard's plan (pure): decided on plain requests, no kernel."""

from __future__ import annotations

import errno
import os
import pathlib
import stat

import pytest

from supervisor.policy import Action, Engine, Request, load_policy, plan_filter, plan_tamper_guard

POLICIES = pathlib.Path(__file__).resolve().parents[2] / "policies"
GUARDED = ["default", "no-network", "readonly-home", "database-client", "build-sandbox"]
KNOBS = [
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/fs/binfmt_misc/register",
    "/proc/sysrq-trigger",
    "/sys/kernel/uevent_helper",
    "/sys/fs/cgroup/memory/release_agent",
    "/tmp/my-cgroup-v1/release_agent",
]
RAW = ["/dev/sda", "/dev/nvme0n1", "/dev/vda1", "/dev/loop0", "/dev/mem", "/dev/cpu/0/msr"]
WRITING = [os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_RDONLY | os.O_CREAT, 3]


def req(syscall: str, *args: int, paths: tuple[str, ...] = ()) -> Request:
    return Request(1, syscall, "x86_64", tuple(args) + (0,) * (6 - len(args)), paths)


@pytest.fixture(params=GUARDED)
def engine(request: pytest.FixtureRequest) -> Engine:
    return Engine(load_policy(POLICIES / f"{request.param}.toml"))


@pytest.mark.parametrize("path", KNOBS)
def test_writes_to_kernel_knobs_refused(engine: Engine, path: str) -> None:
    for flags in WRITING:
        for d in (
            engine.decide(req("openat", -100, 0, flags, paths=(path,))),
            engine.decide(req("open", 0, flags, paths=(path,))),
        ):
            assert d.action is Action.DENY and d.errno in (errno.EACCES, errno.EROFS), (path, flags)
    for syscall in (
        "creat",
        "openat2",
        "truncate",
        "chmod",
        "unlink",
        "setxattr",
        "setxattrat",
        "removexattrat",
        "file_setattr",
    ):
        assert engine.decide(req(syscall, paths=(path,))).action is Action.DENY, syscall
    rename = engine.decide(req("rename", paths=(path, "/tmp/x")))
    assert rename.action is Action.DENY


@pytest.mark.parametrize("path", [k for k in KNOBS if k != "/proc/sysrq-trigger"])
def test_reads_of_kernel_knobs_allowed(engine: Engine, path: str) -> None:
    assert engine.decide(req("openat", -100, 0, os.O_RDONLY, paths=(path,))).action is Action.ALLOW
    assert engine.decide(req("newfstatat", paths=(path,))).action is Action.ALLOW


@pytest.mark.parametrize("path", RAW)
def test_raw_devices_not_opened_at_all(engine: Engine, path: str) -> None:
    for flags in (os.O_RDONLY, *WRITING):
        d = engine.decide(req("openat", -100, 0, flags, paths=(path,)))
        assert d.action is Action.DENY, (path, flags)
    if path != "/dev/mem":  # a secret since before: not even stat
        assert engine.decide(req("newfstatat", paths=(path,))).action is Action.ALLOW


def test_device_nodes_refused_by_value(engine: Engine) -> None:
    dev = os.makedev(8, 0)
    for kind, refused in (
        (stat.S_IFBLK, True),
        (stat.S_IFCHR, True),
        (stat.S_IFIFO, False),
        (stat.S_IFREG, False),
        (stat.S_IFSOCK, False),
    ):
        mode = kind | 0o600
        a = engine.decide(req("mknod", 0, mode, dev, paths=("/tmp/node",)))
        b = engine.decide(req("mknodat", -100, 0, mode, dev, paths=("/tmp/node",)))
        want = Action.DENY if refused else Action.ALLOW
        assert a.action is want and b.action is want, oct(kind)


@pytest.mark.parametrize("name", GUARDED)
def test_system_observers_refused_in_the_kernel(name: str) -> None:
    p = load_policy(POLICIES / f"{name}.toml")
    plan = plan_filter(p)
    e = Engine(p)
    for syscall in ("fanotify_init", "perf_event_open", "bpf"):
        assert syscall in plan.kernel_decided, syscall
        assert e.decide(req(syscall)).action is Action.DENY, syscall


# -- the tamper guard ----------------------------------------------------------------------
def guard_refuses(plan_rules: object, syscall: str, *args: int) -> bool:
    from supervisor.policy import KernelRule

    full = tuple(args) + (0,) * (6 - len(args))
    rules: tuple[KernelRule, ...] = plan_rules  # type: ignore[assignment]
    return any(
        r.syscall == syscall and all(c.holds(full[c.index]) for c in r.conditions) for r in rules
    )


def test_guard_names_the_supervisor_by_value() -> None:
    plan = plan_tamper_guard(4242, 4200)
    assert plan.default.kind == "allow" and not plan.notified
    assert all(r.action.kind == "errno" and r.action.errno == errno.EPERM for r in plan.rules)
    rules = plan.rules
    neg = (1 << 64) - 1  # -1 as a 64-bit register
    for syscall, args in [
        ("kill", (4242, 9)),
        ("kill", (4242 | (1 << 32), 9)),  # upper half ignored by the kernel: ignored here too
        ("kill", (neg, 9)),
        ("kill", (0xFFFFFFFF, 9)),
        ("kill", (0, 9)),
        ("kill", ((-4200) & neg, 9)),
        ("kill", ((-4242) & neg, 9)),
        ("tkill", (4242, 9)),
        ("tgkill", (4242, 4243, 9)),
        ("tgkill", (1, 4242, 9)),
        ("pidfd_open", (4242, 0)),
        ("prlimit64", (4242, 7, 0, 0)),
        ("sched_setaffinity", (4242, 8, 0)),
        ("ptrace", (16, 4242)),
        ("process_vm_readv", (4242,)),
        ("process_vm_writev", (4242,)),
        ("setpriority", (0, 4242, 19)),
        ("setpriority", (1, 4200, 19)),
        ("setpriority", (1, 0, 19)),
    ]:
        assert guard_refuses(rules, syscall, *args), (syscall, args)
    for syscall, args in [
        ("kill", (4243, 9)),
        ("kill", ((-4243) & neg, 9)),
        ("tgkill", (4243, 4243, 9)),
        ("pidfd_open", (4243, 0)),
        ("prlimit64", (0, 7, 0, 0)),
        ("ptrace", (16, 4243)),
        ("setpriority", (0, 0, 19)),
        ("setpriority", (2, 4242, 19)),  # PRIO_USER: a uid, not a pid
    ]:
        assert not guard_refuses(rules, syscall, *args), (syscall, args)


def test_guard_without_a_shared_group_lets_kill_0_through() -> None:
    rules = plan_tamper_guard(4242, None).rules
    assert not guard_refuses(rules, "kill", 0, 9)
    assert guard_refuses(rules, "kill", (1 << 64) - 1, 9)
