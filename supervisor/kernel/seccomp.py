"""The seccomp user-notification listener fd: receive, validate, answer.

What this module relies on (seccomp_unotify(2), kernel/seccomp.c, checked on Linux 6.18):

* ``SECCOMP_IOCTL_NOTIF_RECV`` must be given a zeroed ``struct seccomp_notif`` every time, or the
  kernel answers EINVAL; the C helper ``sv_notif_recv`` clears it. RECV *blocks* while nothing is
  pending, so we only call it after poll(2) says the fd is readable (POLLIN). Once every task
  that uses the filter is gone the fd polls POLLHUP; RECV would then block for ever, so HUP without
  IN means "done".
* A notification id stays valid while the thread that made the syscall waits for our answer.
  ``ID_VALID`` fails with ENOENT once the thread was killed or its syscall interrupted. Because a
  thread cannot die and come back, "valid before and after" means the tid named in the
  notification still is that thread, whatever pid reuse happened elsewhere.
* ``SEND`` fails with ENOENT in the same cases: not an error of ours, the target went away or a
  signal interrupted the syscall (with SA_RESTART it is restarted and notified again).
* ``SECCOMP_USER_NOTIF_FLAG_CONTINUE`` resumes the syscall as issued. It is only safe when the
  decision did not depend on memory the target can still change; see ``supervisor.supervise.act``.
* ``ADDFD`` installs an fd in the target. We do NOT use ``SECCOMP_ADDFD_FLAG_SEND`` (install and
  answer in one step): the kernel marks the notification answered before the target has taken
  the fd, and when the supervisor's wait for that is interrupted (a stop: SIGSTOP, a debugger,
  the cgroup freezer) the request is withdrawn but the mark stays, so the target's syscall
  returns 0, an fd it was never given (seen here: an open of libc "returned" the target's
  stdin), and the restarted ADDFD fails with EINPROGRESS. A plain ADDFD that is interrupted is
  withdrawn cleanly and restarted; the answer (the fd's number) follows as an ordinary SEND. The
  price: if the target's syscall is interrupted between the two (only possible without
  WAIT_KILLABLE_RECV, i.e. under ``run --daemon``), the installed fd stays in the target unused.
* ``SET_FLAGS`` takes its flags *by value* (a pointer gives EINVAL). Its only flag,
  ``SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`` (Linux 6.6), makes the target and supervisor hand the
  CPU to each other directly; it cuts the round trip several-fold on this machine.
* When the last copy of the listener fd is closed, waiting and future notified syscalls fail with
  ENOSYS: the filter fails closed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any

import trio

from supervisor._native import ffi, lib
from supervisor.kernel._errors import check

FLAG_CONTINUE = lib.SECCOMP_USER_NOTIF_FLAG_CONTINUE
O_CLOEXEC = os.O_CLOEXEC
# struct seccomp_notif as one unpack (id, pid, flags, nr, arch, ip, args[6]) instead of a dozen
# cffi field reads per notification; checked against cffi's layout when the module loads.
_NOTIF = struct.Struct("=QIIiIQ6Q")
if (
    _NOTIF.size != ffi.sizeof("struct seccomp_notif")
    or ffi.offsetof("struct seccomp_notif", "data") + ffi.offsetof("struct seccomp_data", "args")
    != _NOTIF.size - 48
):
    raise ImportError("struct seccomp_notif layout differs from the unpack format")


# Not frozen, for the same reason as policy.Request: one is made per notification.
@dataclass(slots=True)
class Notification:
    """One notified syscall, as the kernel reported it. ``pid`` is the thread's id."""

    id: int
    pid: int
    nr: int
    arch: int
    ip: int
    args: tuple[int, int, int, int, int, int]


class Readiness(Enum):
    PENDING = "pending"  # at least one notification can be received
    IDLE = "idle"  # nothing pending, targets still alive
    GONE = "gone"  # POLLHUP: every task using the filter has exited


class ListenerFd:
    """Owns one listener fd. After ``close()`` the number is forgotten, so a reused fd number is
    never touched by mistake."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._notif = ffi.new("struct seccomp_notif *")
        self._notif_bytes = ffi.buffer(self._notif)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self.sync_wakeup = False

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("listener fd is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._poll.unregister(fd)
        # Outside trio.run nobody can be waiting on it.
        with contextlib.suppress(RuntimeError):
            trio.lowlevel.notify_closing(fd)
        os.close(fd)

    def __enter__(self) -> ListenerFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- set-up ---------------------------------------------------------------------------
    def enable_sync_wakeup(self) -> bool:
        """Ask for SYNC_WAKE_UP; False (and nothing changed) on kernels without it."""
        if lib.sv_notif_set_flags(self.fileno(), lib.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0:
            if ffi.errno in (errno.EINVAL, errno.ENOTTY):
                return False
            check(-1)
        self.sync_wakeup = True
        return True

    # -- receiving --------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        """Non-blocking poll(2); cheaper than going back to the event loop after each reply."""
        events = self._poll.poll(0)
        if not events:
            return Readiness.IDLE
        revents = events[0][1]
        if revents & select.POLLIN:
            return Readiness.PENDING
        return Readiness.GONE

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self.fileno())

    def next_notification(self, lane: Any = None) -> Notification | Readiness:
        """readiness() and recv() in one C call, for the loop: a Notification, IDLE, GONE, or
        PENDING when one vanished before we took it (its target was killed): look again.
        With a ``struct sv_lane`` (kernel.lane), the same call also reads and resolves the
        path of a syscall the lane has a route for (see sv_lane_next)."""
        if lane is None:
            ret = lib.sv_notif_poll_recv(self.fileno(), self._notif)
        else:
            ret = lib.sv_lane_next(self.fileno(), self._notif, lane)
        return self._received(ret)

    def deny_then_next(self, notif_id: int, err: int, lane: Any) -> Notification | Readiness:
        """send_error(notif_id, err), then next_notification(lane), in one C call."""
        ret = lib.sv_lane_answer_next(self.fileno(), notif_id, err, self._notif, lane)
        if ret == -4:
            check(-1)  # the SEND failed (not ENOENT): as send_error would raise
        return self._received(ret)

    def _received(self, ret: int) -> Notification | Readiness:
        if ret == 1 or ret == 3:
            v = _NOTIF.unpack_from(self._notif_bytes)
            return Notification(v[0], v[1], v[3], v[4], v[5], v[6:12])
        if ret == 0:
            return Readiness.IDLE
        if ret == 2:
            return Readiness.GONE
        if ffi.errno in (errno.ENOENT, errno.EINTR):
            return Readiness.PENDING
        check(-1)
        raise AssertionError("unreachable")

    def recv(self) -> Notification | None:
        """Receive one pending notification; None when it vanished before we took it (the target
        was killed between poll and RECV)."""
        n = self._notif
        if lib.sv_notif_recv(self.fileno(), n) < 0:
            if ffi.errno in (errno.ENOENT, errno.EINTR):
                return None
            check(-1)
        v = _NOTIF.unpack_from(self._notif_bytes)
        return Notification(v[0], v[1], v[3], v[4], v[5], v[6:12])

    # -- validating ---------------------------------------------------------------------------
    def id_valid(self, notif_id: int) -> bool:
        return bool(lib.sv_notif_id_valid(self.fileno(), notif_id) == 0)

    # -- answering: each returns False when the target is gone (ENOENT), True when answered ----
    def _sent(self, ret: int) -> bool:
        if ret < 0:
            # ENOENT: gone or interrupted; EINPROGRESS: not waiting for an answer (any more).
            if ffi.errno in (errno.ENOENT, errno.EINPROGRESS):
                return False
            check(-1)
        return True

    def send_value(self, notif_id: int, value: int) -> bool:
        """The syscall returns ``value`` without running."""
        return self._sent(lib.sv_notif_send(self.fileno(), notif_id, value, 0, 0))

    def send_error(self, notif_id: int, err: int) -> bool:
        """The syscall fails with errno ``err`` without running."""
        return self._sent(lib.sv_notif_send(self.fileno(), notif_id, 0, -err, 0))

    def send_continue(self, notif_id: int) -> bool:
        """Resume the syscall as issued. Only for decisions that read no target memory."""
        return self._sent(lib.sv_notif_send(self.fileno(), notif_id, 0, 0, FLAG_CONTINUE))

    def send_fd(self, notif_id: int, srcfd: int, *, cloexec: bool) -> int | None:
        """Install our ``srcfd`` in the target and answer the syscall with its number (ADDFD,
        then SEND: see the module docstring for why not ADDFD_FLAG_SEND). Returns the target's
        fd number, or None when the target is gone or its syscall was interrupted."""
        flags = O_CLOEXEC if cloexec else 0
        ret = lib.sv_notif_addfd(self.fileno(), notif_id, 0, srcfd, 0, flags)
        if ret < 0:
            # ENOENT: gone; EINPROGRESS: the syscall was interrupted and is being notified again.
            if ffi.errno in (errno.ENOENT, errno.EINPROGRESS):
                return None
            check(-1)
        if not self.send_value(notif_id, ret):
            return None  # interrupted after the install: the fd stays in the target, unused
        return int(ret)


def notif_sizes() -> tuple[int, int, int]:
    """The kernel's sizes of seccomp_notif, seccomp_notif_resp and seccomp_data."""
    sizes = ffi.new("struct seccomp_notif_sizes *")
    check(lib.sv_seccomp(lib.SECCOMP_GET_NOTIF_SIZES, 0, sizes))
    return sizes.seccomp_notif, sizes.seccomp_notif_resp, sizes.seccomp_data


def check_notif_sizes() -> None:
    """Refuse to run on a kernel whose structs are smaller than the ones we were built with (we
    would read fields it never wrote)."""
    notif, resp, data = notif_sizes()
    ours = (ffi.sizeof("struct seccomp_notif"), 24, ffi.sizeof("struct seccomp_data"))
    if notif < ours[0] or resp < ours[1] or data < ours[2]:
        raise OSError(
            errno.EINVAL,
            f"kernel seccomp notification sizes {(notif, resp, data)} differ from ours {ours}",
        )
