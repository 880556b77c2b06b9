"""A target that drops to uid/gid 65534 itself: allowed opens are performed with its
credentials, not the supervisor's (root)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers.run import HARMLESS, Files, Supervise, allow_list, deny_list

NOBODY = 65534


def test_non_root_target(supervise: Supervise, target_bin, files: Files) -> None:
    root_only = files.dir / "root-only.txt"
    root_only.write_text("root eyes only\n")
    root_only.chmod(0o600)
    out_dir = files.root / "out"
    out_dir.mkdir()
    out_dir.chmod(0o777)
    created = out_dir / "made-by-nobody.txt"
    policy = supervise.policy(allow_list(files.allowed, root_only, f"{out_dir}/**"))
    r = supervise(
        policy,
        [
            target_bin("sysops"),
            "open", root_only,  # as root: works (so the allow rule matches)
            "dropuid", str(NOBODY),
            "open", root_only,
            "openat2", "cwd", root_only, "0",
            "open", files.allowed,
            "creat", created,
            "stat", created,
        ],
    )  # fmt: skip
    assert r.returncode == 0, r.explain()
    assert r.lines == [
        "OK:root eyes only",
        "OK",
        "EACCES",
        "EACCES",
        f"OK:{HARMLESS}",
        "OK",
        f"OK:{NOBODY}:{NOBODY}",
    ], r.explain()
    st = created.stat()
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)


def test_non_root_target_deny_list(supervise: Supervise, target_bin, files: Files) -> None:
    """The same under a deny-list policy, where allowed opens are performed after inspection."""
    root_only = files.dir / "root-only.txt"
    root_only.write_text("root eyes only\n")
    root_only.chmod(0o600)
    out_dir = files.root / "out"
    out_dir.mkdir()
    out_dir.chmod(0o777)
    created = out_dir / "made-by-nobody.txt"
    policy = supervise.policy(deny_list(files.secret))
    r = supervise(
        policy,
        [target_bin("sysops"), "dropuid", str(NOBODY), "open", root_only, "open", files.allowed,
         "creat", created],
    )  # fmt: skip
    assert r.lines == ["OK", "EACCES", f"OK:{HARMLESS}", "OK"], r.explain()
    st = created.stat()
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)


def test_non_root_target_cannot_write_root_dir(
    supervise: Supervise, target_bin, files: Files
) -> None:
    """O_CREAT in a directory only root may write: EACCES for the unprivileged target."""
    policy = supervise.policy(allow_list(f"{files.dir}/**"))
    target = files.dir / "nobody-was-here.txt"
    r = supervise(policy, [target_bin("sysops"), "dropuid", str(NOBODY), "creat", target])
    assert r.lines == ["OK", "EACCES"], r.explain()
    assert not target.exists()


# -- capabilities, groups and user namespaces -------------------------------------------------
OTHER_UID = 4321  # owns a 0600 file: only CAP_DAC_OVERRIDE (or its uid) opens it
GROUP = 4242


def _private_files(files: Files) -> tuple[Path, Path, Path]:
    """A 0600 root file, a 0600 file of OTHER_UID and a 0640 root:GROUP file."""
    root_only = files.dir / "root-only.txt"
    root_only.write_text("root eyes only\n")
    root_only.chmod(0o600)
    others = files.dir / "others.txt"
    others.write_text("not root's\n")
    os.chown(others, OTHER_UID, OTHER_UID)
    others.chmod(0o600)
    grouped = files.dir / "group.txt"
    grouped.write_text("for the group\n")
    os.chown(grouped, 0, GROUP)
    grouped.chmod(0o640)
    return root_only, others, grouped


def native(binary: Path, *ops: str | Path) -> list[str]:
    r = subprocess.run([binary, *map(str, ops)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_user_namespace_caps_not_honoured(supervise: Supervise, target_bin, files: Files) -> None:
    """A uid-65534 target that makes itself a user namespace holds a full CapEff there; applied
    by the supervisor in the initial namespace it read root's 0600 file. Natively EACCES."""
    root_only, _, _ = _private_files(files)
    ops = ["setid", str(NOBODY), "unshare_user", "capeff", "open", root_only]
    binary = target_bin("credops")
    assert native(binary, *ops) == ["OK", "OK", "OK:000001ffffffffff", "EACCES"]
    policy = supervise.policy(allow_list(root_only, "/proc/**"))
    r = supervise(policy, [binary, *ops])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["OK", "OK", "OK:000001ffffffffff", "EACCES"], r.explain()


def test_root_in_user_namespace(supervise: Supervise, target_bin, files: Files) -> None:
    """Root in a new user namespace (no uid map) keeps fsuid 0 but its capabilities count only
    for inodes whose owner is mapped there: another uid's 0600 file is EACCES natively, and
    through the supervisor (no capabilities at all) too; its own (root's) file opens."""
    root_only, others, _ = _private_files(files)
    ops = ["unshare_user", "open", root_only, "open", others]
    binary = target_bin("credops")
    assert native(binary, *ops) == ["OK", "OK:root eyes only", "EACCES"]
    policy = supervise.policy(allow_list(root_only, others))
    r = supervise(policy, [binary, "open", others, *ops])
    assert r.lines == ["OK:not root's", "OK", "OK:root eyes only", "EACCES"], r.explain()


def test_supplementary_group(supervise: Supervise, target_bin, files: Files) -> None:
    """A 0640 root:GROUP file allowed by path: a target in GROUP (a supplementary group only)
    reads it, one without GROUP gets EACCES, as natively."""
    _, _, grouped = _private_files(files)
    policy = supervise.policy(allow_list(grouped))
    binary = target_bin("credops")
    member = ["groups", str(GROUP), "setid", str(NOBODY), "open", grouped]
    stranger = ["groups", "none", "setid", str(NOBODY), "open", grouped]
    assert native(binary, *member) == ["OK", "OK", "OK:for the group"]
    assert native(binary, *stranger) == ["OK", "OK", "EACCES"]
    r = supervise(policy, [binary, *member])
    assert r.lines == ["OK", "OK", "OK:for the group"], r.explain()
    r = supervise(policy, [binary, *stranger])
    assert r.lines == ["OK", "OK", "EACCES"], r.explain()


def test_root_without_dac_override(supervise: Supervise, target_bin, files: Files) -> None:
    """Root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: another uid's 0600 file is EACCES
    (natively too); root's own file still opens (owner)."""
    root_only, others, _ = _private_files(files)
    policy = supervise.policy(allow_list(root_only, others))
    binary = target_bin("credops")
    ops = ["open", others, "dropcaps", "dac_override,dac_read_search", "open", others]
    ops += ["open", root_only]
    want = ["OK:not root's", "OK", "EACCES", "OK:root eyes only"]
    assert native(binary, *ops) == want
    r = supervise(policy, [binary, *ops])
    assert r.lines == want, r.explain()


def test_uid_map_through_supervisor_fd(supervise: Supervise, target_bin, files: Files) -> None:
    """Documented limit: a file the supervisor opened for the target carries the opener's
    credentials (the supervisor's euid, the initial user namespace). Writing /proc/self/uid_map
    through such an fd after unshare(CLONE_NEWUSER) fails with EPERM (natively it works)."""
    ops = ["setid", str(NOBODY), "dumpable", "unshare_user"]
    ops += ["write", "/proc/self/uid_map", f"0 {NOBODY} 1"]
    binary = target_bin("credops")
    assert native(binary, *ops) == ["OK", "OK", "OK", "OK"]
    r = supervise(supervise.policy(deny_list(files.secret)), [binary, *ops])
    assert r.lines == ["OK", "OK", "OK", "EPERM"], r.explain()
