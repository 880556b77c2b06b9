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
from .constants import ERRNOS, SYMBOLS
from .errors import PolicyError
from .globs import GlobError, glob_to_regex
from .groups import GROUPS, expand
from .model import ARG_OPS, U64_MASK, Action, ArgCondition, Policy, Rule
from .syscalls import KNOWN_SYSCALLS, PATH_SYSCALLS

FORMAT_VERSION = 1
DEFAULT_ERRNO = ERRNOS["EPERM"]
TOP_KEYS = frozenset({"version", "name", "description", "default", "default_errno", "rule"})
RULE_KEYS = frozenset({"name", "syscalls", "path", "args", "action", "errno"})
ARG_KEYS = frozenset({"arg", "op", "value", "mask"})
ACTIONS: dict[str, Action] = {str(a.value): a for a in Action}

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
        default_errno = DEFAULT_ERRNO
        if "default_errno" in data:
            if default is not Action.DENY:
                raise top_err("default_errno", 'only allowed with default = "deny"')
            default_errno = self.errno(data["default_errno"], lambda m: top_err("default_errno", m))
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
        warnings = advisory_warnings(rules, default)
        return Policy(
            name=name,
            description=description,
            default=default,
            default_errno=default_errno,
            rules=rules,
            source=self.source,
            warnings=warnings,
        )

    # -- values ------------------------------------------------------------------------------

    @staticmethod
    def action(value: object, err: _Err) -> Action:
        if not isinstance(value, str) or value not in ACTIONS:
            raise err(f"{value!r} is not an action (one of allow, deny, kill, log)")
        return ACTIONS[value]

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
            if key not in RULE_KEYS:
                raise err_for(key)(f"unknown key (expected one of {', '.join(sorted(RULE_KEYS))})")

        name = raw.get("name", f"rule-{n}")
        if not isinstance(name, str) or not name:
            raise err_for("name")("must be a non-empty string")
        if "action" not in raw:
            raise err_for("action")("missing (one of allow, deny, kill, log)")
        action = self.action(raw["action"], err_for("action"))

        errno = 0
        if action is Action.DENY:
            errno = DEFAULT_ERRNO
        if "errno" in raw:
            if action is not Action.DENY:
                raise err_for("errno")(f'only allowed with action = "deny" (not {action.value})')
            errno = self.errno(raw["errno"], err_for("errno"))

        paths: tuple[str, ...] = ()
        if "path" in raw:
            paths = tuple(self.string_list(raw["path"], err_for("path")))
            for p in paths:
                try:
                    glob_to_regex(p)
                except GlobError as e:
                    raise err_for("path")(str(e)) from None

        spec: tuple[str, ...] = ()
        syscalls: frozenset[str] | None = None
        if "syscalls" in raw:
            spec = tuple(self.string_list(raw["syscalls"], err_for("syscalls")))
            syscalls = self.syscalls(spec, bool(paths), err_for("syscalls"), err_for("path"))
        elif not paths:
            raise err_for("syscalls")("a rule needs `syscalls`, `path` or both")

        args: tuple[ArgCondition, ...] = ()
        if "args" in raw:
            if syscalls is None:
                raise err_for("args")(
                    "`args` needs `syscalls` (argument numbers differ by syscall)"
                )
            args = self.args(raw["args"], err_for("args"))

        return Rule(
            name=name,
            syscalls=syscalls,
            paths=paths,
            args=args,
            action=action,
            errno=errno,
            line=header,
            spec=spec,
        )

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
    return _Parser(text, source).policy(data, name)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and parse the policy file at ``path`` (its stem is the default name)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"cannot read: {e}", file=str(path)) from None
    return parse_policy(text, source=str(path), name=p.stem)
