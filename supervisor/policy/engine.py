"""The decision engine: a request (syscall, argument values, resolved paths) → a decision.

Pure and fast: it runs once per notification. ``Engine`` is built once per policy and
precomputes, for every syscall some rule names, the tuple of applicable rules with their
argument tests and one compiled regex for their globs, and the Decision objects it returns.

Semantics (docs/policy.md): rules are tried in order and the first that matches decides; the
policy default decides when none does. A rule matches when all its argument conditions hold
and, if it has ``path``: for a refusing rule (deny, kill) ANY path argument matches ANY glob;
for a rule that lets the call through (allow, log) EVERY path argument matches some glob. A
request that carries no paths (the loop could not read them) fails closed: refusing path rules
match it, letting ones do not. For the rename family a refusing rule also matches a directory
*above* what its globs match: moving that directory would carry the protected files to paths the
globs no longer name.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from .globs import compile_ancestor_globs, compile_globs
from .model import U64_MASK, Action, Policy, Rule, rules_by_syscall


@dataclass(frozen=True)
class Request:
    """One syscall of the target, as plain values.

    ``arch`` is "x86_64" or "i386". ``args`` are the six raw argument values. ``paths`` are the
    resolved canonical paths of each PathArg of PATH_SYSCALLS[syscall], in order (the loop
    fills them in only when Engine.needs_paths(syscall)).
    """

    pid: int
    syscall: str
    arch: str
    args: tuple[int, ...]
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """What to do with a request.

    ``errno`` is set for deny. ``rule`` names the deciding rule (None: the default).
    ``inspected`` is True when the decision depended on what pointer arguments held: the
    deciding rule has ``path``, or a rule with ``path`` was matched against the paths before
    it. An inspected allow must be performed by the supervisor (EMULATED_SYSCALLS); for other
    syscalls it is advisory.
    """

    action: Action
    errno: int = 0
    rule: str | None = None
    inspected: bool = False


_Cmp = Callable[[int, int], bool]
_OPS: dict[str, _Cmp] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "&=": operator.eq,  # after masking
}

# Syscalls that move a directory tree to a new path: a refusing path rule also matches a
# directory above what it protects (renaming /home/u would carry /home/u/.ssh along).
MOVING_SYSCALLS = frozenset({"rename", "renameat", "renameat2"})

# (arg index, comparison, value, mask applied to the argument first)
_Cond = tuple[int, _Cmp, int, int]


@dataclass(frozen=True, slots=True)
class _Compiled:
    conds: tuple[_Cond, ...]
    match: Callable[[str], re.Match[str] | None] | None
    above: Callable[[str], bool] | None  # refusing path rules: a directory above a match
    refuses: bool
    plain: Decision
    inspected: Decision


def _compile(rule: Rule) -> _Compiled:
    conds = tuple(
        (c.index, _OPS[c.op], c.value, c.mask if c.op == "&=" else U64_MASK) for c in rule.args
    )
    match = compile_globs(rule.paths) if rule.paths else None
    above = compile_ancestor_globs(rule.paths) if rule.paths and rule.action.refuses else None
    errno = rule.errno if rule.action is Action.DENY else 0
    return _Compiled(
        conds=conds,
        match=match,
        above=above,
        refuses=rule.action.refuses,
        plain=Decision(rule.action, errno, rule.name, False),
        inspected=Decision(rule.action, errno, rule.name, True),
    )


class Engine:
    """Decides requests for one policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        compiled = {id(r): _compile(r) for r in policy.rules}
        self._rules: dict[str, tuple[_Compiled, ...]] = {
            name: tuple(compiled[id(r)] for r in rules)
            for name, rules in rules_by_syscall(policy.rules).items()
        }
        self._needs_paths = frozenset(
            name for name, rules in self._rules.items() if any(r.match for r in rules)
        )
        errno = policy.default_errno if policy.default is Action.DENY else 0
        self._default = Decision(policy.default, errno, None, False)
        self._default_inspected = Decision(policy.default, errno, None, True)

    def needs_paths(self, syscall: str) -> bool:
        """True when a rule that applies to ``syscall`` has ``path``: the loop must then read
        and resolve the path arguments before calling decide()."""
        return syscall in self._needs_paths

    def decide(self, request: Request) -> Decision:
        rules = self._rules.get(request.syscall)
        if rules is None:
            return self._default
        args = request.args
        nargs = len(args)
        inspected = False
        moves = request.syscall in MOVING_SYSCALLS
        for rule in rules:
            for index, cmp, value, mask in rule.conds:
                arg = args[index] if index < nargs else 0
                if not cmp(arg & mask, value):
                    break
            else:
                match = rule.match
                if match is None:
                    return rule.inspected if inspected else rule.plain
                inspected = True
                paths = request.paths
                if rule.refuses:
                    if not paths or any(match(p) for p in paths):
                        return rule.inspected
                    # Moving a directory above a protected path would move the protected
                    # files out from under the globs.
                    if moves and rule.above and any(rule.above(p) for p in paths):
                        return rule.inspected
                elif paths and all(match(p) for p in paths):
                    return rule.inspected
        return self._default_inspected if inspected else self._default
