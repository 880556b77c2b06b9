"""What a resumed exec is expected to run, and watching for it to land.

``expected_files``: the (dev, inode) of the checked file and, for a ``#!`` script, of its
interpreters (read like binfmt_script reads the first line, resolved in the target's view,
nested up to MAX_INTERPRETERS). ``wait_for_exe_change``: a worker thread's fast poll of the
process's executable. ``executed_path``: the path of what a process runs, in its own view.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field

from supervisor.kernel import proc
from supervisor.kernel.seccomp import Notification
from supervisor.policy import Decision, Request
from supervisor.target.resolve import PathResolver

BINPRM_BUF_SIZE = 256  # how much of a file the kernel reads to find "#!" and the interpreter
MAX_INTERPRETERS = 4  # nested #! scripts the kernel follows (binfmt recursion limit)
_O_READ = os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK
FAST_POLL_SECONDS = 0.2  # how long a worker thread watches for the exec to land
FAST_POLL_INTERVAL = 0.00005

Ino = tuple[int, int]  # (st_dev, st_ino)


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


def ino(st: os.stat_result) -> Ino:
    return (st.st_dev, st.st_ino)


def exe_or_none(tgid: int) -> Ino | None:
    """The executable of ``tgid`` now; None when it cannot be read."""
    try:
        return proc.exe_identity(tgid)
    except OSError:
        return None


def interpreter(fd: int) -> bytes | None:
    """The interpreter of a ``#!`` file open as O_PATH ``fd``, as binfmt_script reads it; None
    for anything else (ELF, unreadable, not a regular file: the kernel executes only those, and
    opening a FIFO or a device could block or have effects)."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        rfd = proc.reopen(fd, _O_READ)
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


def expected_files(resolver: PathResolver, pid: int, fd: int) -> set[Ino]:
    """The checked file ``fd``, and for a #! script its interpreter(s), resolved as the
    target ``pid`` would."""
    expected = {ino(os.fstat(fd))}
    current = fd
    opened: list[int] = []
    try:
        for _ in range(MAX_INTERPRETERS):
            interp = interpreter(current)
            if interp is None:
                break
            try:
                r = resolver.resolve(pid, None, interp, follow=True)
            except OSError:
                break  # the kernel fails the exec (ENOENT...): nothing to expect
            current = r.take_fd()
            opened.append(current)
            expected.add(ino(os.fstat(current)))
    finally:
        for o in opened:
            os.close(o)
    return expected


def wait_for_exe_change(p: PendingExec) -> None:
    """Return once the executable of p.tgid is not the old one (or is gone), the check is done
    (read racily: a bool), or after FAST_POLL_SECONDS. On a worker thread."""
    tgid = p.tgid
    old = p.old_exe
    deadline = time.monotonic() + FAST_POLL_SECONDS
    while not p.done and time.monotonic() < deadline:
        try:
            if proc.exe_identity(tgid) != old:
                return
        except OSError:
            return
        time.sleep(FAST_POLL_INTERVAL)


def executed_path(resolver: PathResolver, tgid: int) -> str | None:
    """The path of the file process ``tgid`` runs, in its own view; None when gone."""
    try:
        r = resolver.resolve(tgid, None, proc.SELF_EXE, follow=True)
    except OSError:
        return None
    r.close()
    return r.path
