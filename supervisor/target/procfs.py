"""Which process a procfs object belongs to, and whether an emulated open may reach it.

An emulated open runs in the SUPERVISOR: for the kernel, the opener is a supervisor thread (with
the target's fsuid, fsgid, groups and capabilities). Many files of /proc/PID check the opener
when they are opened (``mem``, ``environ``, ``auxv``, ``maps``, ``smaps``, ``pagemap``, ...:
``proc_mem_open`` → ``mm_access`` → ``ptrace_may_access``; ``fd/``, ``fdinfo/``, ``map_files/``:
``proc_fd_permission``, ``proc_fdinfo_access_allowed``; ``attr/``, ``ns/``, ``cwd``...). That
check is made against the supervisor task, not the target: ``same_thread_group`` lets the
supervisor into its own /proc/PID whatever its credentials, and relations such as Yama's
"ancestor of" hold for the supervisor (the ancestor of every target) where they do not for the
target. So for a per-process procfs entry of a process other than the target's own thread group
only entries in ``OTHER_PROCESS_ENTRIES`` are let through, and nothing at all of the
supervisor's own /proc/PID. Stricter than the kernel, on purpose (README, "Safety model").

The object is identified by what we hold, not by the path string: it is on procfs when
fstatfs says so (any mount of proc, a bind mount of part of it), and its place in procfs is
found by climbing with ``..`` from the object (a directory) or from its parent (checked to hold
the very object) up to the procfs root, each name checked to lead back to the child we came
from. When the climb ends at the root of a bind mount of part of procfs, that mount's root path
inside procfs comes from mountinfo; a per-process object there is refused (there is no procfs
root at hand to say whose it is).
"""

from __future__ import annotations

import errno
import os

from supervisor.kernel import proc
from supervisor.kernel.openat2 import (
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    FdStat,
    fd_stat,
    lstat_at,
    openat2,
    own_root,
)
from supervisor.target.resolve import Resolved
from supervisor.target.resolve.view import TargetView

# Entries of ANOTHER process's /proc/PID (and /proc/PID/task/TID) that an emulated open may
# reach. Each is opened without any check of the opener beyond the inode's mode (which the
# kernel checks with the target's fsuid, fsgid, groups and capabilities), and what it shows is
# decided when it is read, against the reader, who is the target (stat, wchan and io make their
# ptrace check then; cgroup uses the reader's cgroup namespace), or is readable by everyone.
# Writes (comm, oom_score_adj, loginuid) check the writer, the target, when it writes.
# Everything else is refused: mem, environ, auxv, maps, smaps, smaps_rollup, numa_maps, pagemap,
# clear_refs, syscall, stack, personality, the magic links (cwd, root, exe) and the directories
# fd/, fdinfo/, map_files/, ns/, net/, attr/ ...
OTHER_PROCESS_ENTRIES = frozenset(
    {
        "stat",
        "status",
        "statm",
        "cmdline",
        "comm",
        "cgroup",
        "cpuset",
        "limits",
        "oom_score",
        "oom_adj",
        "oom_score_adj",
        "loginuid",
        "sessionid",
        "schedstat",
        "wchan",
        "io",
        "mounts",
        "mountinfo",
    }
)

_O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_DEPTH = 64  # procfs is not that deep; a bound on the climb all the same


def _refuse(why: str) -> OSError:
    return OSError(errno.EACCES, f"{os.strerror(errno.EACCES)}: {why}")


def _same(dirfd: int, name: str, want: FdStat) -> bool:
    """Does ``name`` in ``dirfd`` (not following a final symlink) lead to the object ``want``?"""
    try:
        return lstat_at(dirfd, os.fsencode(name)).ids == want.ids
    except OSError:
        return False


def _exists(dirfd: int, path: str) -> bool:
    try:
        os.stat(path, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _mount_root(mnt_id: int, tid: int) -> list[str] | None:
    """The path inside its filesystem of the root of mount ``mnt_id`` (mountinfo's 4th field),
    looked up in the target's mount namespace, then in ours."""
    for pid in (tid, None):
        try:
            root = proc.mount_roots(pid).get(mnt_id)
        except OSError:
            continue
        if root is not None:
            return [os.fsdecode(c) for c in root.split(b"/") if c]
    return None


def _start(t: TargetView, r: Resolved, st: FdStat) -> tuple[int, list[str]]:
    """A directory fd (ours) to climb from, and the names below it that lead to the object."""
    if not r.exists:
        return os.dup(r.fd), [r.name or ""]
    if st.is_dir:
        return os.dup(r.fd), []
    parent, _, name = r.path.rpartition("/")
    root = t.open_root()
    try:
        pfd = openat2(
            root,
            os.fsencode(parent or "/"),
            _O_DIR,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
        )
    except OSError:
        raise _refuse("procfs object not reachable by its path") from None
    if not name or not _same(pfd, name, st):
        os.close(pfd)
        raise _refuse("procfs object not reachable by its path")
    return pfd, [name]


def _place(t: TargetView, r: Resolved, st: FdStat) -> tuple[int | None, list[str]]:
    """(our fd on the procfs root, or None; the object's names below the procfs root).

    The fd is owned by ``t`` (closed with it)."""
    d, tail = _start(t, r, st)
    names: list[str] = []
    try:
        for _ in range(_MAX_DEPTH):
            dst = fd_stat(d)
            if not dst.is_proc:
                raise _refuse("procfs object outside procfs")
            if dst.is_proc_root:
                fd, d = d, -1
                return t.keep(fd), names + tail
            up = os.open("..", _O_DIR, dir_fd=d)
            ust = fd_stat(up)
            if ust.ids[0] != dst.ids[0] or ust.ids == dst.ids:
                # d is the root of a mount of part of procfs: where is that in procfs?
                os.close(up)
                top = _mount_root(dst.ids[0], t.tid)
                if top is None:
                    raise _refuse("procfs mount not found")
                return None, top + names + tail
            name = proc.fd_name(d).rpartition("/")[2]
            if not _same(up, name, dst):
                os.close(up)
                raise _refuse("procfs directory moved")
            names.insert(0, name)
            os.close(d)
            d = up
        raise _refuse("procfs path too deep")
    finally:
        if d >= 0:
            os.close(d)


def check_open(tid: int, r: Resolved) -> bool:
    """Raise EACCES (an OSError) when opening ``r`` for thread ``tid`` from the supervisor would
    reach a per-process procfs entry the kernel would check against the supervisor: any entry of
    the supervisor's own /proc/PID, and entries of other processes not in
    ``OTHER_PROCESS_ENTRIES``. Objects off procfs, and the target's own /proc/PID, pass.

    True when the open must be made with the SUPERVISOR's credentials to grant what the kernel
    grants the target: its own fd directories (/proc/TGID/fd, /proc/TGID/task/TID/fd). The kernel
    lets a thread group into its own fd directories whatever their mode and owner
    (proc_fd_permission: ``task_tgid(current) == proc_pid(inode)``); a non-dumpable process's are
    root's, mode 0500, so under the target's credentials alone (a container's root in a user
    namespace of its own has no capability over them) the supervisor would get EACCES where the
    target itself does not (runc's init lists /proc/self/fd after its filter is installed)."""
    if r.off_proc:
        return False  # the resolver's fast paths saw it is not on procfs
    st = fd_stat(r.fd)
    if not st.is_proc:
        return False
    t = TargetView(tid, own_root())
    try:
        return _check(t, r, st)
    finally:
        t.close()


def _check(t: TargetView, r: Resolved, st: FdStat) -> bool:
    proc_root, names = _place(t, r, st)
    if not names or not names[0].isdigit():
        return False  # /proc itself, /proc/meminfo, /proc/sys/...: not a process's
    if proc_root is None:
        raise _refuse("per-process procfs entry on a partial mount of procfs")
    pid = names[0]
    ours = proc.self_at(proc_root)  # our tgid as this procfs numbers it ("": none there)
    if ours.isdigit() and (pid == ours or _exists(proc_root, f"{ours}/task/{pid}")):
        raise _refuse("the supervisor's own /proc entry")
    ids = t.ids_in(proc_root, fd_stat(proc_root))
    if ids is not None:
        tgid = str(ids[0])
        if pid == tgid or _exists(proc_root, f"{tgid}/task/{pid}"):
            # The target's own thread group: the kernel lets it in (its fd directories even
            # against their mode: see check_open).
            rest = names[1:]
            return pid == tgid and (
                rest == ["fd"] or (len(rest) == 3 and rest[0] == "task" and rest[2] == "fd")
            )
    rest = names[1:]
    if rest[:1] == ["task"]:
        if len(rest) == 1:
            return False  # listing the threads
        if not rest[1].isdigit():
            raise _refuse("another process's procfs entry")
        rest = rest[2:]
    if not rest or (len(rest) == 1 and rest[0] in OTHER_PROCESS_ENTRIES):
        return False
    raise _refuse("another process's procfs entry")
