"""The control protocol: versioned JSON lines over an AF_UNIX stream socket.

Specified in docs/control-protocol.md.

This module is the wire both ends share: the framing limits, the error types, encoding and
parsing of lines. It imports no event loop: the blocking client is ``supervisor.daemon.client``,
the daemon's trio side ``supervisor.daemon.connection`` (reading and writing lines) and
``supervisor.daemon.ops`` (the table of operations, the one place that knows each op).

Requests are one JSON object per line, ``{"v": 1, "id": N, "op": "...", ...}``; answers carry the
same ``id``: ``{"v": 1, "id": N, "ok": true, "result": {...}}`` or ``{"v": 1, "id": N, "ok":
false, "error": {"code": "...", "message": "..."}}``. Events (``subscribe``) are lines without an
``id``: ``{"v": 1, "event": "...", ...}``. A listener fd travels with SCM_RIGHTS on the first
byte of its ``attach`` line.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

VERSION = 1
DEFAULT_CONTROL = "/run/seccomp-supervisor/control.sock"
MAX_LINE = 64 * 1024  # a request line longer than this closes the connection
MAX_REPLY = 16 * 1024 * 1024  # what a client accepts from the daemon


class ProtocolError(Exception):
    """Input that breaks the protocol: the connection is answered with ``code`` and closed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RequestError(Exception):
    """A well-formed request that cannot be served: an error answer, the connection stays."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def parse_request(line: bytes) -> dict[str, Any]:
    """One request line (without its newline) → the request object, or ProtocolError."""
    try:
        obj = json.loads(line)
    except RecursionError:
        # json's decoder recurses once per nesting level: b"[" * 2000 exhausts the stack.
        raise ProtocolError("bad_json", "not a JSON line: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError("bad_json", f"not a JSON line: {e}") from None
    except Exception as e:  # whatever else the decoder may raise is still bad input
        raise ProtocolError("bad_json", f"not a JSON line: {type(e).__name__}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", "a request is a JSON object")
    v = obj.get("v")
    if v != VERSION or isinstance(v, bool):
        raise ProtocolError("unsupported_version", f"protocol version {VERSION} only")
    rid = obj.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise ProtocolError("bad_request", '"id" must be an integer')
    if not isinstance(obj.get("op"), str):
        raise ProtocolError("bad_request", '"op" must be a string')
    return obj


def ok(rid: int, result: dict[str, Any]) -> dict[str, Any]:
    return {"v": VERSION, "id": rid, "ok": True, "result": result}


def error(rid: int | None, code: str, message: str) -> dict[str, Any]:
    return {"v": VERSION, "id": rid, "ok": False, "error": {"code": code, "message": message}}


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
