"""What a resolution gives back (``Resolved``), and the small pieces its modules share."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

PATH_MAX = 4096
NAME_MAX = 255
MAXSYMLINKS = 40
O_BASE = os.O_PATH | os.O_CLOEXEC  # every fd the resolver opens


def err(code: int, what: str = "") -> OSError:
    """The OSError a target gets, with a reason for the log."""
    return OSError(code, os.strerror(code) + (f": {what}" if what else ""))


def refuse(why: str) -> OSError:
    return err(errno.EACCES, why)


def close_fd(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        os.close(fd)


def split(path: bytes) -> list[bytes]:
    return [c for c in path.split(b"/") if c]


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


@dataclass
class Resolved:
    """Where a path argument leads, in the target's view.

    ``path`` is the canonical path of the object, or, when it does not exist yet, of its parent
    directory (the object would be ``full_path`` = path + "/" + ``name``: decide on that).
    ``fd`` is ours (O_PATH, close-on-exec): the object, or when it does not exist its parent."""

    path: str
    fd: int
    exists: bool
    name: str | None
    st_mode: int
    off_proc: bool = False  # known not to be on procfs (the fast paths check); False: unknown

    @property
    def full_path(self) -> str:
        """The object's canonical path, whether it exists or is to be created."""
        if self.exists or self.name is None:
            return self.path
        return join(self.path, self.name)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        close_fd(fd)

    def take_fd(self) -> int:
        """Hand the fd over to the caller (``close`` then does nothing)."""
        fd, self.fd = self.fd, -1
        return fd
