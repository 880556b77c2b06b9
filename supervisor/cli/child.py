"""The launched child, seen from the command that started it: what the embedded ``run`` and
``run --daemon`` share.

Both fork the target under its filter (``target.launch``), stay its parent, and exit with its
status. So both: hold the relayed signals from before the fork until a task passes them on
(``block_relayed_signals``, ``relay_signals``), ignore the terminal's signals (the target gets
them itself), reap the child and turn its wait status into an exit code (``wait_child``),
print why an exec failed (``report_exec_failure``), and print their own failures the same way
(``fail``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import trio

from supervisor.kernel.pidfd import pidfd_send_signal
from supervisor.target.launch import EXIT_LAUNCHER_FAILED, Launched, exec_failure

PROG = "seccomp-supervisor"
# Signals a terminal sends to the whole foreground process group: the target gets them directly,
# so the launcher ignores them rather than dying and leaving its target unsupervised.
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
# Signals sent to the launcher alone (kill, a service manager) are passed on to the target.
RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def fail(message: str, code: int = EXIT_LAUNCHER_FAILED) -> int:
    """Print ``message`` as the command's error; ``code`` to exit with."""
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def block_relayed_signals() -> None:
    """Hold the relayed signals from before the fork until the relay task listens for them:
    a SIGTERM arriving in between must reach the target, not kill the launcher. The child's
    mask is reset before it execs."""
    signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED_SIGNALS)


def ignore_terminal_signals() -> None:
    """Once the target runs: the terminal's signals are the target's (it gets them itself)."""
    for sig in TERMINAL_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.SIG_IGN)


async def relay_signals(pidfd: int) -> None:
    """Pass the relayed signals on to the target (by its pidfd: never a successor of its pid)."""
    with trio.open_signal_receiver(*RELAYED_SIGNALS) as signals:
        # Handlers are in place: whatever arrived while blocked is delivered now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED_SIGNALS)
        async for sig in signals:
            with contextlib.suppress(ProcessLookupError):
                pidfd_send_signal(pidfd, sig)


async def wait_child(launched: Launched, status: list[int]) -> None:
    """Reap the child once it exits; its exit code goes to ``status``. Only once its pidfd says
    it exited: the exec gate's tracer threads live in this process, so a wait for the child
    before that would also report (and take) its ptrace stops (supervisor/kernel/ptrace.py)."""
    await trio.lowlevel.wait_readable(launched.pidfd)
    _, raw = os.waitpid(launched.pid, 0)
    status.append(exit_code_of(raw))


def exit_code_of(raw: int) -> int:
    if os.WIFSIGNALED(raw):
        return 128 + os.WTERMSIG(raw)
    return os.WEXITSTATUS(raw)


async def report_exec_failure(fd: int, command: list[str]) -> None:
    await trio.lowlevel.wait_readable(fd)
    data = os.read(fd, 64)
    if data:
        print(f"{PROG}: {exec_failure(data, command[0])}", file=sys.stderr)


def close_launched(launched: Launched) -> None:
    """Close the launcher's fds of the child: its listener, pidfd and exec-status pipe."""
    launched.listener.close()
    os.close(launched.pidfd)
    os.close(launched.exec_status_fd)
