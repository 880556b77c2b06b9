"""The blocking client of the control protocol (docs/control-protocol.md): what the CLI
(`status`, `ps`, `reload`, `run --daemon`) and the tests use to talk to a daemon. No event loop;
one socket, requests answered in order, events skipped while waiting for an answer."""

from __future__ import annotations

import array
import json
import socket
from typing import Any

from supervisor.daemon.protocol import MAX_REPLY, VERSION, encode


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
