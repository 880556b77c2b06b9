"""The daemon's listening sockets (the control socket, the OCI socket): created once here."""

from __future__ import annotations

import os
import socket
import stat


def listen_unix(path: str, mode: int, gid: int | None = None) -> socket.socket:
    """Create, bind and listen on an AF_UNIX stream socket at ``path``: its directory created
    0755, the socket ``mode`` (never wider while it is bound: umask 0177), owned by group
    ``gid`` when given. A stale socket file (nobody answers on it) is replaced; a live one is an
    error (another daemon runs); anything else at ``path`` is an error."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale: nobody listens
            else:
                raise OSError(f"a daemon already listens on {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock
