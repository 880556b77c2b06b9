"""Every shipped policy runs ordinary programs; the default one keeps /etc/shadow secret."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.run import POLICIES, SECRET, Files, Supervise, deny_list, rule

SHIPPED = sorted(POLICIES.glob("*.toml"))
WORKLOAD = "ls / >/dev/null && cat /etc/hostname && echo hi | sort | wc -l && id -u"


def test_policies_are_shipped() -> None:
    assert {p.stem for p in SHIPPED} >= {
        "default",
        "no-network",
        "readonly-home",
        "database-client",
        "build-sandbox",
        "fault-injection",
    }


@pytest.mark.parametrize("policy", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_runs_ordinary_commands(supervise: Supervise, policy: Path) -> None:
    r = supervise(policy.stem, ["sh", "-c", WORKLOAD])
    assert r.returncode == 0, r.explain()
    assert r.lines == [Path("/etc/hostname").read_text().strip(), "1", "0"], r.explain()


@pytest.mark.parametrize("policy", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_runs_python(supervise: Supervise, policy: Path, tmp_path: Path) -> None:
    out = tmp_path / "py-out"
    code = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(sorted(os.listdir('/'))))"
    # build-sandbox executes only system programs: the system's python3, not the venv's.
    python = "/usr/bin/python3" if policy.stem == "build-sandbox" else sys.executable
    r = supervise(policy.stem, [python, "-c", code], cwd=tmp_path)
    assert r.returncode == 0, r.explain()
    assert out.exists(), r.explain()


@pytest.mark.parametrize("policy", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_by_path(supervise: Supervise, policy: Path) -> None:
    r = supervise(policy, ["cat", "/etc/hostname"])
    assert r.returncode == 0, r.explain()


def test_default_denies_etc_shadow(supervise: Supervise) -> None:
    assert os.access("/etc/shadow", os.R_OK)
    r = supervise("default", ["cat", "/etc/shadow"])
    assert r.returncode == 1, r.explain()
    assert r.stdout == ""
    assert "Permission denied" in r.stderr, r.explain()
    denied = r.named("syscall.denied")
    assert denied and denied[0]["path"] == "/etc/shadow", r.explain()


def test_default_is_the_default(supervise: Supervise) -> None:
    r = supervise(None, ["cat", "/etc/shadow"])
    assert r.returncode == 1, r.explain()
    assert "Permission denied" in r.stderr


def test_default_denies_chroot(supervise: Supervise, target_bin, tmp_path: Path) -> None:
    """Path rules are in the target's view; `default` keeps the target from changing that view."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "shadow").write_text("fake\n")
    r = supervise("default", [target_bin("sysops"), "chroot", tmp_path, "open", "/etc/shadow"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EPERM", "EACCES"], r.explain()


def _shadow_first_line() -> str:
    return Path("/etc/shadow").read_text().splitlines()[0]


def test_default_refuses_io_uring(supervise: Supervise, target_bin) -> None:
    """io_uring's IORING_OP_OPENAT opens a file without the openat syscall, past every path
    rule: `default` refuses io_uring_setup in the kernel (ENOSYS, as without io_uring)."""
    r = supervise("default", [target_bin("iouring"), "/etc/shadow"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["ENOSYS"], r.explain()
    assert _shadow_first_line() not in r.stdout
    assert not r.named("syscall.denied"), r.explain()  # the kernel's refusal, not notified


def test_io_uring_gets_past_path_rules_that_leave_it_open(
    supervise: Supervise, target_bin, files: Files
) -> None:
    """Why the refusal matters, and the warning: a deny-list that leaves io_uring open is
    bypassed by a ring's openat, and the policy's load warning says so."""
    disabled = Path("/proc/sys/kernel/io_uring_disabled")
    if disabled.exists() and disabled.read_text().strip() != "0":
        pytest.skip("io_uring is disabled on this kernel")
    r = supervise(supervise.policy(deny_list(files.secret)), [target_bin("iouring"), files.secret])
    assert r.returncode == 0, r.explain()
    assert r.lines == [f"OK:{SECRET}"], r.explain()
    warnings = [e["detail"] for e in r.named("policy.advisory")]
    assert any(w.startswith("io_uring is not refused") for w in warnings), r.explain()
    # the same policy with io_uring refused keeps the secret
    refused = (
        deny_list(files.secret)
        + "\n"
        + rule(
            "no-io-uring",
            "deny",
            syscalls=["io_uring_setup", "io_uring_enter", "io_uring_register"],
            errno="ENOSYS",
        )
    )
    r = supervise(supervise.policy(refused), [target_bin("iouring"), files.secret])
    assert r.lines == ["ENOSYS"], r.explain()
    assert not [e for e in r.named("policy.advisory") if "io_uring" in e["detail"]]


@pytest.mark.parametrize("userns", [False, True], ids=["mount-ns", "user-and-mount-ns"])
def test_readonly_home_refuses_the_bind_mount_escape(
    supervise: Supervise, world_dir: Path, userns: bool
) -> None:
    """A bind mount would show /etc under a writable tree, where /etc/shadow has a path no rule
    names: readonly-home refuses the new mount namespace (and mount itself) in the kernel."""
    mnt = world_dir / "m"
    mnt.mkdir()
    unshare = ["unshare", "-m"] + (["-U", "-r"] if userns else [])
    script = f"mount --bind /etc {mnt} && head -n 1 {mnt}/shadow"
    r = supervise("readonly-home", [*unshare, "sh", "-c", script])
    assert r.returncode != 0, r.explain()
    assert _shadow_first_line() not in r.stdout, r.explain()
    assert "Operation not permitted" in r.stderr, r.explain()
    assert not any(mnt.iterdir())  # nothing was mounted here
    # a mount in the target's own namespace is refused too (sh's mount: no unshare)
    r = supervise("readonly-home", ["sh", "-c", f"mount --bind /etc {mnt}; echo rc=$?"])
    assert r.lines[-1] != "rc=0", r.explain()
    assert not any(mnt.iterdir())


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A directory outside readonly-home's writable trees (/tmp, /var/tmp, /srv/work, /dev/shm)."""
    path = Path(tempfile.mkdtemp(prefix="sv-e2e-ro-", dir="/var/lib"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_readonly_home_refuses_writes_outside_the_writable_trees(
    supervise: Supervise, outside_dir: Path, tmp_path: Path
) -> None:
    existing = outside_dir / "existing"
    existing.write_text("original\n")
    victim = outside_dir / "victim"
    victim.write_text("keep me\n")
    inside = tmp_path / "out"  # under /tmp: writable
    steps = [
        f"echo new > {outside_dir}/new",
        f"echo changed > {existing}",
        f"echo more >> {existing}",
        f"mkdir {outside_dir}/sub",
        f"rm {victim}",
        f"ln -s /etc/passwd {outside_dir}/link",
        f"touch {outside_dir}/touched",
        f"echo inside > {inside}",
    ]
    script = "; ".join(f"{{ {step}; }} 2>/dev/null; echo rc=$?" for step in steps)
    r = supervise("readonly-home", ["sh", "-c", script])
    assert r.returncode == 0, r.explain()
    # each refused step fails (a shell's failed redirection is status 2, a command's 1)
    assert len(r.lines) == len(steps) and r.lines[-1] == "rc=0", r.explain()
    assert all(line != "rc=0" for line in r.lines[:-1]), r.explain()
    assert sorted(p.name for p in outside_dir.iterdir()) == ["existing", "victim"]
    assert existing.read_text() == "original\n" and victim.read_text() == "keep me\n"
    assert inside.read_text() == "inside\n"
    denied = r.named("syscall.denied")
    assert denied and all(e["errno"] == "EROFS" for e in denied), r.explain()


def test_no_network_refuses_inet_sockets(supervise: Supervise, target_bin) -> None:
    r = supervise(
        "no-network",
        [target_bin("sysops"), "socket", "inet", "socket", "inet6", "socket", "unix"],
    )
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EACCES", "EACCES", "OK"], r.explain()
    # decided by the kernel from socket()'s family: nothing reached the supervisor
    assert not r.named("syscall.denied"), r.explain()
