"""Advisory allows: where the policy lets a syscall through because of what a path pointed at,
but the supervisor cannot perform that syscall itself.

seccomp can only say CONTINUE (the kernel then re-reads the path buffer) unless the supervisor
performs the call itself (EMULATED_SYSCALLS: the open family). A thread of the target racing
the buffer can change the path between the check and the kernel's read, so an allow (or log)
that depended on the path is advice, not enforcement, for every other path syscall. A deny is
always safe. These warnings are computed at load into Policy.warnings and shown by `explain`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import Action, Rule, rule_syscalls, rules_by_syscall
from .syscalls import EMULATED_SYSCALLS

EXEC_SYSCALLS = frozenset({"execve", "execveat"})  # as policy/argv.py

# Performed by the supervisor after an address check (supervisor/netcalls.py). So are connect,
# sendto and sendmsg, except on unix sockets: those are resumed (the server would see the
# supervisor's credentials), so their allows after an address check are advisory there.
PERFORMED_ADDRESS_SYSCALLS = frozenset({"bind"})
_LETS_THROUGH = (Action.ALLOW, Action.LOG)


def summarize(names: Iterable[str], limit: int = 8) -> str:
    """``a, b, c`` or ``a, ... h and N more`` (sorted)."""
    ordered = sorted(names)
    if len(ordered) <= limit:
        return ", ".join(ordered)
    return f"{', '.join(ordered[:limit])} and {len(ordered) - limit} more"


def _unconditional(rule: Rule) -> bool:
    """A rule that matches every call of its syscalls (no argument, path or address test)."""
    return not rule.args and not rule.paths and not rule.addresses and not rule.argv


def _can_let_through_after(rules: tuple[Rule, ...], start: int, default: Action) -> bool:
    """Whether, past rules[start], a later rule or the default can allow or log."""
    for later in rules[start + 1 :]:
        if later.action in _LETS_THROUGH:
            return True
        if _unconditional(later) and not later.may_fall_through:
            return False  # an unconditional refusal: nothing after it is reached
    return default in _LETS_THROUGH


def advisory_syscalls(rules: tuple[Rule, ...], default: Action) -> dict[str, frozenset[str]]:
    """Per rule name: the non-emulated syscalls whose allow/log after this rule's path
    inspection is only advisory. Rules without such syscalls are left out."""
    table = rules_by_syscall(rules)
    out: dict[str, frozenset[str]] = {}
    for rule in rules:
        if not rule.paths and not rule.addresses and not rule.argv:
            continue
        hit = set()
        for name in rule_syscalls(rule):
            if name in EMULATED_SYSCALLS or (rule.addresses and name in PERFORMED_ADDRESS_SYSCALLS):
                continue
            applicable = table[name]
            pos = applicable.index(rule)
            if any(_unconditional(r) and not r.may_fall_through for r in applicable[:pos]):
                continue  # an earlier unconditional rule decides: this one is never reached
            if rule.action in _LETS_THROUGH or _can_let_through_after(applicable, pos, default):
                hit.add(name)
        if hit:
            out[rule.name] = frozenset(hit)
    return out


def _refused(rules: tuple[Rule, ...], default: Action) -> bool:
    """Whether a syscall with these rules is always refused."""
    for rule in rules:
        if rule.action in _LETS_THROUGH:
            return False
        if _unconditional(rule) and not rule.may_fall_through:
            return rule.action.refuses
    return default.refuses


def advisory_warnings(rules: tuple[Rule, ...], default: Action) -> tuple[str, ...]:
    """One short warning per rule with advisory allows."""
    found = advisory_syscalls(rules, default)
    out = []
    for rule in rules:
        names = found.get(rule.name)
        if names and rule.addresses:
            out.append(
                f"{rule.where()}: allows of {summarize(names)} after address inspection are "
                "advisory for unix sockets (resumed: performed by the supervisor, the server "
                "would see its credentials), where a thread racing the address buffer and the "
                "fd table can change what the kernel uses, and for sendmmsg (each message's "
                "address checked, then resumed); connect, bind, sendto and sendmsg on IPv4/IPv6 "
                "sockets are performed by the supervisor"
            )
            continue
        if names:
            out.append(
                f"{rule.where()}: allows of {summarize(names)} after path inspection are "
                "advisory: the supervisor cannot perform these syscalls itself, so a thread "
                "racing the path buffer can change what the kernel uses"
                + exec_note(rule, names & EXEC_SYSCALLS)
            )
    mmsg = rules_by_syscall(rules).get("sendmmsg", ())
    if (
        any(r.addresses for r in rules)
        and not any(r.addresses for r in mmsg)
        and not _refused(mmsg, default)
    ):
        out.append(
            "no address rule applies to sendmmsg (one address per message): name it in the "
            "`syscalls` of the address rules, or refuse it, where destinations matter"
        )
    return tuple(out)


def exec_note(rule: Rule, execs: frozenset[str]) -> str:
    """What is verified after an exec the rule lets through, and what stays advisory
    (supervisor/execcalls.py, docs/policy.md "Exec rules"); "" without exec syscalls."""
    if not execs:
        return ""
    text = (
        f"; {'/'.join(sorted(execs))} are then VERIFIED (the executed file must be the checked "
        "one, else SIGKILL; a raced exec may run a few ms)"
    )
    if rule.argv:
        text += "; argv is ADVISORY (not re-verified; denials by argv are enforced)"
    return text
