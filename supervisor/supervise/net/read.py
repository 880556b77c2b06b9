"""Reading what a socket call names from the target: its sockaddr (direct, or a msghdr's
msg_name), the data and control messages of a send, a unix socket's path in the target's view,
and our copy of the socket fd itself (pidfd_getfd). Every read of target memory goes through
``MemoryReader`` (between ID_VALID checks).

``Answer`` is a failure the kernel would give before any decision (a bad length, an fd that is
no socket): the caller answers it with its errno.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat

from supervisor.kernel.creds import read_creds
from supervisor.kernel.memory import PATH_MAX, TargetGone
from supervisor.kernel.pidfd import PIDFD_THREAD, pidfd_getfd, pidfd_open
from supervisor.kernel.seccomp import Notification
from supervisor.policy import Request
from supervisor.policy.match.sockaddr import (
    IOVEC,
    MSGHDR,
    NO_ADDRESS,
    SOCKADDR_STORAGE,
    UIO_MAXIOV,
    SockAddr,
    parse_iovecs,
    parse_msghdr,
    parse_msghdr_all,
    parse_sockaddr,
)
from supervisor.supervise.context import Context
from supervisor.supervise.requests import int32, process_pidfd
from supervisor.target.resolve import Resolved

MAX_DATAGRAM = 0xFFFF  # udp_sendmsg, raw_sendmsg, ping: longer is EMSGSIZE
MAX_CONTROL = 4096


class Answer(Exception):
    """The call fails with this errno before any decision (as the kernel would fail it)."""

    def __init__(self, err: int, reason: str) -> None:
        super().__init__(reason)
        self.errno = err
        self.reason = reason


def read_address(
    ctx: Context, n: Notification, name: str, arch: str, args: tuple[int, ...]
) -> SockAddr | None:
    memory = ctx.memory
    if name in ("connect", "bind"):
        ptr, length = args[1], int32(args[2])
    elif name == "sendto":
        ptr, length = args[4], int32(args[5])
        if ptr == 0:
            return None  # a connected socket: no address to check
    else:  # sendmsg
        hdr = memory.read_bytes(n.id, n.pid, args[1], MSGHDR[arch][0])
        return msghdr_address(ctx, n, hdr, arch)
    if not 0 <= length <= SOCKADDR_STORAGE:
        raise Answer(errno.EINVAL, "bad address length")
    raw = memory.read_bytes(n.id, n.pid, ptr, length)
    return parse_sockaddr(raw, name)


def msghdr_address(ctx: Context, n: Notification, hdr: bytes, arch: str) -> SockAddr:
    """The msg_name of a struct msghdr (NO_ADDRESS when it names none)."""
    ptr, length = parse_msghdr(hdr, arch)
    if ptr == 0:
        return NO_ADDRESS
    if length < 0:
        raise Answer(errno.EINVAL, "bad msg_namelen")
    if length == 0:
        return NO_ADDRESS
    length = min(length, SOCKADDR_STORAGE)
    return parse_sockaddr(ctx.memory.read_bytes(n.id, n.pid, ptr, length), "sendmsg")


def gather(ctx: Context, n: Notification, request: Request) -> tuple[bytes, bytes, int]:
    """The data (at most MAX_DATAGRAM bytes of it) and control messages of a
    sendto/sendmsg, copied from the target, and the total length it asked to send."""
    args = request.args
    if request.syscall == "sendto":
        total = args[2]
        return read_span(ctx, n, args[1], min(total, MAX_DATAGRAM)), b"", total
    arch = request.arch
    hdr = parse_msghdr_all(ctx.memory.read_bytes(n.id, n.pid, args[1], MSGHDR[arch][0]), arch)
    if hdr.iovlen > UIO_MAXIOV:
        raise Answer(errno.EMSGSIZE, "too many iovecs")
    iovs = parse_iovecs(read_span(ctx, n, hdr.iov, hdr.iovlen * IOVEC[arch][0]), arch)
    total = sum(length for _base, length in iovs)
    chunks, room = [], MAX_DATAGRAM
    for base, length in iovs:
        take = min(length, room)
        if take:
            chunks.append(read_span(ctx, n, base, take))
            room -= take
    control = b""
    if hdr.control and hdr.controllen:
        if arch != "x86_64":
            # i386 control messages have another layout (compat_cmsghdr): not converted.
            raise Answer(errno.EOPNOTSUPP, "i386 control messages")
        if hdr.controllen > MAX_CONTROL:
            raise Answer(errno.ENOBUFS, "control messages too long")
        control = read_span(ctx, n, hdr.control, hdr.controllen)
    return b"".join(chunks), control, total


def read_span(ctx: Context, n: Notification, addr: int, length: int) -> bytes:
    """``length`` bytes at ``addr`` in the target, PATH_MAX at a time."""
    memory = ctx.memory
    chunks = []
    for off in range(0, length, PATH_MAX):
        chunks.append(memory.read_bytes(n.id, n.pid, addr + off, min(PATH_MAX, length - off)))
    return b"".join(chunks)


def resolve_unix(ctx: Context, n: Notification, name: str, address: SockAddr) -> Resolved:
    """The socket path in the target's view, under its credentials (search permission is
    the target's). bind creates the final name (never follows it); the others follow."""
    creds = read_creds(n.pid)
    if not ctx.listener.id_valid(n.id):
        raise TargetGone()
    try:
        return ctx.resolver.resolve(n.pid, None, address.name, follow=name != "bind", creds=creds)
    except OSError as e:
        raise Answer(e.errno or errno.EACCES, "socket path") from None


def target_socket(ctx: Context, n: Notification, fd: int) -> int:
    """Our copy of the calling thread's fd ``fd`` (the same open file), checked to be a
    socket. A pidfd of the THREAD (PIDFD_THREAD, Linux 6.9): its fd table is the one the
    syscall uses, also after unshare(CLONE_FILES)."""
    try:
        pidfd = pidfd_open(n.pid, PIDFD_THREAD)
    except OSError as e:
        if e.errno != errno.EINVAL:
            if not ctx.listener.id_valid(n.id):
                raise TargetGone() from None
            raise  # ours (EMFILE...): answered as an internal error
        # An older kernel: the process (threads share their fd table as a rule).
        _, pidfd = process_pidfd(ctx, n)
    try:
        if not ctx.listener.id_valid(n.id):
            raise TargetGone()  # the tid may name another process by now
        try:
            sock = pidfd_getfd(pidfd, fd)
        except OSError as e:
            raise Answer(e.errno or errno.EBADF, "fd") from None
    finally:
        os.close(pidfd)
    if not stat.S_ISSOCK(os.fstat(sock).st_mode):
        os.close(sock)
        raise Answer(errno.ENOTSOCK, "not a socket")
    return sock


def socket_info(sock: int) -> tuple[int, int, bool]:
    """(domain, type, O_NONBLOCK) of our copy of the target's socket."""
    s = socket.socket(fileno=sock)  # reads SO_DOMAIN and SO_TYPE
    try:
        return int(s.family), int(s.type), bool(fcntl.fcntl(sock, fcntl.F_GETFL) & os.O_NONBLOCK)
    finally:
        s.detach()


def socket_protocol(sock: int) -> int:
    """SO_PROTOCOL of our copy of the target's socket (IPPROTO_TCP, IPPROTO_SCTP, ...)."""
    s = socket.socket(fileno=sock)
    try:
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
    finally:
        s.detach()
