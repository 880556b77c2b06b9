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


def _segment_regex(seg: str) -> str:
    out: list[str] = []
    i, n = 0, len(seg)
    while i < n:
        c = seg[i]
        if c == "*":
            while i < n and seg[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and seg[j] in "!^":
                j += 1
            if j < n and seg[j] == "]":  # a leading ] is a member
                j += 1
            while j < n and seg[j] != "]":
                j += 1
            if j >= n:
                raise GlobError(f"unclosed '[' in segment {seg!r}")
            body = seg[i + 1 : j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


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
