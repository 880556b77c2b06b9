"""pidfd_open(2), pidfd_getfd(2) and pidfd_send_signal(2).

A pidfd names one process for as long as it is open, so signals sent through it cannot reach a
process that later reused the pid.
"""

from supervisor._native import lib
from supervisor.kernel._errors import check

PIDFD_NONBLOCK = 0o4000  # O_NONBLOCK
PIDFD_THREAD = 0o200000  # O_EXCL: a pidfd of one thread, not its process (Linux 6.9)


def pidfd_open(pid: int, flags: int = 0) -> int:
    return check(lib.sv_pidfd_open(pid, flags))


def pidfd_getfd(pidfd: int, targetfd: int) -> int:
    """A copy of the target's fd ``targetfd`` in this process (close-on-exec)."""
    return check(lib.sv_pidfd_getfd(pidfd, targetfd, 0))


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    check(lib.sv_pidfd_send_signal(pidfd, sig, 0))
