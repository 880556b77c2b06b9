"""Turn C return conventions into ``OSError`` that keeps the errno."""

import os

from supervisor._native import ffi


def check(ret: int) -> int:
    """For calls that return -1 and set errno."""
    if ret < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err))
    return ret


def check_neg(ret: int) -> int:
    """For our C helpers that return -errno."""
    if ret < 0:
        raise OSError(-ret, os.strerror(-ret))
    return ret
