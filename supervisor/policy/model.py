"""The parsed policy: plain frozen values that the engine and the filter planner read.

A policy is an ordered list of rules and a default action. The first rule that matches a
syscall decides it; when none matches, the default does. See docs/policy.md for the file format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .capabilities import Capabilities
from .match.addresses import AddressPattern
from .match.sockaddr import ADDRESS_SYSCALLS
from .tables.syscalls import PATH_SYSCALLS

U64_MASK = (1 << 64) - 1
_ALL_PATH_SYSCALLS: frozenset[str] = frozenset(PATH_SYSCALLS)

# Comparison operators of ArgCondition. "&=" is a masked equality: (arg & mask) == value.
ARG_OPS: frozenset[str] = frozenset({"==", "!=", "<", "<=", ">", ">=", "&="})


class Action(enum.Enum):
    """What happens to a syscall: allow, fail with an errno, kill the process, allow and log."""

    ALLOW = "allow"
    DENY = "deny"
    KILL = "kill"
    LOG = "log"
    FAIL = "fail"  # fault injection: fail with an errno (deny's meaning, a tester's intent)
    VALUE = "value"  # answer with Rule.value without running the syscall

    @property
    def refuses(self) -> bool:
        """True for the actions that stop the syscall (deny, kill, fail, value): their path
        rules match when ANY path matches, and the kernel never runs the call."""
        return self in (Action.DENY, Action.KILL, Action.FAIL, Action.VALUE)


@dataclass(frozen=True)
class ArgCondition:
    """A test of one syscall argument's value (never of what it points to).

    ``index`` is the argument number 0-5. Comparisons are on the unsigned 64-bit value. For
    ``op == "&="`` the test is ``(arg & mask) == value``; ``mask`` is unused by the other ops.
    """

    index: int
    op: str
    value: int
    mask: int = 0

    def holds(self, arg: int) -> bool:
        """Whether the condition holds for this argument value (taken as unsigned 64-bit)."""
        a = arg & U64_MASK
        op = self.op
        if op == "&=":
            return (a & self.mask) == self.value
        if op == "==":
            return a == self.value
        if op == "!=":
            return a != self.value
        if op == "<":
            return a < self.value
        if op == "<=":
            return a <= self.value
        if op == ">":
            return a > self.value
        if op == ">=":
            return a >= self.value
        raise ValueError(f"unknown op {op!r}")

    def describe(self) -> str:
        if self.op == "&=":
            return f"arg{self.index} & {self.mask:#x} == {self.value:#x}"
        return f"arg{self.index} {self.op} {self.value:#x}"


@dataclass(frozen=True)
class Fault:
    """When an ``action = "fail"`` rule fails a call it matched: with ``probability`` (0 < p ≤ 1,
    drawn from random.Random(seed)) or on ``every``-th matching call. Otherwise the rule does not
    match and the next rules are tried."""

    probability: float = 0.0
    every: int = 0
    seed: int = 0

    def describe(self) -> str:
        if self.every:
            return f"every {self.every}th matching call"
        return f"with probability {self.probability:g} (seed {self.seed})"


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``count`` calls per ``period`` seconds, at most ``burst`` at once."""

    count: int
    period: float
    burst: int
    text: str  # as written, e.g. "50/s"

    def describe(self) -> str:
        return f"rate {self.text}" + (f" burst {self.burst}" if self.burst != self.count else "")


@dataclass(frozen=True)
class Rule:
    """One ``[[rule]]`` of a policy.

    ``syscalls`` is the expanded set of syscall names with their i386 twins (policy/twins.py),
    or None when the rule gave only ``path`` (it then applies to every syscall of
    PATH_SYSCALLS). ``paths`` are the globs; ``args`` the value conditions, all of which must
    hold. ``errno`` is the error returned by a deny (0 for other actions). ``line`` is the line
    of the ``[[rule]]`` header, when known. ``spec`` keeps the syscall names and @groups as
    written, for messages.
    """

    name: str
    syscalls: frozenset[str] | None
    paths: tuple[str, ...]
    args: tuple[ArgCondition, ...]
    action: Action
    errno: int
    line: int | None
    spec: tuple[str, ...] = ()

    # State across syscalls (docs/policy.md "Stateful rules"); all fields below have defaults.
    value: int = 0  # action "value": the syscall's return value
    fault: Fault | None = None  # action "fail" with probability or every
    limit: int = 0  # at most this many matching calls (0: no limit), then ``over``
    rate: Rate | None = None  # token bucket on matching calls, then ``over``
    per: str = "tree"  # what limit and rate count by: "tree", "process" or "user"
    over: Action = Action.DENY  # deny or kill, past limit or rate
    over_errno: int = 1  # EPERM

    @property
    def stateful(self) -> bool:
        """Decided with state the kernel cannot keep (counters, dice) or answered with a value:
        always by the supervisor."""
        return (
            self.action in (Action.FAIL, Action.VALUE)
            or self.fault is not None
            or self.limit > 0
            or self.rate is not None
            or bool(self.phases)
            or self.enter is not None
            or self.once
        )

    @property
    def may_fall_through(self) -> bool:
        """True when the rule can match and still let evaluation go on (the dice said no, or
        the policy is in another phase)."""
        return self.fault is not None or bool(self.phases)

    # Phases (docs/policy.md "Phases"): the rule applies only in these phases (empty: in all);
    # when it decides with its own action, the policy enters phase ``enter``.
    phases: tuple[str, ...] = ()
    enter: str | None = None

    # ``address`` patterns (docs/policy.md): a rule with only ``address`` applies to
    # ADDRESS_SYSCALLS.
    addresses: tuple[AddressPattern, ...] = ()

    # Exec rules (docs/policy.md "Exec rules"): ``argv`` globs matched element by element
    # (policy/match/argv.py); ``once``: the first matching exec is let through, later ones get
    # ``over`` (deny with ``over_errno``, or kill). Both make the rule apply to execve/execveat
    # only.
    argv: tuple[str, ...] = ()
    once: bool = False

    # The i386 twins (policy/twins.py) the rule covers besides the syscalls it names; they are
    # in ``syscalls`` too.
    twins: frozenset[str] = frozenset()

    def where(self) -> str:
        """``rule 'NAME' (line N)`` for messages."""
        if self.line is None:
            return f"rule {self.name!r}"
        return f"rule {self.name!r} (line {self.line})"


@dataclass(frozen=True)
class Policy:
    """A whole policy: rules tried in order, then ``default``.

    ``default_errno`` is the errno of a ``deny`` default. ``source`` is the file it came from.
    ``warnings`` are computed at load: the advisory notes of docs/policy.md.
    """

    name: str
    description: str
    default: Action
    default_errno: int
    rules: tuple[Rule, ...]
    source: str | None
    warnings: tuple[str, ...]
    seed: int | None = None  # policy-level seed of fault injection (a rule's own seed wins)
    phases: tuple[str, ...] = ()  # in order; the policy starts in the first
    # ``[capabilities]``: what the launcher drops before the target execs (nothing by default)
    capabilities: Capabilities = Capabilities()


def rule_syscalls(rule: Rule) -> frozenset[str]:
    """The syscalls a rule applies to (every path syscall for a rule with only ``path``, every
    address syscall for a rule with only ``address``)."""
    if rule.syscalls is not None:
        return rule.syscalls
    if rule.addresses:
        return ADDRESS_SYSCALLS
    return _ALL_PATH_SYSCALLS


def rules_by_syscall(rules: tuple[Rule, ...]) -> dict[str, tuple[Rule, ...]]:
    """For each syscall some rule names, the rules that apply to it, in policy order."""
    table: dict[str, list[Rule]] = {}
    for rule in rules:
        for name in rule_syscalls(rule):
            table.setdefault(name, []).append(rule)
    return {name: tuple(rs) for name, rs in table.items()}
