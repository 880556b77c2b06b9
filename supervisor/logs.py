"""Logging: structlog set-up and the one event per decision.

Console rendering on a terminal, JSON lines otherwise (or when asked). Decision events repeat at
the target's pace — a loop opening a denied file could write thousands of identical lines a
second, slowing the supervisor and flooding the log — so identical decisions (same process,
syscall, paths, rule and action) within one second are folded: the first is written at once, the
rest are counted and written as one event with ``repeats=N`` when the second is over. Nothing is
dropped; counts are exact.
"""

from __future__ import annotations

import errno as errno_mod
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog

FOLD_WINDOW = 1.0
MAX_FOLDED_KEYS = 4096


def configure(fmt: str = "auto", level: str = "info", file: TextIO | None = None) -> None:
    """``fmt``: "console", "json" or "auto" (console when the output is a terminal)."""
    out = file or sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=out.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )


def errno_name(err: int) -> str:
    return errno_mod.errorcode.get(err, str(err))


class DecisionLog:
    """Writes decision events, folding identical ones within FOLD_WINDOW seconds."""

    def __init__(self, log: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._window_start = clock()
        # key -> [event, level, fields, repeats]; repeats is counted in place.
        self._folded: dict[tuple[Any, ...], list[Any]] = {}

    def emit(
        self,
        event: str,
        key: tuple[Any, ...],
        fields: Callable[[], dict[str, Any]],
        level: str = "warning",
    ) -> None:
        """``fields`` is only called when the event is written, so expensive lookups (the
        process's comm) are skipped for folded repeats."""
        now = self._clock()
        if now - self._window_start >= FOLD_WINDOW:
            self.flush()
            self._window_start = now
        folded = self._folded
        entry = folded.get(key)
        if entry is not None:
            entry[3] += 1
            return
        data = fields()
        getattr(self._log, level)(event, **data)
        if len(folded) < MAX_FOLDED_KEYS:
            folded[key] = [event, level, data, 0]

    def flush(self) -> None:
        """Write the repeat counts of the window that is ending."""
        for event, level, data, repeats in self._folded.values():
            if repeats:
                getattr(self._log, level)(event, **data, repeats=repeats)
        self._folded.clear()
