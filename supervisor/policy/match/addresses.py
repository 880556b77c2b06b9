"""Address patterns of the ``address`` rule key, and matching them against a :class:`SockAddr`.

Forms (docs/policy.md):

* ``127.0.0.0/8``, ``10.1.2.3``, ``10.0.0.0/8:443``, ``0.0.0.0/0:8000-8100``: an IPv4 network
  (a bare address is /32) with an optional port or inclusive port range;
* ``[::1]``, ``[::1]:8000-8100``, ``[fd00::]/8:53``, ``[::]/0``: an IPv6 network in brackets,
  then the optional ``/len`` and ports. v4-mapped addresses (``::ffff:a.b.c.d``) are IPv4
  traffic: they match the IPv4 patterns, never the IPv6 ones;
* ``unix:/run/app/*.sock``: a glob (as for ``path``) on the socket's resolved path;
* ``unix-abstract:name*``: a glob on an abstract socket name (``*`` and ``?`` match any
  character, ``/`` included).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .globs import GlobError, compile_globs, glob_to_regex
from .sockaddr import ABSTRACT, INET, INET6, UNIX, SockAddr

__all__ = ["AddressError", "AddressPattern", "SockAddr", "compile_addresses", "parse_address"]

_PORTS = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressError(ValueError):
    """An address pattern that cannot be parsed."""


@dataclass(frozen=True)
class AddressPattern:
    """One parsed pattern. ``kind`` is inet, inet6, unix or abstract."""

    text: str
    kind: str
    network: Network | None = None
    ports: tuple[int, int] | None = None  # inclusive; None: every port
    glob: str = ""


def _ports(text: str, pattern: str) -> tuple[int, int]:
    m = _PORTS.match(text)
    if not m:
        raise AddressError(f"{pattern!r}: bad port {text!r} (a number or a range like 8000-8100)")
    low = int(m.group(1))
    high = int(m.group(2)) if m.group(2) is not None else low
    if high > 65535 or low > high:
        raise AddressError(f"{pattern!r}: bad port range {text!r} (0-65535, low-high)")
    return low, high


def _network(text: str, pattern: str, version: int) -> Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise AddressError(f"{pattern!r}: {e}") from None
    if net.version != version:
        raise AddressError(f"{pattern!r}: not an IPv{version} address")
    mapped = net.network_address.ipv4_mapped if isinstance(net, ipaddress.IPv6Network) else None
    if mapped is not None and net.prefixlen >= 96:
        # ::ffff:a.b.c.d/len is written as the IPv4 network it means.
        v4 = ipaddress.IPv4Network((mapped, net.prefixlen - 96))
        raise AddressError(f"{pattern!r}: a v4-mapped address: write {v4} (IPv4 rules match it)")
    return net


def parse_address(text: str) -> AddressPattern:
    """Parse one pattern; AddressError says what is wrong."""
    if text.startswith("unix:"):
        glob = text[len("unix:") :]
        try:
            glob_to_regex(glob)
        except GlobError as e:
            raise AddressError(f"{text!r}: {e}") from None
        return AddressPattern(text, UNIX, glob=glob)
    if text.startswith("unix-abstract:"):
        glob = text[len("unix-abstract:") :]
        if not glob:
            raise AddressError(f"{text!r}: empty abstract name")
        return AddressPattern(text, ABSTRACT, glob=glob)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise AddressError(f"{text!r}: unclosed '[' (IPv6 addresses are written [::1])")
        addr, rest = text[1:close], text[close + 1 :]
        prefix = ""
        if rest.startswith("/"):
            end = rest.find(":")
            prefix, rest = (rest, "") if end < 0 else (rest[:end], rest[end:])
        ports = None
        if rest:
            if not rest.startswith(":"):
                raise AddressError(f"{text!r}: expected ':port' after the address")
            ports = _ports(rest[1:], text)
        return AddressPattern(text, INET6, _network(addr + prefix, text, 6), ports)
    if text[:1].isdigit():
        addr, sep, port_text = text.partition(":")
        ports = _ports(port_text, text) if sep else None
        return AddressPattern(text, INET, _network(addr, text, 4), ports)
    raise AddressError(
        f"{text!r}: not an address (forms: 10.0.0.0/8, 10.0.0.1:443, [::1]:80, "
        "unix:/run/*.sock, unix-abstract:name)"
    )


def _abstract_regex(glob: str) -> str:
    return fnmatch.translate(glob)


def compile_addresses(patterns: Sequence[AddressPattern]) -> Callable[[SockAddr], bool]:
    """One function: whether an address matches any of ``patterns``. Only named addresses
    (inet, inet6, unix path with its resolved path, abstract) can match."""
    nets = [p for p in patterns if p.kind in (INET, INET6)]
    unix_globs = [p.glob for p in patterns if p.kind == UNIX]
    unix_match = compile_globs(unix_globs) if unix_globs else None
    abstract = [p.glob for p in patterns if p.kind == ABSTRACT]
    abstract_re = (
        re.compile("|".join(f"(?:{_abstract_regex(g)})" for g in abstract)) if abstract else None
    )

    def match(sa: SockAddr) -> bool:
        kind = sa.kind
        if kind in (INET, INET6):
            ip = sa.ip
            for p in nets:
                if p.kind != kind or p.network is None or ip not in p.network:
                    continue
                if p.ports is None or p.ports[0] <= sa.port <= p.ports[1]:
                    return True
            return False
        if kind == UNIX:
            return (
                unix_match is not None and sa.resolved is not None and bool(unix_match(sa.resolved))
            )
        if kind == ABSTRACT:
            name = sa.name.decode("utf-8", "surrogateescape")
            return abstract_re is not None and abstract_re.match(name) is not None
        return False

    return match
