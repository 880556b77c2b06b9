"""The resolver places names found from a start fd by identity (issue 14).

This test process is the "target": it holds an fd on a detached copy of a directory
(``open_tree(OPEN_TREE_CLONE)``), and the resolver is asked to resolve relative to it, by the C
fast path and by the careful walk (a path with a component named like ``self`` skips the fast
path). Ordinary dirfds and unlinked objects (a memfd) keep their names.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.target.resolve import PathResolver

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="open_tree(OPEN_TREE_CLONE) needs root")

R = PathResolver()
_SYS_OPEN_TREE = 428
_OPEN_TREE_CLONE = 1
_AT_FDCWD = -100


def open_tree_clone(path: Path) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(path), _OPEN_TREE_CLONE | os.O_CLOEXEC)
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(fd)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "d"
    (d / "myself").mkdir(parents=True)
    (d / "secret.txt").write_text("secret\n")
    yield d


def refused(dirfd: int, path: bytes, **kw: bool) -> int:
    with pytest.raises(OSError) as e:
        R.resolve(os.getpid(), dirfd, path, follow=True, **kw).close()
    return e.value.errno or 0


@pytest.mark.parametrize("path", [b"secret.txt", b"myself/../secret.txt", b"myself", b"."])
def test_lookup_from_a_clone_is_refused(tree: Path, path: bytes) -> None:
    fd = open_tree_clone(tree)
    try:
        assert refused(fd, path) == errno.EACCES
    finally:
        os.close(fd)


def test_empty_path_on_a_clone_is_refused(tree: Path) -> None:
    fd = open_tree_clone(tree)
    try:
        assert refused(fd, b"", empty_path_ok=True) == errno.EACCES
    finally:
        os.close(fd)


@pytest.mark.parametrize("path", [b"secret.txt", b"myself/../secret.txt"])
def test_ordinary_dirfd_keeps_its_names(tree: Path, path: bytes) -> None:
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        r = R.resolve(os.getpid(), fd, path, follow=True)
        r.close()
        assert r.path == str(tree / "secret.txt")
    finally:
        os.close(fd)


def test_memfd_is_named_by_its_fd(tree: Path) -> None:
    """An unlinked object has no name anywhere: AT_EMPTY_PATH names it /proc/TGID/fd/N, as
    before (fexecve of a memfd goes this way), rather than being refused."""
    fd = os.memfd_create("placement")
    try:
        r = R.resolve(os.getpid(), fd, b"", follow=True, empty_path_ok=True)
        r.close()
        assert r.path == f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)
