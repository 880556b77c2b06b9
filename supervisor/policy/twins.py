"""i386 twins: the i386 syscalls that do what an x86_64 syscall does under another name.

A filter covers both ABIs (supervisor/kernel/filter.py) by resolving every syscall NAME per
architecture, so a rule on ``newfstatat`` says nothing about i386, where the same call is
``fstatat64``; a rule on ``stat`` covers i386 ``stat`` but not ``stat64``, the one i386 libc
uses. A program that enters the i386 table with ``int $0x80`` would walk past such a rule. So a
rule that names a syscall also applies to its twins (``TWINS``, applied by policy/parse/rule.py).

A twin is listed with the argument numbers that have the same meaning and the same layout in
both (``same_args``). Where a 64-bit value takes two i386 registers (truncate64's length,
mmap2's offset in pages, ...) the later arguments move or change: a rule whose ``args`` test
another argument cannot cover that twin, and the policy is refused unless some rule names the
twin itself (with conditions in its own terms).

``I386_SAME_NAME``: i386 syscalls that share the x86_64 name (so rules reach them) but not the
argument layout: i386 ``mmap`` and ``select`` take one pointer to their arguments in memory,
``chown``, ``setuid``, ... take 16-bit ids, pread64's offset takes two registers. Value
conditions on those arguments do not mean on i386 what they mean on x86_64: a load warning
says so (``abi_warnings``).

Names are libseccomp's (supervisor/policy/tables/_syscall_names.py); tests check every entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .model import Action, Rule

ALL_ARGS = frozenset(range(6))
MAX_ID16 = 0xFFFF


@dataclass(frozen=True)
class Twin:
    """An i386 syscall ``name`` that does what its x86_64 counterpart does.

    ``same_args``: the argument numbers with the same meaning and layout in both. ``differs``
    says what is different, for messages ("" when every argument is the same).
    """

    name: str
    same_args: frozenset[int] = ALL_ARGS
    differs: str = ""


def _args(*indexes: int) -> frozenset[int]:
    return frozenset(indexes)


_SPLIT = "its 64-bit {} takes two registers, so the later arguments move"

_TWINS: dict[str, tuple[Twin, ...]] = {
    # stat family: the large-file struct stat64 (and the old struct of oldstat), same arguments
    "newfstatat": (Twin("fstatat64"),),
    "stat": (Twin("stat64"), Twin("oldstat")),
    "lstat": (Twin("lstat64"), Twin("oldlstat")),
    "fstat": (Twin("fstat64"), Twin("oldfstat")),
    "statfs": (Twin("statfs64", _args(0), "it takes the struct size in arg1, the buffer in arg2"),),
    "fstatfs": (
        Twin("fstatfs64", _args(0), "it takes the struct size in arg1, the buffer in arg2"),
    ),
    # 32-bit ids (the i386 syscalls of the x86_64 names take 16-bit ids: I386_SAME_NAME)
    "chown": (Twin("chown32"),),
    "lchown": (Twin("lchown32"),),
    "fchown": (Twin("fchown32"),),
    "setuid": (Twin("setuid32"),),
    "setgid": (Twin("setgid32"),),
    "setreuid": (Twin("setreuid32"),),
    "setregid": (Twin("setregid32"),),
    "setresuid": (Twin("setresuid32"),),
    "setresgid": (Twin("setresgid32"),),
    "setgroups": (Twin("setgroups32"),),
    "setfsuid": (Twin("setfsuid32"),),
    "setfsgid": (Twin("setfsgid32"),),
    "getuid": (Twin("getuid32"),),
    "geteuid": (Twin("geteuid32"),),
    "getgid": (Twin("getgid32"),),
    "getegid": (Twin("getegid32"),),
    "getgroups": (Twin("getgroups32"),),
    "getresuid": (Twin("getresuid32"),),
    "getresgid": (Twin("getresgid32"),),
    # large files: 64-bit lengths and offsets
    "truncate": (Twin("truncate64", _args(0), _SPLIT.format("length")),),
    "ftruncate": (Twin("ftruncate64", _args(0), _SPLIT.format("length")),),
    "lseek": (Twin("_llseek", _args(0), _SPLIT.format("offset") + " and whence is arg4"),),
    "fadvise64": (Twin("fadvise64_64", _args(0), _SPLIT.format("offset and length")),),
    "sendfile": (Twin("sendfile64"),),
    # fcntl64 takes the same arguments (its lock commands F_GETLK64... have their own numbers)
    "fcntl": (Twin("fcntl64"),),
    "mmap": (Twin("mmap2", _args(0, 1, 2, 3, 4), "its offset (arg5) is in pages, not bytes"),),
    # the i386 syscalls of these names are older interfaces (I386_SAME_NAME)
    "getrlimit": (Twin("ugetrlimit"),),
    "select": (Twin("_newselect"),),
    "umount2": (Twin("umount", _args(0), "it has no flags argument"),),
    "wait4": (Twin("waitpid", _args(0, 1, 2), "it has no rusage argument"),),
    "uname": (Twin("olduname"), Twin("oldolduname")),  # one argument: the buffer
    "settimeofday": (Twin("stime", frozenset(), "it takes a pointer to a time_t"),),
    # the old i386 signal calls (old_sigset_t, struct old_sigaction)
    "rt_sigaction": (
        Twin("sigaction", _args(0), "its structs are the old ones"),
        Twin("signal", _args(0), "it takes the handler in arg1"),
    ),
    "rt_sigprocmask": (Twin("sigprocmask", _args(0, 1, 2), "its sigset is the old one"),),
    "rt_sigpending": (Twin("sigpending", _args(0), "its sigset is the old one"),),
    "rt_sigsuspend": (Twin("sigsuspend", frozenset(), "its mask is in arg2, by value"),),
    "rt_sigreturn": (Twin("sigreturn", frozenset(), "it restores the old sigcontext"),),
    # time64: the 64-bit time_t variants 32-bit libc uses (same arguments, wider structs)
    "clock_gettime": (Twin("clock_gettime64"),),
    "clock_settime": (Twin("clock_settime64"),),
    "clock_adjtime": (Twin("clock_adjtime64"),),
    "clock_getres": (Twin("clock_getres_time64"),),
    "clock_nanosleep": (Twin("clock_nanosleep_time64"),),
    "timer_settime": (Twin("timer_settime64"),),
    "timer_gettime": (Twin("timer_gettime64"),),
    "timerfd_settime": (Twin("timerfd_settime64"),),
    "timerfd_gettime": (Twin("timerfd_gettime64"),),
    "futex": (Twin("futex_time64"),),
    "ppoll": (Twin("ppoll_time64"),),
    "pselect6": (Twin("pselect6_time64"),),
    "utimensat": (Twin("utimensat_time64"),),
    "recvmmsg": (Twin("recvmmsg_time64"),),
    "rt_sigtimedwait": (Twin("rt_sigtimedwait_time64"),),
    "semtimedop": (Twin("semtimedop_time64"),),
    "mq_timedsend": (Twin("mq_timedsend_time64"),),
    "mq_timedreceive": (Twin("mq_timedreceive_time64"),),
    "io_pgetevents": (Twin("io_pgetevents_time64"),),
    "sched_rr_get_interval": (Twin("sched_rr_get_interval_time64"),),
}

TWINS: Mapping[str, tuple[Twin, ...]] = MappingProxyType(_TWINS)


@dataclass(frozen=True)
class SameName:
    """An i386 syscall with the x86_64 name but another argument layout: ``same_args`` as in
    Twin; ``id16``: the arguments that are 16-bit ids there (-1 is 0xffff)."""

    same_args: frozenset[int]
    differs: str
    id16: frozenset[int] = frozenset()


_IN_MEMORY = "takes one pointer to its arguments in memory, which the kernel cannot test"
_ID16 = "takes 16-bit ids (-1 is 0xffff; the 32-bit one is {})"

I386_SAME_NAME: Mapping[str, SameName] = MappingProxyType(
    {
        "mmap": SameName(frozenset(), _IN_MEMORY + " (old_mmap; libc uses mmap2)"),
        "select": SameName(frozenset(), _IN_MEMORY + " (old_select; libc uses _newselect)"),
        "chown": SameName(ALL_ARGS, _ID16.format("chown32"), _args(1, 2)),
        "lchown": SameName(ALL_ARGS, _ID16.format("lchown32"), _args(1, 2)),
        "fchown": SameName(ALL_ARGS, _ID16.format("fchown32"), _args(1, 2)),
        "setuid": SameName(ALL_ARGS, _ID16.format("setuid32"), _args(0)),
        "setgid": SameName(ALL_ARGS, _ID16.format("setgid32"), _args(0)),
        "setfsuid": SameName(ALL_ARGS, _ID16.format("setfsuid32"), _args(0)),
        "setfsgid": SameName(ALL_ARGS, _ID16.format("setfsgid32"), _args(0)),
        "setreuid": SameName(ALL_ARGS, _ID16.format("setreuid32"), _args(0, 1)),
        "setregid": SameName(ALL_ARGS, _ID16.format("setregid32"), _args(0, 1)),
        "setresuid": SameName(ALL_ARGS, _ID16.format("setresuid32"), _args(0, 1, 2)),
        "setresgid": SameName(ALL_ARGS, _ID16.format("setresgid32"), _args(0, 1, 2)),
        "pread64": SameName(_args(0, 1, 2), _SPLIT.format("offset")),
        "pwrite64": SameName(_args(0, 1, 2), _SPLIT.format("offset")),
        "readahead": SameName(_args(0), _SPLIT.format("offset")),
        "fallocate": SameName(_args(0, 1), _SPLIT.format("offset and length")),
        "sync_file_range": SameName(_args(0), _SPLIT.format("offset and length")),
        "fadvise64": SameName(_args(0), _SPLIT.format("offset")),
    }
)


def incompatible_args(rule_args: Iterable[int], twin: Twin) -> tuple[int, ...]:
    """The argument numbers a rule tests that do not mean the same in ``twin``."""
    return tuple(sorted({i for i in rule_args if i not in twin.same_args}))


def twins_of(names: Iterable[str]) -> dict[str, tuple[str, Twin]]:
    """For syscall names: {twin name: (the name it is the twin of, Twin)} for the twins not
    among ``names`` themselves."""
    given = frozenset(names)
    out: dict[str, tuple[str, Twin]] = {}
    for name in sorted(given):
        for twin in TWINS.get(name, ()):
            if twin.name not in given:
                out.setdefault(twin.name, (name, twin))
    return out


def abi_warnings(rules: Iterable[Rule]) -> tuple[str, ...]:
    """Warnings for value conditions that i386 syscalls of the same name read differently."""
    out = []
    for rule in rules:
        if not rule.args or rule.syscalls is None:
            continue
        notes = []
        for name in sorted(rule.syscalls & I386_SAME_NAME.keys()):
            same = I386_SAME_NAME[name]
            moved = sorted({c.index for c in rule.args if c.index not in same.same_args})
            wide = sorted(
                {
                    c.index
                    for c in rule.args
                    if c.index in same.id16 and max(c.value, c.mask) > MAX_ID16
                }
            )
            if moved:
                where = ", ".join(f"arg{i}" for i in moved)
                notes.append(f"i386 {name} {same.differs}: its {where} is not the x86_64 one")
            elif wide:
                where = ", ".join(f"arg{i}" for i in wide)
                notes.append(
                    f"i386 {name} {same.differs}: a value above 0xffff in {where} never matches"
                )
        if notes:
            out.append(
                f"{rule.where()}: the conditions do not test the same thing for i386 "
                f"(int $0x80) callers, which reach the rule by the same name: {'; '.join(notes)}. "
                "A refusal by these conditions may not stop an i386 caller"
            )
    return tuple(out)


# The calls i386 programs make through the ipc(2) multiplexer (Linux 5.1 added direct i386
# syscalls for them, which glibc does not use everywhere); policy/plan.py refuses ipc when a
# rule on one of them cannot be applied to it.
IPC_SYSCALLS = frozenset(
    {
        "semop", "semget", "semctl", "semtimedop", "semtimedop_time64",
        "msgsnd", "msgrcv", "msgget", "msgctl",
        "shmat", "shmdt", "shmget", "shmctl",
    }
)  # fmt: skip


def ipc_warnings(rules: Iterable[Rule]) -> tuple[str, ...]:
    """A warning for rules on SysV IPC syscalls that the kernel cannot apply to i386 ipc(2)
    (argument conditions, or a decision of the supervisor): the filter refuses ipc then."""
    out = []
    for rule in rules:
        names = sorted((rule.syscalls or frozenset()) & IPC_SYSCALLS)
        if names and (rule.args or rule.stateful or rule.action is Action.LOG):
            out.append(
                f"{rule.where()}: i386 programs reach {', '.join(names)} through ipc(2), whose "
                "arguments the kernel filter cannot check call by call: i386 ipc() is refused "
                "with ENOSYS under this policy (64-bit callers, and i386 callers of the direct "
                "syscalls, are decided by the rule)"
            )
    return tuple(out)
