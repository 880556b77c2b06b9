"""Shared fixtures: compiled C test targets."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

TARGETS = Path(__file__).parent / "targets"
BIN = TARGETS / "bin"


def compile_target(name: str) -> Path:
    """Compile tests/targets/NAME.c into tests/targets/bin/NAME when the source is newer."""
    src = TARGETS / f"{name}.c"
    exe = BIN / name
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        BIN.mkdir(exist_ok=True)
        tmp = exe.with_suffix(".tmp")
        subprocess.run(["cc", "-O2", "-Wall", "-pthread", "-o", str(tmp), str(src)], check=True)
        tmp.rename(exe)
    return exe


@pytest.fixture(scope="session")
def target_bin() -> Callable[[str], Path]:
    return compile_target
