"""Lookups relative to fds on detached or foreign mounts are placed by identity (issue 14).

The kernel names an object on a detached mount (an ``open_tree(OPEN_TREE_CLONE)`` copy, an
``fsmount`` of a new filesystem) or on a mount of another mount namespace (an fd received over
SCM_RIGHTS) relative to a tree the target's root does not hold: a clone of ``d`` names ``d``'s
``secret.txt`` ``/secret.txt``, which no rule on ``.../d/secret.txt`` matches. The resolver
places a start directory by walking its name again from the target's root and comparing (mount
id, device, inode): what cannot be placed is refused with EACCES, whatever the rules say, and
logged. Objects on a detached tmpfs (``fsmount``) are refused the same way: they have no name in
the target's view for a rule to match.

Each attack is run unsupervised first (the control: the route does reach the secret), then under
a deny-list that allows the mount calls and denies the secret by path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.run import HARMLESS, SECRET, Files, Supervise, deny_list

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="open_tree and fsmount need root")


def run(supervise: Supervise, files: Files, binary: Path, *ops: str) -> list[str]:
    policy = supervise.policy(deny_list(files.secret))
    r = supervise(policy, [binary, *ops])
    assert r.returncode == 0, r.explain()
    return r.lines


def control(binary: Path, *ops: str) -> list[str]:
    out = subprocess.run([binary, *ops], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.splitlines()


@pytest.mark.parametrize("tree", ["tree", "rtree"])
def test_clone_of_the_secret_dir(tree: str, supervise: Supervise, target_bin, files: Files) -> None:
    """openat(clone of d, "secret.txt"): the kernel names it /secret.txt in the clone."""
    mountfd = target_bin("mountfd")
    ops = (tree, str(files.dir), "openat", files.secret.name)
    assert control(mountfd, *ops) == ["OK", f"OK:{SECRET}"]
    assert run(supervise, files, mountfd, *ops) == ["OK", "EACCES"]


def test_recursive_clone_of_root(supervise: Supervise, target_bin, files: Files) -> None:
    """open_tree(/, OPEN_TREE_CLONE|AT_RECURSIVE), then the secret by its path under the clone,
    directly, as the cwd (fchdir) and through the clone's magic link."""
    mountfd = target_bin("mountfd")
    rel = str(files.secret).lstrip("/")
    ops = (
        "rtree",
        "/",
        "openat",
        rel,
        "fchdir",
        "open",
        rel,
        "open",
        f"/proc/self/fd/{{fd}}/{rel}",
    )
    assert control(mountfd, *ops) == ["OK", f"OK:{SECRET}", "OK", f"OK:{SECRET}", f"OK:{SECRET}"]
    assert run(supervise, files, mountfd, *ops) == ["OK", "EACCES", "OK", "EACCES", "EACCES"]


def test_clone_cannot_be_placed_even_for_an_allowed_file(
    supervise: Supervise, target_bin, files: Files
) -> None:
    """The refusal is for the place, not the rule: a harmless file under a clone is refused
    too, and logged with the reason."""
    mountfd = target_bin("mountfd")
    ops = ("tree", str(files.dir), "openat", files.allowed.name)
    assert control(mountfd, *ops) == ["OK", f"OK:{HARMLESS}"]
    policy = supervise.policy(deny_list(files.secret))
    r = supervise(policy, [mountfd, *ops])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["OK", "EACCES"], r.explain()
    refused = r.named("resolve.unplaced")
    assert refused and "mount" in refused[0]["reason"], r.explain()


def test_ordinary_dirfd_still_works(supervise: Supervise, target_bin, files: Files) -> None:
    """The positive control: a dirfd on the same directory, opened the ordinary way."""
    mountfd = target_bin("mountfd")
    ops = ("dirfd", str(files.dir), "openat", files.allowed.name, "openat", files.secret.name)
    ops += ("fchdir", "open", files.allowed.name, "open", files.secret.name)
    assert run(supervise, files, mountfd, *ops) == [
        "OK",
        f"OK:{HARMLESS}",
        "EACCES",
        "OK",
        f"OK:{HARMLESS}",
        "EACCES",
    ]


def test_fsmount_tmpfs_is_refused(supervise: Supervise, target_bin, files: Files) -> None:
    """A new tmpfs from fsopen/fsmount is detached: nothing under it has a name in the target's
    view, so creating and opening there is refused (EACCES) rather than named '/f'."""
    mountfd = target_bin("mountfd")
    ops = ("tmpfs", "creat", "f", "openat", "f", "mkdirat", "sub")
    assert control(mountfd, *ops) == ["OK", "OK", "OK:created", "OK"]
    assert run(supervise, files, mountfd, *ops) == ["OK", "EACCES", "EACCES", "EACCES"]


@pytest.fixture
def foreign_dirfd(world_dir: Path, files: Files) -> Iterator[Path]:
    """A unix socket on which an unsupervised process in another mount namespace (unshare -m)
    hands out an fd on ``files.dir`` bind-mounted at ``alias`` there (in our namespace, alias is
    an empty directory)."""
    sock = world_dir / "fd.sock"
    alias = world_dir / "alias"
    alias.mkdir()
    sender = (
        "import os, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[2]); s.listen(1)\n"
        "print('ready', flush=True)\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
        "c, _ = s.accept(); socket.send_fds(c, [b'x'], [fd]); c.close()\n"
    )
    script = (
        f"mount --make-rprivate / && mount --bind {files.dir} {alias} && "
        f'exec {sys.executable} -c "$0" {alias} {sock}'
    )
    proc = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", script, sender], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready = threading.Event()

    def wait_ready() -> None:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() == "ready":
            ready.set()

    threading.Thread(target=wait_ready, daemon=True).start()
    assert ready.wait(30), "the sender in the other mount namespace did not start"
    try:
        yield sock
    finally:
        proc.kill()
        proc.wait()


def test_fd_received_from_another_mount_namespace(
    supervise: Supervise, target_bin, files: Files, foreign_dirfd: Path
) -> None:
    """The fd names .../alias in the sender's namespace: its secret.txt would read as
    .../alias/secret.txt, which no rule denies."""
    mountfd = target_bin("mountfd")
    assert not any(Path(foreign_dirfd.parent, "alias").iterdir())  # empty in our namespace
    lines = run(supervise, files, mountfd, "recv", str(foreign_dirfd), "openat", "secret.txt")
    assert lines == ["OK", "EACCES"]


def test_fd_received_from_another_mount_namespace_control(
    target_bin, files: Files, foreign_dirfd: Path
) -> None:
    """Unsupervised, the same route reads the secret (the attack is real)."""
    mountfd = target_bin("mountfd")
    lines = control(mountfd, "recv", str(foreign_dirfd), "openat", "secret.txt")
    assert lines == ["OK", f"OK:{SECRET}"]
