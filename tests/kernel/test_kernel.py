"""The kernel layer against the real kernel: filters, the listener ioctls, memory reads."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from supervisor.kernel.filter import arch_name, filter_arches, syscall_names
from supervisor.kernel.memory import MemoryReader, TargetGone, TargetMemoryError
from supervisor.kernel.seccomp import notif_sizes
from supervisor.policy import FilterPlan, KernelAction, KernelRule
from tests.helpers.kernel import finish, next_notification, notify_plan, start


def test_notif_sizes_match_the_structs_we_use() -> None:
    notif, resp, data = notif_sizes()
    assert (notif, resp, data) == (80, 24, 64)


def test_filter_covers_native_and_i386() -> None:
    arches = [arch_name(a) for a in filter_arches()]
    assert arches == ["x86_64", "i386"]
    names = syscall_names()
    x86_64, i386 = filter_arches()
    assert names[(x86_64, 2)] == "open"
    assert names[(i386, 5)] == "open"
    assert names[(i386, 195)] == "stat64"


def test_kernel_decided_errno_and_allow(tmp_path: Path) -> None:
    plan = FilterPlan(
        default=KernelAction("allow"),
        rules=(
            KernelRule("mkdir", KernelAction("errno", errno.EROFS)),
            KernelRule("mkdirat", KernelAction("errno", errno.EROFS)),
        ),
        notified=frozenset(),
        kernel_decided=frozenset({"mkdir", "mkdirat"}),
    )
    out = tmp_path / "out"
    launched = start(plan, ["/bin/sh", "-c", f"mkdir {tmp_path}/d 2>{out}; echo $? >>{out}"])
    assert next_notification(launched.listener) is None  # nothing reaches userspace
    assert finish(launched) == 0
    text = out.read_text()
    assert "Read-only file system" in text
    assert not (tmp_path / "d").exists()


def test_recv_reads_path_and_answers(tmp_path: Path, target_bin: object) -> None:
    target = tmp_path / "sub" / "dir"
    out = tmp_path / "out"
    launched = start(
        notify_plan("mkdir", "mkdirat"),
        ["/bin/sh", "-c", f"mkdir {target} 2>{out}; echo $? >>{out}"],
    )
    n = next_notification(launched.listener)
    assert n is not None
    assert syscall_names()[(n.arch, n.nr)] in ("mkdir", "mkdirat")
    reader = MemoryReader(launched.listener.fileno())
    path_arg = n.args[0] if syscall_names()[(n.arch, n.nr)] == "mkdir" else n.args[1]
    assert reader.read_string(n.id, n.pid, path_arg) == os.fsencode(target)
    assert launched.listener.id_valid(n.id)
    assert launched.listener.send_error(n.id, errno.EXDEV)
    assert not launched.listener.id_valid(n.id)
    assert next_notification(launched.listener) is None
    assert finish(launched) == 0
    assert "Invalid cross-device link" in out.read_text()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("ok", b"/nonexistent-dir/x"),
        ("cross", errno.EFAULT),
        ("null", errno.EFAULT),
        ("long", errno.ENAMETOOLONG),
    ],
)
def test_string_reads_at_the_edge_of_mapped_memory(
    tmp_path: Path, target_bin: object, mode: str, expected: bytes | int
) -> None:
    exe = target_bin("memedge")  # type: ignore[operator]
    out = tmp_path / "out"
    launched = start(notify_plan("mkdir"), ["/bin/sh", "-c", f"exec {exe} {mode} >{out}"])
    n = next_notification(launched.listener)
    assert n is not None
    reader = MemoryReader(launched.listener.fileno())
    if isinstance(expected, bytes):
        assert reader.read_string(n.id, n.pid, n.args[0]) == expected
        launched.listener.send_error(n.id, errno.ENOENT)
    else:
        with pytest.raises(TargetMemoryError) as info:
            reader.read_string(n.id, n.pid, n.args[0])
        assert info.value.errno == expected
        launched.listener.send_error(n.id, expected)
    assert next_notification(launched.listener) is None
    assert finish(launched) == 0
    want = "ENOENT" if isinstance(expected, bytes) else errno.errorcode[expected]
    assert out.read_text().strip() == want


def test_reads_of_a_dead_target_say_gone(tmp_path: Path) -> None:
    launched = start(notify_plan("mkdir"), ["/bin/sh", "-c", f"exec mkdir {tmp_path}/x"])
    n = next_notification(launched.listener)
    assert n is not None
    os.kill(launched.pid, 9)
    os.waitid(os.P_PID, launched.pid, os.WEXITED | os.WNOWAIT)
    assert not launched.listener.id_valid(n.id)
    with pytest.raises(TargetGone):
        MemoryReader(launched.listener.fileno()).read_string(n.id, n.pid, n.args[0])
    # Answering a notification whose target died is not an error: False, not an exception.
    assert launched.listener.send_error(n.id, errno.EPERM) is False
    assert os.WTERMSIG(finish(launched)) == 9


def test_continue_lets_the_syscall_run(tmp_path: Path) -> None:
    launched = start(notify_plan("mkdir"), ["/bin/sh", "-c", f"exec mkdir {tmp_path}/made"])
    n = next_notification(launched.listener)
    assert n is not None
    assert launched.listener.send_continue(n.id)
    assert next_notification(launched.listener) is None
    assert finish(launched) == 0
    assert (tmp_path / "made").is_dir()


def test_closing_the_listener_fails_closed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    launched = start(notify_plan("mkdir"), ["/bin/sh", "-c", f"mkdir {tmp_path}/x 2>{out}"])
    n = next_notification(launched.listener)
    assert n is not None
    launched.listener.close()
    _, status = os.waitpid(launched.pid, 0)
    os.close(launched.pidfd)
    os.close(launched.exec_status_fd)
    assert os.WEXITSTATUS(status) != 0
    assert "Function not implemented" in out.read_text()
    assert not (tmp_path / "x").exists()
