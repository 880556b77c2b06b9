"""The path lane: receive a notification and, for a path syscall, read and resolve its path in
the same C call (``sv_lane_next``; ``sv_lane_answer_next`` sends a denial first).

The lane is one ``struct sv_lane`` per Supervisor: a route table the loop fills (which argument
of which syscall is the path, its dirfd and flags arguments, when the last symlink is followed),
and the outputs of the last receive: ``fd`` (``NOT_TRIED``: no route, nothing was read;
``RESOLVED_CLOSED``: read and resolved, the canonical path in ``out``; otherwise only read),
``len`` (the bytes read into ``buf``, or -errno of the read, as ``MemoryReader.fail`` takes it).
The loop reads ``fd`` and ``len`` from the struct itself (one attribute each on the hot path);
everything else about the struct is here. ``ListenerFd.next_notification(lane)`` and
``deny_then_next`` drive it.

What sv_read_resolve_fast needs of the resolver (our root, our fd on /proc/self/fd) is given by
``supervisor.target.resolve.init_lane``, which owns those handles.
"""

from __future__ import annotations

import sys
from typing import Any

from supervisor._native import ffi, lib

NOT_TRIED: int = lib.SV_LANE_NOT_TRIED
RESOLVED_CLOSED: int = lib.SV_RESOLVED_CLOSED
MAX_NR: int = lib.SV_LANE_MAX_NR
# routes[i]: the table of one audit arch.
_TABLES = {lib.SCMP_ARCH_X86_64: 0, lib.SCMP_ARCH_X86: 1}
FOLLOW_ALWAYS: int = lib.SV_FOLLOW_ALWAYS
FOLLOW_NEVER: int = lib.SV_FOLLOW_NEVER
FOLLOW_UNLESS_FLAG: int = lib.SV_FOLLOW_UNLESS_FLAG
FOLLOW_IF_FLAG: int = lib.SV_FOLLOW_IF_FLAG
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def new_lane() -> Any:
    """A zeroed ``struct sv_lane`` with no routes (give it to ``init_lane`` before use)."""
    lane = ffi.new("struct sv_lane *")
    reset_routes(lane)
    return lane


def reset_routes(lane: Any) -> None:
    """Forget every route (a policy change: routes depend on what the engine needs)."""
    for table in lane.routes:
        for r in table:
            r.path_arg = -1


def set_route(
    lane: Any,
    arch: int,
    nr: int,
    *,
    path_arg: int,
    dirfd_arg: int | None,
    flags_arg: int | None,
    follow: int,
    flag: int,
) -> bool:
    """Let sv_lane_next read and resolve syscall ``nr`` of audit arch ``arch``'s path argument
    ``path_arg`` (``follow`` one of FOLLOW_*, with ``flag`` tested in the ``flags_arg``
    argument). False when the lane has no room for it (another arch, a number past MAX_NR)."""
    table = _TABLES.get(arch)
    if table is None or not 0 <= nr < MAX_NR:
        return False
    r = lane.routes[table][nr]
    r.dirfd_arg = -1 if dirfd_arg is None else dirfd_arg
    r.flags_arg = -1 if flags_arg is None else flags_arg
    r.follow = follow
    r.flag = flag
    r.path_arg = path_arg
    return True


def raw_path(lane: Any, length: int) -> bytes:
    """The path bytes sv_lane_next read (``length`` = ``lane.len``, not negative)."""
    raw: bytes = ffi.unpack(lane.buf, length)
    return raw


def resolved_path(lane: Any) -> str:
    """The canonical path sv_lane_next resolved (``lane.fd == RESOLVED_CLOSED``)."""
    text: str = ffi.string(lane.out).decode(_FS_ENCODING, _FS_ERRORS)
    return text
