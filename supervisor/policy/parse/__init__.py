"""Read and validate a TOML policy file (format v1) into a :class:`Policy`.

Every problem is a :class:`PolicyError` naming the file, the line and the key. The parts, by
job: ``document`` (the TOML text, the top-level keys, the entry points), ``keys`` (the key
names, where a key is in the text, the state of one parse), ``values`` (scalars: actions,
errnos, numbers, lists, rates), ``rule`` (one ``[[rule]]`` and the i386 twins its syscalls
take along), ``conditions`` (what a rule matches: syscalls, addresses, argument conditions) and
``actions`` (what a matching rule does beyond its action: return values, fault dice, budgets,
phases, exec rules). See docs/policy.md for the format.
"""

from __future__ import annotations

from .document import load_policy, parse_policy

__all__ = ["load_policy", "parse_policy"]
