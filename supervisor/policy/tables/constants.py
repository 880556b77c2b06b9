"""Symbolic names a policy may use for argument values and errnos (x86_64 / i386 values)."""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping
from types import MappingProxyType

_SYMBOLS: dict[str, int] = {
    # socket(2) domains and types
    "AF_UNSPEC": 0,
    "AF_UNIX": 1,
    "AF_LOCAL": 1,
    "AF_INET": 2,
    "AF_INET6": 10,
    "AF_NETLINK": 16,
    "AF_PACKET": 17,
    "AF_BLUETOOTH": 31,
    "AF_VSOCK": 40,
    "AF_XDP": 44,
    "SOCK_STREAM": 1,
    "SOCK_DGRAM": 2,
    "SOCK_RAW": 3,
    "SOCK_SEQPACKET": 5,
    "SOCK_PACKET": 10,  # obsolete; socket(AF_INET, SOCK_PACKET, ...) makes a packet socket
    "SOCK_TYPE_MASK": 0xF,  # the type without SOCK_NONBLOCK and SOCK_CLOEXEC
    "SOCK_NONBLOCK": 0o4000,
    "SOCK_CLOEXEC": 0o2000000,
    # open(2) flags
    "O_RDONLY": 0,
    "O_WRONLY": 0o1,
    "O_RDWR": 0o2,
    "O_ACCMODE": 0o3,
    "O_CREAT": 0o100,
    "O_EXCL": 0o200,
    "O_NOCTTY": 0o400,
    "O_TRUNC": 0o1000,
    "O_APPEND": 0o2000,
    "O_NONBLOCK": 0o4000,
    "O_DIRECTORY": 0o200000,
    "O_NOFOLLOW": 0o400000,
    "O_CLOEXEC": 0o2000000,
    "O_PATH": 0o10000000,
    "O_TMPFILE": 0o20200000,
    # clone(2) / unshare(2) / setns(2) flags
    "CLONE_VM": 0x00000100,
    "CLONE_FS": 0x00000200,
    "CLONE_FILES": 0x00000400,
    "CLONE_SIGHAND": 0x00000800,
    "CLONE_THREAD": 0x00010000,
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
    # all namespace bits together
    "CLONE_NEWALL": 0x7E020080,
    # mmap(2) / mprotect(2)
    "PROT_NONE": 0,
    "PROT_READ": 0x1,
    "PROT_WRITE": 0x2,
    "PROT_EXEC": 0x4,
    "MAP_SHARED": 0x01,
    "MAP_PRIVATE": 0x02,
    "MAP_FIXED": 0x10,
    "MAP_ANONYMOUS": 0x20,
    # *at(2)
    "AT_SYMLINK_NOFOLLOW": 0x100,
    "AT_SYMLINK_FOLLOW": 0x400,
    "AT_EMPTY_PATH": 0x1000,
    # ioctl(2) requests that let a process type into a terminal or steal it
    "TIOCSTI": 0x5412,
    "TIOCLINUX": 0x541C,
    # prctl(2)
    "PR_SET_SECCOMP": 22,
    "PR_SET_NO_NEW_PRIVS": 38,
    # personality(2)
    "ADDR_NO_RANDOMIZE": 0x0040000,
}

SYMBOLS: Mapping[str, int] = MappingProxyType(_SYMBOLS)

ERRNOS: Mapping[str, int] = MappingProxyType(
    {name: code for code, name in _errno.errorcode.items()}
    | {n: getattr(_errno, n) for n in dir(_errno) if n.startswith("E") and n.isupper()}
)
ERRNO_NAMES: Mapping[int, str] = MappingProxyType(dict(_errno.errorcode))


def errno_name(code: int) -> str:
    """``EACCES`` for 13; the number as text when it has no name."""
    return ERRNO_NAMES.get(code, str(code))
