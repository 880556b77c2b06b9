"""Socket addresses of connect, bind, sendto and sendmsg: untrusted bytes → a plain value.

The loop reads the target's ``struct sockaddr`` (and, for sendmsg, its ``struct msghdr``) and
hands the bytes here; nothing in this module does I/O. The bytes are interpreted as the kernel
would interpret them (net/socket.c, net/ipv4/af_inet.c, net/ipv6, net/unix/af_unix.c):

* ``AF_INET``: at least 16 bytes (``sizeof(struct sockaddr_in)``), else the kernel says EINVAL.
* ``AF_INET6``: at least 24 bytes (SIN6_LEN_RFC2133). A v4-mapped address (``::ffff:a.b.c.d``)
  is IPv4 traffic: it becomes an ``inet`` address, so IPv4 rules apply to it.
* ``AF_UNIX``: 2 bytes only is an unnamed address (bind: autobind); more than 110 bytes is
  EINVAL; a sun_path starting with NUL is an abstract name (every following byte counts); else a
  path, cut at the first NUL.
* ``AF_UNSPEC``: for connect, a disconnect (no destination). For bind and the sends, IPv4
  sockets take it as an IPv4 address (``inet_bind`` accepts it with INADDR_ANY, ``udp_sendmsg``
  uses its sin_addr), so it is read as a sockaddr_in: rules see what the kernel may use.
* Any other family: ``other`` (netlink, packet, vsock ...): address rules do not concern it.

A kind that names no address (``invalid``, ``other``, ``unspec``, ``unnamed``, ``none``) matches no
address rule; see docs/policy.md.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

AF_UNSPEC = 0
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
SOCKADDR_STORAGE = 128  # the kernel copies at most this many bytes of an address
SOCKADDR_IN = 16
SIN6_LEN_RFC2133 = 24
SOCKADDR_UN = 110

# The syscalls that take a destination (or local) address.
ADDRESS_SYSCALLS: frozenset[str] = frozenset({"connect", "bind", "sendto", "sendmsg", "sendmmsg"})
# i386 socketcall(call, args): every call (net/socket.c), as (the syscall it is decided as, how
# many 32-bit arguments the kernel reads from ``args``). SYS_SEND and SYS_RECV are sendto and
# recvfrom with a NULL address (what the kernel runs; x86_64 has no send/recv either), SYS_ACCEPT
# is accept. A call outside 1-20 is EINVAL before the kernel reads anything.
SOCKETCALL_CALLS: dict[int, tuple[str, int]] = {
    1: ("socket", 3),
    2: ("bind", 3),
    3: ("connect", 3),
    4: ("listen", 2),
    5: ("accept", 3),
    6: ("getsockname", 3),
    7: ("getpeername", 3),
    8: ("socketpair", 4),
    9: ("sendto", 4),  # SYS_SEND
    10: ("recvfrom", 4),  # SYS_RECV
    11: ("sendto", 6),
    12: ("recvfrom", 6),
    13: ("shutdown", 2),
    14: ("setsockopt", 5),
    15: ("getsockopt", 5),
    16: ("sendmsg", 3),
    17: ("recvmsg", 3),
    18: ("accept4", 4),
    19: ("recvmmsg", 5),
    20: ("sendmmsg", 4),
}
SYS_SOCKET = 1
SYS_SOCKETPAIR = 8
# The syscalls socketcall reaches: libseccomp turns a kernel rule on one of them into a socketcall
# rule on its call number, but drops the rule's argument conditions (they are in memory), so a
# conditioned rule on any of them makes the plan notify socketcall (supervisor/policy/plan.py).
SOCKETCALL_SYSCALLS: frozenset[str] = frozenset(name for name, _ in SOCKETCALL_CALLS.values())
# struct msghdr: (size, format of msg_name and msg_namelen at offset 0) per ABI.
MSGHDR: dict[str, tuple[int, str]] = {"x86_64": (56, "<Qi"), "i386": (28, "<Ii")}
# struct mmsghdr (sendmmsg): a msghdr and an unsigned msg_len, padded.
MMSGHDR_SIZE: dict[str, int] = {"x86_64": 64, "i386": 32}

# kinds
INET = "inet"
INET6 = "inet6"
UNIX = "unix"
ABSTRACT = "abstract"
UNNAMED = "unnamed"
UNSPEC = "unspec"
OTHER = "other"
INVALID = "invalid"
NONE = "none"
NAMED_KINDS = frozenset({INET, INET6, UNIX, ABSTRACT})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SockAddr:
    """One address as the kernel would use it.

    ``raw`` is exactly what was read (what an emulated connect/bind passes to the kernel).
    ``ip``/``port`` for inet and inet6; ``name`` for unix (sun_path up to its NUL) and abstract
    (the bytes after the leading NUL). ``resolved`` is filled in by the loop for unix paths: the
    canonical path in the target's view, which rules match.
    """

    kind: str
    raw: bytes = b""
    family: int = -1
    ip: IPAddress | None = None
    port: int = 0
    name: bytes = b""
    resolved: str | None = None

    @property
    def named(self) -> bool:
        """Whether address rules can match it."""
        return self.kind in NAMED_KINDS

    def describe(self) -> str:
        """``10.0.0.1:443``, ``[::1]:80``, ``unix:/run/x.sock``, ``unix-abstract:name``, ..."""
        if self.kind == INET:
            return f"{self.ip}:{self.port}"
        if self.kind == INET6:
            return f"[{self.ip}]:{self.port}"
        if self.kind == UNIX:
            return "unix:" + (self.resolved or self.name.decode("utf-8", "surrogateescape"))
        if self.kind == ABSTRACT:
            return "unix-abstract:" + self.name.decode("utf-8", "backslashreplace")
        if self.kind == OTHER:
            return f"family {self.family}"
        return self.kind


NO_ADDRESS = SockAddr(NONE)


def parse_sockaddr(raw: bytes, syscall: str) -> SockAddr:
    """The address in ``raw`` (at most 128 bytes: the loop refuses longer ones with EINVAL)."""
    if len(raw) < 2:
        return SockAddr(INVALID, raw)
    family = raw[0] | raw[1] << 8
    if family == AF_INET or (family == AF_UNSPEC and syscall != "connect"):
        if len(raw) < SOCKADDR_IN:
            return SockAddr(INVALID, raw, family)
        port = struct.unpack_from(">H", raw, 2)[0]
        return SockAddr(INET, raw, family, ipaddress.IPv4Address(raw[4:8]), port)
    if family == AF_UNSPEC:
        return SockAddr(UNSPEC, raw, family)
    if family == AF_INET6:
        if len(raw) < SIN6_LEN_RFC2133:
            return SockAddr(INVALID, raw, family)
        port = struct.unpack_from(">H", raw, 2)[0]
        ip6 = ipaddress.IPv6Address(raw[8:24])
        mapped = ip6.ipv4_mapped
        if mapped is not None:
            return SockAddr(INET, raw, family, mapped, port)
        return SockAddr(INET6, raw, family, ip6, port)
    if family == AF_UNIX:
        if len(raw) > SOCKADDR_UN:
            return SockAddr(INVALID, raw, family)
        if len(raw) == 2:
            return SockAddr(UNNAMED if syscall == "bind" else INVALID, raw, family)
        if raw[2] == 0:
            return SockAddr(ABSTRACT, raw, family, name=raw[3:])
        return SockAddr(UNIX, raw, family, name=raw[2:].split(b"\0", 1)[0])
    return SockAddr(OTHER, raw, family)


def parse_msghdr(raw: bytes, arch: str) -> tuple[int, int]:
    """(msg_name pointer, msg_namelen) of a struct msghdr of ``arch`` (raw is MSGHDR[arch][0]
    bytes). The kernel takes msg_namelen as an int: negative is EINVAL, above 128 is clamped."""
    _size, fmt = MSGHDR[arch]
    ptr, namelen = struct.unpack_from(fmt, raw, 0)
    return int(ptr), int(namelen)


def unpack_socketcall_args(raw: bytes, count: int) -> tuple[int, ...]:
    """The i386 socketcall argument array (``count`` unsigned 32-bit values), padded to six."""
    values = struct.unpack_from(f"<{count}I", raw, 0)
    return (*values, *(0,) * (6 - count))


# The whole struct msghdr (msg_flags aside) and struct iovec, per ABI.
_MSGHDR_ALL = {"x86_64": "<Qi4xQQQQ", "i386": "<IiIIII"}
IOVEC: dict[str, tuple[int, str]] = {"x86_64": (16, "<QQ"), "i386": (8, "<II")}
UIO_MAXIOV = 1024


@dataclass(frozen=True)
class MsgHdr:
    """The pointers and lengths of a struct msghdr (``controllen`` and ``iovlen`` unsigned)."""

    name: int
    namelen: int
    iov: int
    iovlen: int
    control: int
    controllen: int


def parse_msghdr_all(raw: bytes, arch: str) -> MsgHdr:
    """Every field of a struct msghdr of ``arch`` but msg_flags (raw is MSGHDR[arch][0] bytes)."""
    return MsgHdr(*(int(v) for v in struct.unpack_from(_MSGHDR_ALL[arch], raw, 0)))


def parse_iovecs(raw: bytes, arch: str) -> list[tuple[int, int]]:
    """(base, length) of each struct iovec in ``raw``."""
    size, fmt = IOVEC[arch]
    return [
        (int(base), int(length))
        for base, length in (struct.unpack_from(fmt, raw, i) for i in range(0, len(raw), size))
    ]
