"""Helpers for the systemd tests: a NOTIFY_SOCKET the test owns, playing systemd's part."""

from __future__ import annotations

import array
import os
import socket
import time


class NotifySocket:
    """A bound SOCK_DGRAM socket playing systemd's part: messages and their fds."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.env_value = address if isinstance(address, str) else "@" + address[1:].decode()

    def recv(self, timeout: float = 5.0) -> tuple[dict[str, str], list[int]]:
        self.sock.settimeout(timeout)
        fds = array.array("i")
        data, anc, flags, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
        assert not flags & socket.MSG_CTRUNC
        for level, kind, payload in anc:
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        text = data.decode()
        assert text.endswith("\n")
        fields = dict(line.split("=", 1) for line in text.splitlines())
        return fields, list(fds)

    def pending(self) -> int:
        n = 0
        self.sock.setblocking(False)
        try:
            while True:
                _, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(64))
                n += 1
        except BlockingIOError:
            return n

    def close(self) -> None:
        self.sock.close()

    def wait_for(
        self, key: str, value: str | None = None, timeout: float = 10.0
    ) -> tuple[dict[str, str], list[int]]:
        """The next message with ``key`` (and ``value``); fds of skipped messages are closed."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {key}={value or '*'} in {timeout}s")
            fields, fds = self.recv(left)
            if key in fields and (value is None or fields[key] == value):
                return fields, fds
            for fd in fds:
                os.close(fd)
