"""What the kernel decides and what reaches the supervisor: a policy → a seccomp filter plan.

The kernel (seccomp-bpf) can decide a syscall by its number and argument values; it cannot
read memory, so anything that depends on a path goes to the supervisor (USER_NOTIF, "notify").
For every syscall in KNOWN_SYSCALLS the rules that apply to it are walked in order:

- a rule with ``path`` → notify (the supervisor decides everything for this syscall);
- a ``log`` rule → notify (the supervisor logs it);
- a stateful or answering rule (``fail``, ``value``, ``limit``, ``rate``: Rule.stateful) →
  notify: the kernel keeps no counters, rolls no dice and cannot return a value;
- a rule with no ``args`` → terminal: its action is the kernel's (allow → allow,
  deny → errno, kill → kill);
- a rule with ``args`` → collected, and the walk goes on.

With no terminal rule the fallback is the policy default. Trailing collected rules whose
action is the fallback's are dropped (they cannot change the outcome). The remaining ones
stay in the kernel when they all have the same kernel action and the fallback equals the
filter default (the kernel ORs them; anything else falls to the default): one KernelRule each.
Otherwise the syscall is notified and the engine decides by value: the kernel cannot express
first-match order across differing actions. A conditioned rule with two conditions on the same
argument is notified too (libseccomp cannot express it).

The filter default is the policy default mapped (allow → allow, deny → errno(default_errno),
kill → kill, log → notify). KernelRules are emitted only where a syscall's action differs from
the filter default, plus the conditioned ones. Syscalls the policy never names get the default.

i386 socketcall is notified whole when a syscall it multiplexes is notified or has a conditioned
kernel rule (libseccomp would drop the conditions on the socketcall path); the supervisor then
decides each call as the syscall it makes.
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass

from .advisory import (
    address_advisory_text,
    advisory_syscalls,
    answered_syscalls,
    o_path_syscalls,
    performed_syscalls,
    summarize,
)
from .match.argv import EXEC_SYSCALLS
from .match.sockaddr import SOCKETCALL_SYSCALLS
from .model import Action, ArgCondition, Policy, Rule, rule_syscalls, rules_by_syscall
from .tables.constants import errno_name
from .tables.syscalls import KNOWN_SYSCALLS
from .twins import IPC_SYSCALLS


@dataclass(frozen=True)
class KernelAction:
    """A seccomp return action: kind is "allow", "errno", "kill" or "notify"."""

    kind: str
    errno: int = 0

    def describe(self) -> str:
        if self.kind == "errno":
            return f"errno {errno_name(self.errno)}"
        return self.kind


@dataclass(frozen=True)
class KernelRule:
    """One libseccomp rule: ``syscall`` gets ``action`` when all ``conditions`` hold."""

    syscall: str
    action: KernelAction
    conditions: tuple[ArgCondition, ...] = ()


@dataclass(frozen=True)
class FilterPlan:
    """The whole filter: default action, rules, and which syscalls reach the supervisor.

    ``notified``: syscalls the kernel may hand to the supervisor. ``kernel_decided``: those it
    always decides itself. Together they are KNOWN_SYSCALLS.
    """

    default: KernelAction
    rules: tuple[KernelRule, ...]
    notified: frozenset[str]
    kernel_decided: frozenset[str]


NOTIFY = KernelAction("notify")
ALLOW = KernelAction("allow")
KILL = KernelAction("kill")


def kernel_action(action: Action, errno: int) -> KernelAction:
    """The seccomp action of a policy action (deny carries its errno)."""
    if action is Action.ALLOW:
        return ALLOW
    if action is Action.DENY:
        return KernelAction("errno", errno)
    if action is Action.KILL:
        return KILL
    return NOTIFY


def _repeats_an_arg(rule: Rule) -> bool:
    indexes = [c.index for c in rule.args]
    return len(indexes) != len(set(indexes))


def _plan_syscall(
    rules: tuple[Rule, ...], fallback_default: KernelAction, filter_default: KernelAction
) -> tuple[KernelAction, tuple[Rule, ...]] | None:
    """(unconditional action, conditioned rules to emit with their action) or None to notify."""
    conditioned: list[Rule] = []
    fallback = fallback_default
    for rule in rules:
        if rule.paths or rule.addresses or rule.action is Action.LOG or rule.stateful:
            return None
        if not rule.args:
            fallback = kernel_action(rule.action, rule.errno)
            break
        conditioned.append(rule)
    # A trailing conditioned rule with the fallback's action changes nothing: drop it.
    while conditioned and kernel_action(conditioned[-1].action, conditioned[-1].errno) == fallback:
        conditioned.pop()
    actions = {kernel_action(r.action, r.errno) for r in conditioned}
    if not conditioned:
        return fallback, ()
    if (
        len(actions) == 1
        and fallback == filter_default
        and not any(_repeats_an_arg(r) for r in conditioned)
    ):
        return fallback, tuple(conditioned)
    return None


def plan_filter(policy: Policy) -> FilterPlan:
    """The seccomp filter for ``policy`` (see the module docstring for the rules)."""
    filter_default = kernel_action(policy.default, policy.default_errno)
    table = rules_by_syscall(policy.rules)
    out: list[KernelRule] = []
    notified: set[str] = set()
    decided: set[str] = set()
    for name in sorted(KNOWN_SYSCALLS):
        rules = table.get(name, ())
        planned = _plan_syscall(rules, filter_default, filter_default)
        if planned is None:
            notified.add(name)
            if filter_default != NOTIFY:
                out.append(KernelRule(name, NOTIFY))
            continue
        action, conditioned = planned
        for rule in conditioned:
            out.append(KernelRule(name, kernel_action(rule.action, rule.errno), rule.args))
        if not conditioned and action != filter_default:
            out.append(KernelRule(name, action))
        if action == NOTIFY:  # the log default: what the kernel does not decide is notified
            notified.add(name)
        else:
            decided.add(name)
    if "socketcall" not in notified and (
        notified & SOCKETCALL_SYSCALLS
        or any(r.conditions and r.syscall in SOCKETCALL_SYSCALLS for r in out)
    ):
        # i386 socketcall(call, args) passes the arguments of socket, bind, connect ... in
        # memory. libseccomp turns a rule on one of them into a socketcall rule on the call
        # number and drops its argument conditions (`allow socket if arg0 == AF_UNIX` would
        # allow every family through socketcall), and a notified one would be decided as
        # "socketcall". So the supervisor takes socketcall whole: it reads the arguments and
        # decides each call as the syscall it makes (supervisor/supervise/net/), by every rule.
        out = [r for r in out if r.syscall != "socketcall"]
        decided.discard("socketcall")
        notified.add("socketcall")
        if filter_default != NOTIFY:
            out.append(KernelRule("socketcall", NOTIFY))
    if ipc_is_refused(out, notified & {n for n in IPC_SYSCALLS if table.get(n)}):
        # The same multiplexing for SysV IPC: libseccomp turns a rule on shmget & co. into an
        # ipc(call) rule and drops its argument conditions (`allow shmget if arg0 == KEY` would
        # allow every key through ipc), and a notified one would be decided as "ipc" (a limit
        # or fail rule on shmget escaped by it). Nothing reads ipc's arguments for us, so
        # i386 ipc() is refused (ENOSYS) whenever one of its calls is conditioned or notified.
        out = [r for r in out if r.syscall != "ipc"]
        notified.discard("ipc")
        decided.add("ipc")
        if filter_default != IPC_REFUSAL:
            out.append(KernelRule("ipc", IPC_REFUSAL))
    return FilterPlan(filter_default, tuple(out), frozenset(notified), frozenset(decided))


IPC_REFUSAL = KernelAction("errno", errno.ENOSYS)


def ipc_is_refused(rules: list[KernelRule] | tuple[KernelRule, ...], notified: set[str]) -> bool:
    """True when a SysV IPC syscall is notified because of a rule (``notified``) or has a
    conditioned kernel rule: the plan then refuses i386 ipc(), whose arguments the kernel
    filter cannot check per call."""
    return bool(notified & IPC_SYSCALLS) or any(
        r.conditions and r.syscall in IPC_SYSCALLS for r in rules
    )


def _describe_match(rule: Rule) -> str:
    parts = []
    if rule.spec:
        parts.append(" ".join(rule.spec))
    else:
        parts.append(
            "connect bind sendto sendmsg sendmmsg" if rule.addresses else "any path syscall"
        )
    if rule.twins:
        parts.append(f"(and i386 {' '.join(sorted(rule.twins))})")
    if rule.args:
        parts.append("if " + " and ".join(c.describe() for c in rule.args))
    if rule.addresses:
        parts.append("address in " + " ".join(a.text for a in rule.addresses))
    if rule.paths:
        quantifier = "any path in" if rule.action.refuses else "every path in"
        parts.append(f"{quantifier} {' '.join(rule.paths)}")
    if rule.argv:
        parts.append("argv " + " ".join(json.dumps(a) for a in rule.argv))
    return " ".join(parts)


def _describe_action(action: Action, errno: int) -> str:
    if action is Action.DENY:
        return f"deny {errno_name(errno)}"
    return str(action.value)


def _describe_rule_action(rule: Rule) -> str:
    """The action of a rule with what its state does, e.g. ``fail EIO every 10th matching call,
    else the next rules`` or ``allow; limit 3 per tree, then deny EPERM``."""
    if rule.action is Action.FAIL:
        text = f"fail {errno_name(rule.errno)}"
        if rule.fault is not None:
            text += f" {rule.fault.describe()}, else the next rules"
    elif rule.action is Action.VALUE:
        text = f"return {rule.value} without running the syscall"
    else:
        text = _describe_action(rule.action, rule.errno)
    if rule.once:
        text += f" once per tree, then {_describe_action(rule.over, rule.over_errno)}"
    if rule.enter is not None:
        text += f"; then phase {rule.enter}"
    if rule.phases:
        text = f"in phase {' '.join(rule.phases)}: {text}"
    budget = []
    if rule.limit:
        budget.append(f"limit {rule.limit}")
    if rule.rate is not None:
        budget.append(rule.rate.describe())
    if budget:
        text += (
            f"; {' and '.join(budget)} per {rule.per}, then "
            f"{_describe_action(rule.over, rule.over_errno)}"
        )
    return text


def explain(policy: Policy, plan: FilterPlan) -> list[str]:
    """Lines for ``seccomp-supervisor policy check``: one per rule, the default, the warnings."""
    advisory = advisory_syscalls(policy.rules, policy.default)
    o_path = o_path_syscalls(policy.rules, policy.default)
    answered = answered_syscalls(policy.rules, policy.default)
    performed = performed_syscalls(policy.rules, policy.default)
    lines = [f"policy {policy.name!r}" + (f" ({policy.source})" if policy.source else "")]
    for rule in policy.rules:
        names = rule_syscalls(rule)
        sup = names & plan.notified
        kern = names - plan.notified
        if sup and kern:
            where = f"kernel for {summarize(kern)}; supervisor for {summarize(sup)}"
        elif sup:
            where = "supervisor"
        else:
            where = "kernel"
        line = "?" if rule.line is None else str(rule.line)
        text = (
            f"{rule.name} (line {line}): {_describe_match(rule)} -> "
            f"{_describe_rule_action(rule)} [{where}]"
        )
        if rule.name in advisory and rule.addresses:
            text += " " + address_advisory_text(advisory[rule.name])
        elif rule.name in advisory:
            names = advisory[rule.name]
            execs = names & EXEC_SYSCALLS
            if names - execs:
                text += f" ADVISORY for: {summarize(names - execs)}"
            if execs:
                # Resumed, then the executed file is checked (supervisor/supervise/exec/).
                text += f" VERIFIED AFTER EXEC (kill on mismatch): {summarize(execs)}"
                if rule.argv:
                    text += "; argv ADVISORY"
        if rule.name in answered:
            text += f" ANSWERED (performed, result written back): {summarize(answered[rule.name])}"
        if rule.name in performed:
            text += f" PERFORMED by the supervisor: {summarize(performed[rule.name])}"
        if rule.name in o_path:
            text += (
                f" O_PATH opens ADVISORY (resumed after the check): {summarize(o_path[rule.name])}"
            )
        lines.append(text)
    if policy.phases:
        lines.append(
            f"phases: {' -> '.join(policy.phases)} (starts in {policy.phases[0]}, only moves "
            "forward; rules with `phase` apply only in those phases)"
        )
    caps = policy.capabilities
    if caps.drop or caps.keep is not None:
        lines.append(caps.describe())
    lines.append(
        f"default: {_describe_action(policy.default, policy.default_errno)} "
        f"[kernel: {plan.default.describe()}]; {len(plan.notified)} syscalls reach the "
        f"supervisor, {len(plan.kernel_decided)} are decided by the kernel"
    )
    lines.extend(f"warning: {w}" for w in policy.warnings)
    return lines


# -- the tamper guard -----------------------------------------------------------------------
EPERM_ACTION = KernelAction("errno", errno.EPERM)
_PID_MASK = 0xFFFFFFFF  # pid_t is 32 bits: the kernel ignores a register's upper half
# Syscalls that act on another process named by pid (signals, limits, scheduling, tracing,
# memory), with the argument that holds the pid.
_PID_ARGS: tuple[tuple[str, int], ...] = (
    ("kill", 0),
    ("tkill", 0),
    ("tgkill", 0),
    ("tgkill", 1),
    ("rt_sigqueueinfo", 0),
    ("rt_tgsigqueueinfo", 0),
    ("rt_tgsigqueueinfo", 1),
    ("pidfd_open", 0),
    ("prlimit64", 0),
    ("sched_setaffinity", 0),
    ("sched_setscheduler", 0),
    ("sched_setparam", 0),
    ("sched_setattr", 0),
    ("ptrace", 1),
    ("process_vm_readv", 0),
    ("process_vm_writev", 0),
    ("migrate_pages", 0),
    ("move_pages", 0),
)
_PRIO_PROCESS, _PRIO_PGRP = 0, 1
_IOPRIO_WHO_PROCESS, _IOPRIO_WHO_PGRP = 1, 2


def _pid_is(index: int, pid: int) -> ArgCondition:
    return ArgCondition(index, "&=", pid & _PID_MASK, _PID_MASK)


def plan_tamper_guard(pid: int, pgid: int | None) -> FilterPlan:
    """A filter of its own, installed under the policy's: the process ``pid`` (the supervisor,
    or the launcher that holds the listener) cannot be signalled, traced, read, re-limited or
    re-scheduled by the target, whatever the policy says. ``pgid``: the process group the
    target shares with it, when it does (then kill(0, ...), kill(-pgid, ...), setpriority and
    ioprio_set of that group are refused too). kill(-1, ...) (every process) is always refused.

    Pure data, decided in the kernel (EPERM); the kernel runs every filter and the most
    restrictive answer wins, so no rule of the policy can let these through."""
    rules = [KernelRule(name, EPERM_ACTION, (_pid_is(index, pid),)) for name, index in _PID_ARGS]
    rules.append(KernelRule("kill", EPERM_ACTION, (_pid_is(0, -1),)))
    rules.append(KernelRule("kill", EPERM_ACTION, (_pid_is(0, -pid),)))
    rules.append(
        KernelRule(
            "setpriority", EPERM_ACTION, (ArgCondition(0, "==", _PRIO_PROCESS), _pid_is(1, pid))
        )
    )
    rules.append(
        KernelRule(
            "ioprio_set",
            EPERM_ACTION,
            (ArgCondition(0, "==", _IOPRIO_WHO_PROCESS), _pid_is(1, pid)),
        )
    )
    if pgid is not None:
        for group in {0, pgid}:
            rules.append(KernelRule("kill", EPERM_ACTION, (_pid_is(0, -group),)))
            rules.append(
                KernelRule(
                    "setpriority",
                    EPERM_ACTION,
                    (ArgCondition(0, "==", _PRIO_PGRP), _pid_is(1, group)),
                )
            )
            rules.append(
                KernelRule(
                    "ioprio_set",
                    EPERM_ACTION,
                    (ArgCondition(0, "==", _IOPRIO_WHO_PGRP), _pid_is(1, group)),
                )
            )
    unique = tuple(dict.fromkeys(rules))
    names = frozenset(r.syscall for r in unique)
    return FilterPlan(ALLOW, unique, frozenset(), names)
