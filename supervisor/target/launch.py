"""Start a command under a seccomp filter and take its listener fd.

The child is forked in C (``sv_spawn``): between installing its filter and exec it must run
nothing but a few async-signal-safe calls, since any syscall it makes may now be notified, and no
one holds the listener yet. It sets no_new_privs, installs the filter with NEW_LISTENER (and
WAIT_KILLABLE_RECV where the kernel has it) and blocks reading a pipe. The parent finds the
listener among the child's fds (``anon_inode:seccomp notify``) and copies it with pidfd_getfd, as
runc does, so the child never has to send it (a notified sendmsg would deadlock). Only then does
the parent let the child exec: the listener is close-on-exec, so exec before we hold a copy would
leave the target with no supervisor (ENOSYS on its first notified syscall).

Before its filters the child drops privileges (``drop_privileges`` in C): the capabilities the
policy's ``[capabilities]`` names leave its bounding, ambient, inheritable, permitted and
effective sets, and with ``run --user`` it takes the user's groups, gid and uid. All of that is
done with no_new_privs already set and before any filter, so no policy rule can get in the way
of the launcher's own calls, and the filter is installed by an unprivileged process (which
no_new_privs permits). Under the policy's filter the child first installs the tamper guard
(``plan_tamper_guard``), a small filter of its own that refuses, by value, signals and process
calls naming the launcher (our pid, our process group, kill(-1)).

Exec failures come back on a close-on-exec pipe as (stage, errno); the supervisor reads it while
it already serves notifications, because exec itself may be a notified syscall.
"""

from __future__ import annotations

import errno
import os
import pwd
import struct
import time
from dataclasses import dataclass

from supervisor.kernel import proc, spawn
from supervisor.kernel.filter import build_filter
from supervisor.kernel.kcmp import same_file
from supervisor.kernel.pidfd import pidfd_getfd, pidfd_open
from supervisor.kernel.seccomp import ListenerFd
from supervisor.policy import plan_tamper_guard
from supervisor.policy.capabilities import Capabilities

EXIT_LAUNCHER_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

_ERROR = struct.Struct("ii")
_LISTENER_LINK = "anon_inode:seccomp notify"
_STAGES = {
    spawn.STAGE_NNP: "cannot set no_new_privs",
    spawn.STAGE_SECCOMP: "cannot install the seccomp filter",
    spawn.STAGE_EXEC: "cannot execute",
    spawn.STAGE_CAPS: "cannot drop capabilities",
    spawn.STAGE_USER: "cannot change to the target user",
    spawn.STAGE_GUARD: "cannot install the tamper guard filter",
}


class LaunchError(Exception):
    """The command could not be started; ``exit_code`` is what `run` exits with."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Launched:
    pid: int
    pidfd: int
    listener: ListenerFd
    exec_status_fd: int  # EOF: exec succeeded; 8 bytes: (stage, errno) of a failure


@dataclass(frozen=True)
class TargetUser:
    """Who the target runs as with ``run --user``: uid, gid and supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str


def resolve_user(spec: str) -> TargetUser:
    """``--user`` as given: a user name or uid in the user database (its primary group and its
    groups from the group database), or ``UID:GID`` (numbers, no supplementary groups, need
    not exist). Raises LaunchError (125) for an unknown user."""
    uid_text, sep, gid_text = spec.partition(":")
    if sep:
        if not (uid_text.isdigit() and gid_text.isdigit()):
            raise LaunchError(EXIT_LAUNCHER_FAILED, f"--user {spec}: UID:GID must be numbers")
        return TargetUser(int(uid_text), int(gid_text), (), spec)
    try:
        entry = pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
    except (KeyError, OverflowError):
        raise LaunchError(
            EXIT_LAUNCHER_FAILED,
            f"--user {spec}: no such user in the user database (give UID:GID for a bare uid)",
        ) from None
    groups = tuple(dict.fromkeys([entry.pw_gid, *os.getgrouplist(entry.pw_name, entry.pw_gid)]))
    return TargetUser(entry.pw_uid, entry.pw_gid, groups, entry.pw_name)


def tamper_guard_program() -> bytes:
    """The tamper guard's BPF for a target launched by this process (it stays in our group)."""
    return build_filter(plan_tamper_guard(os.getpid(), os.getpgrp()))


def exec_failure(data: bytes, command: str) -> LaunchError:
    """Turn the child's failure report into the error `run` exits with."""
    stage, err = _ERROR.unpack(data[: _ERROR.size])
    what = _STAGES.get(stage, "failed")
    if stage == spawn.STAGE_EXEC:
        code = EXIT_NOT_FOUND if err == errno.ENOENT else EXIT_CANNOT_EXECUTE
        reason = "command not found" if err == errno.ENOENT else os.strerror(err)
        return LaunchError(code, f"{command}: {reason}")
    return LaunchError(EXIT_LAUNCHER_FAILED, f"{what}: {os.strerror(err)}")


def _own_listeners() -> list[int]:
    fds = []
    for name in os.listdir(proc.fd_dir()):
        try:
            if os.readlink(f"{proc.fd_dir()}/{name}") == _LISTENER_LINK:
                fds.append(int(name))
        except OSError:
            continue
    return fds


def _inherited(pid: int, child_fd: int, ours: list[int]) -> bool:
    """Whether the child's listener ``child_fd`` is one of ours, inherited over fork (a process
    that launched a target before holds its listener; the child has it open until exec)."""
    for fd in ours:
        try:
            if same_file(child_fd, fd, pid, os.getpid()):
                return True
        except OSError:
            continue  # closed since (ours) or gone (the child's): not that one
    return False


def _find_listener(pid: int, err_r: int, timeout: float) -> int:
    """Wait until the child has installed its filter; return the listener's fd number there:
    the one seccomp listener in its fd table that is not a copy of one of ours."""
    deadline = time.monotonic() + timeout
    fd_dir = proc.fd_dir(pid)
    ours = _own_listeners()
    delay = 0.0001
    while True:
        try:
            data = os.read(err_r, _ERROR.size)
        except BlockingIOError:
            data = None
        if data:
            raise exec_failure(data, "")
        if data == b"":
            raise LaunchError(EXIT_LAUNCHER_FAILED, "the child exited before installing its filter")
        for name in os.listdir(fd_dir):
            try:
                if os.readlink(f"{fd_dir}/{name}") == _LISTENER_LINK and not _inherited(
                    pid, int(name), ours
                ):
                    return int(name)
            except FileNotFoundError:
                continue
        if time.monotonic() > deadline:
            raise LaunchError(EXIT_LAUNCHER_FAILED, "timed out waiting for the child's filter")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def launch(
    argv: list[str],
    program: bytes,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 10.0,
    wait_killable: bool = True,
    capabilities: Capabilities | None = None,
    user: TargetUser | None = None,
) -> Launched:
    """Fork ``argv`` under the BPF ``program``; return once we hold its listener and have let it
    exec. Raises LaunchError (exit code 125) when the launcher itself fails.

    ``wait_killable=False`` installs the filter without WAIT_KILLABLE_RECV, so that any signal
    interrupts a notified syscall even after a supervisor received it (restarted and notified
    afresh): `run --daemon` relies on it to recover notifications a crashed daemon had taken.

    ``capabilities`` (a policy's ``[capabilities]``) are dropped and ``user`` taken in the child
    before its filters are installed; the tamper guard is always installed."""
    if not argv:
        raise LaunchError(EXIT_LAUNCHER_FAILED, "no command given")
    environ = os.environ if env is None else env
    guard = tamper_guard_program()
    dropped = (capabilities or Capabilities()).dropped(spawn.last_capability())
    flags = spawn.FILTER_FLAG_NEW_LISTENER
    if wait_killable:
        flags |= spawn.FILTER_FLAG_WAIT_KILLABLE_RECV

    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = spawn.spawn(
            argv,
            environ,
            program,
            flags,
            go_r,
            err_w,
            guard=guard,
            cap_drop=sum(1 << c for c in dropped),
            user=None if user is None else (user.uid, user.gid, user.groups),
        )
    except OSError as e:
        os.close(go_w)
        os.close(err_r)
        raise LaunchError(EXIT_LAUNCHER_FAILED, f"fork failed: {os.strerror(e.errno or 0)}") from e
    finally:
        os.close(go_r)
        os.close(err_w)
    pidfd = -1
    try:
        pidfd = pidfd_open(pid)
        os.set_blocking(err_r, False)
        child_fd = _find_listener(pid, err_r, timeout)
        listener = ListenerFd(pidfd_getfd(pidfd, child_fd))
        os.write(go_w, b"g")
    except BaseException as e:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        if pidfd >= 0:
            os.close(pidfd)
        os.close(err_r)
        if isinstance(e, OSError):
            # pidfd_open, /proc/PID/fd, pidfd_getfd: a failure of the launcher, not a traceback.
            raise LaunchError(
                EXIT_LAUNCHER_FAILED, f"cannot take the listener from the child: {e}"
            ) from e
        raise
    finally:
        os.close(go_w)
    return Launched(pid=pid, pidfd=pidfd, listener=listener, exec_status_fd=err_r)
