"""Address rules, pure: the pattern parser, the matcher, the sockaddr parser, the `address` key of
the policy parser (errors name file, line and key), the engine and the filter plan."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from supervisor.policy import (
    Action,
    Engine,
    PolicyError,
    Request,
    explain,
    parse_policy,
    plan_filter,
)
from supervisor.policy.match.addresses import AddressError, compile_addresses, parse_address
from supervisor.policy.match.sockaddr import (
    ABSTRACT,
    INET,
    INET6,
    INVALID,
    NO_ADDRESS,
    OTHER,
    UNIX,
    UNNAMED,
    UNSPEC,
    SockAddr,
    parse_msghdr,
    parse_sockaddr,
    unpack_socketcall_args,
)


def sin(ip: str, port: int) -> bytes:
    return (
        struct.pack("<H", socket.AF_INET)
        + struct.pack(">H", port)
        + socket.inet_aton(ip)
        + bytes(8)
    )


def sin6(ip: str, port: int, scope: int = 0) -> bytes:
    return (
        struct.pack("<H", socket.AF_INET6)
        + struct.pack(">HI", port, 0)
        + ipaddress.IPv6Address(ip).packed
        + struct.pack("<I", scope)
    )


def sun(path: bytes) -> bytes:
    return struct.pack("<H", socket.AF_UNIX) + path


def v4(ip: str, port: int) -> SockAddr:
    return parse_sockaddr(sin(ip, port), "connect")


def unix(resolved: str) -> SockAddr:
    return SockAddr(UNIX, sun(resolved.encode() + b"\0"), socket.AF_UNIX, resolved=resolved)


# -- patterns ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "network", "ports"),
    [
        ("127.0.0.0/8", INET, "127.0.0.0/8", None),
        ("10.1.2.3", INET, "10.1.2.3/32", None),
        ("10.0.0.0/8:443", INET, "10.0.0.0/8", (443, 443)),
        ("0.0.0.0/0:8000-8100", INET, "0.0.0.0/0", (8000, 8100)),
        ("[::1]", INET6, "::1/128", None),
        ("[::1]:8000-8100", INET6, "::1/128", (8000, 8100)),
        ("[::]/0", INET6, "::/0", None),
        ("[fd00::]/8:53", INET6, "fd00::/8", (53, 53)),
    ],
)
def test_parse_inet_patterns(text: str, kind: str, network: str, ports: object) -> None:
    p = parse_address(text)
    assert p.kind == kind
    assert str(p.network) == network
    assert p.ports == ports


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("10.0.0.1/8", "host bits"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("300.0.0.1", "300.0.0.1"),
        ("10.0.0.1:", "bad port"),
        ("10.0.0.1:70000", "port range"),
        ("10.0.0.1:90-80", "port range"),
        ("10.0.0.1:http", "bad port"),
        ("[::1", "unclosed"),
        ("[::1]80", "':port'"),
        ("[10.0.0.1]", "not an IPv6"),
        ("::1", "not an address"),
        ("[::ffff:10.0.0.0]/104", "10.0.0.0/8"),
        ("unix:run/x.sock", "absolute"),
        ("unix-abstract:", "empty"),
        ("tcp://10.0.0.1", "not an address"),
        ("localhost:80", "not an address"),
    ],
)
def test_parse_bad_patterns(text: str, word: str) -> None:
    with pytest.raises(AddressError, match=None) as e:
        parse_address(text)
    assert word in str(e.value), str(e.value)


def test_unix_and_abstract_patterns() -> None:
    assert parse_address("unix:/run/app/*.sock").kind == UNIX
    assert parse_address("unix-abstract:name*").kind == ABSTRACT


# -- matching ---------------------------------------------------------------------------------
def test_match_inet_networks_and_ports() -> None:
    m = compile_addresses([parse_address("10.0.0.0/8:443"), parse_address("127.0.0.1")])
    assert m(v4("10.9.8.7", 443))
    assert not m(v4("10.9.8.7", 444))
    assert not m(v4("11.0.0.1", 443))
    assert m(v4("127.0.0.1", 1))
    assert m(v4("127.0.0.1", 65535))
    assert not m(v4("127.0.0.2", 1))


def test_match_port_range_edges() -> None:
    m = compile_addresses([parse_address("[::1]:8000-8100")])
    six = parse_sockaddr(sin6("::1", 8000), "connect")
    assert six.kind == INET6 and m(six)
    assert m(parse_sockaddr(sin6("::1", 8100), "connect"))
    assert not m(parse_sockaddr(sin6("::1", 7999), "connect"))
    assert not m(parse_sockaddr(sin6("::1", 8101), "connect"))
    assert not m(parse_sockaddr(sin6("::2", 8050), "connect"))


def test_v4_mapped_matches_ipv4_rules_only() -> None:
    mapped = parse_sockaddr(sin6("::ffff:10.1.2.3", 443), "connect")
    assert mapped.kind == INET and str(mapped.ip) == "10.1.2.3" and mapped.port == 443
    assert compile_addresses([parse_address("10.0.0.0/8:443")])(mapped)
    assert not compile_addresses([parse_address("[::]/0")])(mapped)
    # the raw bytes stay the AF_INET6 ones: they are what an emulated connect passes on
    assert mapped.raw[:2] == struct.pack("<H", socket.AF_INET6)


def test_v4_and_v6_never_cross() -> None:
    assert not compile_addresses([parse_address("0.0.0.0/0")])(
        parse_sockaddr(sin6("::1", 1), "connect")
    )
    assert not compile_addresses([parse_address("[::]/0")])(v4("127.0.0.1", 1))


def test_match_unix_on_resolved_path() -> None:
    m = compile_addresses([parse_address("unix:/run/app/*.sock")])
    assert m(unix("/run/app/a.sock"))
    assert not m(unix("/run/app/sub/a.sock"))
    assert not m(unix("/run/other/a.sock"))
    # not resolved (the loop could not resolve it): no match
    assert not m(SockAddr(UNIX, sun(b"/run/app/a.sock"), socket.AF_UNIX, name=b"/run/app/a.sock"))
    deep = compile_addresses([parse_address("unix:/run/**")])
    assert deep(unix("/run/a/b/c.sock"))


def test_match_abstract_names() -> None:
    m = compile_addresses([parse_address("unix-abstract:name*")])
    assert m(parse_sockaddr(sun(b"\0name-1"), "connect"))
    assert m(parse_sockaddr(sun(b"\0name/with/slash"), "connect"))
    assert not m(parse_sockaddr(sun(b"\0other"), "connect"))
    assert not m(unix("/name"))


def test_unnamed_kinds_match_nothing() -> None:
    m = compile_addresses([parse_address("0.0.0.0/0"), parse_address("[::]/0")])
    for sa in (
        NO_ADDRESS,
        parse_sockaddr(b"", "connect"),
        parse_sockaddr(sin("1.2.3.4", 1)[:8], "connect"),
        parse_sockaddr(struct.pack("<H", 99) + bytes(14), "connect"),
        parse_sockaddr(struct.pack("<H", 0) + bytes(14), "connect"),
    ):
        assert not m(sa), sa


# -- sockaddr bytes -----------------------------------------------------------------------------
def test_parse_sockaddr_kinds() -> None:
    assert v4("1.2.3.4", 80).kind == INET
    assert parse_sockaddr(sin("1.2.3.4", 80)[:15], "connect").kind == INVALID
    assert parse_sockaddr(sin6("::1", 80)[:23], "connect").kind == INVALID
    assert parse_sockaddr(sin6("::1", 80)[:24], "connect").kind == INET6  # RFC 2133 length
    assert parse_sockaddr(b"\x02", "connect").kind == INVALID
    assert parse_sockaddr(struct.pack("<H", 16) + bytes(10), "bind").kind == OTHER  # netlink
    # AF_UNSPEC: connect disconnects; bind and the sends read it as a sockaddr_in
    unspec = struct.pack("<H", 0) + struct.pack(">H", 53) + socket.inet_aton("9.9.9.9") + bytes(8)
    assert parse_sockaddr(unspec, "connect").kind == UNSPEC
    as_in = parse_sockaddr(unspec, "sendto")
    assert as_in.kind == INET and str(as_in.ip) == "9.9.9.9" and as_in.port == 53


def test_parse_sockaddr_unix() -> None:
    path = parse_sockaddr(sun(b"/run/x.sock\0garbage"), "connect")
    assert path.kind == UNIX and path.name == b"/run/x.sock"
    rel = parse_sockaddr(sun(b"rel.sock"), "connect")  # no NUL: the length ends it
    assert rel.kind == UNIX and rel.name == b"rel.sock"
    abstract = parse_sockaddr(sun(b"\0a\0b"), "connect")
    assert abstract.kind == ABSTRACT and abstract.name == b"a\0b"
    assert parse_sockaddr(sun(b""), "bind").kind == UNNAMED
    assert parse_sockaddr(sun(b""), "connect").kind == INVALID
    assert parse_sockaddr(sun(b"/" + b"a" * 108), "connect").kind == INVALID  # > 110 bytes


def test_msghdr_and_socketcall_layouts() -> None:
    hdr64 = struct.pack("<Qi4xQQQQi4x", 0x7FFF0000, 16, 1, 1, 0, 0, 0)
    assert len(hdr64) == 56
    assert parse_msghdr(hdr64, "x86_64") == (0x7FFF0000, 16)
    hdr32 = struct.pack("<IiIIIIi", 0x1000, 28, 2, 1, 0, 0, 0)
    assert len(hdr32) == 28
    assert parse_msghdr(hdr32, "i386") == (0x1000, 28)
    assert parse_msghdr(struct.pack("<Ii", 0x1000, -1) + bytes(20), "i386") == (0x1000, -1)
    assert unpack_socketcall_args(struct.pack("<3I", 3, 0x1000, 16), 3) == (3, 0x1000, 16, 0, 0, 0)


def test_describe() -> None:
    assert v4("1.2.3.4", 80).describe() == "1.2.3.4:80"
    assert parse_sockaddr(sin6("::1", 80), "connect").describe() == "[::1]:80"
    assert unix("/run/a.sock").describe() == "unix:/run/a.sock"
    assert parse_sockaddr(sun(b"\0n"), "connect").describe() == "unix-abstract:n"


# -- the policy key -----------------------------------------------------------------------------
HEAD = 'version = 1\nname = "t"\ndefault = "allow"\n'


def test_address_rule_defaults_to_the_address_syscalls() -> None:
    p = parse_policy(HEAD + '\n[[rule]]\naddress = ["10.0.0.0/8"]\naction = "deny"\n')
    rule = p.rules[0]
    assert rule.syscalls is None
    assert [a.text for a in rule.addresses] == ["10.0.0.0/8"]
    plan = plan_filter(p)
    assert {"connect", "bind", "sendto", "sendmsg", "sendmmsg", "socketcall"} <= plan.notified
    assert "socket" not in plan.notified


def test_address_rule_with_syscalls_and_groups() -> None:
    p = parse_policy(
        HEAD + '\n[[rule]]\nsyscalls = ["@network-io"]\naddress = ["10.0.0.0/8"]\naction = "deny"\n'
    )
    assert p.rules[0].syscalls == frozenset({"connect", "bind", "sendto", "sendmsg", "sendmmsg"})
    p = parse_policy(
        HEAD + '\n[[rule]]\nsyscalls = ["connect"]\naddress = ["10.0.0.0/8"]\naction = "deny"\n'
    )
    plan = plan_filter(p)
    assert "connect" in plan.notified and "socketcall" in plan.notified
    assert "bind" not in plan.notified


@pytest.mark.parametrize(
    ("body", "key", "word"),
    [
        ('address = ["10.0.0.1/8"]', "rule[1].address", "host bits"),
        ('address = ["nonsense"]', "rule[1].address", "not an address"),
        ("address = []", "rule[1].address", "empty"),
        ('address = "10.0.0.0/8"', "rule[1].address", "list of strings"),
        ('syscalls = ["openat"]\naddress = ["10.0.0.0/8"]', "rule[1].address", "openat"),
        ('path = ["/etc/**"]\naddress = ["10.0.0.0/8"]', "rule[1].address", "both"),
        ('adress = ["10.0.0.0/8"]', "rule[1].adress", "unknown key"),
    ],
)
def test_address_errors_name_file_line_key(body: str, key: str, word: str) -> None:
    text = HEAD + f'\n[[rule]]\nname = "r"\n{body}\naction = "deny"\n'
    with pytest.raises(PolicyError) as e:
        parse_policy(text, source="p.toml")
    err = e.value
    assert err.file == "p.toml" and err.key == key, str(err)
    assert word in str(err), str(err)
    wanted = next(i + 1 for i, ln in enumerate(text.splitlines()) if ln.startswith(key[8:]))
    assert err.line == wanted, str(err)


# -- the engine ---------------------------------------------------------------------------------
ALLOW_LIST = (
    HEAD.replace('"allow"', '"deny"')
    + """
[[rule]]
name = "db"
address = ["127.0.0.1:5432", "unix:/run/postgresql/.s.PGSQL.5432"]
action = "allow"

[[rule]]
name = "no-other-net"
syscalls = ["connect", "sendto", "sendmsg"]
action = "deny"
errno = "ECONNREFUSED"

[[rule]]
name = "rest"
syscalls = ["@default", "@basic-io", "@file-system", "@network-io", "@process"]
action = "allow"
"""
)


def decide(engine: Engine, syscall: str, address: SockAddr | None) -> tuple[Action, int, bool]:
    d = engine.decide(Request(1, syscall, "x86_64", (3, 0, 0, 0, 0, 0), address=address))
    return d.action, d.errno, d.inspected


def test_engine_allow_list() -> None:
    engine = Engine(parse_policy(ALLOW_LIST))
    assert engine.needs_address("connect") and engine.needs_address("bind")
    assert not engine.needs_address("openat")
    assert decide(engine, "connect", v4("127.0.0.1", 5432)) == (Action.ALLOW, 0, True)
    assert decide(engine, "connect", v4("127.0.0.1", 5433)) == (Action.DENY, 111, True)
    assert decide(engine, "sendto", v4("10.0.0.1", 53)) == (Action.DENY, 111, True)
    assert decide(engine, "connect", unix("/run/postgresql/.s.PGSQL.5432"))[0] is Action.ALLOW
    assert decide(engine, "connect", unix("/run/other.sock"))[0] is Action.DENY
    # bind: only the first rule and the catch-all apply
    assert decide(engine, "bind", v4("0.0.0.0", 80)) == (Action.ALLOW, 0, True)
    # sendto on a connected socket: no address, the address rule does not apply (not inspected)
    assert decide(engine, "sendto", None) == (Action.DENY, 111, False)
    # a msghdr without msg_name: read, names nothing
    assert decide(engine, "sendmsg", NO_ADDRESS) == (Action.DENY, 111, True)


def test_engine_deny_list_unnamed_addresses_fall_through() -> None:
    engine = Engine(parse_policy(HEAD + '\n[[rule]]\naddress = ["10.0.0.0/8"]\naction = "deny"\n'))
    assert decide(engine, "connect", v4("10.0.0.1", 1))[0] is Action.DENY
    assert decide(engine, "connect", v4("11.0.0.1", 1)) == (Action.ALLOW, 0, True)
    netlink = parse_sockaddr(struct.pack("<H", 16) + bytes(10), "bind")
    assert decide(engine, "bind", netlink) == (Action.ALLOW, 0, True)


def test_explain_says_what_is_advisory() -> None:
    p = parse_policy(ALLOW_LIST, source="db.toml")
    text = "\n".join(explain(p, plan_filter(p)))
    assert "address in 127.0.0.1:5432 unix:/run/postgresql/.s.PGSQL.5432" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("db "))
    # connect and the sends are performed on IPv4/IPv6 sockets, resumed on unix ones; sendmmsg
    # is always resumed; bind is always performed (not advisory at all).
    assert line.endswith(
        "performed for IPv4/IPv6; ADVISORY on unix sockets (sends also on SCTP and other "
        "non-TCP/UDP/raw sockets) for: connect, sendmsg, sendto; ADVISORY for: sendmmsg "
        "(resumed after the check)"
    ), line
    warning = next(w for w in p.warnings if w.startswith("rule 'db'"))
    assert (
        "allows of connect, sendmsg, sendto after address inspection are performed by the "
        "supervisor on IPv4/IPv6 sockets, but ADVISORY on unix sockets" in warning
    )
    assert "allows of sendmmsg are ADVISORY" in warning and "bind" not in warning


def test_address_advisory_names_only_the_rules_syscalls() -> None:
    """A connect-only rule says nothing of sends or sendmmsg; a rule without `syscalls` lists
    sendmmsg among the syscalls it applies to."""
    connect_only = (
        '\n[[rule]]\nsyscalls = ["connect"]\naddress = ["10.0.0.0/8"]\naction = "allow"\n'
    )
    p = parse_policy(HEAD + connect_only)
    warning = next(w for w in p.warnings if w.startswith("rule 'rule-1'"))
    assert "sendmmsg" not in warning and "sends" not in warning and "connect" in warning
    line = explain(p, plan_filter(p))[1]
    assert line.endswith("performed for IPv4/IPv6; ADVISORY on unix sockets for: connect"), line
    everything = '\n[[rule]]\naddress = ["10.0.0.0/8"]\naction = "deny"\n'
    p = parse_policy(HEAD + everything)
    assert (
        "connect bind sendto sendmsg sendmmsg address in 10.0.0.0/8"
        in explain(p, plan_filter(p))[1]
    )


def test_shipped_database_client() -> None:
    from pathlib import Path

    from supervisor.policy import load_policy

    p = load_policy(Path(__file__).resolve().parents[2] / "policies" / "database-client.toml")
    engine = Engine(p)
    assert decide(engine, "connect", v4("127.0.0.1", 5432))[0] is Action.ALLOW
    mapped = parse_sockaddr(sin6("::ffff:127.0.0.1", 5432), "connect")
    assert decide(engine, "connect", mapped)[0] is Action.ALLOW
    assert decide(engine, "connect", parse_sockaddr(sin6("::1", 5432), "connect"))[0] is (
        Action.ALLOW
    )
    assert decide(engine, "connect", unix("/run/postgresql/.s.PGSQL.5432"))[0] is Action.ALLOW
    for other in (v4("127.0.0.1", 5433), v4("10.0.0.1", 5432), unix("/run/dbus/system_bus_socket")):
        assert decide(engine, "connect", other)[:2] == (Action.DENY, 111), other
        assert decide(engine, "sendto", other)[:2] == (Action.DENY, 111), other
    assert decide(engine, "bind", v4("0.0.0.0", 0))[:2] == (Action.DENY, 13)
    # send() on the connected socket names no address
    assert decide(engine, "sendto", None)[0] is Action.ALLOW
    plan = plan_filter(p)
    assert "sendmmsg" in plan.notified and "io_uring_setup" in plan.kernel_decided
    assert decide(engine, "sendmmsg", v4("10.0.0.1", 53))[:2] == (Action.DENY, 111)
    assert "socketcall" in plan.notified


def test_warning_when_no_address_rule_covers_sendmmsg() -> None:
    rule = '\n[[rule]]\nsyscalls = ["connect"]\naddress = ["10.0.0.0/8"]\naction = "deny"\n'
    p = parse_policy(HEAD + rule)
    assert any("no address rule applies to sendmmsg" in w for w in p.warnings)
    refused = '\n[[rule]]\nsyscalls = ["sendmmsg"]\naction = "deny"\n'
    warned = "no address rule applies to sendmmsg"
    assert not any(warned in w for w in parse_policy(HEAD + rule + refused).warnings)
    everywhere = '\n[[rule]]\naddress = ["10.0.0.0/8"]\naction = "deny"\n'
    assert not any(warned in w for w in parse_policy(HEAD + everywhere).warnings)
    assert not any("sendmmsg" in w for w in parse_policy(HEAD).warnings)


@pytest.mark.parametrize(
    ("rules", "notified"),
    [
        # a conditioned socket rule: libseccomp would drop the condition on the socketcall path
        ('syscalls = ["socket"]\nargs = [{ arg = 0, op = "==", value = "AF_INET" }]\n'
         'action = "deny"\n', True),
        ('syscalls = ["setsockopt"]\nargs = [{ arg = 1, op = "==", value = 1 }]\n'
         'action = "deny"\n', True),
        # no condition: libseccomp's own socketcall rule on the call number is exact
        ('syscalls = ["socket"]\naction = "deny"\n', False),
        ('syscalls = ["listen"]\naction = "log"\n', True),  # notified: decided as listen
        ('syscalls = ["mkdir"]\nargs = [{ arg = 1, op = "==", value = 0 }]\n'
         'action = "deny"\n', False),
    ],
)  # fmt: skip
def test_socketcall_notified_for_conditioned_socket_rules(rules: str, notified: bool) -> None:
    p = parse_policy(HEAD + "\n[[rule]]\n" + rules)
    plan = plan_filter(p)
    assert ("socketcall" in plan.notified) is notified
    socketcall_rules = [r for r in plan.rules if r.syscall == "socketcall"]
    if notified:
        assert [r.action.kind for r in socketcall_rules] == ["notify"]
        assert not socketcall_rules[0].conditions


def test_socketcall_table_is_the_kernels() -> None:
    """net/socket.c nargs[]: how many 32-bit arguments each call reads (in bytes / 4)."""
    from supervisor.policy.match.sockaddr import SOCKETCALL_CALLS

    nargs = [0, 3, 3, 3, 2, 3, 3, 3, 4, 4, 4, 6, 6, 2, 5, 5, 3, 3, 4, 5, 4]
    assert sorted(SOCKETCALL_CALLS) == list(range(1, 21))
    assert [SOCKETCALL_CALLS[c][1] for c in range(1, 21)] == nargs[1:]
    assert SOCKETCALL_CALLS[1][0] == "socket" and SOCKETCALL_CALLS[8][0] == "socketpair"
    assert SOCKETCALL_CALLS[9][0] == "sendto" and SOCKETCALL_CALLS[10][0] == "recvfrom"
