"""A policy's filter plan as an OCI ``linux.seccomp`` object (runtime-spec config-linux.md).

PURE: ``FilterPlan`` (``plan.plan_filter``) in, a JSON-able dict out. The runtime (runc, and
Podman, CRI-O, containerd through it) builds the filter from it with libseccomp, as
``kernel.filter`` does for ``run``, and hands the listener to the agent at ``listenerPath``
(``daemon.oci``), which supervises the container under the policy named in
``listenerMetadata`` (``policy=NAME``):

- the filter default → ``defaultAction`` (allow → SCMP_ACT_ALLOW, deny → SCMP_ACT_ERRNO with
  ``defaultErrnoRet``, kill → SCMP_ACT_KILL_PROCESS);
- each kernel rule → a ``syscalls`` entry: unconditioned ones grouped by action (``names``),
  conditioned ones one entry each with ``args`` (SCMP_CMP_*; for ``&=`` ``value`` is the mask
  and ``valueTwo`` the value, as libseccomp takes them), ANDed as in our filter;
- what the supervisor decides → SCMP_ACT_NOTIFY.

What runc refuses, and how it is mapped:
- SCMP_ACT_NOTIFY as ``defaultAction`` (runc must write the listener's number to its parent
  after installing the filter): a ``default = "log"`` policy names every notified syscall
  explicitly and defaults to SCMP_ACT_ERRNO ENOSYS — what our filter does for numbers outside
  its tables; every known syscall is either decided or notified (a notified syscall's
  conditioned kernel rules are left to the engine, which decides it by value);
- SCMP_ACT_NOTIFY on ``write`` (same reason): ``OciProfileError``, naming the syscall.
``architectures`` covers x86_64 and x86 (i386), as our filter does; x32 is not listed (our
filter kills x32 calls, libseccomp refuses them by its bad-arch action). Syscalls libseccomp
cannot name (``unnameable``, from ``kernel.filter.libseccomp_gaps``) cannot be in an OCI
profile: a rule on one is left out and reported in the warnings. runc fails every syscall
newer than the newest one a profile names with ENOSYS (its "enosys stub"), so there these fail
closed; another runtime may give them ``defaultAction``. Our own filter decides them by number.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any

from .errors import PolicyError
from .plan import NOTIFY, FilterPlan, KernelAction, KernelRule

ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86")
OPS = {
    "==": "SCMP_CMP_EQ",
    "!=": "SCMP_CMP_NE",
    "<": "SCMP_CMP_LT",
    "<=": "SCMP_CMP_LE",
    ">": "SCMP_CMP_GT",
    ">=": "SCMP_CMP_GE",
    "&=": "SCMP_CMP_MASKED_EQ",
}
# Syscalls runc needs to hand the listener over after installing the filter.
NEVER_NOTIFIED = ("write",)


class OciProfileError(PolicyError):
    """A policy whose filter an OCI runtime cannot install."""


def oci_action(action: KernelAction) -> dict[str, Any]:
    if action.kind == "allow":
        return {"action": "SCMP_ACT_ALLOW"}
    if action.kind == "errno":
        return {"action": "SCMP_ACT_ERRNO", "errnoRet": action.errno}
    if action.kind == "kill":
        return {"action": "SCMP_ACT_KILL_PROCESS"}
    if action.kind == "notify":
        return {"action": "SCMP_ACT_NOTIFY"}
    raise OciProfileError(f"no OCI action for {action.kind!r}")


def _args(rule: KernelRule) -> list[dict[str, Any]]:
    out = []
    for c in rule.conditions:
        if c.op == "&=":
            out.append({"index": c.index, "value": c.mask, "valueTwo": c.value, "op": OPS[c.op]})
        else:
            out.append({"index": c.index, "value": c.value, "op": OPS[c.op]})
    return out


def oci_seccomp(
    plan: FilterPlan,
    *,
    policy_name: str,
    listener_path: str,
    unnameable: Iterable[str] = (),
) -> tuple[dict[str, Any], list[str]]:
    """(the ``linux.seccomp`` object, warnings) for ``plan``. Raises OciProfileError."""
    warnings: list[str] = []
    default = plan.default
    rules = list(plan.rules)
    if default == NOTIFY:
        # Conditioned rules of a notified syscall go too: the engine decides it by value.
        rules = [r for r in rules if r.syscall not in plan.notified]
        rules += [KernelRule(name, NOTIFY) for name in sorted(plan.notified)]
        default = KernelAction("errno", errno.ENOSYS)
    for name in NEVER_NOTIFIED:
        if any(r.syscall == name and r.action == NOTIFY for r in rules):
            raise OciProfileError(
                f"the policy has the supervisor decide {name!r}, which an OCI runtime cannot "
                f"hand over (runc refuses SCMP_ACT_NOTIFY on {name}): decide it by value"
            )
    gaps = set(unnameable)
    left_out = sorted({r.syscall for r in rules if r.syscall in gaps})
    if left_out:
        warnings.append(
            "libseccomp cannot name these syscalls, so an OCI profile cannot rule on them "
            "(runc fails syscalls newer than the newest a profile names with ENOSYS; another "
            f"runtime may give them defaultAction): {', '.join(left_out)}"
        )
    grouped: dict[tuple[str, int], list[str]] = {}
    entries: list[dict[str, Any]] = []
    for rule in rules:
        if rule.syscall in gaps or (rule.action == default and not rule.conditions):
            continue
        action = oci_action(rule.action)
        if rule.conditions:
            entries.append({"names": [rule.syscall], **action, "args": _args(rule)})
        else:
            grouped.setdefault((action["action"], action.get("errnoRet", 0)), []).append(
                rule.syscall
            )
    head = []
    for (kind, errno_ret), names in sorted(grouped.items()):
        entry: dict[str, Any] = {"names": sorted(set(names)), "action": kind}
        if kind == "SCMP_ACT_ERRNO":
            entry["errnoRet"] = errno_ret
        head.append(entry)
    profile: dict[str, Any] = {"defaultAction": oci_action(default)["action"]}
    if default.kind == "errno":
        profile["defaultErrnoRet"] = default.errno
    profile.update(
        {
            "architectures": list(ARCHITECTURES),
            "listenerPath": listener_path,
            "listenerMetadata": f"policy={policy_name}",
            "syscalls": head + entries,
        }
    )
    return profile, warnings
