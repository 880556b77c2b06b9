"""The release path: an sdist of the project, a wheel built from that sdist in a fresh virtual
environment, installed there, and the installed command supervising real programs.

This is what a user's ``pip install`` does, and what the editable install of the test suite
never checks: that the C of ``supervisor._native`` (supervisor/kernel/native/) is in the sdist,
compiles there with the project's warning flags, and ships in the wheel, and that the shipped
policies are found. Slow (a fresh venv, its dependencies, a compile); the packages come from
pip's configured index, as ``scripts/setup``'s do.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ["build.py", "kernel.cdef", "native.h"] + [
    f"{name}.c" for name in ("seccomp", "pidfd", "memory", "creds", "spawn", "resolve", "lane")
]


def _run(argv: list[str | Path], cwd: Path, timeout: float = 900) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_sdist_wheel_install_and_run(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "venv", venv], tmp_path)
    # The build back end and its requirements, as pyproject.toml names them, in the fresh venv.
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    _run([py, "-m", "pip", "install", "-q", *build_system["requires"]], tmp_path)

    # The sdist, made by the PEP 517 hook from a copy of the source tree: the files git has (or
    # would add), so that nothing left over in the worktree (an egg-info's list of sources from
    # the editable install, build/) can put into the sdist what the packaging config leaves out.
    src = tmp_path / "src"
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    dist = tmp_path / "dist"
    dist.mkdir()
    hook = f"import sys, {build_system['build-backend']} as b; print(b.build_sdist(sys.argv[1]))"
    sdist = dist / _run([py, "-c", hook, dist], src).strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    top = sdist.name.removesuffix(".tar.gz")
    for name in NATIVE:
        assert f"supervisor/kernel/native/{name}" in names, name
    assert "policies/default.toml" in names
    assert "supervisor/_build.py" not in names

    # The wheel, built from the unpacked sdist alone (not from the source tree) in that venv.
    unpacked = tmp_path / "unpacked"
    with tarfile.open(sdist) as tar:
        tar.extractall(unpacked, filter="data")
    wheels = tmp_path / "wheels"
    _run(
        [
            py,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            wheels,
            unpacked / top,
        ],
        tmp_path,
    )
    (wheel,) = wheels.glob("seccomp_supervisor-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = set(whl.namelist())
    for name in NATIVE:
        assert f"supervisor/kernel/native/{name}" in in_wheel, name
    assert any(n.startswith("supervisor/_native.") and n.endswith(".so") for n in in_wheel)

    _run([py, "-m", "pip", "install", "-q", wheel], tmp_path)
    where = _run([py, "-c", "import supervisor._native as n; print(n.__file__)"], tmp_path)
    assert Path(where.strip()).is_relative_to(venv), where

    # The installed command, run away from the source tree, with the shipped default policy.
    cmd = venv / "bin" / "seccomp-supervisor"
    quiet = [cmd, "--log-format", "json", "--log-file", "/dev/null", "run", "-p", "default", "--"]
    _run([*quiet, "true"], tmp_path, timeout=120)
    # An allowed open, performed by the supervisor and handed over with ADDFD ...
    secret_free = tmp_path / "hello"
    secret_free.write_text("hello from the wheel\n")
    assert _run([*quiet, "cat", secret_free], tmp_path, timeout=120) == "hello from the wheel\n"
    # ... and one the policy denies by its resolved path.
    denied = subprocess.run(
        [str(a) for a in [*quiet, "cat", "/etc/shadow"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert denied.returncode != 0 and denied.stdout == "", denied
    assert "Permission denied" in denied.stderr, denied.stderr
