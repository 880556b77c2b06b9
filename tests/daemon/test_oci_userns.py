"""A container in a user namespace of its own (root inside is uid 100000 outside) has no host
capabilities, also in what the supervisor performs for it: an allowed open of a file only host
root may read fails for it as it would without the supervisor."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.test_oci_runc import runc  # noqa: F401 (the fixture)
from tests.helpers.daemon import running_daemon
from tests.helpers.oci import Runc, bundle, profile

POLICY = """
version = 1
name = "uns"
description = "opens under /etc performed by the supervisor"
default = "allow"

[[rule]]
name = "etc-performed"
syscalls = ["open", "openat", "openat2"]
path = ["/etc/**"]
action = "allow"
"""
PROBE = "cat /etc/ok; cat /etc/rootonly; echo rc=$?"


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory the container's mapped root can walk (pytest's tmp is 0700, root's)."""
    d = Path(tempfile.mkdtemp(prefix="oci-uns-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _userns_bundle(root: Path, seccomp: dict[str, object] | None) -> Path:
    b = bundle(root, ["sh", "-c", PROBE], seccomp, files={"/etc/ok": "harmless-uns\n"})
    secret = b / "rootfs" / "etc" / "rootonly"
    secret.write_text("TOPSECRET-uns\n")
    secret.chmod(0o600)  # host root's: nobody in the namespace has a capability over it
    spec = json.loads((b / "config.json").read_text())
    spec["linux"]["namespaces"].append({"type": "user"})
    for key in ("uidMappings", "gidMappings"):
        spec["linux"][key] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    (b / "config.json").write_text(json.dumps(spec))
    for p in (root, b / "rootfs"):
        os.chmod(p, 0o755)
    return b


def test_without_supervision_the_file_is_out_of_reach(open_dir: Path, runc: Runc) -> None:  # noqa: F811
    got = runc.run("uns-native", _userns_bundle(open_dir / "native", None))
    assert got.returncode == 0, got.stderr
    assert "harmless-uns" in got.stdout and "rc=1" in got.stdout
    assert "TOPSECRET" not in got.stdout


def test_performed_opens_get_no_host_capabilities(
    tmp_path: Path,
    open_dir: Path,
    runc: Runc,  # noqa: F811
) -> None:
    oci = str(tmp_path / "run" / "oci.sock")
    with running_daemon(tmp_path, "--oci-socket", oci) as daemon:
        daemon.policy("uns", POLICY)
        b = _userns_bundle(open_dir / "sup", profile("uns", oci, daemon.policy_dir))
        got = runc.run("uns-sup", b)
        assert daemon.events("oci.handover")
        assert got.returncode == 0, got.stderr
        assert "harmless-uns" in got.stdout and "rc=1" in got.stdout
        assert "TOPSECRET" not in got.stdout
