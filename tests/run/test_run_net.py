"""Address rules end to end: connect, bind, sendto and sendmsg of a real target (tests/targets/
netops.c) under the real CLI, against listening sockets this test opens on loopback only.

An allowed connect or bind is performed by the supervisor on the target's socket, so the
listeners also show that the allowed connection really arrived, and that a denied address never
got one (not even from a thread racing the sockaddr)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.run import POLICIES, Supervise, policy_text, race_counts, rule, toml_list
from tests.helpers.wait import wait_until

NET = ("connect", "bind", "sendto", "sendmsg", "sendmmsg")


def address_rule(name: str, action: str, addresses: list[str], errno: str | None = None) -> str:
    text = f'[[rule]]\nname = "{name}"\naddress = {toml_list(addresses)}\naction = "{action}"\n'
    return text + (f'errno = "{errno}"\n' if errno else "")


def accepted(listener: socket.socket) -> int:
    """How many connections are waiting in the listener's queue (accepts them all)."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@pytest.fixture
def listeners() -> Iterator[dict[str, socket.socket]]:
    """TCP listeners: "a" on 127.0.0.1, "a2" on 127.0.0.1 (another port), "b" on 127.0.0.2,
    "six" on ::1."""
    socks: dict[str, socket.socket] = {}
    for key, family, host in (
        ("a", socket.AF_INET, "127.0.0.1"),
        ("a2", socket.AF_INET, "127.0.0.1"),
        ("b", socket.AF_INET, "127.0.0.2"),
        ("six", socket.AF_INET6, "::1"),
    ):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind((host, 0))
        s.listen(4096)
        socks[key] = s
    yield socks
    for s in socks.values():
        s.close()


def port(s: socket.socket) -> str:
    return str(s.getsockname()[1])


def allow_only(*addresses: str, errno: str = "ECONNREFUSED") -> str:
    """An allow-list for the network: the addresses, and every other connect/bind/send denied."""
    return policy_text(
        "net-allow-list",
        "allow",
        address_rule("allowed", "allow", list(addresses)),
        rule("no-other-net", "deny", syscalls=NET, errno=errno),
    )


def test_connect_by_cidr_and_port(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    a, a2, b = listeners["a"], listeners["a2"], listeners["b"]
    policy = supervise.policy(allow_only(f"127.0.0.0/31:{port(a)}"))
    r = supervise(
        policy,
        [target_bin("netops"), "connect4", "127.0.0.1", port(a), "connect4", "127.0.0.1",
         port(a2), "connect4", "127.0.0.2", port(b), "connect4", "127.0.0.1", port(a)],
    )  # fmt: skip
    assert r.returncode == 0, r.explain()
    assert r.lines == ["OK", "ECONNREFUSED", "ECONNREFUSED", "OK"], r.explain()
    assert accepted(a) == 2
    assert accepted(a2) == 0 and accepted(b) == 0
    denied = r.named("syscall.denied")
    assert {e["address"] for e in denied} == {f"127.0.0.1:{port(a2)}", f"127.0.0.2:{port(b)}"}
    assert all(e["rule"] == "no-other-net" for e in denied), r.explain()


def test_port_range_and_deny_list(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    a, b = listeners["a"], listeners["b"]
    low = min(int(port(a)), int(port(b)))
    high = max(int(port(a)), int(port(b)))
    policy = supervise.policy(
        policy_text(
            "t", "allow", address_rule("no-b", "deny", [f"127.0.0.2:{low}-{high}"], "EACCES")
        )
    )
    r = supervise(
        policy,
        [target_bin("netops"), "connect4", "127.0.0.2", port(b), "connect4", "127.0.0.1", port(a)],
    )
    assert r.lines == ["EACCES", "OK"], r.explain()
    assert accepted(b) == 0 and accepted(a) == 1


def test_ipv6_and_v4_mapped(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    a, b, six = listeners["a"], listeners["b"], listeners["six"]
    policy = supervise.policy(allow_only(f"[::1]:{port(six)}", "127.0.0.1"))
    r = supervise(
        policy,
        [target_bin("netops"), "connect6", "::1", port(six),
         "connect6", "::ffff:127.0.0.1", port(a),   # v4-mapped: the IPv4 rule allows it
         "connect6", "::ffff:127.0.0.2", port(b),   # v4-mapped, no rule: denied
         "connect6", "::1", port(a)],               # right address, wrong port
    )  # fmt: skip
    assert r.lines == ["OK", "OK", "ECONNREFUSED", "ECONNREFUSED"], r.explain()
    assert accepted(six) == 1 and accepted(a) == 1 and accepted(b) == 0
    # an IPv6 deny-all does not catch v4-mapped addresses: IPv4 rules do
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            address_rule("no-v6", "deny", ["[::]/0"], "EACCES"),
            address_rule("no-b", "deny", ["127.0.0.2"], "EPERM"),
        )
    )
    r = supervise(
        policy,
        [target_bin("netops"), "connect6", "::1", port(six), "connect6", "::ffff:127.0.0.1",
         port(a), "connect6", "::ffff:127.0.0.2", port(b)],
    )  # fmt: skip
    assert r.lines == ["EACCES", "OK", "EPERM"], r.explain()
    assert accepted(six) == 0 and accepted(a) == 1 and accepted(b) == 0


def test_nonblocking_connect_gets_einprogress(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    a = listeners["a"]
    policy = supervise.policy(allow_only("127.0.0.1"))
    r = supervise(policy, [target_bin("netops"), "nbconnect4", "127.0.0.1", port(a)])
    # the supervisor's connect on the (shared, non-blocking) socket answers EINPROGRESS; the
    # target then sees the connection complete on its own socket
    assert r.lines == ["EINPROGRESS:OK"], r.explain()
    assert accepted(a) == 1


def test_race_on_the_sockaddr_never_reaches_the_denied_address(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    a, b = listeners["a"], listeners["b"]
    policy = supervise.policy(allow_only(f"127.0.0.1:{port(a)}"))
    attempts = 2000
    r = supervise(
        policy,
        [target_bin("netops"), "race", "127.0.0.1", port(a), "127.0.0.2", port(b), str(attempts)],
        timeout=120,
    )
    assert r.returncode == 0, r.explain()
    ok = race_counts(r, attempts)["ok"]
    assert accepted(b) == 0, "a connection reached the denied address"
    assert accepted(a) == ok


def test_bad_sockaddrs_get_the_kernels_errno(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    ops = [
        "connect_len", "2", "8",      # AF_INET, too short
        "connect_len", "2", "200",    # longer than sockaddr_storage
        "connect_len", "99", "16",    # unknown family
        "connect_len", "10", "16",    # AF_INET6 on an AF_INET socket
        "connect_len", "1", "16",     # AF_UNIX on an AF_INET socket
        "connect_badptr",             # unmapped
    ]  # fmt: skip
    native = subprocess.run(
        [target_bin("netops"), *ops], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert native == ["EINVAL", "EINVAL", "EAFNOSUPPORT", "EAFNOSUPPORT", "EAFNOSUPPORT", "EFAULT"]
    policy = supervise.policy(
        policy_text("t", "allow", address_rule("no-ten", "deny", ["10.0.0.0/8"], "EACCES"))
    )
    r = supervise(policy, [target_bin("netops"), *ops])
    assert r.lines == native, r.explain()


def test_bad_sockaddrs_get_the_kernels_errno_under_an_allow_list(
    supervise: Supervise, target_bin
) -> None:
    """An allow-list's catch-all deny (EACCES here) does not replace the kernel's own errno for a
    malformed or foreign-family address: the target sees what it would see natively."""
    ops = [
        "connect_len", "2", "8",      # AF_INET, too short: EINVAL
        "connect_len", "2", "200",    # longer than sockaddr_storage: EINVAL
        "connect_len", "99", "16",    # unknown family: EAFNOSUPPORT
        "connect_len", "10", "16",    # AF_INET6 too short for it, on an AF_INET socket
        "connect_len", "10", "28",    # AF_INET6 on an AF_INET socket: EAFNOSUPPORT
        "connect_len", "1", "16",     # AF_UNIX on an AF_INET socket: EAFNOSUPPORT
        "connect_len", "1", "2",      # AF_UNIX, no path
        "connect_len", "0", "1",      # shorter than a family
        "connect_badptr",             # unmapped: EFAULT
    ]  # fmt: skip
    native = subprocess.run(
        [target_bin("netops"), *ops], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(native) == 9 and "EACCES" not in native and "OK" not in native
    policy = supervise.policy(allow_only("127.0.0.1:9", errno="EACCES"))
    r = supervise(policy, [target_bin("netops"), *ops])
    assert r.lines == native, r.explain()
    # ... and a well-formed address the list does not name still gets the policy's errno
    r = supervise(policy, [target_bin("netops"), "connect4", "127.0.0.2", "9"])
    assert r.lines == ["EACCES"], r.explain()


def test_allowed_connect_returns_the_kernels_own_errno(supervise: Supervise, target_bin) -> None:
    """A performed connect answers with what the kernel said: a closed port is ECONNREFUSED,
    not the policy's EACCES; a denied address is EACCES."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
    try:
        policy = supervise.policy(allow_only(f"127.0.0.1:{port(closed)}", errno="EACCES"))
        r = supervise(
            policy,
            [target_bin("netops"), "connect4", "127.0.0.1", port(closed),
             "connect4", "127.0.0.2", port(closed)],
        )  # fmt: skip
        assert r.lines == ["ECONNREFUSED", "EACCES"], r.explain()
        assert [e["address"] for e in r.named("syscall.denied")] == [f"127.0.0.2:{port(closed)}"]
    finally:
        closed.close()


def test_connects_performed_for_an_unprivileged_target(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    """Connects are performed under the target's credentials (on the loop thread and, blocking,
    on a worker thread): a target that dropped to uid 65534 still connects where allowed, and
    a denied address stays denied."""
    a, b = listeners["a"], listeners["b"]
    policy = supervise.policy(allow_only(f"127.0.0.1:{port(a)}", errno="EACCES"))
    r = supervise(
        policy,
        [target_bin("netops"), "dropuid", "65534", "connect4", "127.0.0.1", port(a),
         "nbconnect4", "127.0.0.1", port(a), "connect4", "127.0.0.2", port(b)],
    )  # fmt: skip
    assert r.lines == ["OK", "OK", "EINPROGRESS:OK", "EACCES"], r.explain()
    assert accepted(a) == 2 and accepted(b) == 0
    assert not r.named("supervisor.internal_error"), r.explain()


def test_i386_socketcall_send_with_a_null_address_is_never_resumed(
    supervise: Supervise, target_bin
) -> None:
    """socketcall's sendto arguments are in memory: a NULL address read there is performed (to
    the socket's peer), not resumed, so a thread writing a denied address into the argument
    array after the check never gets a datagram to it."""
    good, bad = udp_receiver("127.0.0.1"), udp_receiver("127.0.0.2")
    try:
        policy = supervise.policy(
            policy_text(
                "t",
                "allow",
                address_rule("lo", "allow", ["127.0.0.1"]),
                address_rule("no-other", "deny", ["0.0.0.0/0"], "EACCES"),
            )
        )
        attempts = 3000
        r = supervise(
            policy,
            [target_bin("netops"), "race_i386_send_null", "127.0.0.1", port(good), "127.0.0.2",
             port(bad), str(attempts)],
            timeout=120,
        )  # fmt: skip
        ok = race_counts(r, attempts)["ok"]  # NULL and the denied address were both read
        assert datagrams(bad) == 0, "a datagram reached the denied address"
        assert datagrams(good) == ok
    finally:
        good.close()
        bad.close()


def test_i386_connect_and_socketcall_cannot_bypass(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    a, b = listeners["a"], listeners["b"]
    policy = supervise.policy(allow_only(f"127.0.0.1:{port(a)}"))
    r = supervise(
        policy,
        [target_bin("netops"), "i386_connect", "127.0.0.2", port(b),
         "i386_socketcall", "127.0.0.2", port(b),
         "i386_socketcall_bind", "127.0.0.2", "0",
         "i386_socketcall", "127.0.0.1", port(a),
         "i386_connect", "127.0.0.1", port(a)],
    )  # fmt: skip
    assert r.lines == ["ECONNREFUSED", "ECONNREFUSED", "ECONNREFUSED", "OK", "OK"], r.explain()
    assert accepted(b) == 0 and accepted(a) == 2
    denied = r.named("syscall.denied")
    assert {e["syscall"] for e in denied} == {"connect", "bind"}, r.explain()
    assert all(e.get("arch") == "i386" for e in denied), r.explain()


def test_sendto_and_sendmsg_by_destination(supervise: Supervise, target_bin) -> None:
    good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    good.bind(("127.0.0.1", 0))
    bad.bind(("127.0.0.2", 0))
    try:
        policy = supervise.policy(allow_only("127.0.0.1", errno="EACCES"))
        r = supervise(
            policy,
            [target_bin("netops"), "udp_sendto", "127.0.0.1", port(good),
             "udp_sendmsg", "127.0.0.1", port(good),
             "udp_sendto", "127.0.0.2", port(bad),
             "udp_sendmsg", "127.0.0.2", port(bad)],
        )  # fmt: skip
        assert r.lines == ["OK", "OK", "EACCES", "EACCES"], r.explain()
        good.settimeout(5)
        assert good.recv(16) == b"ping" and good.recv(16) == b"ping"
        bad.setblocking(False)
        with pytest.raises(BlockingIOError):
            bad.recv(16)
    finally:
        good.close()
        bad.close()


def test_sendto_on_a_connected_socket_has_no_address(supervise: Supervise, target_bin) -> None:
    """sendto(fd, buf, len, 0, NULL, 0) names no address: address rules do not apply to it."""
    policy = supervise.policy(
        policy_text("t", "allow", address_rule("no-ten", "deny", ["10.0.0.0/8"], "EACCES"))
    )
    r = supervise(policy, [target_bin("netops"), "udp_sendto_null"])
    assert r.lines == ["OK"], r.explain()


@pytest.fixture
def sockdir(world_dir: Path) -> Iterator[Path]:
    """world_dir/real (allowed sockets), world_dir/link -> real, world_dir/other."""
    (world_dir / "real").mkdir()
    (world_dir / "other").mkdir()
    (world_dir / "link").symlink_to("real")
    for d in ("real", "other"):
        (world_dir / d).chmod(0o777)
    yield world_dir


def unix_listener(path: str | bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    return s


def test_unix_paths_relative_and_through_a_symlinked_dir(
    supervise: Supervise, target_bin, sockdir: Path
) -> None:
    good = unix_listener(str(sockdir / "real" / "app.sock"))
    bad = unix_listener(str(sockdir / "other" / "app.sock"))
    try:
        policy = supervise.policy(allow_only(f"unix:{sockdir}/real/*.sock", errno="EACCES"))
        r = supervise(
            policy,
            [target_bin("netops"), "unix_connect", sockdir / "real/app.sock",
             "unix_connect", sockdir / "link/app.sock",      # resolved: real/app.sock
             "unix_connect", sockdir / "other/app.sock",
             "chdir", sockdir,
             "unix_connect", "real/app.sock",                 # relative to the target's cwd
             "unix_connect", "link/../other/app.sock",
             "unix_connect", "real/missing.sock",             # the kernel's ENOENT
             "unix_bind", "link/new.sock",                   # created in real/
             "unix_bind", "other/new.sock",
             "unix_bind", "real/new.sock"],                   # exists now
        )  # fmt: skip
        assert r.lines == [
            "OK", "OK", "EACCES", "OK", "OK", "EACCES", "ENOENT", "OK", "EACCES", "EADDRINUSE",
        ], r.explain()  # fmt: skip
        assert accepted(good) == 3 and accepted(bad) == 0
        made = sockdir / "real" / "new.sock"
        assert stat.S_ISSOCK(made.lstat().st_mode)
        assert not (sockdir / "other" / "new.sock").exists()
        denied = {e["address"] for e in r.named("syscall.denied")}
        assert denied == {f"unix:{sockdir}/other/app.sock", f"unix:{sockdir}/other/new.sock"}
    finally:
        good.close()
        bad.close()


def test_unix_bind_as_the_target(supervise: Supervise, target_bin, sockdir: Path) -> None:
    """The socket file gets the target's owner and umask; a directory the target may not write
    refuses it as the kernel would."""
    (sockdir / "locked").mkdir(mode=0o755)
    policy = supervise.policy(allow_only(f"unix:{sockdir}/**", errno="EACCES"))
    old = os.umask(0o027)
    try:
        r = supervise(
            policy,
            [target_bin("netops"), "dropuid", "65534", "unix_bind", sockdir / "real/mine.sock",
             "unix_bind", sockdir / "locked/no.sock"],
        )  # fmt: skip
    finally:
        os.umask(old)
    assert r.lines == ["OK", "OK", "EACCES"], r.explain()
    st = (sockdir / "real" / "mine.sock").lstat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert not (sockdir / "locked" / "no.sock").exists()


def test_abstract_names(supervise: Supervise, target_bin) -> None:
    tag = f"sv-test-{os.getpid()}"
    good = unix_listener(f"\0{tag}-good".encode())
    bad = unix_listener(f"\0{tag}-bad".encode())
    try:
        policy = supervise.policy(allow_only(f"unix-abstract:{tag}-good*", errno="EACCES"))
        r = supervise(
            policy,
            [target_bin("netops"), "abstract_connect", f"{tag}-good",
             "abstract_connect", f"{tag}-bad", "abstract_bind", f"{tag}-good2",
             "abstract_bind", f"{tag}-bad2"],
        )  # fmt: skip
        assert r.lines == ["OK", "EACCES", "OK", "EACCES"], r.explain()
        assert accepted(good) == 1 and accepted(bad) == 0
    finally:
        good.close()
        bad.close()


def free_privileged_port() -> int:
    for candidate in range(1000, 1024):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        finally:
            s.close()
        return candidate
    pytest.skip("no free port below 1024")


def test_bind_below_1024_needs_the_targets_capability(supervise: Supervise, target_bin) -> None:
    if Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text().strip() != "1024":
        pytest.skip("privileged ports are not 0-1023 here")
    low = str(free_privileged_port())
    policy = supervise.policy(allow_only("127.0.0.1"))
    r = supervise(
        policy,
        [target_bin("netops"), "bind4", "127.0.0.1", low, "dropuid", "65534",
         "bind4", "127.0.0.1", low, "bind4", "127.0.0.1", "0", "bind4", "127.0.0.2", "0"],
    )  # fmt: skip
    # root (with CAP_NET_BIND_SERVICE) may; uid 65534 without capabilities may not, although the
    # supervisor that performs the bind is root
    assert r.lines == ["OK", "OK", "EACCES", "OK", "ECONNREFUSED"], r.explain()


def test_shipped_database_client_policy(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    try:
        db = socket.socket()
        db.bind(("127.0.0.1", 5432))
        db.listen(4)
    except OSError:
        pytest.skip("127.0.0.1:5432 is in use")
    try:
        a, six = listeners["a"], listeners["six"]
        r = supervise(
            POLICIES / "database-client.toml",
            [target_bin("netops"), "connect4", "127.0.0.1", "5432", "connect4", "127.0.0.1",
             port(a), "connect6", "::1", port(six), "bind4", "0.0.0.0", "0",
             "unix_connect", "/run/postgresql/.s.PGSQL.5433"],
        )  # fmt: skip
        assert r.returncode == 0, r.explain()
        assert r.lines == ["OK", "ECONNREFUSED", "ECONNREFUSED", "EACCES", "ECONNREFUSED"], (
            r.explain()
        )
        assert accepted(db) == 1 and accepted(a) == 0 and accepted(six) == 0
    finally:
        db.close()


def test_race_unix_to_inet_on_an_inet_socket(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket], sockdir: Path
) -> None:
    """An allowed unix address is resumed (advisory) only on a unix socket. Here the socket is
    AF_INET and a thread flips the sockaddr between an allowed AF_UNIX path and a denied IPv4
    address: the supervisor performs the connect with the bytes it read, so the kernel never
    connects the inet socket to the flipped-in address."""
    b = listeners["b"]
    sock_path = sockdir / "real" / "app.sock"
    server = unix_listener(str(sock_path))
    try:
        policy = supervise.policy(allow_only("unix:/**"))
        attempts = 2000
        r = supervise(
            policy,
            [target_bin("netops"), "race_unix_inet", sock_path, "127.0.0.2", port(b),
             str(attempts)],
            timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.explain()
        assert r.lines == [f"OK:ok=0,denied={attempts}"], r.explain()
        assert accepted(b) == 0, "the inet socket reached the denied address"
    finally:
        server.close()


def udp_receiver(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind((host, 0))
    s.setblocking(False)
    return s


def datagrams(s: socket.socket) -> int:
    count = 0
    while True:
        try:
            s.recv(70000)
        except BlockingIOError:
            return count
        count += 1


def test_race_on_the_sendto_destination_never_reaches_the_denied_address(
    supervise: Supervise, target_bin
) -> None:
    """Allowed sends to IPv4/IPv6 datagram sockets are performed by the supervisor with the
    destination it checked and a copy of the data: a thread flipping the destination never gets
    a datagram to the denied address."""
    good, bad = udp_receiver("127.0.0.1"), udp_receiver("127.0.0.2")
    try:
        policy = supervise.policy(allow_only("127.0.0.1"))
        attempts = 2000
        r = supervise(
            policy,
            [target_bin("netops"), "race_sendto", "127.0.0.1", port(good), "127.0.0.2",
             port(bad), str(attempts)],
            timeout=120,
        )  # fmt: skip
        ok = race_counts(r, attempts)["ok"]
        assert datagrams(bad) == 0, "a datagram reached the denied address"
        assert datagrams(good) == ok
    finally:
        good.close()
        bad.close()


def test_performed_sendmsg_keeps_control_messages_and_errnos(
    supervise: Supervise, target_bin
) -> None:
    good = udp_receiver("127.0.0.1")
    good.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL (not in the socket module)
    try:
        ops = [
            "udp_sendmsg_ttl", "127.0.0.1", port(good),      # IP_TTL 7 in a control message
            "udp_sendto_len", "127.0.0.1", port(good), "70000",  # the kernel's EMSGSIZE
            "udp_sendto_len", "127.0.0.1", port(good), "5000",
        ]  # fmt: skip
        policy = supervise.policy(allow_only("127.0.0.1"))
        r = supervise(policy, [target_bin("netops"), *ops])
        assert r.lines == ["OK:3", "EMSGSIZE", "OK:5000"], r.explain()
        good.setblocking(True)
        good.settimeout(5)
        data, anc, _flags, _addr = good.recvmsg(100, socket.CMSG_SPACE(4))
        assert data == b"ttl"
        ttls = [int.from_bytes(d[:4], "little") for lvl, typ, d in anc if typ == socket.IP_TTL]
        assert ttls == [7], anc
        assert len(good.recv(70000)) == 5000
    finally:
        good.close()


def test_i386_sends_are_decided_and_performed(supervise: Supervise, target_bin) -> None:
    """The i386 layouts: a 28-byte msghdr with 8-byte iovecs (sendmsg = 370), and socketcall's
    six 32-bit arguments for sendto."""
    good, bad = udp_receiver("127.0.0.1"), udp_receiver("127.0.0.2")
    try:
        policy = supervise.policy(allow_only("127.0.0.1"))
        r = supervise(
            policy,
            [target_bin("netops"), "i386_sendmsg", "127.0.0.1", port(good),
             "i386_socketcall_sendto", "127.0.0.1", port(good),
             "i386_sendmsg", "127.0.0.2", port(bad),
             "i386_socketcall_sendto", "127.0.0.2", port(bad)],
        )  # fmt: skip
        assert r.lines == ["OK:4", "OK:4", "ECONNREFUSED", "ECONNREFUSED"], r.explain()
        good.setblocking(True)
        good.settimeout(5)
        assert good.recv(16) == b"i386" and good.recv(16) == b"i386"
        assert datagrams(bad) == 0
        denied = r.named("syscall.denied")
        assert {(e["syscall"], e.get("arch")) for e in denied} == {
            ("sendmsg", "i386"),
            ("sendto", "i386"),
        }, r.explain()
    finally:
        good.close()
        bad.close()


def test_address_rules_with_a_rate_and_a_phase(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    """Stateful keys work on address rules: a rate of 2 connects a second (the bucket refills
    with time), and a performed connect that enters a phase."""
    a, a2 = listeners["a"], listeners["a2"]
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            '[[rule]]\nname = "twice"\naddress = ["127.0.0.1:' + port(a) + '"]\naction = "allow"\n'
            'rate = "2/s"\nover = "deny"\nover_errno = "ECONNREFUSED"\n',
        )
    )
    ops = ["connect4", "127.0.0.1", port(a)] * 3 + [
        "sleep_ms",
        "1200",
        "connect4",
        "127.0.0.1",
        port(a),
    ]
    r = supervise(policy, [target_bin("netops"), *ops])
    assert r.lines == ["OK", "OK", "ECONNREFUSED", "OK", "OK"], r.explain()
    assert accepted(a) == 3
    phases = supervise.policy(
        'version = 1\nname = "t"\ndefault = "allow"\nphases = ["init", "serving"]\n\n'
        '[[rule]]\nname = "db"\naddress = ["127.0.0.1:' + port(a) + '"]\naction = "allow"\n'
        'enter = "serving"\n\n'
        '[[rule]]\nname = "no-more"\nphase = "serving"\naddress = ["127.0.0.1"]\n'
        'action = "deny"\nerrno = "EACCES"\n'
    )
    r = supervise(
        phases,
        [target_bin("netops"), "connect4", "127.0.0.1", port(a2), "connect4", "127.0.0.1", port(a),
         "connect4", "127.0.0.1", port(a2)],
    )  # fmt: skip
    assert r.lines == ["OK", "OK", "EACCES"], r.explain()


class TcpSink:
    """A TCP listener on 127.0.0.1 that reads everything sent to it, in a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.received = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1 << 20):
                with self.lock:
                    self.received += len(data)

    def wait_for(self, count: int) -> int:
        wait_until(lambda: self.received >= count, lambda: f"{count} bytes ({self.received})")
        return self.received


def test_tcp_sends_are_performed_at_most_64k_a_call(supervise: Supervise, target_bin) -> None:
    """sendmsg on a TCP socket: the supervisor sends a copy of at most 64 KiB; a longer send
    gets a short count (a stream send's right), never a resume."""
    sink = TcpSink()
    try:
        policy = supervise.policy(
            policy_text(
                "t",
                "allow",
                address_rule("lo", "allow", ["127.0.0.1"]),
                address_rule("no-other", "deny", ["0.0.0.0/0", "[::]/0"], "EACCES"),
            )
        )
        p = port(sink.sock)
        r = supervise(
            policy,
            [target_bin("netops"), "tcp_sendmsg", "127.0.0.1", p, "1000",
             "tcp_sendmsg", "127.0.0.1", p, "65535", "tcp_sendmsg", "127.0.0.1", p, "300000"],
        )  # fmt: skip
        assert r.lines == ["OK:1000", "OK:65535", "OK:65535"], r.explain()
        assert sink.wait_for(1000 + 2 * 65535) == 1000 + 2 * 65535
    finally:
        sink.sock.close()


def test_race_swapping_the_fd_and_the_address_of_a_tcp_sendmsg(
    supervise: Supervise, target_bin
) -> None:
    """One thread swaps fd 100 between a connected TCP socket and an unconnected UDP socket
    (dup2), another flips msg_name between NULL and a denied address, while sendmsg(100) runs:
    had the supervisor resumed the TCP sends, some datagrams would reach the denied receiver."""
    sink = TcpSink()
    bad = udp_receiver("127.0.0.2")
    try:
        policy = supervise.policy(
            policy_text(
                "t",
                "allow",
                address_rule("lo", "allow", ["127.0.0.1"]),
                address_rule("no-other", "deny", ["0.0.0.0/0"], "EACCES"),
            )
        )
        attempts = 3000
        r = supervise(
            policy,
            [target_bin("netops"), "race_fdswap", "127.0.0.1", port(sink.sock), "127.0.0.2",
             port(bad), str(attempts)],
            timeout=120,
        )  # fmt: skip
        race_counts(r, attempts)
        assert datagrams(bad) == 0, "a datagram reached the denied address"
    finally:
        sink.sock.close()
        bad.close()


def test_race_swapping_a_unix_datagram_socket_into_a_long_tcp_send(
    supervise: Supervise, target_bin, sockdir: Path
) -> None:
    """fd 100 swaps between a connected TCP socket and an AF_UNIX SOCK_DGRAM socket (which takes
    datagrams up to its sndbuf, far above 64 KiB), msg_name flips between the allowed TCP peer
    and a denied unix path, and the sends are 70000 bytes: had a long TCP send been resumed,
    datagrams would reach the denied path."""
    sink = TcpSink()
    bad_path = sockdir / "other" / "dgram.sock"
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    bad.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    bad.bind(str(bad_path))
    bad.setblocking(False)
    try:
        policy = supervise.policy(
            policy_text(
                "t",
                "allow",
                address_rule("lo", "allow", ["127.0.0.1"]),
                # every unix path: an allowed one would be resumed on a unix socket (advisory),
                # and a torn read of msg_name can name a path outside other/
                address_rule("no-unix", "deny", ["unix:/**"], "EACCES"),
            )
        )
        attempts = 6000
        r = supervise(
            policy,
            [target_bin("netops"), "race_fdswap_unix", "127.0.0.1", port(sink.sock), bad_path,
             "70000", str(attempts)],
            timeout=120,
        )  # fmt: skip
        race_counts(r, attempts)
        assert datagrams(bad) == 0, "a datagram reached the denied unix path"
    finally:
        sink.sock.close()
        bad.close()


def test_sendmmsg_checks_every_message(supervise: Supervise, target_bin) -> None:
    """Each message's address is decided; one refused refuses the whole call (nothing is sent);
    all allowed: resumed (advisory)."""
    good, bad = udp_receiver("127.0.0.1"), udp_receiver("127.0.0.2")
    try:
        policy = supervise.policy(
            policy_text(
                "t",
                "allow",
                address_rule("lo", "allow", ["127.0.0.1"]),
                address_rule("no-other", "deny", ["0.0.0.0/0"], "EACCES"),
            )
        )
        r = supervise(
            policy,
            [target_bin("netops"), "udp_sendmmsg", "127.0.0.1", port(good), "127.0.0.1",
             port(good), "udp_sendmmsg", "127.0.0.1", port(good), "127.0.0.2", port(bad),
             "udp_sendmmsg_connected", "127.0.0.1", port(good)],
        )  # fmt: skip
        assert r.lines == ["OK:2", "EACCES", "OK:2"], r.explain()
        assert datagrams(good) == 4 and datagrams(bad) == 0
        (denied,) = r.named("syscall.denied")
        assert denied["syscall"] == "sendmmsg" and denied["address"] == f"127.0.0.2:{port(bad)}"
    finally:
        good.close()
        bad.close()


def test_i386_socketcall_is_decided_as_the_call_it_makes(
    supervise: Supervise, target_bin, listeners: dict[str, socket.socket]
) -> None:
    """Without any address rule: a connect rule with a limit (decided by the supervisor) makes
    socketcall notified, and its connects count as connects."""
    a = listeners["a"]
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            '[[rule]]\nname = "once"\nsyscalls = ["connect"]\naction = "allow"\nlimit = 1\n'
            'over_errno = "ECONNREFUSED"\n',
        )
    )
    r = supervise(
        policy,
        [target_bin("netops"), "i386_socketcall", "127.0.0.1", port(a),
         "i386_socketcall", "127.0.0.1", port(a), "connect4", "127.0.0.1", port(a)],
    )  # fmt: skip
    assert r.lines == ["OK", "ECONNREFUSED", "ECONNREFUSED"], r.explain()
    assert accepted(a) == 1
