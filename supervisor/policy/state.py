"""State across syscalls: the dice of fault injection, and the counters and token buckets of
``limit`` and ``rate``. Owned by an Engine (one per loaded policy: a reload starts afresh).

Pure like the rest of the package: no I/O and no clock of its own. Time comes from
``Request.now`` (the loop fills it with time.monotonic() when Engine.uses_clock), the process and
user keys from ``Request.tgid`` and ``Request.uid``. The dice are ``random.Random(seed)``, one per
rule, so the same seed and the same sequence of matching calls give the same failures.
"""

from __future__ import annotations

import random

from .model import Fault, Rule
from .request import Request


class PhaseState:
    """The policy's current phase, for the whole target tree: an index into Policy.phases that
    only moves forward."""

    __slots__ = ("current", "entered", "names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.current = 0
        self.entered: str | None = None  # set when a phase is entered, until taken

    def advance(self, index: int) -> None:
        if index > self.current:
            self.current = index
            self.entered = self.names[index]


class Dice:
    """Whether a fault-injection rule fails the call it matched."""

    __slots__ = ("_count", "_every", "_probability", "_random")

    def __init__(self, fault: Fault) -> None:
        self._every = fault.every
        self._probability = fault.probability
        self._random = random.Random(fault.seed)
        self._count = 0

    def roll(self) -> bool:
        if self._every:
            self._count += 1
            return self._count % self._every == 0
        # random() is in [0, 1): probability 1 always fails.
        return self._random.random() < self._probability


class Budget:
    """``limit`` (matching calls in the life of the key) and ``rate`` (a token bucket that holds
    ``burst`` tokens and gains ``count`` per ``period``), per tree, process (tgid) or user
    (uid). A call takes one token and one unit of the limit only when both have room."""

    __slots__ = ("_buckets", "_by", "_limit", "_rate", "_used")

    def __init__(self, rule: Rule) -> None:
        self._limit = rule.limit or (1 if rule.once else 0)  # once: a limit of 1 per tree
        self._rate = rule.rate
        self._by = rule.per
        self._used: dict[int, int] = {}
        self._buckets: dict[int, tuple[float, float]] = {}  # key -> (tokens, at time)

    def _key(self, request: Request) -> int:
        if self._by == "process":
            return request.tgid
        if self._by == "user":
            return request.uid
        return 0

    def take(self, request: Request, commit: bool) -> bool:
        """True when the call is within the budget; ``commit`` spends it (else only a look)."""
        key = self._key(request)
        limit = self._limit
        if limit and self._used.get(key, 0) >= limit:
            return False
        rate = self._rate
        if rate is not None:
            now = request.now
            held = self._buckets.get(key)
            if held is None:
                tokens = float(rate.burst)
            else:
                tokens, then = held
                # A clock that went back (a Request without ``now``) refills nothing.
                elapsed = now - then if now > then else 0.0
                tokens = min(float(rate.burst), tokens + elapsed * rate.count / rate.period)
            if tokens < 1.0:
                if commit:
                    self._buckets[key] = (tokens, now)
                return False
            if commit:
                self._buckets[key] = (tokens - 1.0, now)
        if commit and limit:
            self._used[key] = self._used.get(key, 0) + 1
        return True
