"""Helpers for the OCI agent's tests: busybox bundles run by the real runc, a daemon with an OCI
socket, and a raw client of that socket for bad input."""

from __future__ import annotations

import array
import json
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.run import SUPERVISOR

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "ls", "mkdir", "echo", "sleep", "touch", "nc", "true", "wc", "dd", "seq")


def need_runc() -> None:
    if shutil.which("runc") is None or not BUSYBOX.exists():
        pytest.skip("needs runc and busybox-static (scripts/setup installs them)")


def profile(policy: str, listener: str, policy_dir: Path) -> dict[str, Any]:
    """`seccomp-supervisor oci profile` of ``policy`` (a file in ``policy_dir``) as JSON."""
    out = subprocess.run(
        [str(SUPERVISOR), "oci", "profile", "-p", str(policy_dir / f"{policy}.toml"),
         "--listener", listener],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def bundle(
    root: Path,
    args: Sequence[str],
    seccomp: dict[str, Any] | None,
    *,
    files: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Path:
    """A bundle in ``root``: a busybox rootfs (``files`` written into it), config.json from
    `runc spec` with no terminal, a writable root, ``args``, ``seccomp`` as linux.seccomp."""
    rootfs = root / "rootfs"
    for sub in ("bin", "proc", "dev", "etc", "tmp", "sys"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        link = rootfs / "bin" / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    for rel, text in (files or {}).items():
        path = rootfs / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    config = root / "config.json"
    config.unlink(missing_ok=True)
    subprocess.run(["runc", "spec"], cwd=root, check=True, timeout=30)
    spec = json.loads(config.read_text())
    spec["process"]["terminal"] = False
    spec["root"]["readonly"] = False
    spec["process"]["args"] = list(args)
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    if annotations:
        spec["annotations"] = annotations
    config.write_text(json.dumps(spec, indent=1))
    return root


class Runc:
    """runc with its state in a directory of the test's (``--root``): containers of one test
    never meet another's, and are all deleted at the end (``cleanup``)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.ids: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.state), *args]

    def run(
        self, cid: str, bundle_dir: Path, *extra: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        self.ids.append(cid)
        return subprocess.run(
            self.argv("run", *extra, "--bundle", str(bundle_dir), cid),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self, cid: str, bundle_dir: Path, timeout: float = 60) -> tuple[int, str]:
        """`runc run -d`: (exit status, runc's stderr). The container's stdio is a file (a pipe
        would stay open as long as the container runs)."""
        self.ids.append(cid)
        log = bundle_dir / "stdio.log"
        with open(log, "w+") as out:
            rc = subprocess.run(
                self.argv("run", "-d", "--bundle", str(bundle_dir), cid),
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout,
            ).returncode  # fmt: skip
        return rc, log.read_text()

    def exec(self, cid: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv("exec", cid, *argv),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def state_of(self, cid: str) -> dict[str, Any] | None:
        got = subprocess.run(self.argv("state", cid), capture_output=True, text=True, timeout=30)
        if got.returncode != 0:
            return None
        result: dict[str, Any] = json.loads(got.stdout)
        return result

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run(self.argv("delete", "-f", cid), capture_output=True, timeout=30)


def hand_over(
    path: str,
    payload: bytes | Sequence[bytes],
    fds: Sequence[int] = (),
    *,
    close: bool = True,
    timeout: float = 30.0,
) -> socket.socket | None:
    """Connect to the OCI socket at ``path`` and send ``payload`` (several messages when a
    sequence; ``fds`` with the first), then close (or return the open socket)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    parts = [payload] if isinstance(payload, bytes) else list(payload)
    try:
        for i, part in enumerate(parts):
            anc = []
            if i == 0 and fds:
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
            sent = s.sendmsg([part], anc)
            s.sendall(part[sent:])  # sendmsg may send part of it
    except OSError:
        pass  # the daemon may have refused and closed already
    if close:
        s.close()
        return None
    return s


def state_message(
    pid: int,
    *,
    cid: str = "c1",
    status: str = "creating",
    metadata: str = "",
    fds: Sequence[str] = ("seccompFd",),
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A container process state as runc 1.1.5 sends it (kernel-facts)."""
    state: dict[str, Any] = {
        "ociVersion": "1.0.2-dev", "id": cid, "status": status, "pid": pid, "bundle": "/b",
    }  # fmt: skip
    if annotations is not None:
        state["annotations"] = annotations
    return {
        "ociVersion": "1.0.2-dev", "fds": list(fds), "pid": pid, "metadata": metadata,
        "state": state,
    }  # fmt: skip
