"""Routes a hostile target tried that held on main and must keep holding (issue 14, route 5):
a supervisor that dies fails the target's notified syscalls closed (ENOSYS), and a supervisor
starved of file descriptors refuses (EMFILE or EPERM), never allows. (The x32 ABI being killed
is tests/kernel/test_syscall_tables.py's; a target killing its own supervisor is refused by the
tamper guard: tests/run/test_run_tamper.py.)"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers.run import SUPERVISOR, Files, deny_list, read_line
from tests.helpers.wait import wait_until

# The target: says "ready", then for every line on stdin opens DENIED and ALLOWED ROUNDS times
# and prints what each open gave (OK, LEAK for the secret's bytes, or the errno's name).
TARGET = r"""
import errno, sys
denied, allowed, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
for _ in sys.stdin:
    out = []
    for _ in range(rounds):
        for path, tag in ((denied, "d"), (allowed, "a")):
            try:
                with open(path, "rb") as f:
                    data = f.read()
                out.append(f"{tag}=" + ("LEAK" if b"SECRET" in data else "OK"))
            except OSError as e:
                out.append(f"{tag}=" + errno.errorcode.get(e.errno, str(e.errno)))
    print(" ".join(out), flush=True)
"""


def _start(tmp_path: Path, files: Files, rounds: int) -> subprocess.Popen[str]:
    policy = tmp_path / "held.toml"
    policy.write_text(deny_list(files.secret, name="held"))
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    argv = [str(SUPERVISOR), "--log-format", "json", "--log-file", str(tmp_path / "log"), "run"]
    argv += ["-p", str(policy), "--", sys.executable, str(script)]
    argv += [str(files.secret), str(files.allowed), str(rounds)]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert read_line(proc, 60).strip() == "ready"
    return proc


def _round(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return read_line(proc, 60).split()


def _target_pid(run_pid: int) -> int:
    children = Path(f"/proc/{run_pid}/task/{run_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_a_dead_supervisor_fails_notified_syscalls_closed(tmp_path: Path, files: Files) -> None:
    files.secret.write_bytes(b"SECRET\n")
    proc = _start(tmp_path, files, rounds=3)
    try:
        assert _round(proc) == ["d=EACCES", "a=OK"] * 3  # the control: supervised
        target = _target_pid(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the launcher is the supervisor
        proc.wait(30)
        # The target lives on, reparented; its notified opens now fail with ENOSYS.
        wait_until(lambda: Path(f"/proc/{target}").exists(), "the target outlives run")
        got = _round(proc)
        assert got == ["d=ENOSYS", "a=ENOSYS"] * 3, got
    finally:
        proc.kill()
        if proc.stdin is not None:
            proc.stdin.close()
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    if str(files.secret) in (p / "cmdline").read_text():
                        os.kill(int(p.name), signal.SIGKILL)
                except OSError:
                    continue
        proc.wait(30)


def test_a_supervisor_out_of_fds_refuses_never_allows(tmp_path: Path, files: Files) -> None:
    files.secret.write_bytes(b"SECRET\n")
    proc = _start(tmp_path, files, rounds=50)
    try:
        assert set(_round(proc)) == {"d=EACCES", "a=OK"}  # the control
        # RLIMIT_NOFILE of the running supervisor lowered to 4 (it holds more already: every
        # new fd it needs, an O_PATH lookup, an emulated open, fails with EMFILE).
        soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (4, hard))
        got = _round(proc)
        denied = {g for g in got if g.startswith("d=")}
        allowed = {g for g in got if g.startswith("a=")}
        assert "d=LEAK" not in denied and "d=OK" not in denied, got
        assert denied <= {"d=EACCES", "d=EPERM", "d=EMFILE"}, got
        assert allowed <= {"a=OK", "a=EPERM", "a=EMFILE"}, got
        assert allowed != {"a=OK"}, f"the limit did not bite: {got}"
        # Given its fds back, the supervisor carries on as before: nothing was taken down.
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        assert set(_round(proc)) == {"d=EACCES", "a=OK"}
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        code = proc.wait(60)
    assert code == 0, (code, proc.stderr.read() if proc.stderr else "")
