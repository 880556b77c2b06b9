"""connect(2) and bind(2) with the exact sockaddr bytes, for calls performed for the target.

Python's socket module rebuilds a sockaddr from a tuple; an emulated call must pass the bytes the
policy checked (including malformed ones, so that the target gets the kernel's own errno). cffi
in ABI mode on the C library: nothing to compile, and cffi releases the GIL during the call (a
blocking connect runs on a worker thread).
"""

from __future__ import annotations

import cffi

_ffi = cffi.FFI()
_ffi.cdef(
    """
    int connect(int sockfd, const char *addr, unsigned int addrlen);
    int bind(int sockfd, const char *addr, unsigned int addrlen);
    """
)
_libc = _ffi.dlopen(None)


def raw_connect(fd: int, addr: bytes) -> int:
    """connect(fd, addr): 0 or the errno (EINPROGRESS for a non-blocking socket)."""
    if int(_libc.connect(fd, addr, len(addr))) == 0:
        return 0
    return int(_ffi.errno)


def raw_bind(fd: int, addr: bytes) -> int:
    """bind(fd, addr): 0 or the errno."""
    if int(_libc.bind(fd, addr, len(addr))) == 0:
        return 0
    return int(_ffi.errno)
