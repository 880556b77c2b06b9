"""What a resumed exec is expected to run.

``expected_files``: the (dev, inode) of the checked file and, for a ``#!`` script, of its
interpreters (read like binfmt_script reads the first line, resolved in the target's view,
nested up to MAX_INTERPRETERS): what /proc/TGID/exe may name at the exec gate's stop.
``executed_path``: the path of what a process runs, in its own view.
"""

from __future__ import annotations

import os
import stat

from supervisor.kernel import proc
from supervisor.target.resolve import PathResolver

BINPRM_BUF_SIZE = 256  # how much of a file the kernel reads to find "#!" and the interpreter
MAX_INTERPRETERS = 4  # nested #! scripts the kernel follows (binfmt recursion limit)
_O_READ = os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK

Ino = tuple[int, int]  # (st_dev, st_ino)


def ino(st: os.stat_result) -> Ino:
    return (st.st_dev, st.st_ino)


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


def executed_path(resolver: PathResolver, tgid: int) -> str | None:
    """The path of the file process ``tgid`` runs, in its own view; None when gone."""
    try:
        r = resolver.resolve(tgid, None, proc.SELF_EXE, follow=True)
    except OSError:
        return None
    r.close()
    return r.path
