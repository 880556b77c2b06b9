"""Where the daemon finds a policy by name (--policy-dir, then the system directory, then the
shipped policies/), and the exit status of `run --daemon` (as `run`'s: the target's code,
128+N when a signal killed it, signals sent to `run` relayed to the target)."""

from __future__ import annotations

import signal
from pathlib import Path

from supervisor.policy_path import policy_dirs
from tests.helpers.daemon import RunClient, running_daemon
from tests.helpers.run import HARMLESS, SECRET, Files, deny_list
from tests.helpers.wait import wait_until


def test_policy_search_order(tmp_path: Path, files: Files) -> None:
    system = tmp_path / "system"
    system.mkdir()
    env = {"SECCOMP_SUPERVISOR_SYSTEM_POLICY_DIR": str(system)}
    with running_daemon(tmp_path, env=env) as daemon:
        shipped = [d for d in policy_dirs() if (d / "default.toml").is_file()][0]
        assert daemon.request("status")["policy_dirs"][:3] == [
            str(daemon.policy_dir),
            str(system),
            str(shipped),
        ]
        # Only the shipped one.
        assert daemon.request("policy", name="default")["path"] == str(shipped / "default.toml")
        # The system directory before the shipped one ...
        (system / "default.toml").write_text(deny_list(files.secret, name="default"))
        assert daemon.request("reload")["changed"] == ["default"]
        assert daemon.request("policy", name="default")["path"] == str(system / "default.toml")
        run = RunClient(daemon, "default", ["cat", files.secret, files.allowed])
        _, out, _ = run.wait()
        assert HARMLESS in out and SECRET not in out
        # ... and --policy-dir before both.
        user = daemon.policy("default", deny_list(files.allowed, name="default"))
        assert daemon.request("reload")["changed"] == ["default"]
        assert daemon.request("policy", name=user)["path"] == str(
            daemon.policy_dir / "default.toml"
        )
        run = RunClient(daemon, "default", ["cat", files.secret, files.allowed])
        _, out, _ = run.wait()
        assert SECRET in out and HARMLESS not in out
        # Removed from --policy-dir: the system one again.
        (daemon.policy_dir / "default.toml").unlink()
        daemon.request("reload")
        assert daemon.request("policy", name="default")["path"] == str(system / "default.toml")


def test_run_daemon_exit_status(tmp_path: Path, files: Files, world_dir: Path) -> None:
    with running_daemon(tmp_path) as daemon:
        policy = daemon.policy("p", deny_list(files.secret, name="p"))
        code, _, err = RunClient(daemon, policy, ["sh", "-c", "exit 7"]).wait()
        assert code == 7, err
        code, _, err = RunClient(daemon, policy, ["sh", "-c", "kill -KILL $$"]).wait()
        assert code == 128 + signal.SIGKILL, err
        # SIGTERM to `run` goes to the target: here it traps it and exits 3.
        ready = world_dir / "ready"
        script = f'trap "echo got-term; exit 3" TERM; touch {ready}; while :; do sleep 0.05; done'
        run = RunClient(daemon, policy, ["sh", "-c", script])
        run.wait_for("daemon.attached")
        deadline_wait(ready)
        run.proc.send_signal(signal.SIGTERM)
        code, out, err = run.wait()
        assert code == 3 and "got-term" in out, (code, out, err)
        # ... and one the target does not handle kills it: 128+15.
        ready.unlink()
        run = RunClient(daemon, policy, ["sh", "-c", f"touch {ready}; exec sleep 60"])
        run.wait_for("daemon.attached")
        deadline_wait(ready)
        run.proc.send_signal(signal.SIGTERM)
        code, _, err = run.wait()
        assert code == 128 + signal.SIGTERM, err


def deadline_wait(path: Path) -> None:
    wait_until(path.exists, f"{path} created")
