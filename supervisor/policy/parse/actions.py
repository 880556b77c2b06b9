"""What a matching rule does beyond its action: the return value of ``value``, the dice of
``fail`` (``probability``, ``every``), budgets (``limit``, ``rate``, ``burst``, ``per``,
``over``, ``over_errno``), phases (``phase``, ``enter``) and exec rules (``argv``, ``once``).
Each returns the Rule fields it read, as keyword arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..match.argv import ArgvError, compile_argv
from ..model import Action, Fault
from .keys import OVER_ACTIONS, PER_KEYS, Context, Err
from .values import errno, positive, rate, seed_value, string_list

# Return values in -4095..-1 are errnos to the target: write action = "deny" for those.
VALUE_MIN, VALUE_MAX = -(1 << 63), (1 << 63) - 1

# The Err of a rule's key, by key name.
ErrFor = Callable[[str], Err]


def state(ctx: Context, raw: dict[str, Any], action: Action, err_for: ErrFor) -> dict[str, Any]:
    """The Rule fields of the STATE_KEYS."""
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
        seed = ctx.seed if ctx.seed is not None else 0
        if "seed" in raw:
            seed = seed_value(raw["seed"], err_for("seed"))
        out["fault"] = Fault(probability=float(p), seed=seed)
    elif "every" in raw:
        out["fault"] = Fault(every=positive(raw["every"], err_for("every")))

    budget = [k for k in ("limit", "rate") if k in raw]
    for key in ("burst", "per", "over", "over_errno"):
        if key in raw and not budget and not (key == "over" and raw.get("once") is True):
            raise err_for(key)("only allowed with `limit` or `rate`")
    if budget and dice:
        raise err_for(budget[0])(f"cannot be combined with `{dice[0]}`")
    if "limit" in raw:
        out["limit"] = positive(raw["limit"], err_for("limit"))
    if "burst" in raw and "rate" not in raw:
        raise err_for("burst")("only allowed with `rate`")
    if "rate" in raw:
        rate_err, burst_err = err_for("rate"), err_for("burst")
        out["rate"] = rate(raw["rate"], raw.get("burst"), rate_err, burst_err)
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
        out["over_errno"] = errno(raw["over_errno"], err_for("over_errno"))
    out.update(phase_keys(ctx, raw, err_for))
    return out


def phase_keys(ctx: Context, raw: dict[str, Any], err_for: ErrFor) -> dict[str, Any]:
    """The Rule fields of ``phase`` and ``enter``."""
    out: dict[str, Any] = {}
    for key in ("phase", "enter"):
        if key in raw and not ctx.phases:
            raise err_for(key)("no phases declared: add `phases = [...]` at the top")
    if "phase" in raw:
        value = raw["phase"]
        names = [value] if isinstance(value, str) else value
        listed = string_list(names, err_for("phase"))
        unknown = [p for p in listed if p not in ctx.phases]
        if unknown:
            raise err_for("phase")(
                f"unknown phase {', '.join(unknown)} (declared: {', '.join(ctx.phases)})"
            )
        out["phases"] = tuple(p for p in ctx.phases if p in listed)
    if "enter" in raw:
        enter = raw["enter"]
        if not isinstance(enter, str) or enter not in ctx.phases:
            raise err_for("enter")(f"{enter!r} is not a declared phase ({', '.join(ctx.phases)})")
        if enter == ctx.phases[0]:
            raise err_for("enter")(f"{enter!r} is the first phase: phases only move forward")
        out["enter"] = enter
    return out


def exec_keys(
    raw: dict[str, Any], action: Action, rule_errno: int, has_address: bool, err_for: ErrFor
) -> dict[str, Any]:
    """The Rule fields of ``argv`` and ``once`` (exec rules); ``rule_errno`` is the rule's
    ``errno``, the errno of the later denials of a ``once``."""
    out: dict[str, Any] = {}
    key = "argv" if "argv" in raw else "once"
    if has_address:
        raise err_for(key)("an exec rule (`argv`, `once`) cannot have `address`")
    if "argv" in raw:
        argv = string_list(raw["argv"], err_for("argv"))
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
                out["over_errno"] = rule_errno
    return out
