"""The key names of the policy format, where a key is in the text, and the state of one parse.

tomllib keeps no positions, so lines are found by scanning the text: the N-th ``[[rule]]``
header, and the line of ``key =`` inside that block (or before the first table, for top-level
keys).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import PolicyError
from ..model import Action
from ..tables.constants import ERRNOS

FORMAT_VERSION = 1
DEFAULT_ERRNO = ERRNOS["EPERM"]
FAIL_ERRNO = ERRNOS["EIO"]
TOP_KEYS = frozenset(
    {"version", "name", "description", "default", "default_errno", "rule"}
    | {"seed", "phases", "capabilities"}
)
RULE_KEYS = frozenset({"name", "syscalls", "path", "args", "action", "errno", "address"})
# Stateful rules and answering actions (docs/policy.md "Fault injection, values, limits").
STATE_KEYS = frozenset(
    {"value", "probability", "every", "seed", "limit", "rate", "burst", "per", "over"}
    | {"over_errno", "phase", "enter"}
)
ARG_KEYS = frozenset({"arg", "op", "value", "mask"})
# Exec rules (docs/policy.md "Exec rules").
EXEC_KEYS = frozenset({"argv", "once"})
ACTIONS: dict[str, Action] = {str(a.value): a for a in Action}
# What a policy default and a rule's `over` can be: decided without state or a value.
DEFAULT_ACTIONS = (Action.ALLOW, Action.DENY, Action.KILL, Action.LOG)
OVER_ACTIONS: dict[str, Action] = {"deny": Action.DENY, "kill": Action.KILL}
PER_KEYS = ("tree", "process", "user")

# Makes the PolicyError of one key from a message.
Err = Callable[[str], PolicyError]

_HEADER = re.compile(r"^\s*\[")
_RULE_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")


class Lines:
    """Where keys are in the text: tomllib does not say."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.rule_headers = [i + 1 for i, ln in enumerate(self.lines) if _RULE_HEADER.match(ln)]
        self.first_table = next(
            (i + 1 for i, ln in enumerate(self.lines) if _HEADER.match(ln)), len(self.lines) + 1
        )

    def _find(self, key: str, start: int, stop: int) -> int | None:
        pat = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*=")
        for lineno in range(start, min(stop, len(self.lines) + 1)):
            if pat.match(self.lines[lineno - 1]):
                return lineno
        return None

    def top(self, key: str) -> int | None:
        return self._find(key, 1, self.first_table)

    def rule(self, index: int) -> int | None:
        """Line of the header of rule number ``index`` (0-based)."""
        if index < len(self.rule_headers):
            return self.rule_headers[index]
        return None

    def rule_key(self, index: int, key: str) -> int | None:
        start = self.rule(index)
        if start is None:
            return self.top("rule")
        stop = len(self.lines) + 1
        for lineno in range(start + 1, len(self.lines) + 1):
            if _HEADER.match(self.lines[lineno - 1]):
                stop = lineno
                break
        return self._find(key, start + 1, stop) or start


@dataclass
class Context:
    """One parse: the file's name and text positions, and what the top level declared before
    the rules are read."""

    source: str | None
    where: Lines
    seed: int | None = None  # the policy-level seed
    phases: tuple[str, ...] = ()  # the declared phases
    # Twins a rule's conditions cannot cover: (rule index, syscall, twin, why), checked once
    # every rule is read (another rule may name the twin itself).
    uncovered: list[tuple[int, str, str, str]] = field(default_factory=list)

    def error(self, message: str, *, line: int | None, key: str | None) -> PolicyError:
        return PolicyError(message, file=self.source, line=line, key=key)
