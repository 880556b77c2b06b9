"""What a rule matches: its syscalls (names and groups, narrowed by ``path``, ``address`` or an
exec rule), its path globs, its addresses and its argument conditions."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import PolicyError
from ..match.addresses import AddressError, AddressPattern, parse_address
from ..match.argv import EXEC_SYSCALLS
from ..match.globs import GlobError, glob_to_regex
from ..match.sockaddr import ADDRESS_SYSCALLS
from ..model import ARG_OPS, ArgCondition
from ..tables.groups import GROUPS, expand
from ..tables.syscalls import KNOWN_SYSCALLS, PATH_SYSCALLS
from .keys import ARG_KEYS, Err
from .values import number, string_list


def syscalls(spec: Sequence[str], has_path: bool, err: Err, path_err: Err) -> frozenset[str]:
    unknown = [s for s in spec if not s.startswith("@") and s not in KNOWN_SYSCALLS]
    unknown_groups = [s for s in spec if s.startswith("@") and s not in GROUPS]
    if unknown_groups:
        raise err(
            f"unknown syscall group {', '.join(unknown_groups)} "
            f"(groups: {', '.join(sorted(GROUPS))})"
        )
    if unknown:
        raise err(f"unknown syscall {', '.join(unknown)}")
    names = expand(spec)
    if has_path:
        # A syscall named directly must take a path; a group's other members are dropped.
        direct = [s for s in spec if not s.startswith("@") and s not in PATH_SYSCALLS]
        if direct:
            raise path_err(f"`path` given but {', '.join(direct)} takes no path argument")
        names = frozenset(s for s in names if s in PATH_SYSCALLS)
        if not names:
            raise path_err(f"`path` given but no syscall of {', '.join(spec)} takes a path")
    return names


def address_syscalls(spec: Sequence[str], names: frozenset[str], err: Err) -> frozenset[str]:
    """With ``address``: syscalls named directly must take an address; a group's other members
    are dropped."""
    direct = [s for s in spec if not s.startswith("@") and s not in ADDRESS_SYSCALLS]
    if direct:
        raise err(
            f"`address` given but {', '.join(direct)} takes no address "
            f"(only {', '.join(sorted(ADDRESS_SYSCALLS))})"
        )
    kept = names & ADDRESS_SYSCALLS
    if not kept:
        raise err(f"`address` given but no syscall of {', '.join(spec)} takes an address")
    return kept


def exec_syscalls(spec: Sequence[str], names: frozenset[str], err: Err) -> frozenset[str]:
    """With ``argv`` or ``once``: syscalls named directly must be execve or execveat; a group's
    other members are dropped."""
    direct = [s for s in spec if not s.startswith("@") and s not in EXEC_SYSCALLS]
    if direct:
        raise err(
            f"an exec rule (`argv`, `once`) applies to execve and execveat only, "
            f"not {', '.join(direct)}"
        )
    kept = names & EXEC_SYSCALLS
    if not kept:
        raise err(f"an exec rule (`argv`, `once`) but no syscall of {', '.join(spec)} execs")
    return kept


def paths(value: object, err: Err) -> tuple[str, ...]:
    """The globs of ``path``, each checked to compile."""
    globs = tuple(string_list(value, err))
    for p in globs:
        try:
            glob_to_regex(p)
        except GlobError as e:
            raise err(str(e)) from None
    return globs


def addresses(value: object, err: Err) -> tuple[AddressPattern, ...]:
    out = []
    for text in string_list(value, err):
        try:
            out.append(parse_address(text))
        except AddressError as e:
            raise err(str(e)) from None
    return tuple(out)


def args(value: object, err: Err) -> tuple[ArgCondition, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise err('must be a list of inline tables like { arg = 0, op = "==", value = 2 }')
    if not value:
        raise err("must not be empty")
    out = []
    for j, cond in enumerate(value):

        def cerr(message: str, j: int = j) -> PolicyError:
            return err(f"condition {j + 1}: {message}")

        for key in cond:
            if key not in ARG_KEYS:
                raise cerr(f"unknown key {key!r} (expected arg, op, value, mask)")
        index = cond.get("arg")
        if type(index) is not int or not 0 <= index <= 5:
            raise cerr(f"`arg` must be an argument number 0-5, not {index!r}")
        op = cond.get("op", "==")
        if op not in ARG_OPS:
            raise cerr(f"unknown op {op!r} (one of {', '.join(sorted(ARG_OPS))})")
        if "value" not in cond:
            raise cerr("missing `value`")
        operand = number(cond["value"], cerr)
        mask = 0
        if "mask" in cond:
            if op != "&=":
                raise cerr('`mask` is only used with op = "&="')
            mask = number(cond["mask"], cerr)
        elif op == "&=":
            mask = operand  # "&=" without a mask: all the bits of value are set
        if op == "&=" and operand & ~mask:
            raise cerr(f"value {operand:#x} has bits outside mask {mask:#x}: never true")
        out.append(ArgCondition(index, op, operand, mask))
    return tuple(out)
