"""Emulated opens: an allowed open whose path was inspected is performed by the supervisor.

The target's path could be rewritten between our check and the kernel's read, so such an open
is never resumed. Here: the path is read again and opened under the target's credentials and
root (``target.emulate.prepare_open``, which checks every path it actually reaches with the
engine: a file swapped in by a racing rename is refused), and the fd is installed in the target
with ADDFD (``reply.install``). O_PATH opens are the exception (ADDFD cannot install them):
resumed, advisory.

Opens of FIFOs and devices can block for ever; ``open_blocking`` performs them on a worker
thread (at most ``Context.threads`` at a time) while the loop goes on with other notifications.
"""

from __future__ import annotations

import errno
import os
import threading

import trio

from supervisor.kernel.creds import read_creds
from supervisor.kernel.seccomp import Notification
from supervisor.policy import Action, Request
from supervisor.supervise import records, reply
from supervisor.supervise.context import Context
from supervisor.supervise.requests import dirfd_arg, int32, open_how, with_paths
from supervisor.target.emulate import PreparedOpen, Refused, prepare_open

O_CREAT = os.O_CREAT
O_TRUNC = os.O_TRUNC
O_WRONLY = os.O_WRONLY
O_CLOEXEC = os.O_CLOEXEC
O_PATH = os.O_PATH


def emulate_open(ctx: Context, n: Notification, request: Request) -> None:
    """Perform the allowed open, creat, openat or openat2 of ``request`` and answer it."""
    args = request.args
    name = request.syscall
    if name == "open":
        dirfd, path_arg, flags, mode, resolve_flags = None, args[0], args[1], args[2], 0
    elif name == "creat":
        dirfd, path_arg, flags, mode, resolve_flags = (
            None,
            args[0],
            O_CREAT | O_WRONLY | O_TRUNC,
            args[1],
            0,
        )
    elif name == "openat":
        dirfd, path_arg, flags, mode, resolve_flags = (
            dirfd_arg(args[0]),
            args[1],
            args[2],
            args[3],
            0,
        )
    else:  # openat2
        flags, mode, resolve_flags = open_how(ctx, n)
        dirfd, path_arg = dirfd_arg(args[0]), args[1]
    flags = int32(flags) & 0xFFFFFFFF
    mode &= 0o7777
    if flags & O_PATH:
        # ADDFD cannot install an O_PATH file (the kernel's fget() skips them), so an
        # allowed O_PATH open is resumed after the check: advisory. Such an fd grants no
        # read or write, and every later use of it by path (openat relative to it,
        # /proc/self/fd/N) is resolved and checked again.
        reply.resume(ctx, n)
        return
    path = ctx.memory.read_string(n.id, n.pid, path_arg)
    try:
        creds = read_creds(n.pid)
    except OSError:
        if not ctx.listener.id_valid(n.id):
            return  # the thread is gone: nobody to answer
        raise
    cloexec = bool(flags & O_CLOEXEC)
    engine = ctx.engine

    def allowed(final_path: str) -> bool:
        again = engine.peek(with_paths(request, (final_path,)))
        return again.action in (Action.ALLOW, Action.LOG)

    try:
        prepared = prepare_open(
            ctx.resolver,
            n.pid,
            creds,
            dirfd,
            path,
            flags & ~O_CLOEXEC,
            mode,
            resolve_flags,
            allowed,
        )
    except Refused as e:
        decision = engine.peek(with_paths(request, (e.path,)))
        ctx.counters.allowed -= 1
        ctx.counters.denied += 1
        records.record(ctx, "syscall.denied", n, request, decision, raced_path=e.path)
        reply.error(ctx, n, decision.errno or errno.EACCES)
        return
    except OSError as e:
        reply.error(ctx, n, e.errno or errno.EACCES)
        return
    # One ID_VALID after the credentials were read AND the resolver took its handles on
    # /proc/TID/{root,cwd,fd/N}, before anything with a side effect (O_CREAT, O_TRUNC):
    # still valid means the tid was not reused, so both were the calling thread's.
    if not ctx.listener.id_valid(n.id):
        prepared.close()
        return
    if prepared.may_block and ctx.spawn(open_blocking, ctx, n, prepared, cloexec):
        return
    finish_open(ctx, n, prepared, cloexec)


def finish_open(ctx: Context, n: Notification, prepared: PreparedOpen, cloexec: bool) -> None:
    try:
        fd = prepared.open()
    except OSError as e:
        reply.error(ctx, n, e.errno or errno.EACCES)
        return
    finally:
        prepared.close()
    reply.install(ctx, n, fd, cloexec=cloexec)


async def open_blocking(
    ctx: Context, n: Notification, prepared: PreparedOpen, cloexec: bool
) -> None:
    """Perform a blocking open (a FIFO with no writer, a device) on a worker thread. When
    the task is cancelled (the target is gone, shutdown), the thread is abandoned and may
    stay blocked; it *owns* ``prepared`` (closing its fds here could hand their numbers
    to another open while the thread still reopens ``/proc/self/fd/N``), and an fd it gets
    after it was abandoned is closed, not leaked. The lock decides, once, which side closes
    what."""
    lock = threading.Lock()
    state = {"started": False, "abandoned": False, "fd": -1}

    def perform() -> int:
        with lock:
            if state["abandoned"]:
                return -1  # cancelled before we ran: the task closed ``prepared``
            state["started"] = True
        try:
            fd = prepared.open()
        finally:
            prepared.close()
        with lock:
            if not state["abandoned"]:
                state["fd"] = fd
                return fd
        os.close(fd)  # nobody will take it
        return -1

    try:
        fd = await trio.to_thread.run_sync(perform, limiter=ctx.threads, abandon_on_cancel=True)
    except OSError as e:
        reply.error(ctx, n, e.errno or errno.EACCES)
        return
    except BaseException:  # cancelled: the thread, if it runs, cleans up after itself
        with lock:
            state["abandoned"] = True
            started, done = state["started"], state["fd"]
        if not started:
            prepared.close()
        if done >= 0:
            os.close(done)  # the thread finished just as we were cancelled
        raise
    reply.install(ctx, n, fd, cloexec=cloexec)
