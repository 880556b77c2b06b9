"""The control protocol: versioned JSON lines over an AF_UNIX stream socket.

Specified in docs/control-protocol.md.

This module holds what both ends share and the blocking client the CLI (`status`, `ps`,
`reload`, `run --daemon`) uses. It imports no event loop: the daemon's trio side lives in
``supervisor.daemon.server``.

Requests are one JSON object per line, ``{"v": 1, "id": N, "op": "...", ...}``; answers carry the
same ``id``: ``{"v": 1, "id": N, "ok": true, "result": {...}}`` or ``{"v": 1, "id": N, "ok":
false, "error": {"code": "...", "message": "..."}}``. Events (``subscribe``) are lines without an
``id``: ``{"v": 1, "event": "...", ...}``. A listener fd travels with SCM_RIGHTS on the first
byte of its ``attach`` line.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
from typing import Any

VERSION = 1
DEFAULT_CONTROL = "/run/seccomp-supervisor/control.sock"
MAX_LINE = 64 * 1024  # a request line longer than this closes the connection
MAX_REPLY = 16 * 1024 * 1024  # what a client accepts from the daemon
OPS = ("attach", "list", "ps", "show", "reload", "status", "subscribe", "policy")


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


# -- the blocking client ---------------------------------------------------------------------
class DaemonUnavailable(Exception):
    """No daemon answers at the control socket (absent, refused, or it hung up)."""


class DaemonError(Exception):
    """The daemon answered with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code


class Client:
    """One connection to the daemon. Requests are answered in order."""

    def __init__(self, path: str, *, timeout: float | None = 10.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise DaemonUnavailable(f"no daemon at {path}: {e.strerror or e}") from None
        self._buf = b""
        self._next_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def request(self, op: str, *, fd: int | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request (with ``fd`` over SCM_RIGHTS); the ``result`` of its answer."""
        self._next_id += 1
        rid = self._next_id
        data = encode({"v": VERSION, "id": rid, "op": op, **fields})
        try:
            if fd is None:
                self.sock.sendall(data)
            else:
                fds = array.array("i", [fd])
                sent = self.sock.sendmsg(
                    [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())]
                )
                self.sock.sendall(data[sent:])
            while True:
                answer = self.read_message()
                if answer.get("id") == rid or "event" not in answer:
                    break
        except (OSError, ValueError) as e:
            raise DaemonUnavailable(f"the daemon at {self.path} hung up: {e}") from None
        if not answer.get("ok"):
            err = answer.get("error") or {}
            raise DaemonError(str(err.get("code", "error")), str(err.get("message", "")))
        result = answer.get("result")
        return result if isinstance(result, dict) else {}

    def read_message(self) -> dict[str, Any]:
        """The next JSON line from the daemon (an answer or an event)."""
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ValueError("connection closed")
            self._buf += chunk
            if len(self._buf) > MAX_REPLY:
                raise ValueError("answer too long")
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            obj = json.loads(line)
        except RecursionError:
            raise ValueError("answer nested too deeply") from None
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return obj


def request(path: str, op: str, **fields: Any) -> dict[str, Any]:
    """Connect, ask once, close."""
    with Client(path) as client:
        return client.request(op, **fields)


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
