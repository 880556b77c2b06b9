"""Scalar values of the policy format: actions, seeds, counts, errnos, argument numbers, string
lists and rates. Each takes the value as TOML gave it and an ``err`` that makes the PolicyError
naming its key."""

from __future__ import annotations

import re

from ..model import U64_MASK, Action, Rate
from ..tables.constants import ERRNOS, SYMBOLS
from .keys import ACTIONS, Err

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def action(value: object, err: Err) -> Action:
    if not isinstance(value, str) or value not in ACTIONS:
        raise err(f"{value!r} is not an action (one of {', '.join(ACTIONS)})")
    return ACTIONS[value]


def seed_value(value: object, err: Err) -> int:
    if type(value) is not int or value < 0:
        raise err(f"{value!r} is not a seed (an integer >= 0)")
    return value


def positive(value: object, err: Err) -> int:
    if type(value) is not int or value < 1:
        raise err(f"{value!r} must be an integer >= 1")
    return value


def errno(value: object, err: Err) -> int:
    if isinstance(value, str):
        if value not in ERRNOS:
            raise err(f"unknown errno name {value!r}")
        return ERRNOS[value]
    if type(value) is int and 1 <= value <= 4095:
        return value
    raise err(f'{value!r} is not an errno (a name like "EACCES" or a number 1-4095)')


def number(value: object, err: Err) -> int:
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


def string_list(value: object, err: Err) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise err("must be a list of strings")
    if not value:
        raise err("must not be empty")
    return list(value)


def rate(value: object, burst: object, err: Err, burst_err: Err) -> Rate:
    m = _RATE.match(value) if isinstance(value, str) else None
    if m is None or int(m.group(1)) < 1:
        raise err(f'{value!r} is not a rate (like "50/s", "600/m" or "10/h", count >= 1)')
    count = int(m.group(1))
    size = count if burst is None else positive(burst, burst_err)
    return Rate(count=count, period=_PERIODS[m.group(2)[0]], burst=size, text=str(value))
