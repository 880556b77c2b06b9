"""kcmp(2) with KCMP_FILE: whether two fds are one open file description.

A seccomp listener is one anonymous-inode file per filter (SECCOMP_FILTER_FLAG_NEW_LISTENER
creates it once; every copy, by dup, SCM_RIGHTS or pidfd_getfd, is the same ``struct file``),
and all listeners share one inode, so fstat cannot tell them apart: kcmp can. It needs
CONFIG_KCMP (set in Debian's kernels) and ptrace read access to both pids (always granted for
our own).
"""

import os

from supervisor._native import lib
from supervisor.kernel._errors import check

KCMP_FILE: int = lib.KCMP_FILE


def same_file(fd1: int, fd2: int, pid1: int | None = None, pid2: int | None = None) -> bool:
    """True when fd ``fd1`` of ``pid1`` and fd ``fd2`` of ``pid2`` (this process by default)
    are the same open file. Raises OSError (EBADF: no such fd; ENOSYS: no CONFIG_KCMP)."""
    me = os.getpid()
    # 0: equal; 1 or 2: ordered unequal; 3: unequal, not ordered.
    return check(lib.sv_kcmp(pid1 or me, pid2 or me, KCMP_FILE, fd1, fd2)) == 0
