"""The shipped policies load, and decide a few plain requests as their comments say."""

from __future__ import annotations

import pathlib

import pytest

from supervisor.policy import Action, Engine, Request, load_policy, plan_filter

POLICIES = pathlib.Path(__file__).resolve().parents[2] / "policies"
FILES = sorted(POLICIES.glob("*.toml"))


def req(syscall: str, *args: int, paths: tuple[str, ...] = ()) -> Request:
    return Request(1, syscall, "x86_64", tuple(args) + (0,) * (6 - len(args)), paths)


SHIPPED = {
    "default",
    "no-network",
    "readonly-home",
    "database-client",
    "build-sandbox",
    "fault-injection",
}
# Kernel tampering that would undo path or address rules: refused by every shipped policy with
# such rules (fault-injection has none that protect anything).
TAMPERING = [
    "mount",
    "umount2",
    "move_mount",
    "open_tree",
    "fsmount",
    "pivot_root",
    "chroot",
    "open_by_handle_at",
    "init_module",
    "ptrace",
    "setns",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
]
CLONE_NEWNS, CLONE_NEWUSER = 0x20000, 0x10000000


def test_expected_files() -> None:
    assert {f.stem for f in FILES} >= SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_io_uring_refused_in_the_kernel(name: str) -> None:
    p = load_policy(POLICIES / f"{name}.toml")
    plan = plan_filter(p)
    e = Engine(p)
    for syscall in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        assert syscall in plan.kernel_decided, syscall
        assert e.decide(req(syscall)).action is Action.DENY, syscall
    # and so no shipped policy draws the io_uring or the mount warning
    assert not [w for w in p.warnings if "io_uring" in w or "a mount" in w], p.warnings


@pytest.mark.parametrize("name", sorted(SHIPPED - {"fault-injection"}))
def test_kernel_tampering_refused_in_the_kernel(name: str) -> None:
    p = load_policy(POLICIES / f"{name}.toml")
    plan = plan_filter(p)
    e = Engine(p)
    for syscall in TAMPERING:
        assert e.decide(req(syscall)).action is Action.DENY, syscall
        assert syscall in plan.kernel_decided, syscall
    for flags in (CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNS | CLONE_NEWUSER):
        assert e.decide(req("unshare", flags)).action is Action.DENY
        assert e.decide(req("clone", flags | 0x11)).action is Action.DENY
    assert e.decide(req("clone3")).errno == 38
    assert "unshare" in plan.kernel_decided and "clone" in plan.kernel_decided
    assert e.decide(req("unshare", 0x400)).action is Action.ALLOW  # CLONE_FILES


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_loads(path: pathlib.Path) -> None:
    p = load_policy(path)
    assert p.name == path.stem and p.description and p.rules
    plan = plan_filter(p)
    assert plan.notified | plan.kernel_decided


def test_default_policy() -> None:
    p = load_policy(POLICIES / "default.toml")
    e = Engine(p)
    plan = plan_filter(p)
    for ok in ["read", "write", "mmap", "clone", "wait4", "getpid", "clock_gettime"]:
        assert e.decide(req(ok, 0x11)).action is Action.ALLOW, ok
        assert ok in plan.kernel_decided
    for bad in [
        "init_module",
        "kexec_load",
        "ptrace",
        "bpf",
        "mount",
        "chroot",
        "keyctl",
        "settimeofday",
        "open_by_handle_at",
        "userfaultfd",
        "setns",
        "swapon",
    ]:
        assert e.decide(req(bad)).action is Action.DENY, bad
        assert bad in plan.kernel_decided, bad
    assert e.decide(req("clone3")).errno == 38
    assert e.decide(req("unshare", 0x10000000)).action is Action.DENY
    assert e.decide(req("clone", 0x40000000 | 0x11)).action is Action.DENY
    assert e.decide(req("clone", 0x003D0F00 | 0x11)).action is Action.ALLOW  # pthread_create
    assert e.decide(req("ioctl", 0, 0x5412)).action is Action.DENY
    assert e.decide(req("ioctl", 0, 0x5401)).action is Action.ALLOW
    for secret in [
        "/etc/shadow",
        "/root/.ssh/id_ed25519",
        "/home/u/.ssh",
        "/dev/mem",
        "/etc/ssh/ssh_host_ed25519_key",
        "/sys/firmware/acpi/tables/DSDT",
    ]:
        d = e.decide(req("openat", paths=(secret,)))
        assert (d.action, d.errno, d.inspected) == (Action.DENY, 13, True), secret
        assert e.decide(req("execve", paths=(secret,))).action is Action.DENY
    for fine in [
        "/etc/passwd",
        "/usr/bin/gcc",
        "/etc/ssh/ssh_host_ed25519_key.pub",
        "/home/u/.bashrc",
    ]:
        assert e.decide(req("openat", paths=(fine,))).action is Action.ALLOW, fine
    assert e.decide(req("rename", paths=("/tmp/x", "/etc/shadow"))).action is Action.DENY
    assert "openat" in plan.notified and "read" not in plan.notified


def test_no_network_policy() -> None:
    p = load_policy(POLICIES / "no-network.toml")
    e = Engine(p)
    plan = plan_filter(p)
    for family in (2, 10, 17):
        assert e.decide(req("socket", family, 1)).action is Action.DENY
    assert e.decide(req("socket", 1, 1)).action is Action.ALLOW
    assert e.decide(req("socket", 16, 3)).action is Action.ALLOW  # netlink: not network
    assert e.decide(req("socketcall", 1)).action is Action.DENY
    assert "socket" in plan.kernel_decided
    assert e.decide(req("openat", paths=("/etc/shadow",))).action is Action.DENY


def test_readonly_home_policy() -> None:
    e = Engine(load_policy(POLICIES / "readonly-home.toml"))
    o_wronly, o_creat, o_trunc = 0o1, 0o100, 0o1000
    assert e.decide(req("openat", 0, 0, 0, paths=("/home/u/f",))).action is Action.ALLOW
    d = e.decide(req("openat", 0, 0, o_wronly | o_creat, paths=("/home/u/f",)))
    assert (d.action, d.errno) == (Action.DENY, 30)
    assert e.decide(req("openat", 0, 0, o_trunc, paths=("/home/u/f",))).action is Action.DENY
    d = e.decide(req("openat", 0, 0, o_wronly | o_creat, paths=("/tmp/out",)))
    assert (d.action, d.inspected) == (Action.ALLOW, True)
    assert e.decide(req("open", 0, o_wronly, paths=("/dev/null",))).action is Action.ALLOW
    assert e.decide(req("openat", 0, 0, 0, paths=("/etc/shadow",))).action is Action.DENY
    assert e.decide(req("unlink", paths=("/tmp/x",))).action is Action.ALLOW
    assert e.decide(req("unlink", paths=("/home/u/x",))).action is Action.DENY
    assert e.decide(req("rename", paths=("/tmp/a", "/etc/x"))).action is Action.DENY
    assert e.decide(req("openat2")).errno == 38


def test_database_client_refuses_raw_and_packet_sockets() -> None:
    p = load_policy(POLICIES / "database-client.toml")
    e = Engine(p)
    plan = plan_filter(p)
    af_inet, af_inet6, af_netlink, af_packet, af_unix = 2, 10, 16, 17, 1
    sock_stream, sock_dgram, sock_raw, sock_packet = 1, 2, 3, 10
    nonblock_cloexec = 0o4000 | 0o2000000
    for family, kind in [
        (af_packet, sock_raw),
        (af_packet, sock_dgram),
        (af_inet, sock_raw),
        (af_inet6, sock_raw),
        (af_inet, sock_raw | nonblock_cloexec),
        (af_inet, sock_packet),
    ]:
        d = e.decide(req("socket", family, kind, 1))
        assert (d.action, d.errno) == (Action.DENY, 13), (family, kind)
    for family, kind in [
        (af_inet, sock_stream),
        (af_inet6, sock_stream | nonblock_cloexec),
        (af_inet, sock_dgram),
        (af_netlink, sock_raw),  # getaddrinfo's netlink socket
        (af_unix, sock_stream),
    ]:
        assert e.decide(req("socket", family, kind)).action is Action.ALLOW, (family, kind)
    assert "socket" in plan.kernel_decided


def test_readonly_home_kernel_rules_before_the_path_rules() -> None:
    p = load_policy(POLICIES / "readonly-home.toml")
    names = [r.name for r in p.rules]
    assert names.index("mounts") < names.index("secrets") < names.index("writable-open")


def test_fault_injection_policy() -> None:
    p = load_policy(POLICIES / "fault-injection.toml")
    plan = plan_filter(p)
    assert {"write", "openat", "fsync", "connect"} <= plan.notified
    # Process creation stays in the kernel: a notified fork can fail with EINTR.
    assert {"read", "clone", "clone3", "fork"} <= plan.kernel_decided and p.warnings == ()
    e = Engine(p)
    # stdin/stdout/stderr never fail; every 20th write to fd >= 3 fails with ENOSPC
    assert all(e.decide(req("write", 1)).action is Action.ALLOW for _ in range(100))
    writes = [e.decide(req("write", 3)) for _ in range(40)]
    failed = [i + 1 for i, d in enumerate(writes) if d.action is Action.FAIL]
    assert failed == [20, 40] and writes[19].errno == 28  # ENOSPC
    # creating in /tmp fails 5% of the time, reproducibly; reading never; elsewhere never
    o_creat = 0o100

    def creates(engine: Engine) -> list[bool]:
        return [
            engine.decide(req("openat", 0, 0, o_creat, paths=("/tmp/f",))).action is Action.FAIL
            for _ in range(400)
        ]

    first = creates(e)
    assert first == creates(Engine(p)) and 5 <= sum(first) <= 40
    assert not any(
        e.decide(req("openat", 0, 0, 0, paths=("/tmp/f",))).action is Action.FAIL
        for _ in range(200)
    )
    assert e.decide(req("openat", 0, 0, o_creat, paths=("/home/u/f",))).action is Action.ALLOW
    # every 4th fsync fails with EIO
    fsyncs = "".join(e.decide(req("fsync", 3)).action.name[0] for _ in range(8))
    assert fsyncs == "AAAFAAAF"
    # connects: about 10% refused
    refused = sum(e.decide(req("connect", 3)).action is Action.FAIL for _ in range(1000))
    assert 50 <= refused <= 150
