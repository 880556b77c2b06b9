"""Real target processes for the resolver and emulation tests.

A target is a Python process that sets itself up (opens fds, chroots, chdirs, sets its umask,
drops to another uid), prints its fd numbers as JSON and blocks reading stdin. Tests then call
the resolver with its pid, as the trio loop would with a notification's pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

_SCRIPT = r"""
import json, os, sys
cfg = json.loads(sys.argv[1])
out = {}
if cfg.get("pre_chdir"):
    os.chdir(cfg["pre_chdir"])
for name, (path, flags) in cfg.get("open", {}).items():
    out[name] = os.open(path, flags)
if cfg.get("chroot"):
    os.chroot(cfg["chroot"])
if cfg.get("chdir"):
    os.chdir(cfg["chdir"])
if "umask" in cfg:
    os.umask(cfg["umask"])
if "uid" in cfg:
    os.setgroups(cfg.get("groups", []))
    os.setgid(cfg.get("gid", cfg["uid"]))
    os.setuid(cfg["uid"])
r, w = os.pipe()  # after the uid change: the pipe is the target's own
out["pipe_r"], out["pipe_w"] = r, w
sys.stdout.write(json.dumps(out) + "\n")
sys.stdout.flush()
sys.stdin.read()
"""

NOBODY = 65534


class Target:
    def __init__(self, **cfg: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"target failed to start: {self.proc.returncode}")
        self.fds: dict[str, int] = json.loads(line)
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()


@pytest.fixture
def spawn() -> Iterator[Any]:
    targets: list[Target] = []

    def start(**cfg: Any) -> Target:
        t = Target(**cfg)
        targets.append(t)
        return t

    yield start
    for t in targets:
        t.stop()


@pytest.fixture
def world() -> Iterator[str]:
    """A directory in /tmp that uid 65534 can reach (pytest's tmp_path is 0700, root's)."""
    d = tempfile.mkdtemp(prefix="sv-resolve-", dir="/tmp")
    os.chmod(d, 0o755)
    yield os.path.realpath(d)
    shutil.rmtree(d, ignore_errors=True)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
