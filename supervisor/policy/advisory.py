"""Advisory allows: where the policy lets a syscall through because of what a path pointed at,
but the supervisor cannot perform that syscall itself.

seccomp can only say CONTINUE (the kernel then re-reads the path buffer) unless the supervisor
performs the call itself (EMULATED_SYSCALLS: the open family, and the filesystem-changing path
syscalls of PERFORMED_FS_SYSCALLS: rename, link, symlink, unlink, mkdir, mknod, chmod, chown,
utimes, truncate, setxattr, ... performed on the fds the decision was made on). A thread of
the target racing the buffer can change the path between the check and the kernel's read, so
an allow (or log) that depended on the path is advice, not enforcement, for every other path
syscall. A deny is always safe. These warnings are computed at load into Policy.warnings and
shown by `explain`.

Also warned about at load: an allowed O_PATH open is resumed after the check (ADDFD cannot
install O_PATH files); io_uring left open beside path or address rules (its operations open,
connect and send without the syscalls the rules are on); a phase-only allow whose syscalls an
allowing rule or the default still lets through after the phase (ending it takes nothing away).
"""

from __future__ import annotations

from collections.abc import Iterable

from .match.argv import EXEC_SYSCALLS
from .model import Action, Rule, rule_syscalls, rules_by_syscall
from .tables.syscalls import ANSWERED_SYSCALLS, EMULATED_SYSCALLS, PERFORMED_FS_SYSCALLS

# After an address check (supervisor/supervise/net/): bind is always performed by the supervisor.
# connect, sendto and sendmsg are performed on IPv4/IPv6 sockets but resumed (advisory) on unix
# sockets (performed, the server would see the supervisor's credentials) and, for sends, on
# other kinds of socket (SCTP ...). sendmmsg is always resumed (advisory).
PERFORMED_ADDRESS_SYSCALLS = frozenset({"bind"})
UNIX_ADVISORY_ADDRESS_SYSCALLS = frozenset({"connect", "sendto", "sendmsg"})
RESUMED_ADDRESS_SYSCALLS = frozenset({"sendmmsg"})
# The opens whose flags can hold O_PATH (openat2's are in its struct open_how).
O_PATH_SYSCALLS = frozenset({"open", "openat", "openat2"})
# io_uring: rings made by io_uring_setup run operations (IORING_OP_OPENAT, _STATX, _RENAMEAT,
# _UNLINKAT, _CONNECT, _SENDMSG, _SOCKET, ...) without the syscalls rules are written on.
IO_URING_SETUP = "io_uring_setup"
IO_URING_SYSCALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register")
# What shows a file under another path (a bind mount; a detached tree from open_tree or fsmount,
# reached through its fd) or opens one without a path: path rules need them refused.
PATH_UNDOERS = ("mount", "open_tree", "move_mount", "fsmount", "open_by_handle_at")
_LETS_THROUGH = (Action.ALLOW, Action.LOG)
# Path rules that protect something: refusals, and allows (of an allow-list). Not fault
# injection, `value` answers or `log`.
_PROTECTS = (Action.DENY, Action.KILL, Action.ALLOW)


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


def _inspected_allow(
    rule: Rule, name: str, table: dict[str, tuple[Rule, ...]], default: Action
) -> bool:
    """Whether a call of ``name`` can be let through after ``rule`` looked behind a pointer
    (by the rule itself, or by a later rule or the default)."""
    applicable = table[name]
    pos = applicable.index(rule)
    if any(_unconditional(r) and not r.may_fall_through for r in applicable[:pos]):
        return False  # an earlier unconditional rule decides: this one is never reached
    return rule.action in _LETS_THROUGH or _can_let_through_after(applicable, pos, default)


def advisory_syscalls(rules: tuple[Rule, ...], default: Action) -> dict[str, frozenset[str]]:
    """Per rule name: the non-emulated syscalls whose allow/log after this rule's path
    inspection is only advisory (for address rules: advisory on some kinds of socket, see
    UNIX_ADVISORY_ADDRESS_SYSCALLS). Rules without such syscalls are left out."""
    table = rules_by_syscall(rules)
    out: dict[str, frozenset[str]] = {}
    for rule in rules:
        if not rule.paths and not rule.addresses and not rule.argv:
            continue
        hit = set()
        for name in rule_syscalls(rule):
            if name in EMULATED_SYSCALLS or (rule.addresses and name in PERFORMED_ADDRESS_SYSCALLS):
                continue
            if _inspected_allow(rule, name, table, default):
                hit.add(name)
        if hit:
            out[rule.name] = frozenset(hit)
    return out


def o_path_syscalls(rules: tuple[Rule, ...], default: Action) -> dict[str, frozenset[str]]:
    """Per rule name: the opens (O_PATH_SYSCALLS) that can be allowed after this rule's path
    inspection. Performed by the supervisor, except with O_PATH: ADDFD cannot install an O_PATH
    file, so those are resumed after the check (supervisor/supervise/act.py), which is advisory."""
    table = rules_by_syscall(rules)
    out: dict[str, frozenset[str]] = {}
    for rule in rules:
        if not rule.paths or rule.action is Action.FAIL:
            continue  # a fault rule protects nothing: a raced path only dodges a fault
        hit = {
            name
            for name in rule_syscalls(rule) & O_PATH_SYSCALLS
            if _inspected_allow(rule, name, table, default)
        }
        if hit:
            out[rule.name] = frozenset(hit)
    return out


def answered_syscalls(rules: tuple[Rule, ...], default: Action) -> dict[str, frozenset[str]]:
    """Per rule name: the ANSWERED_SYSCALLS (stat, access, readlink, getxattr families) that can
    be allowed after this rule's path inspection: performed by the supervisor on the object it
    checked, the result written into the target's memory (supervisor/supervise/answers.py)."""
    return _inspected_allows(rules, default, ANSWERED_SYSCALLS)


def performed_syscalls(rules: tuple[Rule, ...], default: Action) -> dict[str, frozenset[str]]:
    """Per rule name: the filesystem-changing syscalls (PERFORMED_FS_SYSCALLS) that can be
    allowed after this rule's path inspection: performed by the supervisor, not resumed."""
    return _inspected_allows(rules, default, PERFORMED_FS_SYSCALLS)


def _inspected_allows(
    rules: tuple[Rule, ...], default: Action, names: frozenset[str]
) -> dict[str, frozenset[str]]:
    table = rules_by_syscall(rules)
    out: dict[str, frozenset[str]] = {}
    for rule in rules:
        if not rule.paths:
            continue
        hit = {
            name
            for name in rule_syscalls(rule) & names
            if _inspected_allow(rule, name, table, default)
        }
        if hit:
            out[rule.name] = frozenset(hit)
    return out


def address_advisory_text(names: frozenset[str]) -> str:
    """How the allowed address syscalls ``names`` of an address rule are carried out, in short
    (for `policy check`)."""
    parts = []
    unix = names & UNIX_ADVISORY_ADDRESS_SYSCALLS
    if unix:
        sends = (
            " (sends also on SCTP and other non-TCP/UDP/raw sockets)" if unix - {"connect"} else ""
        )
        parts.append(
            f"performed for IPv4/IPv6; ADVISORY on unix sockets{sends} for: {summarize(unix)}"
        )
    resumed = names & RESUMED_ADDRESS_SYSCALLS
    if resumed:
        parts.append(f"ADVISORY for: {summarize(resumed)} (resumed after the check)")
    return "; ".join(parts)


def _refused(rules: tuple[Rule, ...], default: Action) -> bool:
    """Whether a syscall with these rules is always refused."""
    for rule in rules:
        if rule.action in _LETS_THROUGH:
            return False
        if _unconditional(rule) and not rule.may_fall_through:
            return rule.action.refuses
    return default.refuses


def advisory_warnings(
    rules: tuple[Rule, ...], default: Action, phases: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """One short warning per rule with advisory allows, then the policy-wide ones."""
    found = advisory_syscalls(rules, default)
    out = []
    for rule in rules:
        names = found.get(rule.name)
        if names and rule.addresses:
            unix = names & UNIX_ADVISORY_ADDRESS_SYSCALLS
            resumed = names & RESUMED_ADDRESS_SYSCALLS
            parts = []
            if unix:
                sends = (
                    " and, for sends, on SCTP and other non-TCP/UDP/raw sockets"
                    if unix - {"connect"}
                    else ""
                )
                parts.append(
                    f"allows of {summarize(unix)} after address inspection are performed by the "
                    "supervisor on IPv4/IPv6 sockets, but ADVISORY on unix sockets (resumed: "
                    f"performed by the supervisor, the server would see its credentials){sends}: "
                    "a thread racing the address buffer and the fd table can change what the "
                    "kernel uses"
                )
            if resumed:
                parts.append(
                    f"allows of {summarize(resumed)} are ADVISORY (each message's address "
                    "checked, then resumed)"
                )
            out.append(f"{rule.where()}: " + "; ".join(parts))
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
    o_path = o_path_syscalls(rules, default)
    if o_path:
        out.append(
            f"{', '.join(r.where() for r in rules if r.name in o_path)}: "
            "O_PATH opens are resumed after the check (advisory: ADDFD cannot install O_PATH "
            "files, so a thread racing the path buffer can make the kernel open another path; "
            "an O_PATH fd reads and writes nothing, and each later use of it by path, "
            "openat relative to it or /proc/self/fd/N, is resolved and checked again)"
        )
    out.extend(_io_uring_warning(rules, default))
    out.extend(_path_undoer_warning(rules, default))
    out.extend(_phase_warnings(rules, default, phases))
    return tuple(out)


def _io_uring_warning(rules: tuple[Rule, ...], default: Action) -> tuple[str, ...]:
    """A policy with path, address or socket rules that protect something (_PROTECTS) must
    refuse io_uring_setup: a ring's operations open, stat, rename, connect, send and make
    sockets without those syscalls."""
    inspected = any(
        (r.paths and not rule_syscalls(r) <= EXEC_SYSCALLS)
        or r.addresses
        or "socket" in rule_syscalls(r)
        for r in rules
        if r.action in _PROTECTS
    )
    if not inspected or _refused(rules_by_syscall(rules).get(IO_URING_SETUP, ()), default):
        return ()
    return (
        "io_uring is not refused: its operations (IORING_OP_OPENAT, _STATX, _RENAMEAT, "
        "_CONNECT, _SENDMSG, _SOCKET, ...) open files, connect, send and make sockets without "
        "the syscalls the path, address and socket rules are on, and so past them: refuse "
        f"{', '.join(IO_URING_SYSCALLS)} with a rule without conditions (decided in the kernel)",
    )


def _path_undoer_warning(rules: tuple[Rule, ...], default: Action) -> tuple[str, ...]:
    """Path rules (and unix address rules) match paths; a mount can show a protected file under
    a path no rule names, and open_by_handle_at opens files without a path."""
    protective = [r for r in rules if r.action in _PROTECTS]
    if not any(r.paths and not rule_syscalls(r) <= EXEC_SYSCALLS for r in protective) and not any(
        p.kind == "unix" for r in protective for p in r.addresses
    ):
        return ()
    table = rules_by_syscall(rules)
    open_ = [name for name in PATH_UNDOERS if not _refused(table.get(name, ()), default)]
    if not open_:
        return ()
    return (
        f"{', '.join(open_)} {'is' if len(open_) == 1 else 'are'} not refused: a mount (with "
        "unshare(CLONE_NEWUSER|CLONE_NEWNS) any user can make one) shows a protected file under "
        "a path no rule names, and open_by_handle_at opens files without a path, past the path "
        "rules: refuse @mount and open_by_handle_at (and the namespaces) with kernel rules, as "
        "policies/default.toml does",
    )


def _same_match(a: Rule, b: Rule) -> bool:
    return (a.args, a.paths, a.addresses, a.argv) == (b.args, b.paths, b.addresses, b.argv)


def _kept_after_phase(
    rule: Rule, applicable: tuple[Rule, ...], phase: str, default: Action
) -> bool:
    """Whether, in ``phase`` (where the phase-only ``rule`` does not apply), the calls it
    allowed fall to a later rule or the default that lets them through."""
    for later in applicable[applicable.index(rule) + 1 :]:
        if later.phases and phase not in later.phases:
            continue
        if later.fault is not None or not (_unconditional(later) or _same_match(later, rule)):
            continue  # decides some of the calls only
        return later.action in _LETS_THROUGH
    return default in _LETS_THROUGH


def _phase_warnings(
    rules: tuple[Rule, ...], default: Action, phases: tuple[str, ...]
) -> tuple[str, ...]:
    """A phase-only allow whose syscalls are still let through after its last phase: ending
    the phase takes nothing away (docs/policy.md "Phases")."""
    table = rules_by_syscall(rules)
    out = []
    for rule in rules:
        if not rule.phases or rule.action not in _LETS_THROUGH:
            continue
        last = max(phases.index(p) for p in rule.phases)
        after = [p for p in phases[last + 1 :] if p not in rule.phases]
        if not after:
            continue
        kept = {
            name
            for name in rule_syscalls(rule)
            if any(_kept_after_phase(rule, table[name], p, default) for p in after)
        }
        if kept:
            out.append(
                f"{rule.where()} applies in phase {'/'.join(rule.phases)} only, but after it "
                f"{summarize(kept)} fall to a rule or the default that allows them too: ending "
                "the phase takes nothing away (refuse them later with a rule, or write the "
                'policy allow-list style: default = "deny")'
            )
    return tuple(out)


def exec_note(rule: Rule, execs: frozenset[str]) -> str:
    """What is verified after an exec the rule lets through, and what stays advisory
    (supervisor/supervise/exec/, docs/policy.md "Exec rules"); "" without exec syscalls."""
    if not execs:
        return ""
    text = (
        f"; {'/'.join(sorted(execs))} are then VERIFIED (the executed file must be the checked "
        "one, else SIGKILL before its first instruction)"
    )
    if rule.argv:
        text += "; argv is ADVISORY (not re-verified; denials by argv are enforced)"
    return text
