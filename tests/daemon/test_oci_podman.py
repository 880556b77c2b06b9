"""Podman 4.3.1 end to end (slow): a busybox image imported from a local tarball, run with a
profile that `oci profile --base` merged into Podman's own default profile. Inside, a denied
path is refused, an allowed one read, and `podman exec` is supervised too."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.test_oci_probes import answers_of, static_probe
from tests.daemon.test_oci_runc import POLICY
from tests.helpers.daemon import running_daemon
from tests.helpers.oci import APPLETS, BUSYBOX
from tests.helpers.run import SUPERVISOR
from tests.helpers.wait import wait_until

PODMAN_DEFAULT = Path("/usr/share/containers/seccomp.json")
# What Podman needs on this machine (kernel-facts): runc, cgroupfs, vfs, explicit rlimits.
RUN_FLAGS = (
    "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
)  # fmt: skip

pytestmark = pytest.mark.slow


class Podman:
    def __init__(self, state: Path) -> None:
        self.base = [
            "podman", "--root", str(state / "root"), "--runroot", str(state / "runroot"),
            "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--storage-driver", "vfs",
        ]  # fmt: skip

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    if shutil.which("podman") is None or not PODMAN_DEFAULT.exists() or not BUSYBOX.exists():
        pytest.skip("needs podman, golang-github-containers-common, busybox-static")
    state = Path(tempfile.mkdtemp(prefix="svpm-", dir="/tmp"))  # podman: runroot < 50 chars
    p = Podman(state)
    image = tmp_path / "image"
    (image / "bin").mkdir(parents=True)
    (image / "etc").mkdir()
    (image / "tmp").mkdir()
    shutil.copy(BUSYBOX, image / "bin" / "busybox")
    for applet in APPLETS:
        (image / "bin" / applet).symlink_to("busybox")
    (image / "etc" / "ok").write_text("harmless-oci\n")
    (image / "etc" / "secret").write_text("TOPSECRET-oci\n")
    with tarfile.open(tmp_path / "bb.tar", "w") as tar:
        tar.add(image, arcname=".")
    got = p("import", str(tmp_path / "bb.tar"), "localhost/sv-bb")
    assert got.returncode == 0, got.stderr
    try:
        yield p
    finally:
        p("rm", "-a", "-f", "-t", "0")
        p("rmi", "-a", "-f")
        shutil.rmtree(state, ignore_errors=True)


def test_podman_run_and_exec_under_a_merged_profile(tmp_path: Path, podman: Podman) -> None:
    oci = str(tmp_path / "run" / "oci.sock")
    with running_daemon(tmp_path, "--oci-socket", oci) as daemon:
        daemon.policy("ctest", POLICY)
        made = subprocess.run(
            [str(SUPERVISOR), "oci", "profile", "-p", str(daemon.policy_dir / "ctest.toml"),
             "--base", str(PODMAN_DEFAULT), "--listener", oci],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "SCMP_ACT_NOTIFY" in made.stderr  # the merge says what it changed
        profile = tmp_path / "profile.json"
        profile.write_text(made.stdout)
        merged = json.loads(made.stdout)
        assert merged["defaultAction"] == json.loads(PODMAN_DEFAULT.read_text())["defaultAction"]

        seccomp = f"seccomp={profile}"
        probe = "cat /etc/ok; cat /etc/secret; echo rc=$?"
        got = podman("run", "--rm", *RUN_FLAGS, "--security-opt", seccomp, "localhost/sv-bb",
                     "sh", "-c", probe)  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert "harmless-oci" in got.stdout and "rc=1" in got.stdout
        assert "TOPSECRET" not in got.stdout and "Permission denied" in got.stderr
        assert daemon.events("oci.handover")

        started = podman("run", "-d", *RUN_FLAGS, "--security-opt", seccomp, "localhost/sv-bb",
                         "sleep", "1000")  # fmt: skip
        assert started.returncode == 0, started.stderr
        cid = started.stdout.strip()
        secret = podman("exec", cid, "cat", "/etc/secret")
        assert secret.returncode != 0 and "TOPSECRET" not in secret.stdout
        ok = podman("exec", cid, "cat", "/etc/ok")
        assert ok.returncode == 0 and "harmless-oci" in ok.stdout
        statuses = [e["status"] for e in daemon.events("oci.handover") if e["container"] == cid]
        assert statuses == ["creating", "running", "running"], statuses
        (target,) = [t for t in daemon.request("ps")["targets"] if t["container"]["id"] == cid]
        assert target["policy"] == "ctest"
        podman("rm", "-f", "-t", "0", cid)
        wait_until(
            lambda: not [t for t in daemon.request("ps")["targets"] if t["container"]["id"] == cid],
            timeout=60,
            what="the container's target gone",
        )


def test_imported_podman_profile_round_trip(tmp_path: Path, podman: Podman) -> None:
    """`policy import` of Podman's default profile, extended with a path rule, exported with
    `oci profile` and supervised by the daemon: the probes get the answers they get under the
    original profile (which Podman applies itself), the denied path aside."""
    probe = static_probe()
    directory = "/etc/probe"
    image = tmp_path / "image2"
    shutil.copytree(tmp_path / "image", image, symlinks=True)
    shutil.copy(probe, image / "bin" / "oci_probe")
    (image / directory.lstrip("/")).mkdir(parents=True)
    for name in ("secret", "ok"):
        (image / directory.lstrip("/") / name).write_text(name)
    with tarfile.open(tmp_path / "bb2.tar", "w") as tar:
        tar.add(image, arcname=".")
    assert podman("import", str(tmp_path / "bb2.tar"), "localhost/sv-probe").returncode == 0

    oci = str(tmp_path / "run" / "oci.sock")
    with running_daemon(tmp_path, "--oci-socket", oci) as daemon:
        policy = daemon.policy_dir / "imported.toml"
        made = subprocess.run(
            [str(SUPERVISOR), "policy", "import", str(PODMAN_DEFAULT), "-o", str(policy)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        text = policy.read_text()
        assert "only with CAP_SYS_ADMIN" in text  # includes/excludes were evaluated
        # Extended above the imported rules (the first matching rule decides).
        first = text.index("[[rule]]")
        policy.write_text(
            text[:first] + f'[[rule]]\nname = "secret"\nsyscalls = ["open", "openat", "openat2"]\n'
            f'path = ["{directory}/secret"]\naction = "deny"\nerrno = "EACCES"\n\n' + text[first:]
        )
        exported = subprocess.run(
            [str(SUPERVISOR), "oci", "profile", "-p", str(policy), "--listener", oci],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        profile = tmp_path / "imported.json"
        profile.write_text(exported.stdout)

        def answers(seccomp: Path) -> dict[str, str]:
            got = podman("run", "--rm", *RUN_FLAGS, "--security-opt", f"seccomp={seccomp}",
                         "localhost/sv-probe", "/bin/oci_probe", directory)  # fmt: skip
            assert got.returncode == 0, got.stderr
            return answers_of(got.stdout)

        original = answers(PODMAN_DEFAULT)
        imported = answers(profile)
        assert daemon.events("oci.handover")
        assert imported.pop("open-secret") == "EACCES"
        assert imported.pop("i386-open-secret") == "EACCES"
        assert original.pop("open-secret") == original.pop("i386-open-secret") == "OK"
        assert imported == original
        # Decided by the profile, not by the machine: some answers are refusals.
        assert original["bpf"] == "EPERM" and original["personality-odd"] == "ENOSYS"
