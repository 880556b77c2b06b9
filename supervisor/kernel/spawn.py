"""Fork a child that installs a seccomp filter and execs (``sv_spawn``, in C).

Between installing its filter and exec the child must run nothing but a few async-signal-safe
calls, since any syscall it makes may now be notified and no one holds the listener yet: so the
fork, no_new_privs, the filter (with NEW_LISTENER), the wait on the ``go`` pipe and the exec are
one C function. A failure of a stage is written to ``err_w`` as two ints (stage, errno)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from supervisor._native import ffi, lib

STAGE_NNP: int = lib.SV_STAGE_NNP
STAGE_SECCOMP: int = lib.SV_STAGE_SECCOMP
STAGE_EXEC: int = lib.SV_STAGE_EXEC
STAGE_CAPS: int = lib.SV_STAGE_CAPS
STAGE_USER: int = lib.SV_STAGE_USER
STAGE_GUARD: int = lib.SV_STAGE_GUARD
FILTER_FLAG_NEW_LISTENER: int = lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
FILTER_FLAG_WAIT_KILLABLE_RECV: int = lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV


@cache
def last_capability() -> int:
    """The kernel's highest capability number (bits above it cannot be dropped or held)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def spawn(
    argv: list[str],
    environ: Mapping[str, str],
    program: bytes,
    flags: int,
    go_r: int,
    err_w: int,
    *,
    guard: bytes = b"",
    cap_drop: int = 0,
    user: tuple[int, int, tuple[int, ...]] | None = None,
) -> int:
    """Fork ``argv`` (``argv[0]`` searched in PATH by the child) under the BPF ``program`` with
    seccomp ``flags``; the child waits for a byte on ``go_r`` before it execs. Returns the pid;
    OSError when the fork fails.

    Before its filters the child drops the capability bits of ``cap_drop`` from every set and
    takes ``user`` (uid, gid, groups); ``guard`` is a second filter (no listener) installed
    before ``program``."""
    c_args = [ffi.new("char[]", os.fsencode(a)) for a in argv]
    c_argv = ffi.new("char *[]", [*c_args, ffi.NULL])
    c_envs = [ffi.new("char[]", os.fsencode(f"{k}={v}")) for k, v in environ.items()]
    c_envp = ffi.new("char *[]", [*c_envs, ffi.NULL])
    c_prog = ffi.from_buffer("struct sock_filter[]", program)
    c_guard = ffi.from_buffer("struct sock_filter[]", guard) if guard else ffi.NULL
    creds = ffi.new("struct sv_spawn_creds *")
    creds.cap_drop = cap_drop
    c_groups = ffi.new("uint32_t[]", max(len(user[2]) if user else 0, 1))
    if user is not None:
        creds.set_user = 1
        creds.uid, creds.gid = user[0], user[1]
        creds.ngroups = len(user[2])
        for i, g in enumerate(user[2]):
            c_groups[i] = g
        creds.groups = c_groups
    pid: int = lib.sv_spawn(
        c_args[0],
        c_argv,
        c_envp,
        c_prog,
        len(program) // 8,
        c_guard,
        len(guard) // 8,
        flags,
        creds,
        go_r,
        err_w,
    )
    if pid < 0:
        e = ffi.errno
        raise OSError(e, os.strerror(e))
    return pid
