"""Where policy files are found by name: the one search path the front ends share.

``policy/`` is pure (it parses text and decides; it lists no directories), so the directories
live here, beside it: ``run`` and ``policy check`` look up a name in the shipped policies
(:func:`find_policy`, which also takes a file path); the daemon looks in its ``--policy-dir``
directories, then the system directory (:func:`system_policy_dir`), then the shipped ones
(:func:`daemon_policy_dirs`). Nothing here parses a policy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from supervisor.policy import PolicyError

SYSTEM_POLICY_DIR = Path("/etc/seccomp-supervisor/policies")
# Overrides SYSTEM_POLICY_DIR (tests; a system that keeps its policies elsewhere).
SYSTEM_POLICY_DIR_ENV = "SECCOMP_SUPERVISOR_SYSTEM_POLICY_DIR"


def policy_dirs() -> list[Path]:
    """The shipped policies: the source tree's policies/ (editable installs), then the
    installed copy."""
    here = Path(__file__).resolve().parents[1] / "policies"
    installed = Path(sys.prefix) / "share" / "seccomp-supervisor" / "policies"
    return [d for d in (here, installed) if d.is_dir()]


def system_policy_dir() -> Path:
    """/etc/seccomp-supervisor/policies, or ``$SECCOMP_SUPERVISOR_SYSTEM_POLICY_DIR``."""
    return Path(os.environ.get(SYSTEM_POLICY_DIR_ENV) or SYSTEM_POLICY_DIR)


def daemon_policy_dirs(first: list[Path]) -> list[Path]:
    """The daemon's search path: ``first`` (--policy-dir), the system directory, the shipped
    policies."""
    return [*first, system_policy_dir(), *policy_dirs()]


def find_policy(spec: str) -> Path:
    """A policy file path, or the name of a shipped policy (PolicyError when there is none)."""
    path = Path(spec)
    if path.is_file() or os.sep in spec or spec.endswith(".toml"):
        return path
    for d in policy_dirs():
        candidate = d / f"{spec}.toml"
        if candidate.is_file():
            return candidate
    names = sorted({p.stem for d in policy_dirs() for p in d.glob("*.toml")})
    raise PolicyError(f"no policy named {spec!r} (shipped: {', '.join(names) or 'none'})")
