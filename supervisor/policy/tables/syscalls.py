"""Pure data tables about syscalls: which take paths, where, and how the kernel walks them.

Names are those of libseccomp for x86_64 and i386 (the two tables a 64-bit x86 process can
enter). Argument indexes are the syscall's own (``args[i]`` of seccomp_data). Where the i386
layout differs from x86_64 (only fanotify_mark, whose 64-bit mask takes two i386 registers),
``I386_PATH_SYSCALLS`` overrides the entry; use :func:`path_args` to get the right one.

Not covered (their "paths" are inside structs or are not file-system paths): bind/connect
(AF_UNIX addresses), bpf (BPF_OBJ_PIN), mq_open (queue names), fsconfig (string values),
and quotactl's ``addr`` for Q_QUOTAON.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ._syscall_names import ALL_NAMES, I386_NAMES, X86_64_NAMES

ARCH_X86_64 = "x86_64"
ARCH_I386 = "i386"

# Flag bits the kernel reads to decide whether to follow the last symlink (from the uapi headers).
O_NOFOLLOW = 0o400000
AT_SYMLINK_NOFOLLOW = 0x100
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
UMOUNT_NOFOLLOW = 0x8
IN_DONT_FOLLOW = 0x02000000
FAN_MARK_DONT_FOLLOW = 0x04
MOVE_MOUNT_F_SYMLINKS = 0x01
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_SYMLINKS = 0x10
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSPICK_SYMLINK_NOFOLLOW = 0x02
FSPICK_EMPTY_PATH = 0x08


class Follow(enum.Enum):
    """Whether the kernel follows a symlink in the LAST component of the path."""

    ALWAYS = "always"
    NEVER = "never"
    UNLESS_FLAG = "unless-flag"  # followed unless args[flags_arg] has `flag`
    IF_FLAG = "if-flag"  # followed only if args[flags_arg] has `flag`


@dataclass(frozen=True)
class PathArg:
    """Where one path argument of a syscall is, and how the kernel resolves it.

    ``path``: index of the pointer argument. ``dirfd``: index of the directory fd it is relative
    to, or None for the cwd. ``flags_arg``/``flag``: the bit that switches symlink following (see
    :class:`Follow`). ``empty_path_flag``: the bit (in ``args[flags_arg]``) that makes an empty
    path mean the dirfd itself. ``nullable``: a NULL pointer means the dirfd itself.
    """

    path: int
    dirfd: int | None
    follow: Follow
    flags_arg: int | None = None
    flag: int = 0
    empty_path_flag: int = 0
    nullable: bool = False

    def follows(self, args: tuple[int, ...]) -> bool:
        """Whether the last component's symlink is followed for these argument values."""
        if self.follow is Follow.ALWAYS:
            return True
        if self.follow is Follow.NEVER:
            return False
        assert self.flags_arg is not None
        has = bool(args[self.flags_arg] & self.flag)
        return not has if self.follow is Follow.UNLESS_FLAG else has

    def empty_means_dirfd(self, args: tuple[int, ...]) -> bool:
        """Whether an empty path string means the dirfd itself (AT_EMPTY_PATH and friends)."""
        if not self.empty_path_flag or self.flags_arg is None:
            return False
        return bool(args[self.flags_arg] & self.empty_path_flag)


_A = Follow.ALWAYS
_N = Follow.NEVER


def _cwd(path: int, follow: Follow = _A) -> PathArg:
    return PathArg(path, None, follow)


def _at(dirfd: int, path: int, flags: int, flag: int = AT_SYMLINK_NOFOLLOW) -> PathArg:
    """An *at syscall with AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH in args[flags]."""
    return PathArg(path, dirfd, Follow.UNLESS_FLAG, flags, flag, AT_EMPTY_PATH)


_OPEN = PathArg(0, None, Follow.UNLESS_FLAG, 1, O_NOFOLLOW)
_OPENAT = PathArg(1, 0, Follow.UNLESS_FLAG, 2, O_NOFOLLOW)

_PATH_SYSCALLS: dict[str, tuple[PathArg, ...]] = {
    # open family (emulated by the supervisor)
    "open": (_OPEN,),
    "openat": (_OPENAT,),
    # openat2's flags live in struct open_how: the loop reads the struct.
    "openat2": (PathArg(1, 0, _A),),
    "creat": (_cwd(0),),
    # stat family
    "stat": (_cwd(0),),
    "stat64": (_cwd(0),),
    "oldstat": (_cwd(0),),
    "lstat": (_cwd(0, _N),),
    "lstat64": (_cwd(0, _N),),
    "oldlstat": (_cwd(0, _N),),
    "newfstatat": (_at(0, 1, 3),),
    "fstatat64": (_at(0, 1, 3),),
    "statx": (_at(0, 1, 2),),
    "statfs": (_cwd(0),),
    "statfs64": (_cwd(0),),
    # access
    "access": (_cwd(0),),
    "faccessat": (PathArg(1, 0, _A),),  # the syscall has no flags argument
    "faccessat2": (_at(0, 1, 3),),
    # exec
    "execve": (_cwd(0),),
    "execveat": (_at(0, 1, 4),),
    # links
    "readlink": (_cwd(0, _N),),
    "readlinkat": (PathArg(1, 0, _N),),
    "link": (_cwd(0, _N), _cwd(1, _N)),
    "linkat": (
        PathArg(1, 0, Follow.IF_FLAG, 4, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH),
        PathArg(3, 2, _N),
    ),
    # only the new link's path: the target string is stored, not resolved
    "symlink": (_cwd(1, _N),),
    "symlinkat": (PathArg(2, 1, _N),),
    "rename": (_cwd(0, _N), _cwd(1, _N)),
    "renameat": (PathArg(1, 0, _N), PathArg(3, 2, _N)),
    "renameat2": (PathArg(1, 0, _N), PathArg(3, 2, _N)),
    "unlink": (_cwd(0, _N),),
    "unlinkat": (PathArg(1, 0, _N),),
    "rmdir": (_cwd(0, _N),),
    "mkdir": (_cwd(0, _N),),
    "mkdirat": (PathArg(1, 0, _N),),
    "mknod": (_cwd(0, _N),),
    "mknodat": (PathArg(1, 0, _N),),
    # attributes
    "chmod": (_cwd(0),),
    "fchmodat": (PathArg(1, 0, _A),),  # no flags argument in the syscall
    "fchmodat2": (_at(0, 1, 3),),
    "chown": (_cwd(0),),
    "chown32": (_cwd(0),),
    "lchown": (_cwd(0, _N),),
    "lchown32": (_cwd(0, _N),),
    "fchownat": (_at(0, 1, 4),),
    "truncate": (_cwd(0),),
    "truncate64": (_cwd(0),),
    "utime": (_cwd(0),),
    "utimes": (_cwd(0),),
    "utimensat": (
        PathArg(1, 0, Follow.UNLESS_FLAG, 3, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, nullable=True),
    ),
    "utimensat_time64": (
        PathArg(1, 0, Follow.UNLESS_FLAG, 3, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, nullable=True),
    ),
    "futimesat": (PathArg(1, 0, _A, nullable=True),),
    # extended attributes
    "getxattr": (_cwd(0),),
    "lgetxattr": (_cwd(0, _N),),
    "setxattr": (_cwd(0),),
    "lsetxattr": (_cwd(0, _N),),
    "listxattr": (_cwd(0),),
    "llistxattr": (_cwd(0, _N),),
    "removexattr": (_cwd(0),),
    "lremovexattr": (_cwd(0, _N),),
    # directories and mounts
    "chdir": (_cwd(0),),
    "chroot": (_cwd(0),),
    "pivot_root": (_cwd(0), _cwd(1)),
    "mount": (_cwd(1),),  # only the target: the source is not always a path
    "umount": (_cwd(0),),
    "umount2": (PathArg(0, None, Follow.UNLESS_FLAG, 1, UMOUNT_NOFOLLOW),),
    "open_tree": (_at(0, 1, 2),),
    "move_mount": (
        PathArg(1, 0, Follow.IF_FLAG, 4, MOVE_MOUNT_F_SYMLINKS, MOVE_MOUNT_F_EMPTY_PATH),
        PathArg(3, 2, Follow.IF_FLAG, 4, MOVE_MOUNT_T_SYMLINKS, MOVE_MOUNT_T_EMPTY_PATH),
    ),
    "fspick": (PathArg(1, 0, Follow.UNLESS_FLAG, 2, FSPICK_SYMLINK_NOFOLLOW, FSPICK_EMPTY_PATH),),
    "mount_setattr": (_at(0, 1, 2),),
    # devices, accounting, quotas
    "swapon": (_cwd(0),),
    "swapoff": (_cwd(0),),
    "acct": (_cwd(0),),  # NULL turns accounting off
    "quotactl": (_cwd(1),),  # `special`, the block device (NULL for some commands)
    "uselib": (_cwd(0),),
    # watches and handles
    "inotify_add_watch": (PathArg(1, None, Follow.UNLESS_FLAG, 2, IN_DONT_FOLLOW),),
    "fanotify_mark": (PathArg(4, 3, Follow.UNLESS_FLAG, 1, FAN_MARK_DONT_FOLLOW, nullable=True),),
    "name_to_handle_at": (PathArg(1, 0, Follow.IF_FLAG, 4, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH),),
}

PATH_SYSCALLS: Mapping[str, tuple[PathArg, ...]] = MappingProxyType(_PATH_SYSCALLS)

# i386 layouts that differ: fanotify_mark(fd, flags, mask_lo, mask_hi, dirfd, path).
I386_PATH_SYSCALLS: Mapping[str, tuple[PathArg, ...]] = MappingProxyType(
    {
        "fanotify_mark": (
            PathArg(5, 4, Follow.UNLESS_FLAG, 1, FAN_MARK_DONT_FOLLOW, nullable=True),
        ),
    }
)

OPEN_SYSCALLS: frozenset[str] = frozenset({"open", "openat", "openat2", "creat"})

# Syscalls the supervisor performs itself (TOCTOU-safe). Allows of other path syscalls that
# depended on the path are advisory.
EMULATED_SYSCALLS: frozenset[str] = OPEN_SYSCALLS

KNOWN_SYSCALLS: frozenset[str] = ALL_NAMES
X86_64_SYSCALLS: frozenset[str] = X86_64_NAMES
I386_SYSCALLS: frozenset[str] = I386_NAMES


def path_args(syscall: str, arch: str = ARCH_X86_64) -> tuple[PathArg, ...]:
    """The path arguments of ``syscall`` on ``arch`` ("x86_64" or "i386"); () if it has none."""
    if arch == ARCH_I386:
        override = I386_PATH_SYSCALLS.get(syscall)
        if override is not None:
            return override
    return PATH_SYSCALLS.get(syscall, ())
