"""The one exception the policy package raises for a bad policy file."""

from __future__ import annotations


class PolicyError(Exception):
    """A policy that cannot be loaded: says where (file, line, key) and what is wrong.

    ``str(e)`` is ``"FILE:LINE: KEY: MESSAGE"``; missing parts are left out, so an error found
    without a file reads ``"LINE: KEY: MESSAGE"`` and one without a line ``"FILE: KEY: MESSAGE"``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        parts = [p for p in (where, self.key) if p]
        return ": ".join([*parts, self.message])
