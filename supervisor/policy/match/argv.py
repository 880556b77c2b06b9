"""``argv`` patterns of exec rules: a list of globs matched element by element against the
argument vector a target passes to execve/execveat.

- Each pattern element is a glob on one argv element (the whole string, anchored at both ends):
  ``*`` any run of characters (``/`` included: argv elements are not paths), ``?`` one
  character, ``[abc]``, ``[a-z]``, ``[!abc]`` one character of (or not of) a class. There is no
  escape character: ``[*]`` is a literal ``*``. An unclosed ``[`` is an error.
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
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            while i < n and glob[i] == "*":
                i += 1
            out.append(".*")
            continue
        if c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":  # a leading ] is a member
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                raise ArgvError(f"unclosed '[' in argv element {glob!r}")
            body = glob[i + 1 : j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[^{body}]" if negate else f"[{body}]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


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
