"""execve and execveat under exec rules (``path``, ``argv``, ``once``), and the check of what
was executed after an allow.

The loop hands these notifications here when Engine.checks_exec(syscall). Steps:

1. The program path is resolved like any path argument (relative to the cwd or dirfd, in the
   target's root); a path the kernel could not execute fails here with its errno (ENOENT for a
   missing program), before any decision, so a missing program never spends a ``once``.
2. The argv is read: the pointer array (8-byte pointers on x86_64, 4-byte on i386, from
   ``Request.arch``) and each string, page by page, every read between ID_VALID checks. Beyond
   ARGV_MAX_ELEMENTS elements or ARGV_MAX_BYTES bytes (policy/argv.py) the request carries no
   argv: argv rules that let the call through cannot match it, refusing ones do (fail closed). A
   NULL argv is ``[""]`` (what Linux runs the program with). An unreadable pointer gets EFAULT.
3. The engine decides. Refusals, and allows that did not look at the path or argv, go to the
   loop's ``_act`` (CONTINUE for those allows).
4. An allow that did look (``Decision.inspected``) cannot be performed by the supervisor: nobody
   can exec on the target's behalf. It is resumed with CONTINUE, and the kernel reads the path
   and argv again: a thread of the target racing those buffers (or a rename racing the file)
   can make it run something else. So the supervisor VERIFIES the exec:

   - before the CONTINUE it notes the (dev, inode) of the file it checked, of a ``#!`` script's
     interpreter (read like the kernel reads the first line, resolved in the target's view,
     nested up to 4 levels), and of the process's current executable; and it opens a pidfd of
     the process, so that a later kill cannot hit a process that reused the pid;
   - after the CONTINUE ``/proc/TGID/exe`` is watched until it changes: by a worker thread
     every 50 us for the first 200 ms (trio's sleeps are rounded up to milliseconds), then by a
     trio task every 1 ms, backing off to 5 ms after a second and 250 ms after ten; and any
     notification of the exec-ing thread or of the process is held until the check is done;
   - the new executable must be one of the noted files, be at the checked path (a package
     upgrade replaced the file) or be a file the policy allows; otherwise the process, and every
     process it forked meanwhile, is stopped and killed (SIGKILL through pidfds, the first taken
     before the CONTINUE) and ``syscall.killed`` is logged with the reason
     ``exec raced: executed X, checked Y``.

   What that leaves (docs/policy.md "Exec rules"): a raced program runs until the poll sees it
   (typically well under a few milliseconds; its first notified syscall is never answered before
   the check). The CONTENT of a script is not checked (the interpreter opens the script again by
   path: that open is decided by the open rules, and performed by the supervisor). The argv is
   not verified after the exec (the new program can rewrite /proc/PID/cmdline): argv allows are
   advisory; argv denials are enforced. Re-executing the process's own current executable is
   not seen as a change (it gains the target nothing it is not already running).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from supervisor.kernel import proc
from supervisor.kernel.filter import arch_name
from supervisor.kernel.memory import TargetGone, TargetMemoryError
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal
from supervisor.kernel.seccomp import Notification
from supervisor.policy import Action, Decision, Request
from supervisor.policy.match.argv import ARGV_MAX_BYTES, ARGV_MAX_ELEMENTS, EXEC_SYSCALLS

if TYPE_CHECKING:
    from supervisor.supervise.loop import Supervisor

PAGE = 4096
BINPRM_BUF_SIZE = 256  # how much of a file the kernel reads to find "#!" and the interpreter
MAX_INTERPRETERS = 4  # nested #! scripts the kernel follows (binfmt recursion limit)
_O_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK

Ino = tuple[int, int]  # (st_dev, st_ino)
FAST_POLL_SECONDS = 0.2  # how long a worker thread watches for the exec to land
FAST_POLL_INTERVAL = 0.00005


@dataclass
class PendingExec:
    """An inspected exec that was resumed and whose executed file is still to be checked."""

    n: Notification
    request: Request
    decision: Decision
    tgid: int
    pidfd: int
    old_exe: Ino | None
    expected: set[Ino]
    checked: str  # the program path that was checked, for the log
    started: float = field(default_factory=time.monotonic)
    done: bool = False


def _ino(st: os.stat_result) -> Ino:
    return (st.st_dev, st.st_ino)


def _interpreter(fd: int) -> bytes | None:
    """The interpreter of a ``#!`` file open as O_PATH ``fd``, as binfmt_script reads it; None
    for anything else (ELF, unreadable, not a regular file: the kernel executes only those, and
    opening a FIFO or a device could block or have effects)."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        rfd = os.open(f"/proc/self/fd/{fd}", _O_READ)
    except OSError:
        return None
    try:
        head = os.read(rfd, BINPRM_BUF_SIZE)
    except OSError:
        return None
    finally:
        os.close(rfd)
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].lstrip(b" \t")
    interp = line.split(None, 1)[0] if line.split() else b""
    return interp or None


def _wait_for_exe_change(p: PendingExec) -> None:
    """Return once /proc/TGID/exe is not the old executable (or is gone), the check is done
    (read racily: a bool), or after FAST_POLL_SECONDS. On a worker thread."""
    path = f"/proc/{p.tgid}/exe"
    old = p.old_exe
    deadline = time.monotonic() + FAST_POLL_SECONDS
    while not p.done and time.monotonic() < deadline:
        try:
            if _ino(os.stat(path)) != old:
                return
        except OSError:
            return
        time.sleep(FAST_POLL_INTERVAL)


STOP_WAIT = 0.05  # seconds: how long _wait_stopped waits for a SIGSTOP to take effect


def _wait_stopped(pid: int) -> None:
    """Wait (at most STOP_WAIT) until every thread of ``pid`` has stopped, died, or sits in a
    notified syscall (which waits for us). A SIGSTOP only takes effect when a thread next passes
    through the kernel's signal path; until then it runs on (on another CPU) and can fork a child
    that the walk below would not see, and that outlives the kill."""
    deadline = time.monotonic() + STOP_WAIT
    while True:
        tids = proc.threads(pid)
        running = any(
            (state := proc.thread_state(pid, tid)) is not None
            and state not in proc.STOPPED_STATES
            and not proc.waits_in_seccomp(pid, tid)
            for tid in tids
        )
        if not running or time.monotonic() >= deadline:
            return
        time.sleep(0.00005)


def _kill_tree(pidfd: int, tgid: int) -> None:
    """SIGKILL the process of ``pidfd`` and every process it forked since the exec (a raced
    program may fork at once, and its children would outlive it). Each is stopped first, so
    none can fork again while the tree is walked; a pid is only signalled through a pidfd taken
    while its parent (stopped) is still its parent, so a reused pid is never hit."""
    with contextlib.suppress(OSError):
        pidfd_send_signal(pidfd, signal.SIGSTOP)
    _wait_stopped(tgid)
    held: dict[int, int] = {}
    try:
        for _ in range(3):  # a child forked while its parent was being stopped: look again
            for parent in [tgid, *held]:
                for child in proc.children(parent):
                    if child in held:
                        continue
                    try:
                        fd = pidfd_open(child)
                    except OSError:
                        continue
                    try:
                        if proc.ppid(child) != parent:
                            raise ProcessLookupError(child)
                        pidfd_send_signal(fd, signal.SIGSTOP)
                    except (OSError, ValueError, IndexError):
                        os.close(fd)
                        continue
                    held[child] = fd
                    _wait_stopped(child)
        with contextlib.suppress(OSError):  # already gone
            pidfd_send_signal(pidfd, signal.SIGKILL)
        for fd in held.values():
            with contextlib.suppress(OSError):
                pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        for fd in held.values():
            os.close(fd)


class ExecCalls:
    """The exec part of one Supervisor (uses its listener, memory reader, resolver, engine)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        # By the tid that exec'd AND by its tgid (after an exec the process has only the tgid).
        self.pending: dict[int, PendingExec] = {}
        self._threads = trio.CapacityLimiter(16)  # threads watching execs land

    def wants(self, name: str) -> bool:
        return name in EXEC_SYSCALLS and self.sup.engine.checks_exec(name)

    # -- deciding --------------------------------------------------------------------------------
    def handle(self, n: Notification, name: str) -> None:
        sup = self.sup
        arch = arch_name(n.arch)
        call = sup._read_paths(n, name, arch)
        if call is None:
            return  # answered with the kernel's errno
        try:
            if not call.resolved[0].exists:
                # The kernel fails the exec with ENOENT: nothing to decide (and a `once` stays
                # unspent while execvp tries the directories of PATH).
                sup.listener.send_error(n.id, errno.ENOENT)
                return
            argv_arg = n.args[1] if name == "execve" else n.args[2]
            try:
                argv = self.read_argv(n, argv_arg, arch)
            except TargetMemoryError as e:
                sup._reply_error(n, name, e.errno or errno.EFAULT, reason="bad pointer")
                return
            request = Request(
                pid=n.pid, syscall=name, arch=arch, args=n.args, paths=call.paths, argv=argv
            )
            if sup.engine.has_budgets:
                request = sup._budget_facts(n, request)
            decision = sup.engine.decide(request)
            if decision.action not in (Action.ALLOW, Action.LOG) or not decision.inspected:
                sup._act(n, request, decision)
                return
            self._resume_and_verify(n, request, decision, call.resolved[0].fd)
        finally:
            call.close()

    def read_argv(self, n: Notification, addr: int, arch: str) -> tuple[str, ...] | None:
        """The argv array at ``addr`` in the target, or None when it is beyond the limits."""
        if arch != "x86_64":
            addr &= 0xFFFFFFFF
        if addr == 0:
            return ("",)
        size = 8 if arch == "x86_64" else 4
        mem = self.sup._memory
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
            text = self._read_arg(n, ptr, ARGV_MAX_BYTES - total)
            if text is None:
                return None
            total += len(text) + 1
            out.append(os.fsdecode(text))
        return tuple(out)

    def _read_arg(self, n: Notification, addr: int, budget: int) -> bytes | None:
        """One NUL-terminated string, page by page; None when longer than ``budget`` - 1."""
        mem = self.sup._memory
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

    # -- after an inspected allow -----------------------------------------------------------------
    def _expected(self, n: Notification, fd: int) -> set[Ino]:
        """The checked file, and for a #! script its interpreter(s), resolved as the target."""
        expected = {_ino(os.fstat(fd))}
        current = fd
        opened: list[int] = []
        try:
            for _ in range(MAX_INTERPRETERS):
                interp = _interpreter(current)
                if interp is None:
                    break
                try:
                    r = self.sup._resolver.resolve(n.pid, None, interp, follow=True)
                except OSError:
                    break  # the kernel fails the exec (ENOENT...): nothing to expect
                current = r.take_fd()
                opened.append(current)
                expected.add(_ino(os.fstat(current)))
        finally:
            for o in opened:
                os.close(o)
        return expected

    def _resume_and_verify(
        self, n: Notification, request: Request, decision: Decision, checked_fd: int
    ) -> None:
        sup = self.sup
        try:
            tgid = proc.tgid(n.pid)
            pidfd = pidfd_open(tgid)
        except OSError:
            # Gone, or a failure of ours (EMFILE...): that one is answered (EPERM), never left
            # waiting for ever.
            if not sup.listener.id_valid(n.id):
                raise TargetGone() from None
            raise
        try:
            if not sup.listener.id_valid(n.id):
                raise TargetGone()  # the pidfd may name another process by now
            expected = self._expected(n, checked_fd)
            try:
                old_exe: Ino | None = _ino(os.stat(f"/proc/{tgid}/exe"))
            except OSError:
                old_exe = None
        except BaseException:
            os.close(pidfd)
            raise
        pending = PendingExec(
            n, request, decision, tgid, pidfd, old_exe, expected, request.paths[0]
        )
        previous = self.pending.get(tgid)
        if previous is not None and not previous.done:
            # Two execs in flight in one process (two threads): whichever lands must be one of
            # the files checked for either.
            pending.expected |= previous.expected
            self._finish(previous)
        self.pending[tgid] = pending
        self.pending[n.pid] = pending
        if decision.enters is not None:
            sup._phase_entered(n, request, decision)
        sup.counters.allowed += 1
        if decision.action is Action.LOG:
            sup._record("syscall.logged", n, request, decision, level="info")
        sup.listener.send_continue(n.id)
        nursery = sup._nursery
        if nursery is not None:
            nursery.start_soon(self._watch, pending)

    async def _watch(self, p: PendingExec) -> None:
        try:
            # First on a worker thread that looks every 50 us (trio's own sleeps are rounded up
            # to whole milliseconds by epoll): an exec usually completes within a millisecond.
            # When every watcher thread is busy, straight to the polls below.
            if self._threads.available_tokens > 0:
                await trio.to_thread.run_sync(
                    _wait_for_exe_change,
                    p,
                    limiter=self._threads,
                    abandon_on_cancel=True,
                )
            delay = 0.001
            while not p.done:
                self.check(p, final=False)
                if p.done:
                    return
                await trio.sleep(delay)
                age = time.monotonic() - p.started
                delay = 0.001 if age < 1.0 else 0.005 if age < 10.0 else 0.25
        except trio.Cancelled:
            self._finish(p)  # the supervisor is stopping: every target is gone
            raise
        except Exception as e:  # never take the supervisor down; fail closed: the check failed
            self.sup.log.error(
                "supervisor.internal_error",
                pid=p.tgid,
                syscall=p.request.syscall,
                error=f"{type(e).__name__}: {e}",
            )
            if not p.done:
                _kill_tree(p.pidfd, p.tgid)
                self._finish(p)

    def before_notification(self, n: Notification) -> bool:
        """Called for a notification of a thread or process with an exec pending: check now.
        False when the process was killed (the caller answers the notification with an
        error)."""
        p = self.pending.get(n.pid)
        if p is None:
            return True
        # The exec-ing thread itself making a syscall: its execve has returned.
        return self.check(p, final=n.pid == p.n.pid)

    def check(self, p: PendingExec, *, final: bool) -> bool:
        """Compare the process's executable with what was checked; kill on a mismatch. Returns
        False when the process was killed or is gone. ``final``: the exec syscall is over, so
        an unchanged executable ends the check."""
        if p.done:
            return True
        try:
            exe: Ino | None = _ino(os.stat(f"/proc/{p.tgid}/exe"))
            # The pid still names our process (and so /proc/TGID was its) while the pidfd
            # can signal it.
            pidfd_send_signal(p.pidfd, 0)
        except OSError:
            self._finish(p)  # exited (or a kernel oddity: no exe): nothing runs
            return False
        if exe == p.old_exe:
            if final:
                self._finish(p)
            return True
        if exe in p.expected or self._allowed_anyway(p):
            self._finish(p)
            return True
        self._kill(p)
        return False

    def _executed_path(self, p: PendingExec) -> str | None:
        try:
            r = self.sup._resolver.resolve(p.tgid, None, b"/proc/self/exe", follow=True)
        except OSError:
            return None
        r.close()
        return r.path

    def _allowed_anyway(self, p: PendingExec) -> bool:
        """The executed file differs from the checked one, but its path is the checked path
        (replaced in between, e.g. by a package upgrade) or one the policy lets through."""
        path = self._executed_path(p)
        if path is None:
            return False
        if path == p.checked:
            return True
        again = self.sup.engine.peek(dataclasses.replace(p.request, paths=(path,)))
        return again.action in (Action.ALLOW, Action.LOG)

    def _kill(self, p: PendingExec) -> None:
        sup = self.sup
        executed = self._executed_path(p) or "?"
        _kill_tree(p.pidfd, p.tgid)
        sup.counters.allowed -= 1
        sup.counters.killed += 1
        decision = Decision(Action.KILL, 0, p.decision.rule, True)
        sup._record(
            "syscall.killed",
            p.n,
            p.request,
            decision,
            level="error",
            reason=f"exec raced: executed {executed}, checked {p.checked}",
        )
        self._finish(p)

    def _finish(self, p: PendingExec) -> None:
        if p.done:
            return
        p.done = True
        for key in (p.tgid, p.n.pid):
            if self.pending.get(key) is p:
                del self.pending[key]
        os.close(p.pidfd)

    def close(self) -> None:
        """Forget every pending check (the supervisor is stopping)."""
        for p in list(self.pending.values()):
            self._finish(p)
