"""One target flooding notified syscalls must not starve another target of the same daemon.

Checked here by events and counts, never by time: the victim gets every answer while the flood
goes on, and the daemon answers only a few of the flooder's calls during one call of the
victim. How long the victim takes beside a flood (its p99 within 5x of alone) is measured by
bench/daemon_load's ``fair`` phase."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

from tests.helpers.daemon import RunClient, running_daemon
from tests.helpers.run import Files, deny_list
from tests.helpers.wait import wait_until

VICTIM = """
answered = 0
for i in range(400):
    with open({allowed!r}) as f:
        assert f.read()
    try:
        open({secret!r})
    except PermissionError:
        answered += 1
print(answered)
"""


def test_a_flooding_target_does_not_starve_another(
    tmp_path: Path, files: Files, target_bin: Callable[[str], Path]
) -> None:
    exe = target_bin("daemon_opener")
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        victim = [sys.executable, "-c", VICTIM.format(allowed=str(files.allowed),
                                                      secret=str(files.secret))]  # fmt: skip

        def victim_denials() -> int:
            code, out, err = RunClient(daemon, policy, victim).wait(120)
            assert code == 0, err
            return int(out.strip())

        assert victim_denials() == 400  # alone
        flood_out = files.root / "flood.txt"
        flood = RunClient(
            daemon,
            policy,
            [exe, flood_out, files.allowed, files.secret, "2", "100000000", "0"],
        )
        wait_until(
            lambda: flood_out.exists() and flood_out.stat().st_size >= 10000, "the flood started"
        )
        try:
            size = flood_out.stat().st_size
            # Every call of the victim answered (and right) beside the flood, which went on
            # meanwhile and goes on after it: neither target was starved.
            assert victim_denials() == 400
            assert flood.proc.poll() is None
            assert flood_out.stat().st_size > size, "the flood stalled during the victim's run"
            after = flood_out.stat().st_size
            wait_until(lambda: flood_out.stat().st_size > after, "the flood going on")
        finally:
            flood.proc.send_signal(signal.SIGTERM)  # relayed to the target
            flood.wait(30)


def test_round_robin_between_a_flood_and_a_paced_target(
    tmp_path: Path, files: Files, target_bin: Callable[[str], Path]
) -> None:
    """Counted, not timed: while one call of the victim is in the daemon, the daemon answers only
    a few of the flooder's calls (it serves its targets one notification at a time). With the
    flooder served in batches of 32 the victim's calls each waited for ~16-32 of them."""
    exe = target_bin("daemon_fair")
    counter = tmp_path / "counter"
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        flood = RunClient(daemon, policy, [exe, "flood", counter, files.allowed, "4"])
        try:

            def started() -> bool:
                assert flood.proc.poll() is None, flood.wait()
                return counter.exists() and counter.stat().st_size >= 4096

            wait_until(started, "the flood started")
            victim = RunClient(
                daemon, policy, [exe, "victim", counter, files.allowed, "300", "1000"]
            )
            code, out, err = victim.wait(120)
            assert code == 0, err
            assert flood.proc.poll() is None, "the flooder died"
        finally:
            flood.proc.send_signal(signal.SIGTERM)
            flood.wait(30)
    lines = dict(line.split("=", 1) for line in out.splitlines())
    assert lines["answered"] == "300"
    during = sorted(int(x) for x in lines["flood_during"].split())
    assert len(during) == 300
    median = during[len(during) // 2]
    print(f"flood calls answered during one victim call: median {median}, max {during[-1]}")
    assert median <= 8, during


def test_many_targets_every_notification_is_answered(
    tmp_path: Path, files: Files, target_bin: Callable[[str], Path]
) -> None:
    """30 targets at once, 2 threads each: every notified open gets its (right) answer, and the
    daemon counted exactly the notifications the targets made."""
    exe = target_bin("daemon_opener")
    targets, threads, iters = 30, 2, 150
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))

        def notifications() -> int:
            return int(daemon.request("status")["totals"]["notifications"])

        def wait_idle() -> None:
            wait_until(lambda: not daemon.request("status")["targets"], "every target detached")

        # What one target costs besides its loop (the loader's opens, its output file).
        before = notifications()
        one = RunClient(daemon, policy, [exe, tmp_path / "one.txt", files.allowed, files.secret,
                                         "1", "0", "0"])  # fmt: skip
        assert one.wait(60)[0] == 0
        wait_idle()
        base = notifications() - before

        before = notifications()
        outs = [tmp_path / f"t{i}.txt" for i in range(targets)]
        clients = [
            RunClient(
                daemon,
                policy,
                [exe, out, files.allowed, files.secret, str(threads), str(iters), "0"],
            )  # fmt: skip
            for out in outs
        ]
        for client, out in zip(clients, outs, strict=True):
            code, _, err = client.wait(180)
            assert code == 0, err
            lines = out.read_text().splitlines()
            assert lines[-1] == "done"
            assert len(lines) == threads * iters + 1
            assert all(line.endswith("allowed=ok denied=EACCES") for line in lines[:-1])
        wait_idle()
        assert notifications() - before == targets * (base + threads * iters * 2)
