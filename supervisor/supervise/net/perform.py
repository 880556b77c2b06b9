"""Performing an allowed socket call for the target: connect and bind on our copy of its
socket (the same open file), sendto/sendmsg with a copy of the checked data to the checked
address, socketcall(SYS_SOCKET) in the target's network namespace; all under the target's
credentials (``as_creds``), each answered through ``supervise.reply`` with the call's own
result. Calls that may block (a blocking stream connect, a send that cannot finish at once, a
socket in another network namespace) run on worker threads (``Context.threads``) in tasks of
the Supervisor's nursery.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket

import trio

from supervisor.kernel import proc
from supervisor.kernel.creds import Creds, as_creds, read_creds
from supervisor.kernel.memory import TargetGone, TargetMemoryError
from supervisor.kernel.pidfd import PIDFD_THREAD, pidfd_open, pidfd_send_signal
from supervisor.kernel.seccomp import Notification
from supervisor.kernel.sockets import raw_bind, raw_connect, raw_sendmsg, raw_setns, raw_socket
from supervisor.policy import Request
from supervisor.policy.match.sockaddr import AF_UNIX, INET, INET6, NONE, SockAddr
from supervisor.supervise import reply
from supervisor.supervise.context import Context
from supervisor.supervise.net.read import (
    MAX_DATAGRAM,
    Answer,
    gather,
    socket_info,
    socket_protocol,
    target_socket,
)
from supervisor.supervise.requests import int32
from supervisor.target.emulate import own_fs
from supervisor.target.resolve import Resolved

BLOCKING_TYPES = (socket.SOCK_STREAM, socket.SOCK_SEQPACKET)
CLONE_NEWNET = 0x40000000
# What an allowed i386 socketcall gets when the supervisor can neither resume it (its arguments
# are in memory, read again by the kernel) nor perform it: a unix connect or send, sendmmsg, a
# call other than socket decided by argument values.
SOCKETCALL_REFUSED = errno.EPERM


def perform_connect_bind(
    ctx: Context,
    n: Notification,
    request: Request,
    address: SockAddr,
    resolved: Resolved | None,
    via_socketcall: bool = False,
) -> None:
    sock = -1
    try:
        try:
            sock = target_socket(ctx, n, int32(request.args[0]))
        except Answer as e:
            reply.error(ctx, n, e.errno)
            return
        creds = read_creds(n.pid)
        if not ctx.listener.id_valid(n.id):
            return  # the tid may name another thread by now
        if request.syscall == "bind":
            reply.status(ctx, n, bind_as(sock, address, resolved, creds))
            return
        family, kind, nonblocking = socket_info(sock)
        if address.family == AF_UNIX and family == AF_UNIX:
            if via_socketcall:
                reply.refuse(ctx, n, "connect", SOCKETCALL_REFUSED, reason="socketcall unix")
                return
            # Advisory (see the module doc): resumed. The socket is a unix one, so whatever
            # a racing thread writes, the kernel reads a unix address. (An AF_UNIX address
            # given to another socket is performed below: the kernel then refuses OUR copy
            # of the bytes, and a thread flipping them to an inet address gains nothing.)
            reply.resume(ctx, n)
            return
        if (
            not nonblocking
            and kind in BLOCKING_TYPES
            and ctx.spawn(connect_blocking, ctx, n, sock, address.raw, creds)
        ):
            sock = -1  # the task owns it
            return
        reply.status(ctx, n, connect_as(sock, address.raw, creds))
    finally:
        if sock >= 0:
            os.close(sock)
        if resolved is not None:
            resolved.close()


def perform_send(
    ctx: Context, n: Notification, request: Request, address: SockAddr, via_socketcall: bool = False
) -> None:
    """An allowed sendto/sendmsg on an IPv4/IPv6 socket: performed with a copy of the data.

    TCP (SO_PROTOCOL of our copy, the very socket we send on): at most 64 KiB per call, a
    short count being a stream send's right; a blocking send that cannot finish at once
    finishes on a worker thread. Never resumed: a resumed call would let a racing thread
    swap another socket in for the fd (dup2) and rewrite msg_name. Any other IPv4/IPv6
    socket (UDP, raw, ping, SCTP, which uses the address also when SOCK_STREAM): the whole
    message, at most 64 KiB, longer is EMSGSIZE. A non-unix address given to a unix socket
    is performed too: the kernel refuses it on our copy and nothing is sent. Other unix
    sends and sends on other families are resumed: advisory (see the module doc), and
    refused when they came through i386 socketcall (the kernel would read the fd and the
    address from memory again)."""
    args = request.args
    sock = -1
    try:
        try:
            sock = target_socket(ctx, n, int32(args[0]))
        except Answer as e:
            reply.error(ctx, n, e.errno)
            return
        family, kind, nonblocking = socket_info(sock)
        flags = int32(args[3] if request.syscall == "sendto" else args[2])
        inet = family in (socket.AF_INET, socket.AF_INET6)
        refused_by_unix = (
            family == AF_UNIX
            and kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)
            and address.kind in (INET, INET6)
        )
        if not inet and not refused_by_unix:
            if via_socketcall:
                reply.refuse(
                    ctx, n, request.syscall, SOCKETCALL_REFUSED, reason="socketcall unix send"
                )
                return
            reply.resume(ctx, n)  # advisory
            return
        stream = inet and kind == socket.SOCK_STREAM and socket_protocol(sock) == socket.IPPROTO_TCP
        try:
            data, control, total = gather(ctx, n, request)
        except TargetMemoryError as e:
            reply.error(ctx, n, e.errno or errno.EFAULT)
            return
        except Answer as e:
            reply.error(ctx, n, e.errno)
            return
        if total > MAX_DATAGRAM and not stream:
            reply.error(ctx, n, errno.EMSGSIZE)
            return
        # TCP past 64 KiB (MSG_FASTOPEN included): the first 64 KiB are sent.
        creds = read_creds(n.pid)  # SO_MARK needs CAP_NET_ADMIN ...
        if not ctx.listener.id_valid(n.id):
            return
        name = None if address.kind == NONE else address.raw
        blocking = not nonblocking and not flags & socket.MSG_DONTWAIT
        quick = flags | socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
        ret = sendmsg_as(sock, name, data, control, quick, creds)
        unfinished = ret == -errno.EAGAIN or (stream and 0 <= ret < len(data))
        if unfinished and blocking:
            call = (name, data, control, flags, creds, stream, max(ret, 0))
            if ctx.spawn(blocking_send, ctx, n, sock, call):
                sock = -1  # the task owns it
                return
        if ret == -errno.EPIPE and not flags & socket.MSG_NOSIGNAL:
            sigpipe(n.pid)  # the kernel would have raised it in the target
        reply.count(ctx, n, ret)
    finally:
        if sock >= 0:
            os.close(sock)


def perform_socket(ctx: Context, n: Notification, request: Request) -> None:
    """An allowed socketcall(SYS_SOCKET): made here with the checked values, under the
    target's credentials (CAP_NET_RAW for a raw socket is the target's), in its network
    namespace (on a worker thread that enters it when it is not ours), and installed in the
    target with ADDFD (SEND: the fd and the answer in one step)."""
    args = request.args
    domain, kind, protocol = int32(args[0]), int32(args[1]), int32(args[2])
    cloexec = bool(kind & socket.SOCK_CLOEXEC)
    kind |= socket.SOCK_CLOEXEC  # ours is always close-on-exec; the target's is newfd_flags
    try:
        creds = read_creds(n.pid)
        netns = proc.open_netns(n.pid)
    except OSError:
        if not ctx.listener.id_valid(n.id):
            raise TargetGone() from None
        raise  # ours (EMFILE...): answered as an internal error, never left waiting
    try:
        if not ctx.listener.id_valid(n.id):
            raise TargetGone()  # the tid may name another thread by now
        theirs = os.fstat(netns)
        if (theirs.st_dev, theirs.st_ino) != proc.own_netns_identity():
            spec = (domain, kind, protocol)
            if ctx.spawn(socket_elsewhere, ctx, n, netns, spec, creds, cloexec):
                netns = -1  # the task owns it
            else:
                reply.refuse(ctx, n, "socket", errno.EAFNOSUPPORT, reason="network namespace")
            return
    finally:
        if netns >= 0:
            os.close(netns)
    reply.install(ctx, n, make_socket(domain, kind, protocol, creds), cloexec=cloexec)


async def socket_elsewhere(
    ctx: Context,
    n: Notification,
    netns: int,
    spec: tuple[int, int, int],
    creds: Creds,
    cloexec: bool,
) -> None:
    try:
        fd = await trio.to_thread.run_sync(
            socket_in, netns, spec, creds, limiter=ctx.threads, abandon_on_cancel=True
        )
    finally:
        os.close(netns)
    with contextlib.suppress(OSError):  # answered, or the target is gone
        reply.install(ctx, n, fd, cloexec=cloexec)


async def blocking_send(
    ctx: Context,
    n: Notification,
    sock: int,
    call: tuple[bytes | None, bytes, bytes, int, Creds | None, bool, int],
) -> None:
    flags = call[3]
    try:
        ret = await trio.to_thread.run_sync(
            finish_send, sock, *call, limiter=ctx.threads, abandon_on_cancel=True
        )
    finally:
        os.close(sock)
    if ret == -errno.EPIPE and not flags & socket.MSG_NOSIGNAL:
        sigpipe(n.pid)
    reply.count(ctx, n, ret)


async def connect_blocking(
    ctx: Context, n: Notification, sock: int, raw: bytes, creds: Creds
) -> None:
    try:
        err = await trio.to_thread.run_sync(
            connect_as, sock, raw, creds, limiter=ctx.threads, abandon_on_cancel=True
        )
    finally:
        os.close(sock)
    reply.status(ctx, n, err)


def connect_as(sock: int, raw: bytes, creds: Creds) -> int:
    """connect(2) under the target's credentials (an LSM hook, a netfilter owner match, a
    unix path's permissions see the target's ids, not the supervisor's)."""
    with as_creds(creds):
        return raw_connect(sock, raw)


def make_socket(domain: int, kind: int, protocol: int, creds: Creds) -> int:
    """socket(2) under the target's credentials: our fd, or -errno."""
    with as_creds(creds):
        return raw_socket(domain, kind, protocol)


def socket_in(netns: int, spec: tuple[int, int, int], creds: Creds) -> int:
    """On a worker thread: socket(2) in the network namespace ``netns`` (a namespace is per
    thread: setns acts on the caller only), then back to the thread's own. A thread that cannot
    go back aborts the supervisor rather than serve from the target's namespace."""
    try:
        own = proc.open_own_netns()
    except OSError as e:
        return -(e.errno or errno.EAFNOSUPPORT)
    try:
        err = raw_setns(netns, CLONE_NEWNET)
        if err:
            return -err
        try:
            return make_socket(*spec, creds)
        finally:
            if raw_setns(own, CLONE_NEWNET):
                os.abort()
    finally:
        os.close(own)


def bind_as(sock: int, address: SockAddr, resolved: Resolved | None, creds: Creds) -> int:
    if resolved is None:
        with as_creds(creds):
            return raw_bind(sock, address.raw)
    # A unix path: bind the final name from the parent directory we resolved and checked.
    if resolved.exists:
        return errno.EADDRINUSE
    name = os.fsencode(resolved.name or "")
    raw = address.raw[:2] + name + b"\0"
    own_fs()
    here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(resolved.fd)
        try:
            with as_creds(creds):
                old = os.umask(creds.umask)
                try:
                    return raw_bind(sock, raw)
                finally:
                    os.umask(old)
        finally:
            os.fchdir(here)
    finally:
        os.close(here)


def sendmsg_as(
    sock: int, name: bytes | None, data: bytes, control: bytes, flags: int, creds: Creds | None
) -> int:
    if creds is None:
        return raw_sendmsg(sock, name, data, control, flags)
    with as_creds(creds):
        return raw_sendmsg(sock, name, data, control, flags)


def finish_send(
    sock: int,
    name: bytes | None,
    data: bytes,
    control: bytes,
    flags: int,
    creds: Creds | None,
    stream: bool,
    done: int,
) -> int:
    """A blocking send, finished: a datagram whole, a stream until every byte is sent (as the
    kernel does for a blocking socket). A stream error after some bytes returns their count."""
    flags |= socket.MSG_NOSIGNAL
    if not stream:
        return sendmsg_as(sock, name, data, control, flags, creds)
    sent = done
    while sent < len(data):
        first = sent == 0
        ret = sendmsg_as(
            sock, name if first else None, data[sent:], control if first else b"", flags, creds
        )
        if ret < 0:
            return sent if sent else ret
        sent += ret
    return sent


def sigpipe(tid: int) -> None:
    """SIGPIPE to the thread whose send we performed (we sent with MSG_NOSIGNAL)."""
    try:
        pidfd = pidfd_open(tid, PIDFD_THREAD)
    except OSError:
        return
    try:
        pidfd_send_signal(pidfd, signal.SIGPIPE)
    except OSError:
        pass
    finally:
        os.close(pidfd)
