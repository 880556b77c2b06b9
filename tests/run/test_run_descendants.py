"""Descendants of the target are supervised too (the filter is inherited over fork and exec),
and `run` returns only once the whole tree is gone."""

from __future__ import annotations

from tests.helpers.run import HARMLESS, SECRET, Files, Supervise, deny_list


def test_pipeline_grandchild_is_supervised(supervise: Supervise, files: Files) -> None:
    policy = supervise.policy(deny_list(files.secret))
    script = (
        f"sh -c 'cat {files.secret}; echo rc=$?' | cat; "
        f"(cat {files.allowed}) | cat; "
        f"cat < /dev/null | sh -c 'cat {files.secret} 2>/dev/null | cat; echo inner=$?'"
    )
    r = supervise(policy, ["sh", "-c", script])
    assert r.returncode == 0, r.explain()
    assert SECRET not in r.stdout, r.explain()
    assert "rc=1" in r.lines, r.explain()
    assert HARMLESS in r.lines, r.explain()
    assert "Permission denied" in r.stderr, r.explain()


def test_fork_exec_child_is_supervised(supervise: Supervise, target_bin, files: Files) -> None:
    sysops = str(target_bin("sysops"))
    policy = supervise.policy(deny_list(files.secret))
    r = supervise(
        policy,
        [sysops, "spawn", sysops, "open", files.secret, "open", files.allowed,
         "spawn", sysops, "open", files.secret, "mkdir", files.root / "gc"],
    )  # fmt: skip
    assert r.returncode == 0, r.explain()
    # The child's lines, the grandchild's, then each parent's report of its child's exit.
    assert r.lines == ["EACCES", f"OK:{HARMLESS}", "EACCES", "OK", "OK:exit=0", "OK:exit=0"], (
        r.explain()
    )
    pids = {e["pid"] for e in r.named("syscall.denied")}
    assert len(pids) == 2, r.explain()


def test_waits_for_whole_tree(supervise: Supervise, files: Files) -> None:
    """The target exits at once but leaves a background grandchild: `run` returns with the
    target's status only after the grandchild is gone too. The grandchild outlives the target by
    construction (it waits until the target is dead: gone or a zombie), then does its work: the
    work done by the time `run` returned is the check, not a duration."""
    policy = supervise.policy(deny_list(files.secret))
    marker = files.root / "late"
    target_alive = "[ -d /proc/$$ ] && [ \"$(cut -d' ' -f3 /proc/$$/stat)\" != Z ]"
    script = (
        f"(while {target_alive}; do sleep 0.05; done; "
        f"cat {files.secret} > {marker}.secret 2>&1; echo done > {marker}) "
        "</dev/null >/dev/null 2>&1 & exit 5"
    )
    r = supervise(policy, ["sh", "-c", script], timeout=60)
    assert r.returncode == 5, r.explain()
    assert marker.read_text() == "done\n", r.explain()
    # The orphan (reparented away from the target) was still supervised.
    assert SECRET not in (files.root / "late.secret").read_text()
