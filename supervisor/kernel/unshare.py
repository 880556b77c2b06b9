"""unshare(2) of the calling thread's fs_struct (``CLONE_FS``): its own umask, cwd and root.

Python's ``os.unshare`` would do the same; the C call is kept so that it is one syscall with no
argument checking on a worker thread. It acts on the calling thread only."""

from supervisor._native import lib
from supervisor.kernel._errors import check


def unshare_fs() -> None:
    """Give the calling thread its own fs_struct (umask, cwd, root)."""
    check(lib.sv_unshare_fs())
