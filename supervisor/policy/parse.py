"""Read and validate a TOML policy file (format v1) into a :class:`Policy`.

Every problem is a :class:`PolicyError` naming the file, the line and the key. tomllib keeps no
positions, so lines are found by scanning the text: the N-th ``[[rule]]`` header, and the line
of ``key =`` inside that block (or before the first table, for top-level keys). See
docs/policy.md for the format.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .advisory import advisory_warnings
from .errors import PolicyError
from .match.addresses import AddressError, AddressPattern, parse_address
from .match.argv import EXEC_SYSCALLS, ArgvError, compile_argv
from .match.globs import GlobError, glob_to_regex
from .match.sockaddr import ADDRESS_SYSCALLS
from .model import ARG_OPS, U64_MASK, Action, ArgCondition, Fault, Policy, Rate, Rule
from .tables.constants import ERRNOS, SYMBOLS
from .tables.groups import GROUPS, expand
from .tables.syscalls import KNOWN_SYSCALLS, PATH_SYSCALLS
from .twins import abi_warnings, incompatible_args, ipc_warnings, twins_of

FORMAT_VERSION = 1
DEFAULT_ERRNO = ERRNOS["EPERM"]
TOP_KEYS = frozenset(
    {"version", "name", "description", "default", "default_errno", "rule"} | {"seed", "phases"}
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
FAIL_ERRNO = ERRNOS["EIO"]
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PHASE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# Return values in -4095..-1 are errnos to the target: write action = "deny" for those.
VALUE_MIN, VALUE_MAX = -(1 << 63), (1 << 63) - 1

_Err = Callable[[str], PolicyError]

_HEADER = re.compile(r"^\s*\[")
_RULE_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
_TOML_LINE = re.compile(r"at line (\d+)")


class _Lines:
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


class _Parser:
    def __init__(self, text: str, source: str | None) -> None:
        self.source = source
        self.where = _Lines(text)
        self.seed: int | None = None  # the policy-level seed, read before the rules
        self.phases: tuple[str, ...] = ()  # declared phases, read before the rules
        # Twins a rule's conditions cannot cover: (rule index, syscall, twin, why), checked
        # once every rule is read (another rule may name the twin itself).
        self.uncovered: list[tuple[int, str, str, str]] = []

    def error(self, message: str, *, line: int | None, key: str | None) -> PolicyError:
        return PolicyError(message, file=self.source, line=line, key=key)

    # -- top level ---------------------------------------------------------------------------

    def policy(self, data: dict[str, Any], fallback_name: str | None) -> Policy:
        def top_err(key: str, message: str) -> PolicyError:
            return self.error(message, line=self.where.top(key), key=key)

        for key in data:
            if key not in TOP_KEYS:
                raise top_err(key, f"unknown key (expected one of {', '.join(sorted(TOP_KEYS))})")
        if "version" in data:
            v = data["version"]
            if type(v) is not int or v != FORMAT_VERSION:
                raise top_err("version", f"unsupported version {v!r} (this is format 1)")
        name = data.get("name", fallback_name or "unnamed")
        if not isinstance(name, str) or not name:
            raise top_err("name", "must be a non-empty string")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise top_err("description", "must be a string")
        if "default" not in data:
            raise self.error("missing (one of allow, deny, kill, log)", line=None, key="default")
        default = self.action(data["default"], lambda m: top_err("default", m))
        if default not in DEFAULT_ACTIONS:
            raise top_err("default", f"{default.value!r} cannot be a default (allow/deny/kill/log)")
        default_errno = DEFAULT_ERRNO
        if "default_errno" in data:
            if default is not Action.DENY:
                raise top_err("default_errno", 'only allowed with default = "deny"')
            default_errno = self.errno(data["default_errno"], lambda m: top_err("default_errno", m))
        if "seed" in data:
            self.seed = self.seed_value(data["seed"], lambda m: top_err("seed", m))
        if "phases" in data:
            phases = self.string_list(data["phases"], lambda m: top_err("phases", m))
            for phase in phases:
                if not _PHASE_NAME.match(phase):
                    raise top_err(
                        "phases", f"{phase!r} is not a phase name (letters, digits, -, _)"
                    )
            if len(set(phases)) != len(phases):
                raise top_err("phases", "phase names must be unique")
            self.phases = tuple(phases)
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
            raise top_err("rule", "rules must be an array of tables: write [[rule]]")
        rules = tuple(self.rule(i, r) for i, r in enumerate(raw_rules))
        seen: dict[str, int] = {}
        for i, r in enumerate(rules):
            if r.name in seen:
                raise self.error(
                    f"duplicate rule name {r.name!r} (also rule {seen[r.name] + 1})",
                    line=self.where.rule_key(i, "name"),
                    key=f"rule[{i + 1}].name",
                )
            seen[r.name] = i
        self.check_uncovered(rules)
        warnings = (
            advisory_warnings(rules, default, self.phases)
            + abi_warnings(rules)
            + ipc_warnings(rules)
        )
        return Policy(
            name=name,
            description=description,
            default=default,
            default_errno=default_errno,
            rules=rules,
            source=self.source,
            warnings=warnings,
            seed=self.seed,
            phases=self.phases,
        )

    # -- values ------------------------------------------------------------------------------

    @staticmethod
    def action(value: object, err: _Err) -> Action:
        if not isinstance(value, str) or value not in ACTIONS:
            raise err(f"{value!r} is not an action (one of {', '.join(ACTIONS)})")
        return ACTIONS[value]

    @staticmethod
    def seed_value(value: object, err: _Err) -> int:
        if type(value) is not int or value < 0:
            raise err(f"{value!r} is not a seed (an integer >= 0)")
        return value

    @staticmethod
    def positive(value: object, err: _Err) -> int:
        if type(value) is not int or value < 1:
            raise err(f"{value!r} must be an integer >= 1")
        return value

    @staticmethod
    def errno(value: object, err: _Err) -> int:
        if isinstance(value, str):
            if value not in ERRNOS:
                raise err(f"unknown errno name {value!r}")
            return ERRNOS[value]
        if type(value) is int and 1 <= value <= 4095:
            return value
        raise err(f'{value!r} is not an errno (a name like "EACCES" or a number 1-4095)')

    @staticmethod
    def number(value: object, err: _Err) -> int:
        """An argument value: an integer or symbolic names joined with '|'."""
        if isinstance(value, str):
            total = 0
            for part in value.split("|"):
                sym = part.strip()
                if sym not in SYMBOLS:
                    raise err(f"unknown symbolic value {sym!r}")
                total |= SYMBOLS[sym]
            return total
        if type(value) is int:
            if not 0 <= value <= U64_MASK:
                raise err(f"{value} is out of range (0 to 2**64-1)")
            return value
        raise err(f"{value!r} must be an integer or a symbolic name")

    # -- rules -------------------------------------------------------------------------------

    def rule(self, index: int, raw: dict[str, Any]) -> Rule:
        n = index + 1
        header = self.where.rule(index)

        def err_for(key: str) -> _Err:
            def make(message: str) -> PolicyError:
                line = self.where.rule_key(index, key) if key in raw else header
                return self.error(message, line=line, key=f"rule[{n}].{key}")

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
        action = self.action(raw["action"], err_for("action"))

        errno = 0
        if action is Action.DENY:
            errno = DEFAULT_ERRNO
        elif action is Action.FAIL:
            errno = FAIL_ERRNO
        if "errno" in raw:
            once = raw.get("once") is True and action in (Action.ALLOW, Action.LOG)
            if action not in (Action.DENY, Action.FAIL) and not once:
                raise err_for("errno")(
                    f'only allowed with action = "deny" or "fail" (not {action.value}), '
                    "or with `once`"
                )
            errno = self.errno(raw["errno"], err_for("errno"))
        state = self.state(raw, action, err_for)

        paths: tuple[str, ...] = ()
        if "path" in raw:
            paths = tuple(self.string_list(raw["path"], err_for("path")))
            for p in paths:
                try:
                    glob_to_regex(p)
                except GlobError as e:
                    raise err_for("path")(str(e)) from None

        addresses: tuple[AddressPattern, ...] = ()
        if "address" in raw:
            if paths:
                raise err_for("address")("a rule cannot have both `path` and `address`")
            addresses = self.addresses(raw["address"], err_for("address"))

        spec: tuple[str, ...] = ()
        syscalls: frozenset[str] | None = None
        if "syscalls" in raw:
            spec = tuple(self.string_list(raw["syscalls"], err_for("syscalls")))
            syscalls = self.syscalls(spec, bool(paths), err_for("syscalls"), err_for("path"))
        elif not paths and not addresses and "argv" not in raw and "once" not in raw:
            raise err_for("syscalls")("a rule needs `syscalls`, `path` or both")

        if addresses and syscalls is not None:
            syscalls = self.address_syscalls(spec, syscalls, err_for("address"))

        if "argv" in raw or "once" in raw:
            exec_fields = self.exec_keys(raw, action, errno, bool(addresses), err_for)
            if exec_fields.get("once"):
                errno = 0  # the errno of the later denials, in over_errno
            state.update(exec_fields)
            if syscalls is None:
                spec, syscalls = ("execve", "execveat"), EXEC_SYSCALLS
            else:
                syscalls = self.exec_syscalls(spec, syscalls, err_for("syscalls"))

        args: tuple[ArgCondition, ...] = ()
        if "args" in raw:
            if syscalls is None:
                raise err_for("args")(
                    "`args` needs `syscalls` (argument numbers differ by syscall)"
                )
            args = self.args(raw["args"], err_for("args"))

        twins: frozenset[str] = frozenset()
        if syscalls is not None:
            syscalls, twins = self.with_twins(index, syscalls, args, bool(paths))

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
            **state,
        )

    def with_twins(
        self, index: int, names: frozenset[str], args: tuple[ArgCondition, ...], has_path: bool
    ) -> tuple[frozenset[str], frozenset[str]]:
        """``names`` with the i386 twins of its syscalls (policy/twins.py), and the twins added.
        A twin whose arguments the conditions read differently is left out and remembered."""
        added = set()
        for twin_name, (base, twin) in twins_of(names).items():
            if has_path and twin_name not in PATH_SYSCALLS:
                continue
            bad = incompatible_args((c.index for c in args), twin)
            if bad:
                where = ", ".join(f"arg{i}" for i in bad)
                self.uncovered.append((index, base, twin_name, f"{where}: {twin.differs}"))
                continue
            added.add(twin_name)
        return names | added, frozenset(added)

    def check_uncovered(self, rules: Sequence[Rule]) -> None:
        """A rule on a syscall covers its i386 twins; where its conditions cannot (another
        argument layout), some rule must name the twin itself, or the policy is refused."""
        named = {s for r in rules for s in r.spec if not s.startswith("@")}
        for index, base, twin, why in self.uncovered:
            if twin in named:
                continue
            raise self.error(
                f"the conditions on {base} cannot cover its i386 twin {twin} ({why}), so i386 "
                f"callers would not meet this rule: add a rule that names {twin} with conditions "
                "in its own terms",
                line=self.where.rule_key(index, "args"),
                key=f"rule[{index + 1}].args",
            )

    def state(self, raw: dict[str, Any], action: Action, err_for: Callable[[str], _Err]) -> Any:
        """The Rule fields of the STATE_KEYS (a dict of keyword arguments)."""
        out: dict[str, Any] = {}
        if action is Action.VALUE:
            if "value" not in raw:
                raise err_for("value")('action = "value" needs `value = N` (the return value)')
            v = raw["value"]
            if type(v) is not int or not VALUE_MIN <= v <= VALUE_MAX or -4095 <= v <= -1:
                raise err_for("value")(
                    f"{v!r} is not a return value (a 64-bit integer, not -4095..-1: "
                    'for errors write action = "deny" with errno)'
                )
            out["value"] = v
        elif "value" in raw:
            raise err_for("value")(f'only allowed with action = "value" (not {action.value})')

        dice = [k for k in ("probability", "every") if k in raw]
        if len(dice) == 2:
            raise err_for("every")("give `probability` or `every`, not both")
        if dice and action is not Action.FAIL:
            raise err_for(dice[0])(f'only allowed with action = "fail" (not {action.value})')
        if "seed" in raw and "probability" not in raw:
            raise err_for("seed")("only allowed with `probability`")
        if "probability" in raw:
            p = raw["probability"]
            if type(p) not in (int, float) or not 0 < p <= 1:
                raise err_for("probability")(f"{p!r} is not a probability (0 < p <= 1)")
            seed = self.seed if self.seed is not None else 0
            if "seed" in raw:
                seed = self.seed_value(raw["seed"], err_for("seed"))
            out["fault"] = Fault(probability=float(p), seed=seed)
        elif "every" in raw:
            out["fault"] = Fault(every=self.positive(raw["every"], err_for("every")))

        budget = [k for k in ("limit", "rate") if k in raw]
        for key in ("burst", "per", "over", "over_errno"):
            if key in raw and not budget and not (key == "over" and raw.get("once") is True):
                raise err_for(key)("only allowed with `limit` or `rate`")
        if budget and dice:
            raise err_for(budget[0])(f"cannot be combined with `{dice[0]}`")
        if "limit" in raw:
            out["limit"] = self.positive(raw["limit"], err_for("limit"))
        if "burst" in raw and "rate" not in raw:
            raise err_for("burst")("only allowed with `rate`")
        if "rate" in raw:
            rate_err, burst_err = err_for("rate"), err_for("burst")
            out["rate"] = self.rate(raw["rate"], raw.get("burst"), rate_err, burst_err)
        if "per" in raw:
            per = raw["per"]
            if per not in PER_KEYS:
                raise err_for("per")(f"{per!r} is not one of {', '.join(PER_KEYS)}")
            out["per"] = per
        if "over" in raw:
            over = raw["over"]
            if not isinstance(over, str) or over not in OVER_ACTIONS:
                raise err_for("over")(f"{over!r} is not deny or kill")
            out["over"] = OVER_ACTIONS[over]
        if "over_errno" in raw:
            if out.get("over", Action.DENY) is not Action.DENY:
                raise err_for("over_errno")('only allowed with over = "deny"')
            out["over_errno"] = self.errno(raw["over_errno"], err_for("over_errno"))
        for key in ("phase", "enter"):
            if key in raw and not self.phases:
                raise err_for(key)("no phases declared: add `phases = [...]` at the top")
        if "phase" in raw:
            value = raw["phase"]
            names = [value] if isinstance(value, str) else value
            listed = self.string_list(names, err_for("phase"))
            unknown = [p for p in listed if p not in self.phases]
            if unknown:
                raise err_for("phase")(
                    f"unknown phase {', '.join(unknown)} (declared: {', '.join(self.phases)})"
                )
            out["phases"] = tuple(p for p in self.phases if p in listed)
        if "enter" in raw:
            enter = raw["enter"]
            if not isinstance(enter, str) or enter not in self.phases:
                raise err_for("enter")(
                    f"{enter!r} is not a declared phase ({', '.join(self.phases)})"
                )
            if enter == self.phases[0]:
                raise err_for("enter")(f"{enter!r} is the first phase: phases only move forward")
            out["enter"] = enter
        return out

    def exec_keys(
        self,
        raw: dict[str, Any],
        action: Action,
        errno: int,
        has_address: bool,
        err_for: Callable[[str], _Err],
    ) -> dict[str, Any]:
        """The Rule fields of ``argv`` and ``once`` (exec rules)."""
        out: dict[str, Any] = {}
        key = "argv" if "argv" in raw else "once"
        if has_address:
            raise err_for(key)("an exec rule (`argv`, `once`) cannot have `address`")
        if "argv" in raw:
            argv = self.string_list(raw["argv"], err_for("argv"))
            try:
                compile_argv(argv)
            except ArgvError as e:
                raise err_for("argv")(str(e)) from None
            out["argv"] = tuple(argv)
        if "once" in raw:
            once = raw["once"]
            if type(once) is not bool:
                raise err_for("once")(f"{once!r} must be true or false")
            if once:
                if action not in (Action.ALLOW, Action.LOG):
                    raise err_for("once")(
                        f'only allowed with action = "allow" or "log" (not {action.value})'
                    )
                for other in ("limit", "rate", "probability", "every"):
                    if other in raw:
                        raise err_for(other)("cannot be combined with `once`")
                out["once"] = True
                if "errno" in raw:
                    out["over_errno"] = errno
        return out

    @staticmethod
    def exec_syscalls(spec: Sequence[str], names: frozenset[str], err: _Err) -> frozenset[str]:
        """With ``argv`` or ``once``: syscalls named directly must be execve or execveat; a
        group's other members are dropped."""
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

    def rate(self, value: object, burst: object, err: _Err, burst_err: _Err) -> Rate:
        m = _RATE.match(value) if isinstance(value, str) else None
        if m is None or int(m.group(1)) < 1:
            raise err(f'{value!r} is not a rate (like "50/s", "600/m" or "10/h", count >= 1)')
        count = int(m.group(1))
        size = count if burst is None else self.positive(burst, burst_err)
        return Rate(count=count, period=_PERIODS[m.group(2)[0]], burst=size, text=str(value))

    @staticmethod
    def string_list(value: object, err: _Err) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise err("must be a list of strings")
        if not value:
            raise err("must not be empty")
        return list(value)

    @staticmethod
    def syscalls(spec: Sequence[str], has_path: bool, err: _Err, path_err: _Err) -> frozenset[str]:
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

    def addresses(self, value: object, err: _Err) -> tuple[AddressPattern, ...]:
        out = []
        for text in self.string_list(value, err):
            try:
                out.append(parse_address(text))
            except AddressError as e:
                raise err(str(e)) from None
        return tuple(out)

    @staticmethod
    def address_syscalls(spec: Sequence[str], names: frozenset[str], err: _Err) -> frozenset[str]:
        """With ``address``: syscalls named directly must take an address; a group's other
        members are dropped."""
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

    def args(self, value: object, err: _Err) -> tuple[ArgCondition, ...]:
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
            number = self.number(cond["value"], cerr)
            mask = 0
            if "mask" in cond:
                if op != "&=":
                    raise cerr('`mask` is only used with op = "&="')
                mask = self.number(cond["mask"], cerr)
            elif op == "&=":
                mask = number  # "&=" without a mask: all the bits of value are set
            if op == "&=" and number & ~mask:
                raise cerr(f"value {number:#x} has bits outside mask {mask:#x}: never true")
            out.append(ArgCondition(index, op, number, mask))
        return tuple(out)


def _toml_error(e: tomllib.TOMLDecodeError, source: str | None) -> PolicyError:
    m = _TOML_LINE.search(str(e))
    line = int(m.group(1)) if m else None
    message = str(e)
    message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
    message = re.sub(r"\s*\(at end of document\)", " (at end of file)", message)
    return PolicyError(f"TOML syntax: {message}", file=source, line=line)


def parse_policy(text: str, *, source: str | None = None, name: str | None = None) -> Policy:
    """Parse and validate policy ``text``. ``source`` names it in errors; ``name`` is the name
    used when the text has no ``name`` key. Raises PolicyError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _toml_error(e, source) from None
    except RecursionError:
        # tomllib recurses once per nesting level: `a = [[[...` deep enough exhausts the stack.
        raise PolicyError("TOML syntax: arrays or tables nested too deeply", file=source) from None
    except Exception as e:  # any other failure of the parser is still a bad file, not a crash
        raise PolicyError(
            f"TOML syntax: cannot parse: {type(e).__name__}: {e}", file=source
        ) from None
    try:
        return _Parser(text, source).policy(data, name)
    except RecursionError:
        raise PolicyError("values nested too deeply", file=source) from None


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and parse the policy file at ``path`` (its stem is the default name)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"cannot read: {e}", file=str(path)) from None
    return parse_policy(text, source=str(path), name=p.stem)
