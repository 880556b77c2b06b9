"""One ``[[rule]]`` table into a :class:`Rule`, and the i386 twins its syscalls take along
(policy/twins.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import PolicyError
from ..match.addresses import AddressPattern
from ..match.argv import EXEC_SYSCALLS
from ..model import Action, ArgCondition, Rule
from ..tables.syscalls import PATH_SYSCALLS
from ..twins import incompatible_args, twins_of
from . import conditions
from .actions import exec_keys, state
from .keys import (
    ACTIONS,
    DEFAULT_ERRNO,
    EXEC_KEYS,
    FAIL_ERRNO,
    RULE_KEYS,
    STATE_KEYS,
    Context,
    Err,
)
from .values import action as action_value
from .values import errno as errno_value
from .values import string_list


def rule(ctx: Context, index: int, raw: dict[str, Any]) -> Rule:
    n = index + 1
    header = ctx.where.rule(index)

    def err_for(key: str) -> Err:
        def make(message: str) -> PolicyError:
            line = ctx.where.rule_key(index, key) if key in raw else header
            return ctx.error(message, line=line, key=f"rule[{n}].{key}")

        return make

    for key in raw:
        if key not in RULE_KEYS and key not in STATE_KEYS and key not in EXEC_KEYS:
            known = sorted(RULE_KEYS | STATE_KEYS | EXEC_KEYS)
            raise err_for(key)(f"unknown key (expected one of {', '.join(known)})")

    name = raw.get("name", f"rule-{n}")
    if not isinstance(name, str) or not name:
        raise err_for("name")("must be a non-empty string")
    if "action" not in raw:
        raise err_for("action")(f"missing (one of {', '.join(ACTIONS)})")
    action = action_value(raw["action"], err_for("action"))

    errno = 0
    if action is Action.DENY:
        errno = DEFAULT_ERRNO
    elif action is Action.FAIL:
        errno = FAIL_ERRNO
    if "errno" in raw:
        once = raw.get("once") is True and action in (Action.ALLOW, Action.LOG)
        if action not in (Action.DENY, Action.FAIL) and not once:
            raise err_for("errno")(
                f'only allowed with action = "deny" or "fail" (not {action.value}), or with `once`'
            )
        errno = errno_value(raw["errno"], err_for("errno"))
    fields = state(ctx, raw, action, err_for)

    paths: tuple[str, ...] = ()
    if "path" in raw:
        paths = conditions.paths(raw["path"], err_for("path"))

    addresses: tuple[AddressPattern, ...] = ()
    if "address" in raw:
        if paths:
            raise err_for("address")("a rule cannot have both `path` and `address`")
        addresses = conditions.addresses(raw["address"], err_for("address"))

    spec: tuple[str, ...] = ()
    syscalls: frozenset[str] | None = None
    if "syscalls" in raw:
        spec = tuple(string_list(raw["syscalls"], err_for("syscalls")))
        syscalls = conditions.syscalls(spec, bool(paths), err_for("syscalls"), err_for("path"))
    elif not paths and not addresses and "argv" not in raw and "once" not in raw:
        raise err_for("syscalls")("a rule needs `syscalls`, `path` or both")

    if addresses and syscalls is not None:
        syscalls = conditions.address_syscalls(spec, syscalls, err_for("address"))

    if "argv" in raw or "once" in raw:
        exec_fields = exec_keys(raw, action, errno, bool(addresses), err_for)
        if exec_fields.get("once"):
            errno = 0  # the errno of the later denials, in over_errno
        fields.update(exec_fields)
        if syscalls is None:
            spec, syscalls = ("execve", "execveat"), EXEC_SYSCALLS
        else:
            syscalls = conditions.exec_syscalls(spec, syscalls, err_for("syscalls"))

    args: tuple[ArgCondition, ...] = ()
    if "args" in raw:
        if syscalls is None:
            raise err_for("args")("`args` needs `syscalls` (argument numbers differ by syscall)")
        args = conditions.args(raw["args"], err_for("args"))

    twins: frozenset[str] = frozenset()
    if syscalls is not None:
        syscalls, twins = with_twins(ctx, index, syscalls, args, bool(paths))

    return Rule(
        name=name,
        syscalls=syscalls,
        paths=paths,
        args=args,
        action=action,
        errno=errno,
        line=header,
        spec=spec,
        addresses=addresses,
        twins=twins,
        **fields,
    )


def with_twins(
    ctx: Context,
    index: int,
    names: frozenset[str],
    args: tuple[ArgCondition, ...],
    has_path: bool,
) -> tuple[frozenset[str], frozenset[str]]:
    """``names`` with the i386 twins of its syscalls (policy/twins.py), and the twins added.
    A twin whose arguments the conditions read differently is left out and remembered in
    ``ctx.uncovered``."""
    added = set()
    for twin_name, (base, twin) in twins_of(names).items():
        if has_path and twin_name not in PATH_SYSCALLS:
            continue
        bad = incompatible_args((c.index for c in args), twin)
        if bad:
            where = ", ".join(f"arg{i}" for i in bad)
            ctx.uncovered.append((index, base, twin_name, f"{where}: {twin.differs}"))
            continue
        added.add(twin_name)
    return names | added, frozenset(added)


def check_uncovered(ctx: Context, rules: Sequence[Rule]) -> None:
    """A rule on a syscall covers its i386 twins; where its conditions cannot (another argument
    layout), some rule must name the twin itself, or the policy is refused."""
    named = {s for r in rules for s in r.spec if not s.startswith("@")}
    for index, base, twin, why in ctx.uncovered:
        if twin in named:
            continue
        raise ctx.error(
            f"the conditions on {base} cannot cover its i386 twin {twin} ({why}), so i386 "
            f"callers would not meet this rule: add a rule that names {twin} with conditions "
            "in its own terms",
            line=ctx.where.rule_key(index, "args"),
            key=f"rule[{index + 1}].args",
        )
