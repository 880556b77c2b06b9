"""The entry points: a policy's text (TOML) or file into a :class:`Policy`, and its top-level
keys. TOML syntax errors and parser failures become PolicyErrors with the file and line."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from ..advisory import advisory_warnings
from ..capabilities import Capabilities, parse_capabilities
from ..errors import PolicyError
from ..model import Action, Policy
from ..twins import abi_warnings, ipc_warnings
from .keys import DEFAULT_ACTIONS, DEFAULT_ERRNO, FORMAT_VERSION, TOP_KEYS, Context, Lines
from .rule import check_uncovered, rule
from .values import action, errno, seed_value, string_list

_PHASE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_LINE = re.compile(r"at line (\d+)")


def policy(ctx: Context, data: dict[str, Any], fallback_name: str | None) -> Policy:
    """The Policy of a parsed document ``data``."""

    def top_err(key: str, message: str) -> PolicyError:
        return ctx.error(message, line=ctx.where.top(key), key=key)

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
        raise ctx.error("missing (one of allow, deny, kill, log)", line=None, key="default")
    default = action(data["default"], lambda m: top_err("default", m))
    if default not in DEFAULT_ACTIONS:
        raise top_err("default", f"{default.value!r} cannot be a default (allow/deny/kill/log)")
    default_errno = DEFAULT_ERRNO
    if "default_errno" in data:
        if default is not Action.DENY:
            raise top_err("default_errno", 'only allowed with default = "deny"')
        default_errno = errno(data["default_errno"], lambda m: top_err("default_errno", m))
    if "seed" in data:
        ctx.seed = seed_value(data["seed"], lambda m: top_err("seed", m))
    if "phases" in data:
        phases = string_list(data["phases"], lambda m: top_err("phases", m))
        for phase in phases:
            if not _PHASE_NAME.match(phase):
                raise top_err("phases", f"{phase!r} is not a phase name (letters, digits, -, _)")
        if len(set(phases)) != len(phases):
            raise top_err("phases", "phase names must be unique")
        ctx.phases = tuple(phases)
    capabilities = Capabilities()
    if "capabilities" in data:
        capabilities = parse_capabilities(data["capabilities"], ctx.where.lines, ctx.source)
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise top_err("rule", "rules must be an array of tables: write [[rule]]")
    rules = tuple(rule(ctx, i, r) for i, r in enumerate(raw_rules))
    seen: dict[str, int] = {}
    for i, r in enumerate(rules):
        if r.name in seen:
            raise ctx.error(
                f"duplicate rule name {r.name!r} (also rule {seen[r.name] + 1})",
                line=ctx.where.rule_key(i, "name"),
                key=f"rule[{i + 1}].name",
            )
        seen[r.name] = i
    check_uncovered(ctx, rules)
    warnings = (
        advisory_warnings(rules, default, ctx.phases) + abi_warnings(rules) + ipc_warnings(rules)
    )
    return Policy(
        name=name,
        description=description,
        default=default,
        default_errno=default_errno,
        rules=rules,
        source=ctx.source,
        warnings=warnings,
        seed=ctx.seed,
        phases=ctx.phases,
        capabilities=capabilities,
    )


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
        return policy(Context(source, Lines(text)), data, name)
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
