"""The profile `oci profile` writes makes the kernel answer as under `run -p POLICY`: the same
probes (decided by the supervisor by path, by the kernel by argument and by number, through the
x86_64 and the i386 ABI) get the same answers in a runc container handed to the daemon as under
the embedded `run`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.daemon.test_oci_runc import runc  # noqa: F401 (the fixture)
from tests.helpers.daemon import running_daemon
from tests.helpers.oci import Runc, bundle, profile
from tests.helpers.run import BIN, SUPERVISOR, TARGETS

EXPECTED = {
    "open-secret": "EACCES",
    "open-ok": "OK",
    "socket-inet": "EACCES",
    "socket-unix": "OK",
    "chroot": "EXDEV",
    "i386-open-secret": "EACCES",
    "i386-open-ok": "OK",
    "i386-socket-inet": "EACCES",
    "i386-chroot": "EXDEV",
}


def _policy(directory: str) -> str:
    return f"""
version = 1
name = "probes"
description = "the probes' policy"
default = "allow"

[[rule]]
name = "secret"
syscalls = ["open", "openat", "openat2"]
path = ["{directory}/secret"]
action = "deny"
errno = "EACCES"

[[rule]]
name = "no-inet"
syscalls = ["socket"]
args = [{{ arg = 0, op = "==", value = "AF_INET" }}]
action = "deny"
errno = "EACCES"

[[rule]]
name = "no-chroot"
syscalls = ["chroot"]
action = "deny"
errno = "EXDEV"
"""


def static_probe() -> Path:
    src, exe = TARGETS / "oci_probe.c", BIN / "oci_probe"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        BIN.mkdir(exist_ok=True)
        subprocess.run(
            ["cc", "-static", "-no-pie", "-O2", "-Wall", "-o", str(exe), str(src)], check=True
        )
    return exe


def answers_of(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def test_same_answers_in_a_container_and_under_run(tmp_path: Path, runc: Runc) -> None:  # noqa: F811
    probe = static_probe()
    directory = f"/tmp/oci-probe-{tmp_path.name}"
    host_dir = Path(directory)
    host_dir.mkdir(exist_ok=True)
    try:
        for name in ("secret", "ok"):
            (host_dir / name).write_text(name)
        policy_file = tmp_path / "probes.toml"
        policy_file.write_text(_policy(directory))
        under_run = subprocess.run(
            [str(SUPERVISOR), "run", "-p", str(policy_file), "--", str(probe), directory],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert under_run.returncode == 0, under_run.stderr
        answers = answers_of(under_run.stdout)
        assert {k: answers.get(k) for k in EXPECTED} == EXPECTED, under_run.stdout

        oci = str(tmp_path / "run" / "oci.sock")
        with running_daemon(tmp_path, "--oci-socket", oci) as daemon:
            daemon.policy("probes", _policy(directory))
            files = {f"{directory}/secret": "secret", f"{directory}/ok": "ok"}
            b = bundle(
                tmp_path / "b", ["/bin/oci_probe", directory],
                profile("probes", oci, daemon.policy_dir), files=files,
            )  # fmt: skip
            shutil.copy(probe, b / "rootfs" / "bin" / "oci_probe")
            in_container = runc.run("oci-probes", b)
            assert in_container.returncode == 0, in_container.stderr
            assert answers_of(in_container.stdout) == answers_of(under_run.stdout)
            assert daemon.events("oci.handover")
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)
