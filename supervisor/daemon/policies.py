"""The daemon's policy store: policies by name, found on the daemon's search path
(``supervisor.policy_path.daemon_policy_dirs``), loaded on first use, re-read on ``reload``.

Only names are looked up (a client never names a file): a name is a short run of letters,
digits, ``.``, ``_`` and ``-``. Whatever a policy file holds, loading it fails with a
``RequestError`` for that request, never the daemon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.daemon.protocol import RequestError
from supervisor.policy import Policy, PolicyError, parse_policy, plan_filter
from supervisor.policy_path import daemon_policy_dirs

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class LoadedPolicy:
    policy: Policy
    path: Path
    text: str


class PolicyStore:
    """Policies by name: the --policy-dir directories, /etc/seccomp-supervisor/policies (see
    ``policy_path.system_policy_dir``), then the shipped ones. Loaded on first use; ``reload``
    re-reads those in use."""

    def __init__(self, dirs: list[Path], log: Any) -> None:
        self.dirs = daemon_policy_dirs(dirs)
        self.loaded: dict[str, LoadedPolicy] = {}
        self.log = log

    def find(self, name: str) -> Path:
        if not NAME.match(name) or name in (".", ".."):
            raise RequestError("bad_policy_name", f"not a policy name: {name!r}")
        for d in self.dirs:
            candidate = d / f"{name}.toml"
            if candidate.is_file():
                return candidate
        raise RequestError("policy_not_found", f"no policy named {name!r}")

    def _read(self, name: str) -> LoadedPolicy:
        path = self.find(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RequestError("policy_error", f"{path}: cannot read: {e}") from None
        try:
            policy = parse_policy(text, source=str(path), name=name)
        except PolicyError as e:
            raise RequestError("policy_error", str(e)) from None
        except Exception as e:  # a parser bug is this file's failure, never the daemon's
            self.log.error("policy.parser_failed", policy=name, path=str(path), exc_info=e)
            raise RequestError(
                "policy_error", f"{path}: cannot be parsed: {type(e).__name__}: {e}"
            ) from None
        return LoadedPolicy(policy, path, text)

    def get(self, name: str) -> LoadedPolicy:
        loaded = self.loaded.get(name)
        if loaded is None:
            loaded = self.loaded[name] = self._read(name)
        return loaded

    def reload(self) -> tuple[list[str], dict[str, str]]:
        """(names whose policy changed, {name: error} of those that kept the old one)."""
        changed: list[str] = []
        failed: dict[str, str] = {}
        for name, old in list(self.loaded.items()):
            try:
                new = self._read(name)
                if new.text == old.text and new.path == old.path:
                    continue
                kernel_part_changed = plan_filter(new.policy) != plan_filter(old.policy)
            except Exception as e:  # RequestError, or a bug: the old policy stays in force
                failed[name] = str(e)
                self.log.error("policy.reload_failed", policy=name, error=str(e))
                continue
            if kernel_part_changed:
                self.log.warning(
                    "policy.reload_kernel_part_changed",
                    policy=name,
                    detail="rules decided in the kernel filter apply to targets started from now "
                    "on; running targets keep the filter they were started with",
                )
            self.loaded[name] = new
            changed.append(name)
        return changed, failed
