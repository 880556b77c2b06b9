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


# -- merging into a runtime's profile ----------------------------------------------------------
def plan_actions(plan: FilterPlan) -> dict[str, KernelAction]:
    """The kernel action of each known syscall under ``plan`` when merged into another profile:
    notified ones, and those with conditioned kernel rules (the engine decides them by value),
    are NOTIFY; the others their unconditioned rule's action or the default."""
    out: dict[str, KernelAction] = {}
    conditioned = {r.syscall for r in plan.rules if r.conditions}
    whole = {r.syscall: r.action for r in plan.rules if not r.conditions}
    for name in plan.notified | plan.kernel_decided:
        if name in plan.notified or name in conditioned:
            out[name] = NOTIFY
        else:
            out[name] = whole.get(name, plan.default)
    return out


def _names(entry: dict[str, Any]) -> list[str]:
    names = entry.get("names")
    if isinstance(names, list):
        return [n for n in names if isinstance(n, str)]
    name = entry.get("name")
    return [name] if isinstance(name, str) else []


def merge_into_base(
    plan: FilterPlan,
    base: dict[str, Any],
    *,
    policy_name: str,
    listener_path: str,
    unnameable: Iterable[str] = (),
) -> tuple[dict[str, Any], list[str]]:
    """(``base`` with the policy merged in, what the merge changed). The stricter of the two
    wins for each syscall: where the base allows a syscall the supervisor decides, that entry
    becomes SCMP_ACT_NOTIFY (its conditions, ``includes``/``excludes`` kept); a syscall the
    policy denies or kills is taken out of the base's entries and given the policy's action
    (unless the base always denies it and the policy only denies too); what the base denies
    stays denied, also where the policy would allow it. Raises OciProfileError."""
    entries = base.get("syscalls", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise OciProfileError('base profile: "syscalls" must be a list of objects')
    base_default = base.get("defaultAction")
    if not isinstance(base_default, str):
        raise OciProfileError('base profile: no "defaultAction"')
    gaps = set(unnameable)
    actions = {n: a for n, a in plan_actions(plan).items() if n not in gaps}
    allowed_by_base = {n for e in entries if e.get("action") == "SCMP_ACT_ALLOW" for n in _names(e)}
    default_allows = base_default == "SCMP_ACT_ALLOW"
    for name in NEVER_NOTIFIED:
        if actions.get(name) == NOTIFY and (name in allowed_by_base or default_allows):
            raise OciProfileError(
                f"the policy has the supervisor decide {name!r}, which an OCI runtime cannot "
                f"hand over (runc refuses SCMP_ACT_NOTIFY on {name}): decide it by value"
            )
    notified = sorted(n for n, a in actions.items() if a == NOTIFY)
    refusing = {n: a for n, a in actions.items() if a.kind in ("errno", "kill")}
    # Where the policy's refusal is stricter than the base: the base allows the syscall (in some
    # entry, or by default), or the policy kills what the base only fails.
    stricter = {
        n: a
        for n, a in refusing.items()
        if n in allowed_by_base or default_allows or a.kind == "kill"
    }
    merged: list[dict[str, Any]] = []
    for entry in entries:
        names = [n for n in _names(entry) if n not in stricter]
        if not names:
            continue
        if entry.get("action") == "SCMP_ACT_ALLOW":
            to_notify = [n for n in names if actions.get(n) == NOTIFY]
            rest = [n for n in names if actions.get(n) != NOTIFY]
            if rest:
                merged.append({**{k: v for k, v in entry.items() if k != "name"}, "names": rest})
            if to_notify:
                notify = {k: v for k, v in entry.items() if k not in ("name", "errnoRet")}
                merged.append({**notify, "names": to_notify, "action": "SCMP_ACT_NOTIFY"})
            continue
        merged.append({**{k: v for k, v in entry.items() if k != "name"}, "names": names})
    grouped: dict[tuple[str, int], list[str]] = {}
    for name, action in sorted(stricter.items()):
        kind = oci_action(action)
        grouped.setdefault((kind["action"], kind.get("errnoRet", 0)), []).append(name)
    if default_allows:
        extra = [n for n in notified if n not in allowed_by_base]
        if extra:
            grouped.setdefault(("SCMP_ACT_NOTIFY", 0), []).extend(extra)
    for (kind_name, errno_ret), names in sorted(grouped.items()):
        entry = {"names": sorted(names), "action": kind_name}
        if kind_name == "SCMP_ACT_ERRNO":
            entry["errnoRet"] = errno_ret
        merged.append(entry)
    changes: list[str] = []
    now_notified = [n for n in notified if n in allowed_by_base or default_allows]
    if now_notified:
        changes.append(
            f"the supervisor decides (SCMP_ACT_NOTIFY where the base allowed them): "
            f"{', '.join(now_notified)}"
        )
    for (kind_name, _), names in sorted(grouped.items()):
        if kind_name != "SCMP_ACT_NOTIFY":
            changes.append(f"the policy's {kind_name} instead of the base's: {', '.join(names)}")
    never = [n for n in notified if n not in allowed_by_base and not default_allows]
    if never:
        changes.append(
            "the base refuses these, so the policy's rules on them never apply: " + ", ".join(never)
        )
    if base.get("listenerPath") not in (None, listener_path):
        changes.append(f"listenerPath {base['listenerPath']!r} replaced")
    if gaps & set(plan_actions(plan)):
        left = sorted(gaps & {n for n, a in plan_actions(plan).items() if a != plan.default})
        if left:
            changes.append(f"libseccomp cannot name these, left to the base: {', '.join(left)}")
    out = {**base, "syscalls": merged}
    out["listenerPath"] = listener_path
    out["listenerMetadata"] = f"policy={policy_name}"
    return out, changes
