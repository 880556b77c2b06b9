"""One client connection of the control socket: who the peer is, and its lines in and out.

The peer's credentials come from the kernel as they were at connect(2) (SO_PEERCRED,
SO_PEERGROUPS: no /proc race); ``authorised`` says whether they may use the socket. Reading
splits the byte stream into request lines of at most ``protocol.MAX_LINE`` and collects the fds
that came with each (SCM_RIGHTS, at most ``MAX_FDS_PER_MESSAGE``); a peer that stalls mid-line,
or idles without holding anything, is timed out. Writing never waits longer than the write
timeout: a peer that does not read is dropped. What a line *means* is ``daemon.ops``'s business.
"""

from __future__ import annotations

import array
import contextlib
import grp
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from supervisor.daemon.protocol import MAX_LINE, ProtocolError, encode

SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
MAX_FDS_PER_MESSAGE = 8  # room for this many; more are dropped (closed) by the kernel
_PEERCRED = struct.Struct("3i")


def group_id(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise ValueError(f"no group named {name!r}") from None


def peer_credentials(sock: Any) -> tuple[int, int, int, tuple[int, ...]]:
    """(pid, uid, gid, supplementary gids) of the peer, as the kernel recorded them at
    connect(2) (SO_PEERCRED, SO_PEERGROUPS): no /proc race."""
    pid, uid, gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    groups: tuple[int, ...] = ()
    with contextlib.suppress(OSError):
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * 1024)
        groups = tuple(array.array("I", raw[: len(raw) // 4 * 4]))
    return pid, uid, gid, groups


def authorised(uid: int, gid: int, groups: Iterable[int], group: int | None) -> bool:
    """Root, or a member of ``group``: primary gid, supplementary groups of the peer, or the
    group's member list naming the peer's user."""
    if uid == 0:
        return True
    if group is None:
        return False
    if gid == group or group in groups:
        return True
    try:
        user = pwd.getpwuid(uid).pw_name
        return user in grp.getgrgid(group).gr_mem
    except KeyError:
        return False


class Drop(Exception):
    """Close this connection (after a message, if one could be written)."""


def send_now(sock: trio.socket.SocketType, message: dict[str, Any]) -> None:
    """Best effort, never waits (the socket is non-blocking): a last word before closing."""
    with contextlib.suppress(OSError):
        os.write(sock.fileno(), encode(message))


# What handles one request line: (line, the fds received with it; the handler owns them).
LineHandler = Callable[[bytes, list[int]], Awaitable[None]]


@dataclass(eq=False)
class Connection:
    sock: trio.socket.SocketType
    pid: int
    uid: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    lock: trio.Lock = field(default_factory=trio.Lock)
    held: bool = False  # attached a target or subscribed: no idle timeout
    events: trio.MemorySendChannel[dict[str, Any]] | None = None
    dropped: str | None = None

    async def send(self, message: dict[str, Any], timeout: float) -> None:
        """Write one line; Drop when the peer does not take it within ``timeout``."""
        data = memoryview(encode(message))
        async with self.lock:
            with trio.move_on_after(timeout) as scope:
                try:
                    while data:
                        sent = await self.sock.send(data)
                        data = data[sent:]
                except OSError as e:
                    raise Drop(f"write failed: {e}") from None
            if scope.cancelled_caught:
                self.dropped = "peer does not read"
                raise Drop("peer does not read")

    async def write_events(
        self, receive: trio.MemoryReceiveChannel[dict[str, Any]], timeout: float
    ) -> None:
        """Forward queued events to the peer until the queue closes or the peer is dropped."""
        async with receive:
            try:
                async for event in receive:
                    await self.send(event, timeout)
            except Drop:
                self.scope.cancel()

    async def read_requests(
        self, handle: LineHandler, idle_timeout: float, pending: list[int]
    ) -> None:
        """Read lines and ``handle`` each until EOF; ``pending`` holds the fds received with the
        line being read (the caller closes them when this raises). Raises ProtocolError for
        input that breaks the protocol, Drop when the socket fails."""
        buf = bytearray()
        anc_size = socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * 4)
        while True:
            timeout = idle_timeout if (buf or not self.held) else float("inf")
            with trio.move_on_after(timeout) as scope:
                try:
                    data, ancdata, flags, _ = await self.sock.recvmsg(65536, anc_size)
                except OSError as e:
                    raise Drop(f"read failed: {e}") from None
            if scope.cancelled_caught:
                raise ProtocolError("timeout", "no complete request in time")
            fds: list[int] = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", payload[: len(payload) // 4 * 4]))
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.set_inheritable(fd, False)
            pending.extend(fds)
            if flags & socket.MSG_CTRUNC or len(pending) > MAX_FDS_PER_MESSAGE:
                raise ProtocolError("bad_fds", "too many fds for one request")
            if not data:
                return  # EOF (a partial line is simply dropped)
            buf += data
            while True:
                end = buf.find(b"\n")
                if end < 0:
                    break
                if end > MAX_LINE:
                    raise ProtocolError("line_too_long", f"request lines are at most {MAX_LINE}")
                line = bytes(buf[:end])
                del buf[: end + 1]
                line_fds, pending[:] = list(pending), []
                await handle(line, line_fds)
            if len(buf) > MAX_LINE:
                raise ProtocolError("line_too_long", f"request lines are at most {MAX_LINE}")
