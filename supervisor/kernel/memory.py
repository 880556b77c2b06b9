"""Reading and writing the target's memory, each access bracketed by ID_VALID checks.

process_vm_readv(2) is used rather than /proc/TID/mem: one syscall instead of open, pread and
close, with the same access check (PTRACE_MODE_ATTACH_REALCREDS). The notification id is checked
before and after the read (inside one C call, ``sv_read_*_checked``): if it is still valid after
the read, the thread was alive throughout, so the tid was not reused and the bytes came from the
process that made the syscall. The bytes are still untrusted input: the target may change them
the moment we have read them, which is why allows never resume a syscall whose pointer arguments
were inspected (see ``supervisor.supervise.act``).

Writes (the result of a stat, readlink or getxattr the supervisor performed for the target:
``write_bytes``) go the same way, with process_vm_writev (``sv_write_spans_checked``), which
honours the target's page protections as the kernel's copy_to_user does (a read-only or unmapped
buffer is EFAULT; /proc/TID/mem would write through read-only mappings). The id is checked
before and after; a write that fails, even in part, is EFAULT for the target.
"""

from __future__ import annotations

import errno
from typing import Any

from supervisor._native import ffi, lib

PATH_MAX = 4096


# The largest answer written back (an xattr value or list: XATTR_SIZE_MAX, XATTR_LIST_MAX).
WRITE_MAX = 65536


class TargetGone(Exception):
    """The notification is no longer valid: the thread was killed or its syscall interrupted."""


class TargetMemoryError(OSError):
    """The target passed a pointer we cannot read (EFAULT) or a string too long
    (ENAMETOOLONG). The errno is what the target should get."""


class MemoryReader:
    """Reads for one listener. Keeps one scratch buffer, so it is not shared between threads."""

    def __init__(self, listener_fd: int) -> None:
        self.listener = listener_fd
        # The scratch buffer (PATH_MAX bytes); public for C calls that read into it
        # (PathResolver.read_and_resolve).
        self.buf: Any = ffi.new("char[]", PATH_MAX)

    def fail(self, ret: int) -> None:
        """Raise what a failed read (``ret`` = -errno) means: TargetGone or TargetMemoryError."""
        if ret == -errno.ENOENT:
            raise TargetGone()
        raise TargetMemoryError(
            -ret, "cannot read target memory" if ret == -errno.EFAULT else "path too long"
        )

    def read_string(self, notif_id: int, tid: int, addr: int, maxlen: int = PATH_MAX) -> bytes:
        """A NUL-terminated string of at most ``maxlen - 1`` bytes, without the NUL."""
        maxlen = min(maxlen, PATH_MAX)
        ret = lib.sv_read_string_checked(self.listener, notif_id, tid, addr, self.buf, maxlen)
        if ret < 0:
            self.fail(ret)
        data: bytes = ffi.unpack(self.buf, ret)
        return data

    def read_bytes(self, notif_id: int, tid: int, addr: int, length: int) -> bytes:
        """Exactly ``length`` bytes (a struct). EFAULT if any of them is unmapped."""
        if length > PATH_MAX:
            raise TargetMemoryError(errno.E2BIG, "struct too large")
        if length == 0:
            return b""
        ret = lib.sv_read_checked(self.listener, notif_id, tid, addr, self.buf, length)
        if ret < 0:
            self.fail(ret)
        return bytes(ffi.buffer(self.buf, ret))

    def write_bytes(
        self,
        notif_id: int,
        tid: int,
        addr: int,
        data: bytes,
        spans: tuple[tuple[int, int], ...] = (),
    ) -> None:
        """Write ``data`` at ``addr`` in the target, or only its ``spans`` ((offset, length)
        pairs, the bytes between them left as they are). TargetGone when the notification is no
        longer valid (before or after the write); TargetMemoryError(EFAULT) when any byte could
        not be written."""
        if len(data) > WRITE_MAX:
            raise TargetMemoryError(errno.E2BIG, "answer too large")
        if not data:
            return
        if spans:
            if any(off < 0 or n < 0 or off + n > len(data) for off, n in spans):
                raise ValueError("span outside the data")
            flat = ffi.new("uint32_t[]", [v for span in spans for v in span])
            ret = lib.sv_write_spans_checked(
                self.listener, notif_id, tid, addr, data, flat, len(spans)
            )
        else:
            ret = lib.sv_write_checked(self.listener, notif_id, tid, addr, data, len(data))
        if ret == -errno.ENOENT:
            raise TargetGone()
        if ret < 0:
            raise TargetMemoryError(-ret, "cannot write target memory")

    def read_large(self, notif_id: int, tid: int, addr: int, length: int) -> bytes:
        """Exactly ``length`` bytes (a buffer larger than a struct: an xattr value), read in
        pieces of the scratch buffer's size, each bracketed by ID_VALID."""
        parts = []
        done = 0
        while done < length:
            step = min(PATH_MAX, length - done)
            parts.append(self.read_bytes(notif_id, tid, addr + done, step))
            done += step
        return b"".join(parts)
