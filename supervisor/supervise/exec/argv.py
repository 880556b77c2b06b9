"""Reading an exec's argv from the target: the pointer array, then each string, page by page
(every read between ID_VALID checks, by ``MemoryReader``), within the limits of
``policy.match.argv``."""

from __future__ import annotations

import os

from supervisor.kernel.memory import MemoryReader
from supervisor.kernel.seccomp import Notification
from supervisor.policy.match.argv import ARGV_MAX_BYTES, ARGV_MAX_ELEMENTS

PAGE = 4096


def read_argv(mem: MemoryReader, n: Notification, addr: int, arch: str) -> tuple[str, ...] | None:
    """The argv array at ``addr`` in the target, or None when it is beyond the limits."""
    if arch != "x86_64":
        addr &= 0xFFFFFFFF
    if addr == 0:
        return ("",)
    size = 8 if arch == "x86_64" else 4
    pointers: list[int] = []
    buf = b""
    pos = addr
    while True:
        chunk = PAGE - (pos % PAGE)
        buf += mem.read_bytes(n.id, n.pid, pos, chunk)
        pos += chunk
        done = False
        while len(buf) >= size:
            ptr = int.from_bytes(buf[:size], "little")
            buf = buf[size:]
            if ptr == 0:
                done = True
                break
            pointers.append(ptr)
            if len(pointers) > ARGV_MAX_ELEMENTS:
                return None
        if done:
            break
    if not pointers:
        return ("",)  # Linux 5.18+ runs the program with argv = [""]
    out: list[str] = []
    total = 0
    for ptr in pointers:
        text = _read_arg(mem, n, ptr, ARGV_MAX_BYTES - total)
        if text is None:
            return None
        total += len(text) + 1
        out.append(os.fsdecode(text))
    return tuple(out)


def _read_arg(mem: MemoryReader, n: Notification, addr: int, budget: int) -> bytes | None:
    """One NUL-terminated string, page by page; None when longer than ``budget`` - 1."""
    parts: list[bytes] = []
    size = 0
    pos = addr
    while size < budget:
        chunk = min(PAGE - (pos % PAGE), budget - size)
        data = mem.read_bytes(n.id, n.pid, pos, chunk)
        nul = data.find(b"\0")
        if nul >= 0:
            parts.append(data[:nul])
            return b"".join(parts)
        parts.append(data)
        size += chunk
        pos += chunk
    return None
