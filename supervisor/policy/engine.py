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

Exec rules (argv.py): a rule with ``argv`` matches like a path rule on ``Request.argv``: a
refusing rule also when the argv could not be read (None), a letting one only on a match.
``once`` is a limit of 1 per tree (state.Budget).

Stateful rules (state.py): a ``fail`` rule with ``probability``/``every`` that matched rolls its
dice, and when they say no the rule does not match (the next rules are tried); a rule with
``limit``/``rate`` that matched spends its budget, and past it decides with its ``over`` action.
The state belongs to the Engine: a new Engine (a policy reload) starts with fresh counters.
``peek()`` decides without touching the state, for re-checks of a call already decided.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .match.addresses import SockAddr, compile_addresses
from .match.argv import EXEC_SYSCALLS, ArgvMatch, compile_argv
from .match.globs import compile_ancestor_globs, compile_globs
from .model import U64_MASK, Action, Policy, Rule, rule_syscalls, rules_by_syscall
from .request import Decision, Request
from .state import Budget, Dice, PhaseState

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
    stateful: bool = False
    dice: Dice | None = None
    budget: Budget | None = None
    over_plain: Decision | None = None
    over_inspected: Decision | None = None
    phases: frozenset[int] | None = None  # the phases (indexes) the rule applies in
    enter: int = -1  # the phase the rule moves to when it decides
    phase: PhaseState | None = None
    amatch: Callable[[SockAddr], bool] | None = None  # ``address`` patterns
    argv: ArgvMatch | None = None  # ``argv`` patterns of exec rules


def _compile(rule: Rule, phase: PhaseState | None = None) -> _Compiled:
    conds = tuple(
        (c.index, _OPS[c.op], c.value, c.mask if c.op == "&=" else U64_MASK) for c in rule.args
    )
    match = compile_globs(rule.paths) if rule.paths else None
    above = compile_ancestor_globs(rule.paths) if rule.paths and rule.action.refuses else None
    errno = rule.errno if rule.action in (Action.DENY, Action.FAIL) else 0
    value = rule.value if rule.action is Action.VALUE else 0
    names = phase.names if phase is not None else ()
    budget = Budget(rule) if rule.limit or rule.rate or rule.once else None
    over_errno = rule.over_errno if rule.over is Action.DENY else 0
    return _Compiled(
        amatch=compile_addresses(rule.addresses) if rule.addresses else None,
        conds=conds,
        match=match,
        above=above,
        refuses=rule.action.refuses,
        plain=Decision(rule.action, errno, rule.name, False, value, enters=rule.enter),
        inspected=Decision(rule.action, errno, rule.name, True, value, enters=rule.enter),
        stateful=rule.stateful,
        dice=Dice(rule.fault) if rule.fault is not None else None,
        budget=budget,
        over_plain=Decision(rule.over, over_errno, rule.name, False, 0, True),
        over_inspected=Decision(rule.over, over_errno, rule.name, True, 0, True),
        phases=frozenset(names.index(p) for p in rule.phases) if rule.phases else None,
        enter=names.index(rule.enter) if rule.enter is not None else -1,
        phase=phase,
        argv=compile_argv(rule.argv) if rule.argv else None,
    )


class Engine:
    """Decides requests for one policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._phase = PhaseState(policy.phases)
        compiled = {id(r): _compile(r, self._phase) for r in policy.rules}
        self._rules: dict[str, tuple[_Compiled, ...]] = {
            name: tuple(compiled[id(r)] for r in rules)
            for name, rules in rules_by_syscall(policy.rules).items()
        }
        self._needs_address = frozenset(
            name for name, rules in self._rules.items() if any(r.amatch for r in rules)
        )
        self._needs_paths = frozenset(
            name for name, rules in self._rules.items() if any(r.match for r in rules)
        )
        self._needs_argv = frozenset(
            name for name, rules in self._rules.items() if any(r.argv for r in rules)
        )
        # Exec syscalls whose program the loop must resolve and, after an inspected allow,
        # verify (supervisor/supervise/exec/): some rule has path, argv or once.
        self._exec_checked = frozenset(
            name
            for name in EXEC_SYSCALLS & self._rules.keys()
            if name in self._needs_paths
            or name in self._needs_argv
            or any(r.once for r in policy.rules if name in rule_syscalls(r))
        )
        errno = policy.default_errno if policy.default is Action.DENY else 0
        self._default = Decision(policy.default, errno, None, False)
        self._default_inspected = Decision(policy.default, errno, None, True)
        budgets = [r for r in policy.rules if r.limit or r.rate]
        self._has_budgets = bool(budgets)
        self._counted = _syscalls_of(budgets)
        self._uses_clock = any(r.rate is not None for r in policy.rules)
        self._needs_process = _syscalls_of(r for r in budgets if r.per == "process")
        self._needs_user = _syscalls_of(r for r in budgets if r.per == "user")

    @property
    def phase(self) -> str | None:
        """The current phase (None for a policy without phases)."""
        names = self._phase.names
        return names[self._phase.current] if names else None

    def take_entered(self) -> str | None:
        """The phase entered since the last call, if any (for the loop's log)."""
        entered, self._phase.entered = self._phase.entered, None
        return entered

    @property
    def has_budgets(self) -> bool:
        """True when a rule has ``limit`` or ``rate``: the loop then fills the Request fields
        that uses_clock, needs_process() and needs_user() ask for."""
        return self._has_budgets

    def counts(self, syscall: str) -> bool:
        """True when a rule with ``limit`` or ``rate`` applies to ``syscall``."""
        return syscall in self._counted

    @property
    def uses_clock(self) -> bool:
        """True when a rule has a ``rate``: the loop must fill Request.now."""
        return self._uses_clock

    def needs_process(self, syscall: str) -> bool:
        """True when a rule counting ``per = "process"`` applies: fill Request.tgid."""
        return syscall in self._needs_process

    def needs_user(self, syscall: str) -> bool:
        """True when a rule counting ``per = "user"`` applies: fill Request.uid."""
        return syscall in self._needs_user

    def needs_address(self, syscall: str) -> bool:
        """True when a rule that applies to ``syscall`` has ``address``: the loop must then read
        the sockaddr (supervisor/supervise/net/) and fill Request.address."""
        return syscall in self._needs_address

    def needs_argv(self, syscall: str) -> bool:
        """True when a rule that applies to ``syscall`` (execve, execveat) has ``argv``: the loop
        must read the argument vector into Request.argv."""
        return syscall in self._needs_argv

    def checks_exec(self, syscall: str) -> bool:
        """True for execve/execveat when a rule on them has ``path``, ``argv`` or ``once``: the
        loop resolves the program (so a missing one fails before a ``once`` is spent), reads the
        argv if needs_argv(), and verifies an inspected allow after the exec."""
        return syscall in self._exec_checked

    def needs_paths(self, syscall: str) -> bool:
        """True when a rule that applies to ``syscall`` has ``path``: the loop must then read
        and resolve the path arguments before calling decide()."""
        return syscall in self._needs_paths

    def decide(self, request: Request) -> Decision:
        """The decision for ``request``; rolls the dice and spends the budgets of the stateful
        rules that match it."""
        return self._decide(request, True)

    def peek(self, request: Request) -> Decision:
        """The decision without changing any state: no dice rolled (a rule with probability or
        every does not match), no budget spent (but an exhausted one decides with ``over``)."""
        return self._decide(request, False)

    def _decide(self, request: Request, commit: bool) -> Decision:
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
                amatch = rule.amatch
                if amatch is not None:
                    # One address per call, so any/every are the same. No address (sendto on a
                    # connected socket): the rule does not apply. One that names no address
                    # (another family, malformed): it was read, but no pattern matches it.
                    address = request.address
                    if address is None:
                        continue
                    inspected = True
                    if not amatch(address):
                        continue
                match = rule.match
                if match is not None:
                    inspected = True
                    paths = request.paths
                    if rule.refuses:
                        # Moving a directory above a protected path would move the protected
                        # files out from under the globs. (map, not a generator: hot path.)
                        if (
                            paths
                            and not any(map(match, paths))
                            and not (moves and rule.above and any(map(rule.above, paths)))
                        ):
                            continue
                    elif not (paths and all(map(match, paths))):
                        continue
                argv_match = rule.argv
                if argv_match is not None:
                    # Unreadable argv (None): refusing rules match, letting ones do not.
                    inspected = True
                    argv = request.argv
                    if rule.refuses:
                        if argv is not None and not argv_match(argv):
                            continue
                    elif argv is None or not argv_match(argv):
                        continue
                if rule.stateful:
                    decision = _stateful(rule, request, inspected, commit)
                    if decision is None:
                        continue
                    return decision
                return rule.inspected if inspected else rule.plain
        return self._default_inspected if inspected else self._default


def _stateful(rule: _Compiled, request: Request, inspected: bool, commit: bool) -> Decision | None:
    """A matched stateful rule's decision, or None when it does not match after all: the
    policy is in another phase, or the dice say no."""
    phase = rule.phase
    if rule.phases is not None and phase is not None and phase.current not in rule.phases:
        return None
    if rule.dice is not None:
        if not commit or not rule.dice.roll():
            return None
    elif rule.budget is not None and not rule.budget.take(request, commit):
        over = rule.over_inspected if inspected else rule.over_plain
        assert over is not None
        return over
    if commit and rule.enter >= 0 and phase is not None:
        phase.advance(rule.enter)
    return rule.inspected if inspected else rule.plain


def _syscalls_of(rules: Iterable[Rule]) -> frozenset[str]:
    out: set[str] = set()
    for rule in rules:
        out |= rule_syscalls(rule)
    return frozenset(out)
