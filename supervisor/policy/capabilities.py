"""Capability names and numbers (include/uapi/linux/capability.h), and what a policy's
``[capabilities]`` table asks the launcher to drop before the target execs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import PolicyError

CAPABILITY_NUMBERS: dict[str, int] = {
    name: number
    for number, name in enumerate(
        (
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_DAC_READ_SEARCH",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETPCAP",
            "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_IPC_LOCK",
            "CAP_IPC_OWNER",
            "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO",
            "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE",
            "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN",
            "CAP_SYS_BOOT",
            "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE",
            "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG",
            "CAP_MKNOD",
            "CAP_LEASE",
            "CAP_AUDIT_WRITE",
            "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP",
            "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN",
            "CAP_SYSLOG",
            "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND",
            "CAP_AUDIT_READ",
            "CAP_PERFMON",
            "CAP_BPF",
            "CAP_CHECKPOINT_RESTORE",
        )
    )
}
CAPABILITY_NAMES: dict[int, str] = {n: name for name, n in CAPABILITY_NUMBERS.items()}


@dataclass(frozen=True)
class Capabilities:
    """A policy's ``[capabilities]``: ``drop`` these, or (``keep`` not None) drop every
    capability but these, including ones newer than this table. Empty: nothing dropped.
    ``line``: where the table starts, when known."""

    drop: frozenset[int] = frozenset()
    keep: frozenset[int] | None = None
    line: int | None = None

    def dropped(self, last_cap: int) -> frozenset[int]:
        """The capability numbers to drop on a kernel whose highest is ``last_cap``
        (/proc/sys/kernel/cap_last_cap)."""
        if self.keep is not None:
            return frozenset(range(last_cap + 1)) - self.keep
        return frozenset(c for c in self.drop if c <= last_cap)

    def describe(self) -> str:
        if self.keep is not None:
            kept = " ".join(CAPABILITY_NAMES[c] for c in sorted(self.keep)) or "none"
            return f"capabilities: keep only {kept} (every other one dropped before exec)"
        if not self.drop:
            return "capabilities: none dropped"
        names = " ".join(CAPABILITY_NAMES[c] for c in sorted(self.drop))
        return f"capabilities: drop {names} (bounding, ambient, inheritable, permitted, effective)"


_TABLE_HEADER = re.compile(r"^\s*\[\s*capabilities\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")
CAPABILITY_KEYS = ("drop", "keep")


def _lines_of(lines: Sequence[str]) -> tuple[int | None, dict[str, int]]:
    """The line of the ``[capabilities]`` header and of each key in it (tomllib keeps none)."""
    header = next((i + 1 for i, ln in enumerate(lines) if _TABLE_HEADER.match(ln)), None)
    keys: dict[str, int] = {}
    if header is not None:
        for lineno in range(header + 1, len(lines) + 1):
            text = lines[lineno - 1]
            if _ANY_HEADER.match(text):
                break
            m = re.match(r"^\s*[\"']?([A-Za-z_]+)[\"']?\s*=", text)
            if m:
                keys.setdefault(m.group(1), lineno)
    return header, keys


def parse_capabilities(value: object, lines: Sequence[str], source: str | None) -> Capabilities:
    """The ``[capabilities]`` table of a policy (docs/policy.md "Capabilities"): exactly one of
    ``drop`` (these are dropped) or ``keep`` (all others are), each a list of ``CAP_*`` names.
    Errors name the file, the line and the key (``capabilities.drop``)."""
    header, key_lines = _lines_of(lines)

    def err(message: str, key: str | None = None) -> PolicyError:
        line = key_lines.get(key, header) if key else header
        return PolicyError(
            message, file=source, line=line, key=f"capabilities.{key}" if key else "capabilities"
        )

    if not isinstance(value, dict):
        raise err("must be a table: write [capabilities] with drop = [...] or keep = [...]")
    for key in value:
        if key not in CAPABILITY_KEYS:
            raise err(f"unknown key {key!r} (expected drop or keep)", key)
    if len(value) != 1:
        raise err("give exactly one of drop (these capabilities) or keep (all but these)")
    ((key, names),) = value.items()
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise err('must be a list of capability names, e.g. ["CAP_SYS_ADMIN"]', key)
    numbers = set()
    for name in names:
        canonical = name.upper()
        if not canonical.startswith("CAP_"):
            canonical = "CAP_" + canonical
        if canonical not in CAPABILITY_NUMBERS:
            raise err(
                f"unknown capability {name!r} (names as in capabilities(7): CAP_SYS_ADMIN, ...)",
                key,
            )
        numbers.add(CAPABILITY_NUMBERS[canonical])
    if key == "keep":
        return Capabilities(keep=frozenset(numbers), line=header)
    return Capabilities(drop=frozenset(numbers), line=header)
