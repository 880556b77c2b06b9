"""socket(2), connect(2), bind(2) and sendmsg(2) with the exact bytes, for calls performed for
the target, and setns(2) for a worker thread that creates a socket in the target's network
namespace.

Python's socket module rebuilds a sockaddr from a tuple; an emulated call must pass the bytes the
policy checked (including malformed ones, so that the target gets the kernel's own errno). cffi
in ABI mode on the C library: nothing to compile, and cffi releases the GIL during the call (a
blocking connect or send runs on a worker thread).
"""

from __future__ import annotations

from typing import Any

import cffi

_ffi = cffi.FFI()
_ffi.cdef(
    """
    struct iovec { void *iov_base; size_t iov_len; };
    struct msghdr {
        void *msg_name; unsigned int msg_namelen;
        struct iovec *msg_iov; size_t msg_iovlen;
        void *msg_control; size_t msg_controllen;
        int msg_flags;
    };
    int connect(int sockfd, const char *addr, unsigned int addrlen);
    int bind(int sockfd, const char *addr, unsigned int addrlen);
    long sendmsg(int sockfd, const struct msghdr *msg, int flags);
    int socket(int domain, int type, int protocol);
    int setns(int fd, int nstype);
    """
)
_libc: Any = _ffi.dlopen(None)


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


def raw_sendmsg(fd: int, name: bytes | None, data: bytes, control: bytes, flags: int) -> int:
    """sendmsg(fd, {name, [data], control}, flags): the bytes sent, or -errno."""
    keep = [_ffi.from_buffer(data) if data else _ffi.NULL]
    iov = _ffi.new("struct iovec *")
    iov.iov_base = keep[0]
    iov.iov_len = len(data)
    msg = _ffi.new("struct msghdr *")
    if name is not None:
        keep.append(_ffi.from_buffer(name))
        msg.msg_name = keep[-1]
        msg.msg_namelen = len(name)
    msg.msg_iov = iov
    msg.msg_iovlen = 1
    if control:
        keep.append(_ffi.from_buffer(control))
        msg.msg_control = keep[-1]
        msg.msg_controllen = len(control)
    ret = int(_libc.sendmsg(fd, msg, flags))
    if ret < 0:
        return -int(_ffi.errno)
    return ret


def raw_socket(domain: int, kind: int, protocol: int) -> int:
    """socket(domain, kind, protocol): the new fd, or -errno."""
    fd = int(_libc.socket(domain, kind, protocol))
    if fd < 0:
        return -int(_ffi.errno)
    return fd


def raw_setns(fd: int, nstype: int) -> int:
    """setns(fd, nstype) for the calling thread only (a network namespace is per thread): 0 or
    the errno."""
    if int(_libc.setns(fd, nstype)) == 0:
        return 0
    return int(_ffi.errno)
