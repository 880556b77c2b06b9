"""`[capabilities]`: what the launcher drops before exec (issue 14), read back from
/proc/self/status in the target, under `run`."""

from __future__ import annotations

from pathlib import Path

from supervisor.policy.capabilities import CAPABILITY_NUMBERS
from tests.helpers.run import DEFAULT_DROPS, Supervise, policy_text

SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
STATUS = ["sh", "-c", "grep -E '^Cap' /proc/self/status; cat /proc/self/status >/dev/null"]


def cap_sets(lines: list[str]) -> dict[str, int]:
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in SETS:
            out[key] = int(value.strip(), 16)
    assert set(out) == set(SETS), lines
    return out


def own_sets() -> dict[str, int]:
    return cap_sets(Path("/proc/self/status").read_text().splitlines())


def bits(*names: str) -> int:
    return sum(1 << CAPABILITY_NUMBERS[n] for n in names)


def test_default_drops_the_dangerous_capabilities(supervise: Supervise) -> None:
    mine = own_sets()
    assert mine["CapEff"] & bits(*DEFAULT_DROPS), "the test needs a launcher with these caps"
    r = supervise("default", STATUS)
    assert r.returncode == 0, r.explain()
    got = cap_sets(r.lines)
    for name in SETS:
        assert got[name] & bits(*DEFAULT_DROPS) == 0, (name, hex(got[name]))
    # what ordinary root programs need is still there
    kept = bits("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_KILL")
    assert got["CapEff"] & kept == mine["CapEff"] & kept
    assert got["CapBnd"] & kept == mine["CapBnd"] & kept


def test_keep_drops_everything_else(supervise: Supervise) -> None:
    policy = supervise.policy(
        policy_text("keep", "allow", '[capabilities]\nkeep = ["CAP_CHOWN", "dac_override"]\n')
    )
    r = supervise(policy, STATUS)
    assert r.returncode == 0, r.explain()
    got = cap_sets(r.lines)
    want = bits("CAP_CHOWN", "CAP_DAC_OVERRIDE") & own_sets()["CapBnd"]
    assert got["CapBnd"] == want and got["CapEff"] == want & own_sets()["CapEff"], got
    assert got["CapInh"] == 0 and got["CapAmb"] == 0


def test_dropped_capability_cannot_come_back_through_exec(
    supervise: Supervise, tmp_path: Path
) -> None:
    # A setuid-root copy of sh would give root's bounding set back, if the bounding set kept it.
    policy = supervise.policy(
        policy_text("drop", "allow", '[capabilities]\ndrop = ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]\n')
    )
    r = supervise(policy, ["sh", "-c", "exec sh -c \"grep -E '^Cap' /proc/self/status\""])
    assert r.returncode == 0, r.explain()
    got = cap_sets(r.lines)
    for name in SETS:
        assert got[name] & bits("CAP_SYS_ADMIN", "CAP_NET_ADMIN") == 0, name
    assert got["CapEff"] & bits("CAP_CHOWN")


def test_a_capability_error_names_file_line_and_key(supervise: Supervise) -> None:
    policy = supervise.policy(
        policy_text("bad", "allow", '[capabilities]\ndrop = ["CAP_SYS_ADMINN"]\n')
    )
    r = supervise(policy, ["true"])
    assert r.returncode == 125
    assert f"{policy}:7: capabilities.drop: unknown capability 'CAP_SYS_ADMINN'" in r.stderr, (
        r.stderr
    )


def test_run_daemon_drops_them_and_guards_run_too(tmp_path: Path) -> None:
    """`run --daemon` launches through the same launcher: capabilities of the daemon's copy of
    `default` dropped, and `run` (the target's parent, holding a listener copy) guarded."""
    from tests.helpers.daemon import RunClient, running_daemon

    script = "grep -E '^Cap' /proc/self/status; kill -0 $PPID 2>/dev/null; echo kill=$?"
    with running_daemon(tmp_path) as daemon:
        run = RunClient(daemon, "default", ["sh", "-c", script])
        code, out, err = run.wait()
    assert code == 0, err
    lines = out.splitlines()
    got = cap_sets(lines)
    for name in SETS:
        assert got[name] & bits(*DEFAULT_DROPS) == 0, (name, hex(got[name]))
    assert lines[-1] == "kill=1"
