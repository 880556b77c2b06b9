"""A Docker/OCI seccomp profile as a TOML policy (``policy import``): PURE, JSON in, text out.

The policy decides what the profile decides, and users extend it with path and address rules
(which the profile cannot express). How each part is mapped:

- ``defaultAction`` → ``default``: SCMP_ACT_ALLOW → allow; SCMP_ACT_ERRNO → deny with
  ``default_errno`` = ``defaultErrnoRet`` (EPERM when absent, as runc does); SCMP_ACT_KILL,
  SCMP_ACT_KILL_PROCESS → kill; SCMP_ACT_KILL_THREAD → kill (the whole process: stricter);
  SCMP_ACT_LOG → log (allowed, and logged by the supervisor).
- each ``syscalls[]`` entry → one rule, in the profile's order: ``names`` (or the old ``name``)
  → ``syscalls``; its action as above (``errnoRet`` → ``errno``); ``args`` → ``args``
  (SCMP_CMP_EQ/NE/LT/LE/GT/GE → ==, !=, <, <=, >, >=; SCMP_CMP_MASKED_EQ → ``&=`` with ``mask``
  = value and ``value`` = valueTwo), ANDed. A syscall in two unconditioned entries gets the
  first one's action under runc (libseccomp keeps the first rule: checked with runc 1.1.5),
  which is the policy's first match too.
- moby's ``includes``/``excludes`` (``arches``, ``caps``, ``minKernel``) are evaluated here, as
  Docker and Podman evaluate them when they build a container's profile: for the ``arch`` (Go's
  name: amd64), the capability set ``caps`` (Podman's defaults unless given) and the ``kernel``
  version given. An entry that does not apply is left out and listed in the header.
- a rule also covers the i386 twins of the syscalls it names (``policy/twins.py``); twins the
  profile names nowhere get its default from a first rule, as under the profile.
- names our syscall tables do not know (other architectures' syscalls: ``arm_fadvise64_64``,
  ``s390_pci_mmio_read``, ...) are left out and listed in the header; they cannot occur here.
- ``architectures``/``archMap``: our policies always cover x86_64 and its i386 ABI; a profile
  that leaves x86 out is refused, since it would refuse every i386 syscall, which a policy
  cannot say.

Anything else is an error naming it (``ImportError_``): SCMP_ACT_TRAP, SCMP_ACT_TRACE and
SCMP_ACT_NOTIFY (nothing here means the same), an unknown operator or field, and a syscall that
has an unconditioned entry and conditioned ones with another action (libseccomp's precedence
between them is not first-match, so the rule order could not say it).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterable
from typing import Any

from .errors import PolicyError
from .tables.constants import errno_name
from .tables.syscalls import KNOWN_SYSCALLS
from .twins import twins_of

# Podman 4's default capabilities (containers.conf default_capabilities).
PODMAN_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
    "CAP_SYS_CHROOT",
)  # fmt: skip
ACTIONS = {
    "SCMP_ACT_ALLOW": "allow",
    "SCMP_ACT_ERRNO": "deny",
    "SCMP_ACT_KILL": "kill",
    "SCMP_ACT_KILL_PROCESS": "kill",
    "SCMP_ACT_KILL_THREAD": "kill",
    "SCMP_ACT_LOG": "log",
}
OPS = {
    "SCMP_CMP_EQ": "==",
    "SCMP_CMP_NE": "!=",
    "SCMP_CMP_LT": "<",
    "SCMP_CMP_LE": "<=",
    "SCMP_CMP_GT": ">",
    "SCMP_CMP_GE": ">=",
    "SCMP_CMP_MASKED_EQ": "&=",
}
# ``errno`` (containers-common: the name of ``errnoRet``) is informative; ``errnoRet`` decides.
ENTRY_KEYS = {"names", "name", "action", "errnoRet", "errno", "args", "includes", "excludes",
              "comment"}  # fmt: skip
TOP_KEYS = {"defaultAction", "defaultErrnoRet", "defaultErrno", "architectures", "archMap",
            "syscalls", "flags", "listenerPath", "listenerMetadata"}  # fmt: skip
X86 = ("SCMP_ARCH_X86", "x86")


class ImportError_(PolicyError):  # noqa: N801 (ImportError is a builtin)
    """A profile, or a part of one, that has no policy equivalent."""


def _version(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("-")[0].split("."):
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def _applies(entry: dict[str, Any], arch: str, caps: set[str], kernel: str) -> str | None:
    """None when ``entry`` applies, else why not (moby's seccomp.go rules)."""
    inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
    if not isinstance(inc, dict) or not isinstance(exc, dict):
        raise ImportError_("includes/excludes must be objects")
    for key in set(inc) | set(exc):
        if key not in ("arches", "caps", "minKernel"):
            raise ImportError_(f"includes/excludes: unknown key {key!r}")
    if arch in (exc.get("arches") or []):
        return f"excluded on {arch}"
    if any(c in caps for c in exc.get("caps") or []):
        return f"excluded with {', '.join(c for c in exc['caps'] if c in caps)}"
    if inc.get("arches") and arch not in inc["arches"]:
        return f"only on {', '.join(inc['arches'])}"
    missing = [c for c in inc.get("caps") or [] if c not in caps]
    if missing:
        return f"only with {', '.join(missing)}"
    if inc.get("minKernel") and _version(kernel) < _version(str(inc["minKernel"])):
        return f"only from Linux {inc['minKernel']}"
    return None


def _action(name: Any, errno_ret: Any, where: str) -> tuple[str, int | None]:
    if name not in ACTIONS:
        raise ImportError_(f"{where}: action {name!r} has no policy equivalent")
    if ACTIONS[name] != "deny":
        return ACTIONS[name], None
    if errno_ret is None:
        return "deny", errno.EPERM
    if not isinstance(errno_ret, int) or not 0 < errno_ret < 4096:
        raise ImportError_(f"{where}: errnoRet must be an errno number")
    return "deny", errno_ret


def _arg(cond: Any, where: str) -> str:
    if not isinstance(cond, dict) or cond.get("op") not in OPS:
        raise ImportError_(f"{where}: argument condition {cond!r} has no policy equivalent")
    index, value, two = cond.get("index"), cond.get("value", 0), cond.get("valueTwo", 0)
    if not isinstance(index, int) or not 0 <= index <= 5:
        raise ImportError_(f"{where}: argument index {index!r}")
    if not all(isinstance(v, int) and 0 <= v < 1 << 64 for v in (value, two)):
        raise ImportError_(f"{where}: argument values must be unsigned 64-bit integers")
    op = OPS[cond["op"]]
    if op == "&=":
        return f'{{ arg = {index}, op = "&=", mask = {value:#x}, value = {two:#x} }}'
    return f'{{ arg = {index}, op = "{op}", value = {value} }}'


def import_profile(
    profile: dict[str, Any],
    *,
    name: str,
    source: str,
    arch: str = "amd64",
    caps: Iterable[str] = PODMAN_CAPS,
    kernel: str = "6.0",
) -> str:
    """The TOML text of a policy named ``name`` deciding what ``profile`` decides."""
    unknown = set(profile) - TOP_KEYS
    if unknown:
        raise ImportError_(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        arches += [entry.get("architecture"), *(entry.get("subArchitectures") or [])]
    if arches and not any(a in X86 for a in arches):
        raise ImportError_(
            "the profile leaves out SCMP_ARCH_X86 (every i386 syscall refused): a policy always "
            "covers the i386 ABI of x86_64 by its rules, so it cannot say that"
        )
    default, default_errno = _action(
        profile.get("defaultAction"), profile.get("defaultErrnoRet"), "defaultAction"
    )
    capset = set(caps)
    entries = profile.get("syscalls") or []
    if not isinstance(entries, list):
        raise ImportError_('"syscalls" must be a list')
    rules: list[str] = []
    skipped: list[str] = []
    foreign: set[str] = set()
    seen: dict[str, list[tuple[str, bool]]] = {}  # syscall -> [(action, conditioned)]
    for i, entry in enumerate(entries):
        where = f"syscalls[{i}]"
        if not isinstance(entry, dict):
            raise ImportError_(f"{where}: not an object")
        extra = set(entry) - ENTRY_KEYS
        if extra:
            raise ImportError_(f"{where}: unknown keys {', '.join(sorted(extra))}")
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ImportError_(f"{where}: names must be a list of strings")
        why = _applies(entry, arch, capset, kernel)
        if why is not None:
            skipped.append(
                f"{where} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}): {why}"
            )
            continue
        action, err = _action(entry.get("action"), entry.get("errnoRet"), where)
        args = [_arg(c, where) for c in entry.get("args") or []]
        foreign |= {n for n in names if n not in KNOWN_SYSCALLS}
        known = [n for n in names if n in KNOWN_SYSCALLS]
        if not known:
            continue
        for n in known:  # where both exist they agree (checked below): order does not matter
            seen.setdefault(n, []).append((f"{action} {err}", bool(args)))
        lines = [
            "[[rule]]",
            f'name = "{name}-{i}"',
            f"syscalls = {json.dumps(sorted(set(known)))}",
            f'action = "{action}"',
        ]
        if err is not None:
            lines.append(f'errno = "{errno_name(err)}"')
        if args:
            lines.append(f"args = [{', '.join(args)}]")
        rules.append("\n".join(lines))
    for syscall, uses in sorted(seen.items()):
        whole = {a for a, cond in uses if not cond}
        conditioned = {a for a, cond in uses if cond}
        if whole and conditioned - whole:
            raise ImportError_(
                f"{syscall}: unconditioned and conditioned entries with different actions "
                "(libseccomp's precedence between them is not an order a policy can say)"
            )
    # A rule also covers the i386 twins of the syscalls it names (policy/twins.py); those the
    # profile names nowhere get its default there, so a first rule gives them that here too.
    unnamed_twins = sorted(twins_of(seen))
    if unnamed_twins:
        lines = [
            "[[rule]]",
            f'name = "{name}-unlisted-twins"',
            "# i386 twins of syscalls below that the profile does not name: its default",
            f"syscalls = {json.dumps(unnamed_twins)}",
            f'action = "{default}"',
        ]
        if default_errno is not None:
            lines.append(f'errno = "{errno_name(default_errno)}"')
        rules.insert(0, "\n".join(lines))
    head = [
        f"# Imported from {source} by `seccomp-supervisor policy import`",
        f"# (includes/excludes evaluated for arch {arch}, Linux {kernel}, capabilities "
        f"{' '.join(sorted(capset)) or 'none'}).",
    ]
    if skipped:
        head.append("# Entries that do not apply here, left out:")
        head += [f"#   {s}" for s in skipped]
    if foreign:
        head.append("# Syscalls of other architectures, left out: " + " ".join(sorted(foreign)))
    head.append(
        "# Add path and address rules ABOVE the imported ones: the first matching rule decides."
    )
    text = "\n".join(head) + "\n\nversion = 1\n"
    text += f'name = "{name}"\n'
    text += f"description = {json.dumps(f'imported from {source}')}\n"
    text += f'default = "{default}"\n'
    if default_errno is not None:
        text += f'default_errno = "{errno_name(default_errno)}"\n'
    return text + "\n" + "\n\n".join(rules) + "\n"
