"""Capability names and numbers (include/uapi/linux/capability.h), and what a policy's
``[capabilities]`` table asks the launcher to drop before the target execs."""

from __future__ import annotations

from dataclasses import dataclass

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
