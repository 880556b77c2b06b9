"""End to end: fault injection, value answers, limits and rates with real targets (the
`calls` C target prints one line per syscall: "OK:<ret>" or the errno name)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from tests.helpers.run import Supervise, policy_text


def rule(name: str, syscalls: list[str], action: str, extra: str = "", path: str = "") -> str:
    text = f'[[rule]]\nname = "{name}"\nsyscalls = {syscalls!r}\naction = "{action}"\n'.replace(
        "'", '"'
    )
    if path:
        text += f'path = ["{path}"]\n'
    return text + extra + "\n"


def ok_or_errno(lines: list[str]) -> list[str]:
    return ["OK" if ln.startswith("OK:") else ln for ln in lines]


def test_fault_injection_same_seed_same_failures(supervise: Supervise, target_bin) -> None:
    """Two runs with seed 42 fail the same calls: exactly those random.Random(42) picks."""
    text = policy_text(
        "faults",
        "allow",
        rule("flaky", ["getppid"], "fail", 'errno = "ENOSPC"\nprobability = 0.3\nseed = 42\n'),
    )
    policy = supervise.policy(text)
    runs = [supervise(policy, [target_bin("calls"), "getppid", "60"]) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.explain()
    first, second = (ok_or_errno(r.lines) for r in runs)
    dice = random.Random(42)
    expected = ["ENOSPC" if dice.random() < 0.3 else "OK" for _ in range(60)]
    assert first == second == expected, runs[0].explain()
    assert 5 < first.count("ENOSPC") < 40
    failed = runs[0].named("syscall.failed")
    assert failed and failed[0]["rule"] == "flaky" and failed[0]["errno"] == "ENOSPC"


def test_fault_injection_every_nth_open(supervise: Supervise, target_bin, world_dir: Path) -> None:
    """`every = 3` on opens of one directory: the 3rd, 6th, ... open fail with EIO; the
    others are performed by the supervisor (the re-check of the opened path rolls no dice)."""
    f = world_dir / "data.txt"
    f.write_text("x\n")
    text = policy_text(
        "faults", "allow", rule("every-3rd", ["openat"], "fail", "every = 3\n", f"{world_dir}/**")
    )
    r = supervise(supervise.policy(text), [target_bin("calls"), "openat", f, "7"])
    assert r.returncode == 0, r.explain()
    assert ok_or_errno(r.lines) == ["OK", "OK", "EIO", "OK", "OK", "EIO", "OK"], r.explain()


def test_value_zero_mkdir_succeeds_without_a_directory(
    supervise: Supervise, target_bin, world_dir: Path
) -> None:
    pretend, real = world_dir / "pretend", world_dir / "real"
    text = policy_text(
        "values",
        "allow",
        rule("fake-mkdir", ["mkdir", "mkdirat"], "value", "value = 0\n", f"{pretend}"),
    )
    r = supervise(
        supervise.policy(text),
        [target_bin("calls"), "mkdir", pretend, "exists", pretend, "mkdir", real, "exists", real],
    )
    assert r.returncode == 0, r.explain()
    assert r.lines == ["OK:0", "ENOENT", "OK:0", "OK:0"], r.explain()
    assert not pretend.exists() and real.is_dir()
    answered = r.named("syscall.answered")
    assert answered and answered[0]["value"] == 0 and answered[0]["path"] == str(pretend)


def test_value_answers_a_number(supervise: Supervise, target_bin) -> None:
    text = policy_text("values", "allow", rule("ppid", ["getppid"], "value", "value = 4242\n"))
    r = supervise(supervise.policy(text), [target_bin("calls"), "getppid", "2"])
    assert r.returncode == 0 and r.lines == ["OK:4242", "OK:4242"], r.explain()


def test_limit_three_then_deny(supervise: Supervise, target_bin) -> None:
    text = policy_text(
        "limits", "allow", rule("three", ["getppid"], "allow", 'limit = 3\nover_errno = "EAGAIN"\n')
    )
    r = supervise(supervise.policy(text), [target_bin("calls"), "getppid", "6"])
    assert r.returncode == 0, r.explain()
    assert ok_or_errno(r.lines) == ["OK"] * 3 + ["EAGAIN"] * 3, r.explain()
    denied = r.named("syscall.denied")
    assert denied and denied[0]["over_limit"] is True and denied[0]["rule"] == "three"


def test_limit_then_kill(supervise: Supervise, target_bin) -> None:
    text = policy_text(
        "limits", "allow", rule("two", ["getppid"], "allow", 'limit = 2\nover = "kill"\n')
    )
    r = supervise(supervise.policy(text), [target_bin("calls"), "getppid", "5"])
    assert r.returncode == 137, r.explain()
    assert ok_or_errno(r.lines) == ["OK", "OK"], r.explain()


def test_limit_per_process_and_per_tree(supervise: Supervise, target_bin) -> None:
    """Two children, one after the other, each make 3 calls under `limit = 2`."""
    cmd = [target_bin("calls"), "fork", "2", "getppid", "3"]
    per_process = policy_text(
        "limits", "allow", rule("two", ["getppid"], "allow", 'limit = 2\nper = "process"\n')
    )
    r = supervise(supervise.policy(per_process), cmd)
    assert r.returncode == 0, r.explain()
    assert ok_or_errno(r.lines) == ["OK", "OK", "EPERM", "OK"] * 2, r.explain()
    per_tree = policy_text("limits", "allow", rule("two", ["getppid"], "allow", "limit = 2\n"))
    r = supervise(supervise.policy(per_tree), cmd)
    assert r.returncode == 0, r.explain()
    expected = ["OK", "OK", "EPERM", "OK", "EPERM", "EPERM", "EPERM", "OK"]
    assert ok_or_errno(r.lines) == expected, r.explain()


def test_rate_limit_under_a_burst(supervise: Supervise, target_bin) -> None:
    """`rate = "5/s"`, burst 3: a burst of 40 calls gets the 3 tokens (a 4th at most if the
    burst were slow); after 600 ms 3 tokens again (not more: the bucket holds 3)."""
    text = policy_text(
        "rates",
        "allow",
        rule("slow", ["getppid"], "allow", 'rate = "5/s"\nburst = 3\nover_errno = "EAGAIN"\n'),
    )
    r = supervise(
        supervise.policy(text),
        [target_bin("calls"), "getppid", "40", "sleep_ms", "600", "getppid", "40"],
    )
    assert r.returncode == 0, r.explain()
    got = ok_or_errno(r.lines)
    assert len(got) == 80 and set(got) == {"OK", "EAGAIN"}, r.explain()
    first, second = got[:40], got[40:]
    assert first[:3] == ["OK"] * 3 and 3 <= first.count("OK") <= 4, got
    assert second[:3] == ["OK"] * 3 and 3 <= second.count("OK") <= 4, got


def test_shipped_fault_injection_fsync(supervise: Supervise, tmp_path: Path) -> None:
    """The shipped profile: every 4th fsync fails with EIO, writes to stdout never fail."""
    code = (
        "import os\n"
        f"fd = os.open({str(tmp_path / 'f')!r}, os.O_WRONLY | os.O_CREAT)\n"
        "for i in range(8):\n"
        "    try:\n"
        "        os.fsync(fd)\n"
        "        print('OK')\n"
        "    except OSError as e:\n"
        "        print(errno.errorcode[e.errno])\n"
    ).replace("import os", "import errno, os")
    r = supervise("fault-injection", [sys.executable, "-c", code])
    assert r.returncode == 0, r.explain()
    assert r.lines == ["OK", "OK", "OK", "EIO"] * 2, r.explain()


def test_limit_per_user(supervise: Supervise, target_bin) -> None:
    """`per = "user"`: a child that became nobody has its own count; per tree it has none left."""
    cmd = [target_bin("calls"), "getppid", "2", "fork", "1", "setuid", "65534", "getppid", "2"]
    per_user = policy_text(
        "limits", "allow", rule("two", ["getppid"], "allow", 'limit = 2\nper = "user"\n')
    )
    r = supervise(supervise.policy(per_user), cmd)
    assert r.returncode == 0, r.explain()
    assert ok_or_errno(r.lines) == ["OK"] * 6, r.explain()
    per_tree = policy_text("limits", "allow", rule("two", ["getppid"], "allow", "limit = 2\n"))
    r = supervise(supervise.policy(per_tree), cmd)
    assert r.returncode == 0, r.explain()
    assert ok_or_errno(r.lines) == ["OK", "OK", "OK", "EPERM", "EPERM", "OK"], r.explain()
