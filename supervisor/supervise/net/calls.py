"""The network handler: decide connect, bind, sendto, sendmsg, sendmmsg and i386 socketcall
under ``address`` rules (see the package docstring), then perform (``net.perform``), resume or
refuse."""

from __future__ import annotations

import dataclasses
import errno
import os
import socket

from supervisor.kernel.filter import arch_name
from supervisor.kernel.memory import TargetMemoryError
from supervisor.kernel.seccomp import Notification
from supervisor.kernel.sockets import raw_bind, raw_connect, raw_sendmsg, raw_socket
from supervisor.policy import Action, Request, rules_by_syscall
from supervisor.policy.match.sockaddr import (
    ADDRESS_SYSCALLS,
    AF_UNIX,
    AF_UNSPEC,
    INVALID,
    MMSGHDR_SIZE,
    NO_ADDRESS,
    NONE,
    SOCKETCALL_CALLS,
    UIO_MAXIOV,
    UNIX,
    SockAddr,
    unpack_socketcall_args,
)
from supervisor.supervise import reply
from supervisor.supervise.act import act, allowed
from supervisor.supervise.context import Context
from supervisor.supervise.net.perform import (
    SOCKETCALL_REFUSED,
    perform_connect_bind,
    perform_send,
    perform_socket,
)
from supervisor.supervise.net.read import (
    Answer,
    msghdr_address,
    read_address,
    read_span,
    resolve_unix,
    socket_info,
    socket_protocol,
    target_socket,
)
from supervisor.supervise.records import phase_entered
from supervisor.supervise.requests import budget_facts, int32
from supervisor.target.resolve import Resolved

NET_SYSCALLS: frozenset[str] = ADDRESS_SYSCALLS | {"socketcall"}
SENDS = frozenset({"sendto", "sendmsg"})


class NetCalls:
    """The network handler of one Supervisor."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._by_value_of: object = None
        self._by_value_names: frozenset[str] = frozenset()

    def wants(self, name: str) -> bool:
        if name == "socketcall":
            # Whenever it is notified: its bind/connect/send calls are decided as those
            # syscalls (value, log and stateful rules included), not as "socketcall".
            return True
        return name in ADDRESS_SYSCALLS and self.ctx.engine.needs_address(name)

    def handle(self, n: Notification, name: str) -> None:
        if name == "socketcall":
            self._socketcall(n)
            return
        address_call(self.ctx, n, name, arch_name(n.arch), n.args, via_socketcall=False)

    # -- i386 socketcall -----------------------------------------------------------------------
    def _socketcall(self, n: Notification) -> None:
        """socketcall(call, args): every call is decided as the syscall it makes, with the
        arguments read from the array (net/socket.c reads ``nargs[call]`` 32-bit values)."""
        ctx = self.ctx
        arch = arch_name(n.arch)
        entry = SOCKETCALL_CALLS.get(n.args[0] & 0xFFFFFFFF)
        if entry is None:
            # Not a call (the kernel answers EINVAL without reading memory): by value.
            request = Request(pid=n.pid, syscall="socketcall", arch=arch, args=n.args)
            if ctx.engine.has_budgets:
                request = budget_facts(ctx, n, request)
            act(ctx, n, request, ctx.engine.decide(request))
            return
        name, count = entry
        try:
            raw = ctx.memory.read_bytes(n.id, n.pid, n.args[1] & 0xFFFFFFFF, 4 * count)
        except TargetMemoryError as e:
            reply.refuse(ctx, n, name, e.errno or errno.EFAULT, reason="bad pointer")
            return
        args = unpack_socketcall_args(raw, count)
        if name in ADDRESS_SYSCALLS:
            address_call(ctx, n, name, arch, args, via_socketcall=True)
            return
        request = Request(pid=n.pid, syscall=name, arch=arch, args=args)
        if ctx.engine.has_budgets:
            request = budget_facts(ctx, n, request)
        decision = ctx.engine.decide(request)
        if decision.action not in (Action.ALLOW, Action.LOG) or name not in self._by_value():
            # A refusal; or an allow no argument value decided (no rule on the syscall looks at
            # one): resumed, whatever the kernel then reads from the array.
            act(ctx, n, request, decision)
            return
        # Allowed because of argument values read from memory: never resumed.
        if name != "socket":
            # Not performed (socketpair would need its fds written back, the others are not
            # emulated): refused, docs/policy.md "Address rules". The direct i386 syscalls
            # (socketpair = 360, ...) carry their arguments in registers and are decided by
            # the kernel.
            if decision.enters is not None:
                phase_entered(ctx, n, request, decision)
            reply.refuse(ctx, n, name, SOCKETCALL_REFUSED, reason="socketcall by value")
            return
        allowed(ctx, n, request, decision)
        perform_socket(ctx, n, request)

    def _by_value(self) -> frozenset[str]:
        """The syscalls with a rule that looks at an argument value (for the current engine)."""
        engine = self.ctx.engine
        if self._by_value_of is not engine:
            self._by_value_names = frozenset(
                name
                for name, rules in rules_by_syscall(engine.policy.rules).items()
                if any(r.args for r in rules)
            )
            self._by_value_of = engine
        return self._by_value_names


def address_call(
    ctx: Context,
    n: Notification,
    name: str,
    arch: str,
    args: tuple[int, ...],
    *,
    via_socketcall: bool,
) -> None:
    """connect, bind, sendto, sendmsg, sendmmsg (``args`` from socketcall's array when
    ``via_socketcall``: then nothing allowed is resumed, the kernel would read them again)."""
    resolved: Resolved | None = None
    try:
        try:
            if name == "sendmmsg":
                sendmmsg(ctx, n, arch, args, via_socketcall)
                return
            address = read_address(ctx, n, name, arch, args)
            if address is not None and address.kind == UNIX:
                resolved = resolve_unix(ctx, n, name, address)
                address = dataclasses.replace(address, resolved=resolved.full_path)
        except TargetMemoryError as e:
            reply.refuse(ctx, n, name, e.errno or errno.EFAULT, reason="bad pointer")
            return
        except Answer as e:
            reply.refuse(ctx, n, name, e.errno, reason=e.reason)
            return
        request = Request(pid=n.pid, syscall=name, arch=arch, args=args, address=address)
        if ctx.engine.has_budgets:  # limit/rate rules count by time, process or user
            request = budget_facts(ctx, n, request)
        decision = ctx.engine.decide(request)
        if decision.action is Action.DENY and address is not None and address.kind != NONE:
            # An address the kernel refuses anyway (malformed, or of a family the socket
            # cannot use) gets the kernel's errno, not the policy's.
            err = kernel_refusal(ctx, n, name, args, address)
            if err:
                reply.refuse(ctx, n, name, err, reason="bad address")
                return
        if decision.action not in (Action.ALLOW, Action.LOG):
            act(ctx, n, request, decision)  # refusals
            return
        if address is None:
            if not via_socketcall:
                act(ctx, n, request, decision)  # sendto to NULL: nothing read, nothing to race
                return
            # socketcall: the NULL was read from memory and the kernel would read it again
            # after a resume (a racing thread could write a denied address): performed.
            address = NO_ADDRESS
        allowed(ctx, n, request, decision)
        if name in SENDS:
            perform_send(ctx, n, request, address, via_socketcall)
            return
        perform_connect_bind(ctx, n, request, address, resolved, via_socketcall)
        resolved = None  # perform_connect_bind owns it now
    finally:
        if resolved is not None:
            resolved.close()


def sendmmsg(
    ctx: Context, n: Notification, arch: str, args: tuple[int, ...], via_socketcall: bool = False
) -> None:
    """sendmmsg: every message's address is decided; the first refusal refuses the whole
    call (no message is sent); when all are allowed the call is resumed (advisory: the
    supervisor does not perform it, it would have to write each msg_len back)."""
    vlen = min(args[2] & 0xFFFFFFFF, UIO_MAXIOV)
    size = MMSGHDR_SIZE[arch]
    request = Request(pid=n.pid, syscall="sendmmsg", arch=arch, args=args)
    try:
        vec = read_span(ctx, n, args[1], vlen * size)
        addresses = [
            msghdr_address(ctx, n, vec[i : i + size], arch) for i in range(0, len(vec), size)
        ]
    except TargetMemoryError as e:
        reply.refuse(ctx, n, "sendmmsg", e.errno or errno.EFAULT, reason="bad pointer")
        return
    except Answer as e:
        reply.refuse(ctx, n, "sendmmsg", e.errno, reason=e.reason)
        return
    decision = None
    candidates: list[SockAddr | None] = list(addresses) or [None]  # vlen 0: no address
    for address in candidates:
        resolved: Resolved | None = None
        try:
            if address is not None and address.kind == UNIX:
                try:
                    resolved = resolve_unix(ctx, n, "sendmmsg", address)
                except Answer as e:
                    reply.refuse(ctx, n, "sendmmsg", e.errno, reason=e.reason)
                    return
                address = dataclasses.replace(address, resolved=resolved.full_path)
        finally:
            if resolved is not None:
                resolved.close()
        request = Request(pid=n.pid, syscall="sendmmsg", arch=arch, args=args, address=address)
        if ctx.engine.has_budgets:
            request = budget_facts(ctx, n, request)
        decision = ctx.engine.decide(request)
        if decision.action not in (Action.ALLOW, Action.LOG):
            break
    assert decision is not None
    if via_socketcall and decision.action in (Action.ALLOW, Action.LOG):
        # Resumed, the kernel would read the fd and the vector from socketcall's array again.
        reply.refuse(ctx, n, "sendmmsg", SOCKETCALL_REFUSED, reason="socketcall sendmmsg")
        return
    act(ctx, n, request, decision)  # an allow is resumed: advisory


def kernel_refusal(
    ctx: Context, n: Notification, name: str, args: tuple[int, ...], address: SockAddr
) -> int:
    """For a denied address the kernel would refuse anyway (malformed, or of a family the
    socket cannot use): the kernel's errno, so that a policy's catch-all deny does not
    replace EINVAL or EAFNOSUPPORT by its own. Found by making the same call with the same
    bytes on a throwaway socket like the target's (domain, type, protocol; non-blocking,
    closed at once), only where that call cannot reach anything (``kernel_refuses``).
    0 when the kernel would take the address: the policy's errno stands."""
    sock = target_socket(ctx, n, int32(args[0]))
    try:
        family, kind, _nonblocking = socket_info(sock)
        protocol = socket_protocol(sock)
    finally:
        os.close(sock)
    if not kernel_refuses(name, address, family, kind, protocol):
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


def kernel_refuses(name: str, address: SockAddr, family: int, kind: int, protocol: int) -> bool:
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
