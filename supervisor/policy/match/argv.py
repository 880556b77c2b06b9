"""``argv`` patterns of exec rules: a list of globs matched element by element against the
argument vector a target passes to execve/execveat.

- Each pattern element is a glob on one argv element (the whole string, anchored at both ends):
  ``*`` any run of characters (``/`` included: argv elements are not paths), ``?`` one
  character, ``[abc]``, ``[a-z]``, ``[!abc]`` one character of (or not of) a class. There is no
  escape character: ``[*]`` is a literal ``*``. An unclosed ``[`` or a reversed range
  (``[z-a]``) is an error. The globs are those of paths (globs.translate, the one translator),
  with ``/`` an ordinary character.
- Without a final ``"**"`` the argv must have exactly as many elements as the pattern.
- A final element ``"**"`` (exactly that string) matches any number of remaining elements,
  including none: ``["git", "status", "**"]`` matches ``git status`` and
  ``git status --short -b``. ``"**"`` anywhere else is an error; inside an element (``a**``) it is
  the same as ``*``.
- ``argv[0]`` is matched as the target gave it, not resolved: pin the program with ``path``.
- An exec with a NULL or empty argv runs with ``argv = [""]`` (Linux 5.18+ inserts it): that is
  what is matched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .globs import GlobError, translate

ANY_REST = "**"
# The syscalls an exec rule (``argv``, ``once``) applies to.
EXEC_SYSCALLS: frozenset[str] = frozenset({"execve", "execveat"})
# Beyond these the supervisor does not read an argv (docs/policy.md "Exec rules"): the request
# then carries none, and an argv rule that lets the call through cannot match it.
ARGV_MAX_ELEMENTS = 1024
ARGV_MAX_BYTES = 128 * 1024  # the strings with their NULs

ArgvMatch = Callable[[tuple[str, ...]], bool]


class ArgvError(ValueError):
    """An ``argv`` pattern that cannot be compiled."""


def _element_regex(glob: str) -> str:
    try:
        return translate(glob, slash=True, what="argv element")
    except GlobError as e:
        raise ArgvError(str(e)) from None


def compile_argv(patterns: Sequence[str]) -> ArgvMatch:
    """A function telling whether an argv (a tuple of str) matches ``patterns``."""
    if not patterns:
        raise ArgvError("must not be empty")
    elems = list(patterns)
    rest = elems[-1] == ANY_REST
    if rest:
        elems.pop()
    if ANY_REST in elems:
        raise ArgvError('"**" may only be the last element (any number of further arguments)')
    regexes = tuple(re.compile(_element_regex(p), re.DOTALL).fullmatch for p in elems)
    count = len(regexes)

    def match(argv: tuple[str, ...]) -> bool:
        if len(argv) < count or (not rest and len(argv) != count):
            return False
        return all(test(arg) is not None for test, arg in zip(regexes, argv, strict=False))

    return match


def argv_match(patterns: Sequence[str], argv: Sequence[str]) -> bool:
    """One-off match (tests, tools): whether ``argv`` matches ``patterns``."""
    return compile_argv(patterns)(tuple(argv))
