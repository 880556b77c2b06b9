"""Each rule kind and action, end to end: kernel-decided value rules (with and without argument
conditions), supervisor-decided path rules (deny with an errno, allow in an allow-list, kill,
log), through the real CLI with real targets."""

from __future__ import annotations

import signal
import subprocess

from tests.helpers.run import (
    HARMLESS,
    SECRET,
    SUPERVISOR,
    Files,
    Supervise,
    allow_list,
    policy_text,
    rule,
)


def test_value_deny_mkdir_is_eperm(supervise: Supervise, target_bin, files: Files) -> None:
    policy = supervise.policy(
        policy_text("t", "allow", rule("no-mkdir", "deny", syscalls=["mkdir"]))
    )
    made = files.root / "made"
    r = supervise(policy, [target_bin("sysops"), "mkdir", made, "socket", "inet"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EPERM", "OK"], r.explain()
    assert not made.exists()


def test_value_deny_with_errno_and_mkdirat_untouched(
    supervise: Supervise, target_bin, files: Files
) -> None:
    """The rule names only mkdir: mkdir fails with its errno, other syscalls still work."""
    policy = supervise.policy(
        policy_text("t", "allow", rule("no-mkdir", "deny", syscalls=["mkdir"], errno="EROFS"))
    )
    r = supervise(policy, [target_bin("sysops"), "mkdir", files.root / "x", "open", files.allowed])
    assert r.lines == ["EROFS", f"OK:{HARMLESS}"], r.explain()


def test_value_kill_on_ptrace_is_sigsys(supervise: Supervise, target_bin) -> None:
    """A kernel-decided kill is SECCOMP_RET_KILL_PROCESS: the target dies of SIGSYS."""
    policy = supervise.policy(
        policy_text("t", "allow", rule("no-ptrace", "kill", syscalls=["ptrace"]))
    )
    r = supervise(policy, [target_bin("sysops"), "socket", "unix", "ptrace", "socket", "unix"])
    assert r.returncode == 128 + signal.SIGSYS, r.explain()
    assert r.lines == ["OK"], r.explain()


def test_value_rule_with_args(supervise: Supervise, target_bin) -> None:
    """socket(AF_INET) denied by an argument condition; AF_UNIX and AF_INET6 still allowed."""
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            rule(
                "no-inet",
                "deny",
                syscalls=["socket"],
                args='[{ arg = 0, op = "==", value = "AF_INET" }]',
                errno="EACCES",
            ),
        )
    )
    r = supervise(policy, [target_bin("sysops"), "socket", "inet", "socket", "unix"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EACCES", "OK"], r.explain()


def test_value_rule_with_numeric_args(supervise: Supervise, target_bin) -> None:
    policy = supervise.policy(
        policy_text(
            "t",
            "deny",
            rule(
                "unix-only",
                "allow",
                syscalls=["socket"],
                args='[{ arg = 0, op = "==", value = 1 }]',
            ),
            rule("no-sockets", "deny", syscalls=["socket"], errno="EAFNOSUPPORT"),
            rule("everything-else", "allow", syscalls=["@known"]),
        )
    )
    r = supervise(policy, [target_bin("sysops"), "socket", "inet", "socket", "unix"])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["EAFNOSUPPORT", "OK"], r.explain()


def test_path_deny_with_errno(supervise: Supervise, target_bin, files: Files) -> None:
    policy = supervise.policy(
        policy_text("t", "allow", rule("secret", "deny", path=[files.secret], errno="ENOENT"))
    )
    r = supervise(policy, [target_bin("sysops"), "open", files.secret, "open", files.allowed])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["ENOENT", f"OK:{HARMLESS}"], r.explain()
    denied = r.named("syscall.denied")
    assert denied, r.explain()
    ev = denied[0]
    assert ev["path"] == str(files.secret)
    assert ev["syscall"] == "open"
    assert ev["rule"] == "secret"
    assert ev["action"] == "deny"
    assert ev["errno"] == "ENOENT"
    assert ev["comm"] == "sysops"
    assert isinstance(ev["pid"], int)


def test_path_glob_deny(supervise: Supervise, target_bin, files: Files) -> None:
    """`*` stays within one segment, `**` spans any depth including none."""
    (files.sub / "deep").mkdir()
    (files.sub / "deep" / "key.pem").write_text(SECRET + "\n")
    (files.dir / "key.pem").write_text(SECRET + "\n")
    (files.dir / "key.txt").write_text(HARMLESS + "\n")
    policy = supervise.policy(
        policy_text(
            "t", "allow", rule("pem", "deny", path=[f"{files.root}/**/*.pem"], errno="EACCES")
        )
    )
    r = supervise(
        policy,
        [
            target_bin("sysops"),
            "open", files.sub / "deep" / "key.pem",
            "open", files.dir / "key.pem",
            "open", files.dir / "key.txt",
        ],
    )  # fmt: skip
    assert r.lines == ["EACCES", "EACCES", f"OK:{HARMLESS}"], r.explain()


def test_path_allow_list(supervise: Supervise, target_bin, files: Files) -> None:
    """Only the listed file (and the loader's) may be opened; other opens fail with EACCES."""
    policy = supervise.policy(allow_list(files.allowed))
    other = files.dir / "other.txt"
    other.write_text(HARMLESS + "\n")
    r = supervise(
        policy,
        [target_bin("sysops"), "open", files.allowed, "openat", files.allowed, "open", other,
         "open", files.secret, "openat2", "cwd", files.allowed, "0"],
    )  # fmt: skip
    assert r.returncode == 0, r.explain()
    assert r.lines == [f"OK:{HARMLESS}", f"OK:{HARMLESS}", "EACCES", "EACCES", f"OK:{HARMLESS}"], (
        r.explain()
    )


def test_path_allow_list_default_deny(supervise: Supervise, target_bin, files: Files) -> None:
    """The same with `default = "deny"` for the open family written as the policy default."""
    policy = supervise.policy(
        policy_text(
            "t",
            "deny",
            rule(
                "loader",
                "allow",
                syscalls=["open", "openat"],
                path=["/etc/ld.so.cache", "/lib/**", "/usr/lib/**"],
            ),
            rule("allowed", "allow", syscalls=["open", "openat"], path=[files.allowed]),
            rule("no-other-opens", "deny", syscalls=["open", "openat", "openat2"], errno="EACCES"),
            rule("the-rest", "allow", syscalls=["@known"]),
        )
    )
    r = supervise(policy, [target_bin("sysops"), "open", files.allowed, "open", files.secret])
    assert r.returncode == 0, r.explain()
    assert r.lines == [f"OK:{HARMLESS}", "EACCES"], r.explain()


def test_path_kill(supervise: Supervise, target_bin, files: Files) -> None:
    """A path kill is decided by the supervisor, which SIGKILLs the target: exit 137."""
    policy = supervise.policy(
        policy_text("t", "allow", rule("tripwire", "kill", path=[files.secret]))
    )
    r = supervise(
        policy, [target_bin("sysops"), "open", files.allowed, "open", files.secret, "exit", "0"]
    )
    assert r.returncode == 128 + signal.SIGKILL, r.explain()
    assert r.lines == [f"OK:{HARMLESS}"], r.explain()
    killed = r.named("syscall.killed")
    assert killed and killed[0]["path"] == str(files.secret), r.explain()
    assert killed[0]["action"] == "kill"


def test_path_log(supervise: Supervise, target_bin, files: Files) -> None:
    """`log`: the call succeeds and a syscall.logged event is written."""
    policy = supervise.policy(policy_text("t", "allow", rule("watch", "log", path=[files.allowed])))
    r = supervise(policy, [target_bin("sysops"), "open", files.allowed, "open", files.allowed])
    assert r.returncode == 0, r.explain()
    assert r.lines == [f"OK:{HARMLESS}", f"OK:{HARMLESS}"], r.explain()
    logged = r.named("syscall.logged")
    assert logged, r.explain()
    assert logged[0]["path"] == str(files.allowed)
    assert logged[0]["rule"] == "watch"
    assert logged[0]["action"] == "log"
    assert logged[0]["syscall"] == "open"
    # Two identical events within a second: folded into one with repeats=1, or written twice.
    total = sum(e.get("repeats", 1) for e in logged)
    assert total == 2, r.explain()


def test_value_log(supervise: Supervise, target_bin, files: Files) -> None:
    """A `log` value rule: mkdir succeeds, and the event names the syscall and its args."""
    policy = supervise.policy(
        policy_text("t", "allow", rule("watch-mkdir", "log", syscalls=["mkdir"]))
    )
    made = files.root / "logged-dir"
    r = supervise(policy, [target_bin("sysops"), "mkdir", made])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["OK"], r.explain()
    assert made.is_dir()
    logged = r.named("syscall.logged")
    assert logged and logged[0]["syscall"] == "mkdir", r.explain()
    assert logged[0]["rule"] == "watch-mkdir"


def test_first_match_wins(supervise: Supervise, target_bin, files: Files) -> None:
    """An allow of one file before a deny of its whole directory: the allow wins for it."""
    policy = supervise.policy(
        policy_text(
            "t",
            "allow",
            rule("public", "allow", syscalls=["open", "openat"], path=[files.allowed]),
            rule("dir", "deny", path=[f"{files.dir}/**"], errno="EACCES"),
        )
    )
    r = supervise(policy, [target_bin("sysops"), "open", files.allowed, "open", files.secret])
    assert r.lines == [f"OK:{HARMLESS}", "EACCES"], r.explain()


def test_policy_by_shipped_name(supervise: Supervise, target_bin, files: Files) -> None:
    r = supervise("default", [target_bin("sysops"), "open", files.allowed])
    assert r.returncode == 0, r.explain()
    assert r.lines == [f"OK:{HARMLESS}"]


def test_policy_check_reports_deciders(tmp_path, supervise: Supervise, files: Files) -> None:
    """`policy check` says who decides each rule and flags advisory allows; exit 0."""
    policy = supervise.policy(
        policy_text(
            "t",
            "deny",
            rule("no-mkdir", "deny", syscalls=["mkdir"]),
            rule("public", "allow", syscalls=["openat"], path=[files.allowed]),
            rule("stat-tmp", "allow", syscalls=["newfstatat"], path=["/tmp/**"]),
            rule("chdir-tmp", "allow", syscalls=["chdir"], path=["/tmp/**"]),
            rule("the-rest", "allow", syscalls=["@known"]),
        )
    )
    r = subprocess.run(
        [SUPERVISOR, "policy", "check", policy], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "kernel" in out.lower() and "supervisor" in out.lower(), out
    assert "ADVISORY" in out, out
    advisory = [ln for ln in out.splitlines() if "ADVISORY for" in ln]
    assert any("chdir-tmp" in ln for ln in advisory), out
    # stat is answered: performed on the checked object, the struct written back (answers.py)
    assert not any("stat-tmp" in ln for ln in advisory), out
    stat_line = next(ln for ln in out.splitlines() if ln.lstrip().startswith("stat-tmp "))
    assert "ANSWERED (performed, result written back): fstatat64, newfstatat" in stat_line, out
    assert not any("public" in ln for ln in advisory), out
    # an allowed open is performed by the supervisor, except with O_PATH: resumed, advisory
    public = next(ln for ln in out.splitlines() if ln.lstrip().startswith("public "))
    assert public.endswith("O_PATH opens ADVISORY (resumed after the check): openat"), out
    # the rule on newfstatat covers i386 fstatat64
    assert "newfstatat (and i386 fstatat64) every path in /tmp/**" in out, out
    # path rules, and io_uring and mounts allowed by `the-rest`: warned about
    assert "warning: io_uring is not refused" in out, out
    assert "warning: mount, open_tree, move_mount, fsmount, open_by_handle_at are not" in out
