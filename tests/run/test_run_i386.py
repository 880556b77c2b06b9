"""The i386 entry: a 64-bit process doing `int $0x80` uses i386 syscall numbers (open is 5,
mkdir is 39). Filters and the supervisor must treat them like their 64-bit twins."""

from __future__ import annotations

from tests.helpers.run import (
    HARMLESS,
    SECRET,
    Files,
    Supervise,
    deny_list,
    policy_text,
    race_counts,
    rule,
)


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
    from tests.helpers.run import allow_list

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


# -- i386 socketcall(SYS_SOCKET): socket rules by value ----------------------------------------
# socketcall passes socket()'s arguments in memory. libseccomp turns a `socket` rule into a
# socketcall rule on the call number and drops the value conditions, so the supervisor decides
# it (supervisor/netcalls.py) and, when allowed, makes the socket itself and installs it.
AF_UNIX, AF_INET, SOCK_STREAM, SOCK_DGRAM = 1, 2, 1, 2
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
NO_INET = rule(
    "no-inet-sockets",
    "deny",
    syscalls=["socket"],
    args='[{ arg = 0, op = "==", value = "AF_INET" }]',
    errno="EACCES",
)


def _socket_ops(*specs: tuple[int, int]) -> list[str]:
    ops = []
    for family, kind in specs:
        ops += ["i386_socket", str(family), str(kind)]
    return ops


def test_i386_socketcall_socket_under_a_deny_by_family(supervise: Supervise, target_bin) -> None:
    """default allow, AF_INET sockets denied by value: the kernel alone would refuse EVERY
    socketcall socket (the condition dropped); the supervisor refuses only AF_INET ones, and an
    allowed one is made for the target with its SOCK_CLOEXEC and SOCK_NONBLOCK."""
    ops = _socket_ops(
        (AF_INET, SOCK_STREAM),
        (AF_UNIX, SOCK_STREAM),
        (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK),
        (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC),
    )
    policy = supervise.policy(policy_text("t", "allow", NO_INET))
    r = supervise(policy, [target_bin("netops"), *ops])
    assert r.returncode == 0, r.explain()
    assert r.lines == [
        "EACCES",
        "OK:domain=1,type=1,cloexec=0,nonblock=0",
        "OK:domain=1,type=2,cloexec=1,nonblock=1",
        "EACCES",
    ], r.explain()
    denied = r.named("syscall.denied")
    assert [(e["syscall"], e.get("arch"), e["rule"]) for e in denied] == [
        ("socket", "i386", "no-inet-sockets")
    ] * 2, r.explain()


def test_i386_socketcall_socket_under_an_allow_by_family(supervise: Supervise, target_bin) -> None:
    """Only AF_UNIX sockets allowed (an allow by value, then a deny): through socketcall the
    kernel would have allowed every family."""
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            rule(
                "unix-only",
                "allow",
                syscalls=["socket"],
                args='[{ arg = 0, op = "==", value = "AF_UNIX" }]',
            ),
            rule("no-other-sockets", "deny", syscalls=["socket"], errno="EAFNOSUPPORT"),
        )
    )
    ops = _socket_ops((AF_INET, SOCK_DGRAM), (AF_UNIX, SOCK_DGRAM), (10, SOCK_STREAM))
    r = supervise(policy, [target_bin("netops"), *ops, "connect4", "127.0.0.1", "9"])
    assert r.lines == [
        "EAFNOSUPPORT",
        "OK:domain=1,type=2,cloexec=0,nonblock=0",
        "EAFNOSUPPORT",
        "EBADF",  # the x86_64 socket() was refused by the same rules: connect(-1)
    ], r.explain()


def test_i386_socketcall_socket_race_on_the_family(supervise: Supervise, target_bin) -> None:
    """A thread flips the family in socketcall's argument array between AF_UNIX and AF_INET:
    an allowed call is never resumed (the kernel would read the array again), so no AF_INET
    socket is ever made."""
    policy = supervise.policy(policy_text("t", "allow", NO_INET))
    attempts = 2000
    r = supervise(
        policy,
        [target_bin("netops"), "race_i386_socket", str(AF_UNIX), str(AF_INET), str(attempts)],
        timeout=120,
    )
    assert r.returncode == 0, r.explain()
    counts = race_counts(r, attempts)  # the race did happen
    assert counts["wrong"] == 0, "an AF_INET socket was made through socketcall"


def test_i386_socketcall_socket_in_the_targets_network_namespace(
    supervise: Supervise, target_bin
) -> None:
    """The socket is made in the target's network namespace: after unshare(CLONE_NEWNET) a port
    held in the supervisor's namespace is free (as natively)."""
    import socket

    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind(("127.0.0.1", 0))
    try:
        port = str(held.getsockname()[1])
        ops = ["i386_socket_bind", port, "unshare_net", "i386_socket_bind", port]
        import subprocess

        native = subprocess.run(
            [target_bin("netops"), *ops], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert native == ["EADDRINUSE", "OK", "OK"]
        policy = supervise.policy(
            policy_text("t", "allow", NO_INET.replace("AF_INET", "AF_PACKET"))
        )
        r = supervise(policy, [target_bin("netops"), *ops])
        assert r.lines == native, r.explain()
    finally:
        held.close()
