"""Waiting for a condition, not a duration: a test that needs something to have happened (a
daemon answering, a file growing, a process gone) polls for it with ``wait_until`` and goes on as
soon as it holds. The deadline is generous on purpose: it is never what the test checks, only
what turns a condition that never comes into a failure (instead of a hang) on a machine however
busy. A test that must show that something does *not* happen keeps its own pause, and says so.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import trio

T = TypeVar("T")

DEADLINE = 60.0  # seconds: only ever reached when the condition never holds
INTERVAL = 0.02


def wait_until(
    condition: Callable[[], T],
    what: str | Callable[[], str] = "the condition",
    timeout: float = DEADLINE,
    interval: float = INTERVAL,
) -> T:
    """Call ``condition`` until it returns something true, and return that; fail the test
    (naming ``what``, or what ``what()`` says then) when it has not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{describe(what)}: not reached within {timeout:.0f}s")
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], T | Awaitable[T]],
    what: str | Callable[[], str] = "the condition",
    timeout: float = DEADLINE,
    interval: float = INTERVAL,
) -> T:
    """wait_until for trio tests: sleeps with trio (other tasks run meanwhile); ``condition``
    may be a plain or an async function."""
    deadline = trio.current_time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if trio.current_time() > deadline:
            pytest.fail(f"{describe(what)}: not reached within {timeout:.0f}s")
        await trio.sleep(interval)


def describe(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (those that exist now)."""
    tree, i = [pid], 0
    while i < len(tree):
        for tid in _listdir(f"/proc/{tree[i]}/task"):
            try:
                with open(f"/proc/{tree[i]}/task/{tid}/children") as f:
                    tree += [int(c) for c in f.read().split()]
            except OSError:
                continue
        i += 1
    return tree


# What a thread waiting for another one shows in wchan: wait4 on a child, a futex (a join, a
# lock), or a vfork parent waiting for its child to exec (kernel_clone, state D).
WAITING = ("do_wait", "futex_", "kernel_clone")


def held_by_supervisor(pid: int) -> bool:
    """True when the process tree of ``pid`` cannot run on by itself: at least one of its threads
    waits in a notified syscall (the kernel's seccomp_do_user_notification, until a supervisor
    answers) and every other one waits for such a thread (WAITING). A tree in
    this state makes no progress until its notifications are answered: what a test that stops
    the supervisor waits for before it checks that nothing happens while none is up."""
    states = thread_states(pid)
    notified = [w for _, _, w in states if w.startswith("seccomp_do_user_notification")]
    waiting = [w for _, s, w in states if s not in "ZX" and w.startswith(WAITING)]
    alive = [w for _, s, w in states if s not in "ZX"]
    return bool(notified) and len(notified) + len(waiting) == len(alive)


def thread_states(pid: int) -> list[tuple[str, str, str]]:
    """(pid/tid, state, wchan) of every thread of the process tree of ``pid``."""
    found = []
    for proc in process_tree(pid):
        for tid in _listdir(f"/proc/{proc}/task"):
            try:
                with open(f"/proc/{proc}/task/{tid}/wchan") as f:
                    wchan = f.read()
                with open(f"/proc/{proc}/task/{tid}/stat") as f:
                    state = f.read().rpartition(")")[2].split()[0]
            except OSError:
                continue  # gone meanwhile
            found.append((f"{proc}/{tid}", state, wchan))
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
