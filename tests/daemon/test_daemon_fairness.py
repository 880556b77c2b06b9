"""One target flooding notified syscalls must not starve another target of the same daemon."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers.daemon import RunClient, running_daemon
from tests.helpers.run import Files, deny_list

VICTIM = """
import time
t = time.monotonic()
for i in range(400):
    with open({allowed!r}) as f:
        f.read()
    try:
        open({secret!r})
    except PermissionError:
        pass
print(time.monotonic() - t)
"""


def test_a_flooding_target_does_not_starve_another(
    tmp_path: Path, files: Files, target_bin: Callable[[str], Path]
) -> None:
    exe = target_bin("daemon_opener")
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        victim = [sys.executable, "-c", VICTIM.format(allowed=str(files.allowed),
                                                      secret=str(files.secret))]  # fmt: skip

        def victim_time() -> float:
            code, out, err = RunClient(daemon, policy, victim).wait(120)
            assert code == 0, err
            return float(out.strip())

        baseline = min(victim_time() for _ in range(2))
        flood_out = files.root / "flood.txt"
        flood = RunClient(
            daemon,
            policy,
            [exe, flood_out, files.allowed, files.secret, "2", "100000000", "0"],
        )
        deadline = time.monotonic() + 30
        while not flood_out.exists() or flood_out.stat().st_size < 10000:
            assert time.monotonic() < deadline, "the flood did not start"
            time.sleep(0.05)
        try:
            flooded = victim_time()
            assert flood.proc.poll() is None
            size = flood_out.stat().st_size
            time.sleep(0.2)
            assert flood_out.stat().st_size > size, "the flooder itself stalled"
        finally:
            flood.proc.send_signal(signal.SIGTERM)  # relayed to the target
            flood.wait(30)
        # Round-robin between targets: the victim waits for at most a batch of the flooder's
        # notifications per syscall. The issue asks p99 within 5x; this is the whole run.
        print(f"victim: {baseline:.3f}s alone, {flooded:.3f}s beside a flood")
        assert flooded < 5 * baseline + 0.5, (baseline, flooded)


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
            deadline = time.monotonic() + 30
            while not counter.exists() or counter.stat().st_size < 4096:
                assert time.monotonic() < deadline, "the flood did not start"
                assert flood.proc.poll() is None, flood.wait()
                time.sleep(0.05)
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
            deadline = time.monotonic() + 30
            while daemon.request("status")["targets"]:
                assert time.monotonic() < deadline, "targets still attached"
                time.sleep(0.05)

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
