"""The policy package: parse policies, decide syscalls, plan the kernel filter.

PURE: no trio, no cffi, no ``supervisor.kernel``, no /proc; the only I/O is reading the policy
file in :func:`load_policy`. The format and semantics are in docs/policy.md.

The rooms: ``parse/`` (TOML text -> :class:`Policy`, every error naming file, line and key),
``model`` (Policy, Rule, Action), ``request`` (Request, Decision: what the engine is asked and
answers), ``engine`` (decide one request) with ``state`` (dice, budgets, phases; time comes as
a value), ``plan`` (the kernel filter plan and ``explain``), ``advisory`` and ``twins`` (load
warnings; the i386 twins a rule takes along), ``match/`` (path and argv globs, addresses,
sockaddrs) and ``tables/`` (syscalls, groups, constants). It imports only itself and the
standard library (tests/policy/test_policy_layering.py).
"""

from __future__ import annotations

from .advisory import advisory_syscalls, advisory_warnings
from .engine import Engine
from .errors import PolicyError
from .match.globs import GlobError, compile_globs, glob_match, glob_to_regex
from .model import Action, ArgCondition, Policy, Rule, rule_syscalls, rules_by_syscall
from .parse import load_policy, parse_policy
from .plan import (
    FilterPlan,
    KernelAction,
    KernelRule,
    explain,
    kernel_action,
    plan_filter,
    plan_tamper_guard,
)
from .request import Decision, Request
from .tables.constants import ERRNOS, SYMBOLS, errno_name
from .tables.groups import GROUPS, Group, expand
from .tables.syscalls import (
    ANSWERED_SYSCALLS,
    ARCH_I386,
    ARCH_X86_64,
    EMULATED_SYSCALLS,
    I386_PATH_SYSCALLS,
    I386_SYSCALLS,
    KNOWN_SYSCALLS,
    OPEN_SYSCALLS,
    PATH_SYSCALLS,
    PERFORMED_FS_SYSCALLS,
    X86_64_SYSCALLS,
    Follow,
    PathArg,
    path_args,
)

__all__ = [
    "ANSWERED_SYSCALLS",
    "ARCH_I386",
    "ARCH_X86_64",
    "EMULATED_SYSCALLS",
    "ERRNOS",
    "GROUPS",
    "I386_PATH_SYSCALLS",
    "I386_SYSCALLS",
    "KNOWN_SYSCALLS",
    "OPEN_SYSCALLS",
    "PATH_SYSCALLS",
    "PERFORMED_FS_SYSCALLS",
    "SYMBOLS",
    "X86_64_SYSCALLS",
    "Action",
    "ArgCondition",
    "Decision",
    "Engine",
    "FilterPlan",
    "Follow",
    "GlobError",
    "Group",
    "KernelAction",
    "KernelRule",
    "PathArg",
    "Policy",
    "PolicyError",
    "Request",
    "Rule",
    "advisory_syscalls",
    "advisory_warnings",
    "compile_globs",
    "errno_name",
    "expand",
    "explain",
    "glob_match",
    "glob_to_regex",
    "kernel_action",
    "load_policy",
    "parse_policy",
    "path_args",
    "plan_filter",
    "plan_tamper_guard",
    "rule_syscalls",
    "rules_by_syscall",
]
