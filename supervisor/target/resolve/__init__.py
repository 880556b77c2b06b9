"""Resolve a target's path argument the way the kernel would resolve it for the target.

The policy matches globs on the result, and ``target.emulate`` opens the object we found, so a
resolution that differs from the kernel's is a sandbox escape. What this module relies on:

* The target's view is its root (/proc/TID/root), its cwd (/proc/TID/cwd) and its fds
  (/proc/TID/fd/N). Opening these magic links (as the supervisor, before any credential switch)
  gives fds on the very objects, in the target's mount namespace; later lookups from them walk
  the target's mount tree.
* When the target's root is the supervisor's (same mount id, device and inode: the common case)
  a walk from the right start fd is the walk the kernel would make, so one ``openat2(O_PATH)``
  does it. ``RESOLVE_NO_MAGICLINKS`` makes /proc/PID/{fd/N,cwd,root,exe,...} fail with ELOOP
  instead of jumping (they would be the SUPERVISOR's magic links after /proc/self), and a result
  on procfs (fstatfs) means /proc/self or /proc/thread-self may have been read as the
  supervisor: both go to the careful walk below. Absolute paths of a target with another root
  use ``RESOLVE_IN_ROOT`` on its root fd, which keeps ``..`` and absolute symlinks inside it.
* Cost of the fast path (roots equal, no creds switch): statx(/proc/TID/root), openat2,
  statx + fstatfs, readlink = 5 syscalls for an absolute path; +2 (open /proc/TID/cwd or
  /proc/TID/fd/N, close) and +3 for placing the name (openat2, statx, close: see below) for a
  relative one; a missing final component adds openat2 of the parent and a statx of the name.
  When no credential switch is needed, the case of an existing object off procfs runs as one C
  call (``sv_resolve_fast``, same syscalls); anything else it meets (errors, ENOENT, procfs,
  another root, an odd readlink, a name that cannot be placed) sends it back to the Python code
  below, which starts over and decides.
* The careful walk opens one component at a time (O_PATH|O_NOFOLLOW), counts symlinks (40, as
  the kernel), clamps ``..`` at the root by comparing (mount id, dev, inode), replaces procfs's
  ``self``/``thread-self`` with the target's ids and treats magic links itself: see
  ``walk.Walk._magic``.
* The canonical path is what the kernel says about the fd we hold (readlink /proc/self/fd/N of
  OUR fd), cut to the target's root. Policy is thus decided on the object we hold, even if the
  target renames things concurrently.
* Untrusted bytes stay bytes until the end; names are decoded with ``os.fsdecode``
  (surrogateescape), so a non-UTF-8 byte becomes a lone surrogate that no glob ``*`` can turn
  into a ``/``.

Choices (refuse rather than guess):
* A start directory (cwd, dirfd) outside the target's root: EACCES.
* A magic link of a process outside the target's thread group (/proc/OTHER/cwd, ...): EACCES,
  although the kernel would allow it with ptrace read access. A target rarely needs it, and
  following it correctly would mean repeating ptrace_may_access.
* A magic link whose object is not reachable by path in the target's root (a pipe, socket,
  anonymous inode, deleted file, file outside the root): as the final component, the object is
  the magic link itself, named ``/proc/<tgid>/fd/N``; in the middle of a path: EACCES.
* A name found from a start directory (cwd, dirfd) is placed by identity: walked again from the
  target's root (no symlinks, no magic links) it must lead to the very object, the same (mount
  id, dev, inode); otherwise EACCES, logged as ``resolve.unplaced`` (``view.TargetView``). A
  start on a detached mount (open_tree clone, fsmount, umount -l) or on another namespace's mount
  (an fd received over SCM_RIGHTS, pidfd_getfd) is named by the kernel relative to a tree the
  target's root does not hold, so what is found from it is refused, whatever the rules say: a
  fresh tmpfs from fsmount too, until it is attached with move_mount. Unlinked objects
  (" (deleted)", a memfd) keep having no name: as the object of AT_EMPTY_PATH or a final magic
  link they are named ``/proc/<tgid>/fd/N``, as above.

The package: ``resolver`` (``PathResolver``, the entry points and the fast path, whose C half is
``supervisor.kernel.fastpath``), ``walk`` (the careful walk and magic links), ``view`` (one
target thread: its root, the name of an object in its view, its pid in a procfs instance),
``result`` (``Resolved``). The kernel calls are in ``supervisor.kernel.openat2`` (openat2, statx,
fstatfs) and ``supervisor.kernel.proc`` (the /proc magic links).
"""

from supervisor.kernel.fastpath import init_lane, lane_path
from supervisor.kernel.openat2 import (
    RESOLVE_ALL,
    RESOLVE_BENEATH,
    RESOLVE_CACHED,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
)
from supervisor.target.resolve.resolver import PathResolver
from supervisor.target.resolve.result import MAXSYMLINKS, NAME_MAX, PATH_MAX, Resolved

__all__ = [
    "MAXSYMLINKS",
    "NAME_MAX",
    "PATH_MAX",
    "RESOLVE_ALL",
    "RESOLVE_BENEATH",
    "RESOLVE_CACHED",
    "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "RESOLVE_NO_XDEV",
    "PathResolver",
    "Resolved",
    "init_lane",
    "lane_path",
]
