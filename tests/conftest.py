"""Shared fixtures: compiled C test targets, and running them under the real CLI (see
run_helpers.py for what an end-to-end test gets)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers.run import HARMLESS, SECRET, Files, Supervise, compile_target

# No time limit on a Hypothesis example: its default (200 ms) is a timing assertion, and fails
# a pure-policy property on a loaded machine. Tests check outcomes; bench/ measures time.
settings.register_profile("sv", deadline=None)
settings.load_profile("sv")


@pytest.fixture(scope="session")
def target_bin() -> Callable[[str], Path]:
    return compile_target


@pytest.fixture
def supervise(tmp_path: Path) -> Supervise:
    return Supervise(tmp_path)


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A fresh directory every user can traverse (pytest's own tmp_path is 0700 root), for files
    a target opens, also after dropping to an unprivileged uid."""
    path = Path(tempfile.mkdtemp(prefix="sv-e2e-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def files(world_dir: Path) -> Files:
    d = world_dir / "d"
    sub = d / "sub"
    sub.mkdir(parents=True)
    d.chmod(0o755)
    sub.chmod(0o755)
    secret = d / "secret.txt"
    allowed = d / "public.txt"
    secret.write_text(SECRET + "\n")
    allowed.write_text(HARMLESS + "\n")
    secret.chmod(0o644)
    allowed.chmod(0o644)
    return Files(world_dir, d, secret, allowed, sub)
