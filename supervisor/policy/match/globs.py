"""Path globs of policy rules, compiled to one regular expression each.

Globs match canonical absolute paths (no ``.``/``..``, no trailing or double slash, symlinks
resolved), which is what the supervisor loop hands the engine:

- ``*``: any run of characters within one segment (never ``/``), possibly empty;
- ``?``: one character, not ``/``;
- ``[abc]``, ``[a-z]``, ``[!abc]``: one character of (or not of) a class, never ``/``;
- ``**`` as a whole segment: any number of segments, including none, so ``/a/**`` matches
  ``/a`` itself and everything below it, and ``/**`` matches every path including ``/``.
  ``**`` inside a segment (``a**b``) is the same as ``*``.

There is no escape character; use a class (``[*]``) for a literal ``*``, ``?`` or ``[``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

_SEGMENT_ANY = "(?:/[^/]+)*"


class GlobError(ValueError):
    """A glob that cannot match a canonical absolute path."""


def translate(glob: str, *, slash: bool, what: str) -> str:
    """The regular expression (for ``fullmatch``) of one glob without ``**`` segments: a path
    segment (``slash=False``: no wildcard or class matches ``/``) or a whole string
    (``slash=True``: argv elements, where ``/`` is an ordinary character; compile with
    re.DOTALL). The one glob translator of the package: paths here, argv in argv.py. GlobError
    names ``what`` ("segment", "argv element") and ``glob``."""
    star, one = (".*", ".") if slash else ("[^/]*", "[^/]")
    out: list[str] = []
    bad_range: str | None = None  # raised once the whole glob is read (an unclosed [ first)
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            while i < n and glob[i] == "*":
                i += 1
            out.append(star)
            continue
        if c == "?":
            out.append(one)
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":  # a leading ] is a member
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                raise GlobError(f"unclosed '[' in {what} {glob!r}")
            body = glob[i + 1 : j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            members, reversed_range = _class_members(body)
            bad_range = bad_range or reversed_range
            cls = f"[^{members}]" if negate else f"[{members}]"
            out.append(cls if slash else f"(?!/){cls}")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    if bad_range is not None:
        low, high = bad_range[0], bad_range[2]
        raise GlobError(f"bad range '{bad_range}' in {what} {glob!r} (write '{high}-{low}')")
    return "".join(out)


def _class_members(body: str) -> tuple[str, str | None]:
    """The regex of a class's members (``body`` without its brackets and negation): single
    characters and ranges ``a-z``, each character escaped, so that nothing in a glob's class is
    regex syntax. Also the first range whose first character comes after its last (``z-a``),
    which the regex module would refuse at compile time."""
    out: list[str] = []
    reversed_range: str | None = None
    i, n = 0, len(body)
    while i < n:
        if i + 2 < n and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low > high and reversed_range is None:
                reversed_range = body[i : i + 3]
            out.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            out.append(re.escape(body[i]))
            i += 1
    return "".join(out), reversed_range


def _segment_regex(seg: str) -> str:
    return translate(seg, slash=False, what="segment")


def glob_to_regex(pattern: str) -> str:
    """The regular expression (for ``fullmatch``) of one glob; GlobError if it is not usable."""
    if not pattern.startswith("/"):
        raise GlobError(f"{pattern!r} is not an absolute path")
    if pattern == "/":
        return "/"
    body = pattern[1:]
    if body.endswith("/"):
        body = body[:-1]
    segments = body.split("/")
    for seg in segments:
        if seg == "":
            raise GlobError(f"{pattern!r} has an empty segment ('//')")
        if seg in (".", ".."):
            raise GlobError(f"{pattern!r} has a '{seg}' segment; paths are matched canonical")
    # (?=[^/]): a segment is never empty, so "/*" does not match the root "/".
    parts = [_SEGMENT_ANY if seg == "**" else "/(?=[^/])" + _segment_regex(seg) for seg in segments]
    regex = "".join(parts)
    if all(seg == "**" for seg in segments):
        regex = f"/|{regex}"  # the root itself is "none of the segments"
    return regex


def compile_globs(patterns: Iterable[str]) -> Callable[[str], re.Match[str] | None]:
    """One compiled matcher (``fullmatch``) for any of ``patterns``."""
    alternatives = [f"(?:{glob_to_regex(p)})" for p in patterns]
    if not alternatives:
        raise GlobError("no patterns")
    return re.compile("|".join(alternatives)).fullmatch


def glob_match(pattern: str, path: str) -> bool:
    """Whether ``path`` matches ``pattern`` (compiles every call: for tests and tools)."""
    return re.fullmatch(glob_to_regex(pattern), path) is not None


def _segments(pattern: str) -> list[str]:
    glob_to_regex(pattern)  # validates
    body = pattern[1:].rstrip("/")
    return body.split("/") if body else []


def compile_ancestor_globs(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test of whether a path is a directory *above* something one of ``patterns`` matches:
    ``/home/u`` is above ``/home/*/.ssh/**``. Renaming such a directory moves the protected
    files to paths the globs no longer match, so refusing rules treat it as a match for the
    rename family."""
    compiled: list[list[re.Pattern[str] | None]] = [
        [None if seg == "**" else re.compile(_segment_regex(seg)) for seg in _segments(p)]
        for p in patterns
    ]

    def above(glob: list[re.Pattern[str] | None], parts: list[str]) -> bool:
        # Can parts be extended by one or more segments to match glob?
        def walk(i: int, j: int) -> bool:
            if j == len(parts):
                return i < len(glob) or (i > 0 and glob[i - 1] is None)
            if i == len(glob):
                return False
            seg = glob[i]
            if seg is None:
                return walk(i + 1, j) or walk(i, j + 1)
            return seg.fullmatch(parts[j]) is not None and walk(i + 1, j + 1)

        return walk(0, 0)

    def is_above(path: str) -> bool:
        parts = [p for p in path.split("/") if p]
        return any(above(glob, parts) for glob in compiled)

    return is_above
