"""connect, bind, sendto, sendmsg and sendmmsg (and i386 socketcall) under ``address`` rules.

The loop hands these notifications here when the policy has address rules for them. Steps:

1. i386 ``socketcall(call, args)``: every call (1-20) is read from the argument array (32-bit
   values in the target's memory) and decided as the syscall it makes (SYS_SEND/SYS_RECV as
   sendto/recvfrom with no address), by every rule of that syscall. The filter notifies
   socketcall whenever a syscall it multiplexes is notified or has a value rule (libseccomp
   would drop the conditions), so it cannot be used to skip a rule. The kernel would read the
   array again after a resume, so what socketcall allows because of argument values (a value
   rule, an address) is never resumed: ``socket`` is performed (under the target's creds, in
   its network namespace: setns on a worker thread when it is not ours; the fd installed with
   ADDFD), connect/bind/sends as below, the rest refused with EPERM (unix connects and sends,
   sendmmsg, socketpair or setsockopt allowed by a value rule ...).
2. The sockaddr is read (for sendmsg through the ``struct msghdr``: 56 bytes on x86_64, 28 on
   i386) between ID_VALID checks and parsed by ``policy.match.sockaddr``. The kernel's own
   errnos for a bad length (EINVAL) and an unmapped pointer (EFAULT) are answered here. A unix
   path is resolved like a file path (relative to the target's cwd, in its root).
3. The engine decides. Denials and kills go to the loop's ``_act``.
4. An allowed connect or bind is PERFORMED here, on the target's own socket (a copy of the
   calling thread's fd from pidfd_getfd: the same open file), with the bytes that were checked,
   under the target's credentials (a port below 1024 needs its CAP_NET_BIND_SERVICE; its LSM
   domain, e.g. Landlock, is not applied); the result (0 or the errno, EINPROGRESS for a
   non-blocking socket) is the answer. A blocking stream connect runs on a worker thread. A
   unix path bind is made from the resolved parent directory (fchdir to its O_PATH fd on a
   thread with its own fs_struct, the target's umask) with the final name. A DENIED address
   the kernel would refuse anyway (malformed, a family the socket lacks) gets the kernel's
   errno, found with the same call on a throwaway socket (``_kernel_refuses``).
5. An allowed sendto/sendmsg on an IPv4/IPv6 socket is PERFORMED too, never resumed: the data
   and the control messages (at most 4 KiB) are copied and sent under the target's
   credentials (SO_MARK needs CAP_NET_ADMIN) to the checked address with sendmsg(2) on our copy
   of the socket, MSG_DONTWAIT first, on a worker thread when a blocking send would wait. TCP
   (SO_PROTOCOL): at most 64 KiB a call, a short count being a stream send's right (SIGPIPE
   raised in the target as the kernel would). Other IPv4/IPv6 sockets (UDP, raw, SCTP): the
   whole message, at most 64 KiB (longer is EMSGSIZE). A resume would let a racing thread dup2
   another socket onto the fd (an AF_UNIX SOCK_DGRAM one takes ~208 KiB) and rewrite msg_name.
   ADVISORY (resumed with CONTINUE after the check; a thread racing the buffer can change what
   the kernel uses): connect, sendto and sendmsg on unix sockets (performed by the supervisor,
   the server would see the SUPERVISOR's pid, uid and gid in SO_PEERCRED/SCM_CREDENTIALS: worse
   than the race), sends on sockets of other families (netlink ...), and sendmmsg (every
   message's address is decided, one refusal refuses the call; not performed: each msg_len
   would have to be written back). policy check and the load warnings say so. A unix call is
   resumed only when the target's fd is a unix socket and the address a unix one when checked
   (a non-unix address on a unix socket is performed: the kernel refuses our copy).
6. A unix path bind is made with the final name relative to the checked parent, so the address
   the kernel records for the socket (getsockname, a peer's getpeername) is that name, not the
   path the target wrote.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import signal
import socket
import stat
from typing import TYPE_CHECKING

import trio

from supervisor.kernel import proc
from supervisor.kernel.creds import Creds, as_creds, read_creds
from supervisor.kernel.filter import arch_name
from supervisor.kernel.memory import PATH_MAX, TargetGone, TargetMemoryError
from supervisor.kernel.pidfd import PIDFD_THREAD, pidfd_getfd, pidfd_open, pidfd_send_signal
from supervisor.kernel.seccomp import ListenerFd, Notification
from supervisor.kernel.sockets import raw_bind, raw_connect, raw_sendmsg, raw_setns, raw_socket
from supervisor.policy import Action, Decision, Request, rules_by_syscall
from supervisor.policy.match.sockaddr import (
    ADDRESS_SYSCALLS,
    AF_UNIX,
    AF_UNSPEC,
    INET,
    INET6,
    INVALID,
    IOVEC,
    MMSGHDR_SIZE,
    MSGHDR,
    NO_ADDRESS,
    NONE,
    SOCKADDR_STORAGE,
    SOCKETCALL_CALLS,
    UIO_MAXIOV,
    UNIX,
    SockAddr,
    parse_iovecs,
    parse_msghdr,
    parse_msghdr_all,
    parse_sockaddr,
    unpack_socketcall_args,
)
from supervisor.target.emulate import _own_fs
from supervisor.target.resolve import Resolved

if TYPE_CHECKING:
    from supervisor.supervise.loop import Supervisor

NET_SYSCALLS: frozenset[str] = ADDRESS_SYSCALLS | {"socketcall"}
SENDS = frozenset({"sendto", "sendmsg"})
MAX_DATAGRAM = 0xFFFF  # udp_sendmsg, raw_sendmsg, ping: longer is EMSGSIZE
MAX_CONTROL = 4096
_BLOCKING_TYPES = (socket.SOCK_STREAM, socket.SOCK_SEQPACKET)
MSG_FASTOPEN = 0x20000000
CLONE_NEWNET = 0x40000000
# What an allowed i386 socketcall gets when the supervisor can neither resume it (its arguments
# are in memory, read again by the kernel) nor perform it: a unix connect or send, sendmmsg, a
# call other than socket decided by argument values.
SOCKETCALL_REFUSED = errno.EPERM


class _Answer(Exception):
    """The call fails with this errno before any decision (as the kernel would fail it)."""

    def __init__(self, err: int, reason: str) -> None:
        super().__init__(reason)
        self.errno = err
        self.reason = reason


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class NetCalls:
    """The network part of one Supervisor (uses its listener, memory reader, resolver, engine)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self._by_value_of: object = None
        self._by_value_names: frozenset[str] = frozenset()

    def wants(self, name: str) -> bool:
        engine = self.sup.engine
        if name == "socketcall":
            # Whenever it is notified: its bind/connect/send calls are decided as those
            # syscalls (value, log and stateful rules included), not as "socketcall".
            return True
        return engine.needs_address(name)

    def handle(self, n: Notification, name: str) -> None:
        if name == "socketcall":
            self._socketcall(n)
            return
        self._address_call(n, name, arch_name(n.arch), n.args, via_socketcall=False)

    def _address_call(
        self, n: Notification, name: str, arch: str, args: tuple[int, ...], *, via_socketcall: bool
    ) -> None:
        """connect, bind, sendto, sendmsg, sendmmsg (``args`` from socketcall's array when
        ``via_socketcall``: then nothing allowed is resumed, the kernel would read them again)."""
        sup = self.sup
        resolved: Resolved | None = None
        try:
            try:
                if name == "sendmmsg":
                    self._sendmmsg(n, arch, args, via_socketcall)
                    return
                address = self._read_address(n, name, arch, args)
                if address is not None and address.kind == UNIX:
                    resolved = self._resolve_unix(n, name, address)
                    address = dataclasses.replace(address, resolved=resolved.full_path)
            except TargetMemoryError as e:
                sup._reply_error(n, name, e.errno or errno.EFAULT, reason="bad pointer")
                return
            except _Answer as e:
                sup._reply_error(n, name, e.errno, reason=e.reason)
                return
            request = Request(pid=n.pid, syscall=name, arch=arch, args=args, address=address)
            if sup.engine.has_budgets:  # limit/rate rules count by time, process or user
                request = sup._budget_facts(n, request)
            decision = sup.engine.decide(request)
            if decision.action is Action.DENY and address is not None and address.kind != NONE:
                # An address the kernel refuses anyway (malformed, or of a family the socket
                # cannot use) gets the kernel's errno, not the policy's.
                err = self._kernel_refusal(n, name, args, address)
                if err:
                    sup._reply_error(n, name, err, reason="bad address")
                    return
            if decision.action not in (Action.ALLOW, Action.LOG):
                sup._act(n, request, decision)  # refusals
                return
            if address is None:
                if not via_socketcall:
                    sup._act(n, request, decision)  # sendto to NULL: nothing read, nothing to race
                    return
                # socketcall: the NULL was read from memory and the kernel would read it again
                # after a resume (a racing thread could write a denied address): performed.
                address = NO_ADDRESS
            if decision.enters is not None:  # a phase change (docs/policy.md "Phases")
                sup._phase_entered(n, request, decision)
            sup.counters.allowed += 1
            if decision.action is Action.LOG:
                sup._record("syscall.logged", n, request, decision, level="info")
            if name in SENDS:
                self._send(n, request, address, via_socketcall)
                return
            self._perform(n, request, decision, address, resolved, via_socketcall)
            resolved = None  # _perform owns it now
        finally:
            if resolved is not None:
                resolved.close()

    # -- i386 socketcall -----------------------------------------------------------------------
    def _socketcall(self, n: Notification) -> None:
        """socketcall(call, args): every call is decided as the syscall it makes, with the
        arguments read from the array (net/socket.c reads ``nargs[call]`` 32-bit values)."""
        sup = self.sup
        arch = arch_name(n.arch)
        entry = SOCKETCALL_CALLS.get(n.args[0] & 0xFFFFFFFF)
        if entry is None:
            # Not a call (the kernel answers EINVAL without reading memory): by value.
            request = Request(pid=n.pid, syscall="socketcall", arch=arch, args=n.args)
            if sup.engine.has_budgets:
                request = sup._budget_facts(n, request)
            sup._act(n, request, sup.engine.decide(request))
            return
        name, count = entry
        try:
            raw = sup._memory.read_bytes(n.id, n.pid, n.args[1] & 0xFFFFFFFF, 4 * count)
        except TargetMemoryError as e:
            sup._reply_error(n, name, e.errno or errno.EFAULT, reason="bad pointer")
            return
        args = unpack_socketcall_args(raw, count)
        if name in ADDRESS_SYSCALLS:
            self._address_call(n, name, arch, args, via_socketcall=True)
            return
        request = Request(pid=n.pid, syscall=name, arch=arch, args=args)
        if sup.engine.has_budgets:
            request = sup._budget_facts(n, request)
        decision = sup.engine.decide(request)
        if decision.action not in (Action.ALLOW, Action.LOG) or name not in self._by_value():
            # A refusal; or an allow no argument value decided (no rule on the syscall looks at
            # one): resumed, whatever the kernel then reads from the array.
            sup._act(n, request, decision)
            return
        # Allowed because of argument values read from memory: never resumed.
        if decision.enters is not None:
            sup._phase_entered(n, request, decision)
        if name != "socket":
            # Not performed (socketpair would need its fds written back, the others are not
            # emulated): refused, docs/policy.md "Address rules". The direct i386 syscalls
            # (socketpair = 360, ...) carry their arguments in registers and are decided by
            # the kernel.
            sup._reply_error(n, name, SOCKETCALL_REFUSED, reason="socketcall by value")
            return
        sup.counters.allowed += 1
        if decision.action is Action.LOG:
            sup._record("syscall.logged", n, request, decision, level="info")
        self._socket(n, request)

    def _by_value(self) -> frozenset[str]:
        """The syscalls with a rule that looks at an argument value (for the current engine)."""
        engine = self.sup.engine
        if self._by_value_of is not engine:
            self._by_value_names = frozenset(
                name
                for name, rules in rules_by_syscall(engine.policy.rules).items()
                if any(r.args for r in rules)
            )
            self._by_value_of = engine
        return self._by_value_names

    def _socket(self, n: Notification, request: Request) -> None:
        """An allowed socketcall(SYS_SOCKET): made here with the checked values, under the
        target's credentials (CAP_NET_RAW for a raw socket is the target's), in its network
        namespace (on a worker thread that enters it when it is not ours), and installed in the
        target with ADDFD (SEND: the fd and the answer in one step)."""
        sup = self.sup
        args = request.args
        domain, kind, protocol = _int32(args[0]), _int32(args[1]), _int32(args[2])
        cloexec = bool(kind & socket.SOCK_CLOEXEC)
        kind |= socket.SOCK_CLOEXEC  # ours is always close-on-exec; the target's is newfd_flags
        try:
            creds = read_creds(n.pid)
            netns = os.open(f"/proc/{int(n.pid)}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            if not sup.listener.id_valid(n.id):
                raise TargetGone() from None
            raise  # ours (EMFILE...): answered as an internal error, never left waiting
        try:
            if not sup.listener.id_valid(n.id):
                raise TargetGone()  # the tid may name another thread by now
            theirs, ours = os.fstat(netns), os.stat("/proc/thread-self/ns/net")
            if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
                if sup._nursery is None:
                    sup._reply_error(n, "socket", errno.EAFNOSUPPORT, reason="network namespace")
                    return
                sup._nursery.start_soon(
                    self._socket_elsewhere, n, netns, (domain, kind, protocol), creds, cloexec
                )
                netns = -1  # the task owns it
                return
        finally:
            if netns >= 0:
                os.close(netns)
        _install(sup.listener, n, _make_socket(domain, kind, protocol, creds), cloexec)

    async def _socket_elsewhere(
        self,
        n: Notification,
        netns: int,
        spec: tuple[int, int, int],
        creds: Creds,
        cloexec: bool,
    ) -> None:
        try:
            fd = await trio.to_thread.run_sync(
                _socket_in, netns, spec, creds, limiter=self.sup._threads, abandon_on_cancel=True
            )
        finally:
            os.close(netns)
        with contextlib.suppress(OSError):  # answered, or the target is gone
            _install(self.sup.listener, n, fd, cloexec)

    def _kernel_refusal(
        self, n: Notification, name: str, args: tuple[int, ...], address: SockAddr
    ) -> int:
        """For a denied address the kernel would refuse anyway (malformed, or of a family the
        socket cannot use): the kernel's errno, so that a policy's catch-all deny does not
        replace EINVAL or EAFNOSUPPORT by its own. Found by making the same call with the same
        bytes on a throwaway socket like the target's (domain, type, protocol; non-blocking,
        closed at once), only where that call cannot reach anything (``_kernel_refuses``).
        0 when the kernel would take the address: the policy's errno stands."""
        sock = self._target_socket(n, _int32(args[0]))
        try:
            family, kind, _nonblocking = _socket_info(sock)
            protocol = _protocol(sock)
        finally:
            os.close(sock)
        if not _kernel_refuses(name, address, family, kind, protocol):
            return 0
        probe = raw_socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, protocol)
        if probe < 0:
            return 0
        try:
            if name == "connect":
                err = raw_connect(probe, address.raw)
            elif name == "bind":
                err = raw_bind(probe, address.raw)
            else:
                ret = raw_sendmsg(probe, address.raw, b"", b"", socket.MSG_DONTWAIT)
                err = -ret if ret < 0 else 0
        finally:
            os.close(probe)
        if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
            return 0  # taken
        return err

    # -- reading -------------------------------------------------------------------------------
    def _read_address(
        self, n: Notification, name: str, arch: str, args: tuple[int, ...]
    ) -> SockAddr | None:
        memory = self.sup._memory
        if name in ("connect", "bind"):
            ptr, length = args[1], _int32(args[2])
        elif name == "sendto":
            ptr, length = args[4], _int32(args[5])
            if ptr == 0:
                return None  # a connected socket: no address to check
        else:  # sendmsg
            return self._msghdr_address(
                n, memory.read_bytes(n.id, n.pid, args[1], MSGHDR[arch][0]), arch
            )
        if not 0 <= length <= SOCKADDR_STORAGE:
            raise _Answer(errno.EINVAL, "bad address length")
        raw = memory.read_bytes(n.id, n.pid, ptr, length)
        return parse_sockaddr(raw, name)

    def _msghdr_address(self, n: Notification, hdr: bytes, arch: str) -> SockAddr:
        """The msg_name of a struct msghdr (NO_ADDRESS when it names none)."""
        ptr, length = parse_msghdr(hdr, arch)
        if ptr == 0:
            return NO_ADDRESS
        if length < 0:
            raise _Answer(errno.EINVAL, "bad msg_namelen")
        if length == 0:
            return NO_ADDRESS
        length = min(length, SOCKADDR_STORAGE)
        return parse_sockaddr(self.sup._memory.read_bytes(n.id, n.pid, ptr, length), "sendmsg")

    def _sendmmsg(
        self, n: Notification, arch: str, args: tuple[int, ...], via_socketcall: bool = False
    ) -> None:
        """sendmmsg: every message's address is decided; the first refusal refuses the whole
        call (no message is sent); when all are allowed the call is resumed (advisory: the
        supervisor does not perform it, it would have to write each msg_len back)."""
        sup = self.sup
        vlen = min(args[2] & 0xFFFFFFFF, UIO_MAXIOV)
        size = MMSGHDR_SIZE[arch]
        request = Request(pid=n.pid, syscall="sendmmsg", arch=arch, args=args)
        try:
            vec = self._read(n, args[1], vlen * size)
            addresses = [
                self._msghdr_address(n, vec[i : i + size], arch) for i in range(0, len(vec), size)
            ]
        except TargetMemoryError as e:
            sup._reply_error(n, "sendmmsg", e.errno or errno.EFAULT, reason="bad pointer")
            return
        except _Answer as e:
            sup._reply_error(n, "sendmmsg", e.errno, reason=e.reason)
            return
        decision = None
        candidates: list[SockAddr | None] = list(addresses) or [None]  # vlen 0: no address
        for address in candidates:
            resolved: Resolved | None = None
            try:
                if address is not None and address.kind == UNIX:
                    try:
                        resolved = self._resolve_unix(n, "sendmmsg", address)
                    except _Answer as e:
                        sup._reply_error(n, "sendmmsg", e.errno, reason=e.reason)
                        return
                    address = dataclasses.replace(address, resolved=resolved.full_path)
            finally:
                if resolved is not None:
                    resolved.close()
            request = Request(pid=n.pid, syscall="sendmmsg", arch=arch, args=args, address=address)
            if sup.engine.has_budgets:
                request = sup._budget_facts(n, request)
            decision = sup.engine.decide(request)
            if decision.action not in (Action.ALLOW, Action.LOG):
                break
        assert decision is not None
        if via_socketcall and decision.action in (Action.ALLOW, Action.LOG):
            # Resumed, the kernel would read the fd and the vector from socketcall's array again.
            sup._reply_error(n, "sendmmsg", SOCKETCALL_REFUSED, reason="socketcall sendmmsg")
            return
        sup._act(n, request, decision)  # an allow is resumed: advisory

    def _resolve_unix(self, n: Notification, name: str, address: SockAddr) -> Resolved:
        """The socket path in the target's view, under its credentials (search permission is
        the target's). bind creates the final name (never follows it); the others follow."""
        sup = self.sup
        creds = read_creds(n.pid)
        if not sup.listener.id_valid(n.id):
            raise TargetGone()
        try:
            return sup._resolver.resolve(
                n.pid, None, address.name, follow=name != "bind", creds=creds
            )
        except OSError as e:
            raise _Answer(e.errno or errno.EACCES, "socket path") from None

    # -- performing ----------------------------------------------------------------------------
    def _perform(
        self,
        n: Notification,
        request: Request,
        decision: Decision,
        address: SockAddr,
        resolved: Resolved | None,
        via_socketcall: bool = False,
    ) -> None:
        sup = self.sup
        listener = sup.listener
        sock = -1
        try:
            try:
                sock = self._target_socket(n, _int32(request.args[0]))
            except _Answer as e:
                listener.send_error(n.id, e.errno)
                return
            creds = read_creds(n.pid)
            if not listener.id_valid(n.id):
                return  # the tid may name another thread by now
            if request.syscall == "bind":
                _reply(listener, n, _bind(sock, address, resolved, creds))
                return
            family, kind, nonblocking = _socket_info(sock)
            if address.family == AF_UNIX and family == AF_UNIX:
                if via_socketcall:
                    sup._reply_error(n, "connect", SOCKETCALL_REFUSED, reason="socketcall unix")
                    return
                # Advisory (see the module doc): resumed. The socket is a unix one, so whatever
                # a racing thread writes, the kernel reads a unix address. (An AF_UNIX address
                # given to another socket is performed below: the kernel then refuses OUR copy
                # of the bytes, and a thread flipping them to an inet address gains nothing.)
                listener.send_continue(n.id)
                return
            if not nonblocking and kind in _BLOCKING_TYPES and sup._nursery is not None:
                sup._nursery.start_soon(self._connect_blocking, n, sock, address.raw, creds)
                sock = -1  # the task owns it
                return
            _reply(listener, n, _connect(sock, address.raw, creds))
        finally:
            if sock >= 0:
                os.close(sock)
            if resolved is not None:
                resolved.close()

    def _target_socket(self, n: Notification, fd: int) -> int:
        """Our copy of the calling thread's fd ``fd`` (the same open file), checked to be a
        socket. A pidfd of the THREAD (PIDFD_THREAD, Linux 6.9): its fd table is the one the
        syscall uses, also after unshare(CLONE_FILES)."""
        try:
            pidfd = pidfd_open(n.pid, PIDFD_THREAD)
        except OSError as e:
            if e.errno != errno.EINVAL:
                if not self.sup.listener.id_valid(n.id):
                    raise TargetGone() from None
                raise  # ours (EMFILE...): answered as an internal error
            try:  # an older kernel: the process (threads share their fd table as a rule)
                pidfd = pidfd_open(proc.tgid(n.pid))
            except OSError:
                if not self.sup.listener.id_valid(n.id):
                    raise TargetGone() from None
                raise
        try:
            if not self.sup.listener.id_valid(n.id):
                raise TargetGone()  # the tid may name another process by now
            try:
                sock = pidfd_getfd(pidfd, fd)
            except OSError as e:
                raise _Answer(e.errno or errno.EBADF, "fd") from None
        finally:
            os.close(pidfd)
        if not stat.S_ISSOCK(os.fstat(sock).st_mode):
            os.close(sock)
            raise _Answer(errno.ENOTSOCK, "not a socket")
        return sock

    def _send(
        self, n: Notification, request: Request, address: SockAddr, via_socketcall: bool = False
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
        sup = self.sup
        listener = sup.listener
        args = request.args
        sock = -1
        try:
            try:
                sock = self._target_socket(n, _int32(args[0]))
            except _Answer as e:
                listener.send_error(n.id, e.errno)
                return
            family, kind, nonblocking = _socket_info(sock)
            flags = _int32(args[3] if request.syscall == "sendto" else args[2])
            inet = family in (socket.AF_INET, socket.AF_INET6)
            refused_by_unix = (
                family == AF_UNIX
                and kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)
                and address.kind in (INET, INET6)
            )
            if not inet and not refused_by_unix:
                if via_socketcall:
                    sup._reply_error(
                        n, request.syscall, SOCKETCALL_REFUSED, reason="socketcall unix send"
                    )
                    return
                listener.send_continue(n.id)  # advisory
                return
            stream = inet and kind == socket.SOCK_STREAM and _protocol(sock) == socket.IPPROTO_TCP
            try:
                data, control, total = self._gather(n, request)
            except TargetMemoryError as e:
                listener.send_error(n.id, e.errno or errno.EFAULT)
                return
            except _Answer as e:
                listener.send_error(n.id, e.errno)
                return
            if total > MAX_DATAGRAM and not stream:
                listener.send_error(n.id, errno.EMSGSIZE)
                return
            # TCP past 64 KiB (MSG_FASTOPEN included): the first 64 KiB are sent.
            creds = read_creds(n.pid)  # SO_MARK needs CAP_NET_ADMIN ...
            if not listener.id_valid(n.id):
                return
            name = None if address.kind == NONE else address.raw
            blocking = not nonblocking and not flags & socket.MSG_DONTWAIT
            quick = flags | socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
            ret = _sendmsg(sock, name, data, control, quick, creds)
            unfinished = ret == -errno.EAGAIN or (stream and 0 <= ret < len(data))
            if unfinished and blocking and sup._nursery is not None:
                call = (name, data, control, flags, creds, stream, max(ret, 0))
                sup._nursery.start_soon(self._send_blocking, n, sock, call)
                sock = -1  # the task owns it
                return
            if ret == -errno.EPIPE and not flags & socket.MSG_NOSIGNAL:
                _sigpipe(n.pid)  # the kernel would have raised it in the target
            _reply_count(listener, n, ret)
        finally:
            if sock >= 0:
                os.close(sock)

    def _gather(self, n: Notification, request: Request) -> tuple[bytes, bytes, int]:
        """The data (at most MAX_DATAGRAM bytes of it) and control messages of a
        sendto/sendmsg, copied from the target, and the total length it asked to send."""
        args = request.args
        if request.syscall == "sendto":
            total = args[2]
            return self._read(n, args[1], min(total, MAX_DATAGRAM)), b"", total
        arch = request.arch
        hdr = parse_msghdr_all(
            self.sup._memory.read_bytes(n.id, n.pid, args[1], MSGHDR[arch][0]), arch
        )
        if hdr.iovlen > UIO_MAXIOV:
            raise _Answer(errno.EMSGSIZE, "too many iovecs")
        iovs = parse_iovecs(self._read(n, hdr.iov, hdr.iovlen * IOVEC[arch][0]), arch)
        total = sum(length for _base, length in iovs)
        chunks, room = [], MAX_DATAGRAM
        for base, length in iovs:
            take = min(length, room)
            if take:
                chunks.append(self._read(n, base, take))
                room -= take
        control = b""
        if hdr.control and hdr.controllen:
            if arch != "x86_64":
                # i386 control messages have another layout (compat_cmsghdr): not converted.
                raise _Answer(errno.EOPNOTSUPP, "i386 control messages")
            if hdr.controllen > MAX_CONTROL:
                raise _Answer(errno.ENOBUFS, "control messages too long")
            control = self._read(n, hdr.control, hdr.controllen)
        return b"".join(chunks), control, total

    def _read(self, n: Notification, addr: int, length: int) -> bytes:
        memory = self.sup._memory
        chunks = []
        for off in range(0, length, PATH_MAX):
            chunks.append(memory.read_bytes(n.id, n.pid, addr + off, min(PATH_MAX, length - off)))
        return b"".join(chunks)

    async def _send_blocking(
        self,
        n: Notification,
        sock: int,
        call: tuple[bytes | None, bytes, bytes, int, Creds | None, bool, int],
    ) -> None:
        flags = call[3]
        try:
            ret = await trio.to_thread.run_sync(
                _send_rest, sock, *call, limiter=self.sup._threads, abandon_on_cancel=True
            )
        finally:
            os.close(sock)
        if ret == -errno.EPIPE and not flags & socket.MSG_NOSIGNAL:
            _sigpipe(n.pid)
        _reply_count(self.sup.listener, n, ret)

    async def _connect_blocking(self, n: Notification, sock: int, raw: bytes, creds: Creds) -> None:
        try:
            err = await trio.to_thread.run_sync(
                _connect, sock, raw, creds, limiter=self.sup._threads, abandon_on_cancel=True
            )
        finally:
            os.close(sock)
        _reply(self.sup.listener, n, err)


def _socket_info(sock: int) -> tuple[int, int, bool]:
    """(domain, type, O_NONBLOCK) of our copy of the target's socket."""
    s = socket.socket(fileno=sock)  # reads SO_DOMAIN and SO_TYPE
    try:
        return int(s.family), int(s.type), bool(fcntl.fcntl(sock, fcntl.F_GETFL) & os.O_NONBLOCK)
    finally:
        s.detach()


def _kernel_refuses(name: str, address: SockAddr, family: int, kind: int, protocol: int) -> bool:
    """Whether the kernel may refuse ``address`` for this socket before using it, and a probe
    of the same call on a throwaway socket sends nothing anywhere: a malformed address, or a
    family the socket does not have on an IPv4, unix or IPv6 TCP/UDP socket (an IPv6 UDP socket
    takes an AF_INET address: the probe then succeeds and the policy decides). Sends only on
    datagram and raw sockets (TCP and unix streams ignore or refuse any address), and a
    mismatched family only where no packet can leave (not an IPv6 socket's send)."""
    if name in SENDS and kind not in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        return False
    if address.kind == INVALID:
        return True
    if address.family in (family, AF_UNSPEC):
        return False  # its own family (netlink on a netlink socket ...): the kernel may take it
    if family in (socket.AF_INET, AF_UNIX):
        return True
    if family == socket.AF_INET6 and name != "sendto" and name != "sendmsg":
        return protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP)
    return False


def _protocol(sock: int) -> int:
    """SO_PROTOCOL of our copy of the target's socket (IPPROTO_TCP, IPPROTO_SCTP, ...)."""
    s = socket.socket(fileno=sock)
    try:
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
    finally:
        s.detach()


def _connect(sock: int, raw: bytes, creds: Creds) -> int:
    """connect(2) under the target's credentials (an LSM hook, a netfilter owner match, a
    unix path's permissions see the target's ids, not the supervisor's)."""
    with as_creds(creds):
        return raw_connect(sock, raw)


def _make_socket(domain: int, kind: int, protocol: int, creds: Creds) -> int:
    """socket(2) under the target's credentials: our fd, or -errno."""
    with as_creds(creds):
        return raw_socket(domain, kind, protocol)


def _socket_in(netns: int, spec: tuple[int, int, int], creds: Creds) -> int:
    """On a worker thread: socket(2) in the network namespace ``netns`` (a namespace is per
    thread: setns acts on the caller only), then back to the thread's own. A thread that cannot
    go back aborts the supervisor rather than serve from the target's namespace."""
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        return -(e.errno or errno.EAFNOSUPPORT)
    try:
        err = raw_setns(netns, CLONE_NEWNET)
        if err:
            return -err
        try:
            return _make_socket(*spec, creds)
        finally:
            if raw_setns(own, CLONE_NEWNET):
                os.abort()
    finally:
        os.close(own)


def _install(listener: ListenerFd, n: Notification, fd: int, cloexec: bool) -> None:
    """Answer with ``fd`` installed in the target (ADDFD with SEND), or with the -errno."""
    if fd < 0:
        listener.send_error(n.id, -fd)
        return
    try:
        listener.send_fd(n.id, fd, cloexec=cloexec)
    except OSError as e:
        listener.send_error(n.id, e.errno or errno.EMFILE)  # e.g. EMFILE in the target
    finally:
        os.close(fd)


def _bind(sock: int, address: SockAddr, resolved: Resolved | None, creds: Creds) -> int:
    if resolved is None:
        with as_creds(creds):
            return raw_bind(sock, address.raw)
    # A unix path: bind the final name from the parent directory we resolved and checked.
    if resolved.exists:
        return errno.EADDRINUSE
    name = os.fsencode(resolved.name or "")
    raw = address.raw[:2] + name + b"\0"
    _own_fs()
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


def _sendmsg(
    sock: int, name: bytes | None, data: bytes, control: bytes, flags: int, creds: Creds | None
) -> int:
    if creds is None:
        return raw_sendmsg(sock, name, data, control, flags)
    with as_creds(creds):
        return raw_sendmsg(sock, name, data, control, flags)


def _send_rest(
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
        return _sendmsg(sock, name, data, control, flags, creds)
    sent = done
    while sent < len(data):
        first = sent == 0
        ret = _sendmsg(
            sock, name if first else None, data[sent:], control if first else b"", flags, creds
        )
        if ret < 0:
            return sent if sent else ret
        sent += ret
    return sent


def _sigpipe(tid: int) -> None:
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


def _reply_count(listener: ListenerFd, n: Notification, ret: int) -> None:
    if ret < 0:
        listener.send_error(n.id, -ret)
    else:
        listener.send_value(n.id, ret)


def _reply(listener: ListenerFd, n: Notification, err: int) -> None:
    if err:
        listener.send_error(n.id, err)
    else:
        listener.send_value(n.id, 0)
