"""One target flooding notified syscalls must not starve another target of the same daemon."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .daemon_helpers import RunClient, running_daemon
from .run_helpers import Files, deny_list

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
