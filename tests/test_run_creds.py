"""A target that drops to uid/gid 65534 itself: allowed opens are performed with its
credentials, not the supervisor's (root)."""

from __future__ import annotations

from .run_helpers import HARMLESS, Files, Supervise, allow_list, deny_list

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
