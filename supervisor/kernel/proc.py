"""Process facts from /proc/PID: the one module that parses them.

Every other layer asks here: the thread group of a tid, a process's start time (which, with its
pid, names one process across pid reuse), its parent, its children, the state of its threads, its
executable. What the kernel facts this relies on say:

* ``/proc/PID/stat``'s second field is ``(comm)``, and comm may hold spaces and parentheses, so
  the fields after it are found after the *last* ``)``. Field 3 is the state, 4 the ppid, 22 the
  start time in clock ticks after boot.
* ``/proc/PID/task/TID/children`` lists the children of one thread (it needs
  CONFIG_PROC_CHILDREN, which this kernel has); a process's children are the union over its
  threads. A child reparented away (daemonised) is no longer listed.
* A thread waiting in a notified syscall shows ``seccomp_do_user_notification`` in its wchan.
* Everything here is read racily: a pid can die or be reused between two reads. Callers that act
  on a pid either hold a pidfd taken before the reads, or compare the start time again.

* The magic links /proc/TID/root, /proc/TID/cwd and /proc/TID/fd/N, opened (O_PATH), give fds on
  the very objects in the target's mount namespace (``open_root``, ``open_cwd``, ``open_fd``);
  /proc/self/fd/N of one of OUR fds names it as the kernel sees it (``fd_name``) and reopens it
  with new flags (``fd_path``).

Failures are ``OSError`` (``ProcessLookupError`` when the file was there but said nothing
useful), except where a function documents a default.
"""

from __future__ import annotations

import os
import re

from supervisor.kernel.openat2 import FdStat, path_stat

# Thread states (stat field 3) of a thread that runs no more user code until it is continued.
STOPPED_STATES = (b"T", b"t", b"Z", b"X")


def _stat_fields(path: str) -> list[bytes]:
    """The fields of a stat file after ``(comm)``: index 0 is field 3 (the state)."""
    with open(path, "rb") as f:
        data = f.read()
    return data[data.rfind(b")") + 2 :].split()


def tgid(tid: int) -> int:
    """The thread group id (the process) of thread ``tid``."""
    with open(f"/proc/{int(tid)}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Tgid:"):
                return int(line.split()[1])
    raise ProcessLookupError(tid)


def tgid_uid(tid: int) -> tuple[int, int]:
    """The thread group id and the real uid of thread ``tid`` (one read of its status)."""
    found_tgid = uid = -1
    with open(f"/proc/{int(tid)}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Tgid:"):
                found_tgid = int(line.split()[1])
            elif line.startswith(b"Uid:"):
                uid = int(line.split()[1])
                break  # Uid: comes after Tgid:
    if found_tgid < 0 or uid < 0:
        raise ProcessLookupError(tid)
    return found_tgid, uid


def uids(pid: int) -> tuple[int, int, int]:
    """Real, effective and saved uid of ``pid``."""
    with open(f"/proc/{int(pid)}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Uid:"):
                v = line.split()[1:4]
                if len(v) == 3:
                    return int(v[0]), int(v[1]), int(v[2])
    raise ProcessLookupError(pid)


def status_ids(tid: int) -> dict[str, list[int]]:
    """``Tgid``, ``NStgid`` and ``NSpid`` of thread ``tid`` (the NS fields list the ids from the
    outermost pid namespace to the thread's own)."""
    with open(f"/proc/{int(tid)}/status", "rb") as f:
        text = f.read(65536).decode("latin-1")
    wanted = ("Tgid", "NStgid", "NSpid")
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            out[key] = [int(v) for v in value.split()]
    if any(k not in out or not out[k] for k in wanted):
        raise ProcessLookupError(tid)
    return out


def comm(tid: int) -> str:
    """The command name of ``tid``, ``"?"`` when it cannot be read (for logs only)."""
    try:
        with open(f"/proc/{int(tid)}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode(errors="replace")
    except OSError:
        return "?"


def own_fd_link(fd: int) -> str:
    """What the calling process's fd ``fd`` is, as /proc/self/fd/N names it (a path, or
    ``anon_inode:...``, ``socket:[N]``, ...)."""
    return os.readlink(f"/proc/self/fd/{int(fd)}")


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot): with the pid, names one process.
    None when there is no such process."""
    try:
        return int(_stat_fields(f"/proc/{int(pid)}/stat")[19])
    except (OSError, IndexError, ValueError):
        return None


def seccomp_mode(pid: int) -> int:
    """The ``Seccomp:`` field of /proc/PID/status: 0 none, 1 strict, 2 filter."""
    with open(f"/proc/{int(pid)}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Seccomp:"):
                return int(line.split()[1])
    raise ProcessLookupError(pid)


def ppid(pid: int) -> int:
    """The parent of ``pid``."""
    fields = _stat_fields(f"/proc/{int(pid)}/stat")
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        raise ProcessLookupError(pid) from None


def threads(pid: int) -> list[int]:
    """The thread ids of process ``pid``; empty when it is gone."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{int(pid)}/task")]
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """The children of every thread of process ``pid``; empty when it is gone."""
    out: list[int] = []
    for tid in threads(pid):
        try:
            with open(f"/proc/{int(pid)}/task/{tid}/children", "rb") as f:
                out.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants still reachable through the children files (a daemonised
    grandchild reparented away from the tree is not found)."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(children(p))
    return seen


def thread_state(pid: int, tid: int) -> bytes | None:
    """The state letter of thread ``tid`` of ``pid`` (``R``, ``S``, ``T``, ...), None when gone."""
    try:
        return _stat_fields(f"/proc/{int(pid)}/task/{int(tid)}/stat")[0]
    except (OSError, IndexError):
        return None


def waits_in_seccomp(pid: int, tid: int) -> bool:
    """Whether thread ``tid`` of ``pid`` sleeps in a notified syscall (it then waits for the
    supervisor and runs no user code)."""
    try:
        with open(f"/proc/{int(pid)}/task/{int(tid)}/wchan", "rb") as f:
            return b"seccomp" in f.read()
    except OSError:
        return False


def all_stopped(pids: list[int]) -> bool:
    """Whether every thread of every process in ``pids`` is stopped or dead."""
    for p in pids:
        for tid in threads(p):
            state = thread_state(p, tid)
            if state is not None and state not in STOPPED_STATES:
                return False
    return True


def exe_identity(pid: int) -> tuple[int, int]:
    """(st_dev, st_ino) of the executable of ``pid`` (/proc/PID/exe)."""
    st = os.stat(f"/proc/{int(pid)}/exe")
    return st.st_dev, st.st_ino


# A process's own executable as a path in ITS view (resolved by the target's resolver, which
# turns /proc/self into the process's /proc/PID): where an exec landed.
SELF_EXE = b"/proc/self/exe"


def reopen(fd: int, flags: int) -> int:
    """A new open file for what our ``fd`` (an O_PATH one, say) refers to, through
    /proc/self/fd/N (checked again by the kernel with ``flags``)."""
    return os.open(f"/proc/self/fd/{int(fd)}", flags | os.O_CLOEXEC)


def open_netns(pid: int) -> int:
    """An fd on the network namespace of ``pid`` (for setns)."""
    return os.open(f"/proc/{int(pid)}/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def open_own_netns() -> int:
    """An fd on the calling THREAD's network namespace (a namespace is per thread)."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def own_netns_identity() -> tuple[int, int]:
    """(st_dev, st_ino) of the calling thread's network namespace; compare an ``open_netns``
    fd's fstat with it."""
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


# ---- the target's view: its root, cwd and fds as objects (see the module doc) ----

_O_PATH = os.O_PATH | os.O_CLOEXEC
_ESCAPE = re.compile(rb"\\([0-7]{3})")


def root_stat(tid: int) -> FdStat:
    """statx of the root of ``tid`` (through /proc/TID/root: no fd is opened)."""
    return path_stat(f"/proc/{int(tid)}/root")


def open_root(tid: int) -> int:
    """Our O_PATH fd on the root directory of ``tid``."""
    return os.open(f"/proc/{int(tid)}/root", _O_PATH | os.O_DIRECTORY)


def open_cwd(tid: int) -> int:
    """Our O_PATH fd on the working directory of ``tid``."""
    return os.open(f"/proc/{int(tid)}/cwd", _O_PATH)


def open_fd(tid: int, fd: int) -> int:
    """Our O_PATH fd on the object of fd ``fd`` of ``tid``."""
    return os.open(f"/proc/{int(tid)}/fd/{int(fd)}", _O_PATH)


def fd_path(fd: int) -> str:
    """The magic link of OUR fd ``fd`` (open it to reopen the object with other flags)."""
    return f"/proc/self/fd/{fd}"


def fd_name(fd: int) -> str:
    """The kernel's name for OUR fd ``fd``, in the supervisor's view."""
    return os.readlink(f"/proc/self/fd/{fd}")


def fd_dir(pid: int | None = None) -> str:
    """The directory of the fds of ``pid`` (None: ours)."""
    return "/proc/self/fd" if pid is None else f"/proc/{int(pid)}/fd"


def open_proc() -> int:
    """Our O_PATH fd on /proc."""
    return os.open("/proc", _O_PATH | os.O_DIRECTORY)


def open_own_fd_dir() -> int:
    """Our O_PATH fd on our /proc/self/fd (that is /proc/<our pid>/fd: reopen after fork)."""
    return os.open("/proc/self/fd", _O_PATH | os.O_DIRECTORY)


def start_time_at(proc_dir: int, pid: int) -> bytes | None:
    """Field 22 of PID/stat in the procfs instance ``proc_dir`` (our fd on its root), as bytes;
    None when it cannot be read."""
    try:
        fd = os.open(f"{int(pid)}/stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def self_at(proc_root: int) -> str:
    """Our tgid as the procfs instance ``proc_root`` numbers it ("": we have none there)."""
    try:
        return os.readlink("self", dir_fd=proc_root)
    except OSError:
        return ""


def mount_roots(pid: int | None = None) -> dict[int, bytes]:
    """Mount id -> the path inside its filesystem of the mount's root (mountinfo's fields 1 and
    4, octal escapes undone), for the mounts of the mount namespace of ``pid`` (None: ours) that
    are reachable from its root: /proc/PID/mountinfo skips the others."""
    where = "/proc/self/mountinfo" if pid is None else f"/proc/{int(pid)}/mountinfo"
    with open(where, "rb") as f:
        data = f.read()
    out: dict[int, bytes] = {}
    for line in data.splitlines():
        fields = line.split(b" ")
        if len(fields) > 4 and fields[0].isdigit():
            root = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), fields[3])
            out[int(fields[0])] = root
    return out


def fd_link(pid: int, fd: int) -> str:
    """The name /proc/PID/fd/N (of an object that has no other name in a target's view)."""
    return f"/proc/{int(pid)}/fd/{int(fd)}"


def map_id(tid: int, which: str, value: int) -> int | None:
    """``value``, a uid or gid of thread ``tid``'s user namespace, as the supervisor's namespace
    sees it, through /proc/TID/uid_map or gid_map (``which``); None when it is not mapped."""
    with open(f"/proc/{int(tid)}/{which}", "rb") as f:
        for line in f.read(65536).splitlines():
            inside, outside, count = (int(v) for v in line.split())
            if inside <= value < inside + count:
                return outside + value - inside
    return None


def yama_ptrace_scope() -> int | None:
    """YAMA's kernel.yama.ptrace_scope (3: no process may ptrace another); None without YAMA."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None
