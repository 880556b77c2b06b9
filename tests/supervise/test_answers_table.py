"""The answered syscalls' table (supervise/answers.py) covers every ANSWERED_SYSCALLS name on
each ABI that has it, and nothing else: a syscall the policy side counts as enforced is never
left to the advisory CONTINUE for want of an entry."""

from __future__ import annotations

from supervisor.policy import ANSWERED_SYSCALLS, EMULATED_SYSCALLS, path_args
from supervisor.policy.tables.syscalls import I386_SYSCALLS, X86_64_SYSCALLS
from supervisor.supervise.answers import CALLS


def test_every_answered_syscall_has_an_entry_on_each_abi() -> None:
    for arch, names in (("x86_64", X86_64_SYSCALLS), ("i386", I386_SYSCALLS)):
        want = ANSWERED_SYSCALLS & names
        got = {name for a, name in CALLS if a == arch}
        assert got == want, (arch, got ^ want)


def test_entries_are_path_syscalls_with_one_path() -> None:
    for arch, name in CALLS:
        assert len(path_args(name, arch)) == 1, (arch, name)
    assert ANSWERED_SYSCALLS <= EMULATED_SYSCALLS
