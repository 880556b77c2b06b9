"""Building the kernel filter, and the syscall number tables.

A plan (``supervisor.policy.FilterPlan``: pure data) becomes a classic-BPF program covering the
native ABI and the 32-bit ABI of the same machine (i386 through ``int $0x80`` on x86_64), so that
switching ABI never bypasses a rule. Any other architecture (x32, or anything the kernel may add)
is killed.

The program is two parts. Ours comes first and is built here from the project's own tables
(supervisor/policy/tables/_syscall_names.py, generated from the kernel's syscall tables):

1. the architecture: x86_64 or i386, else KILL_PROCESS; on x86_64 the x32 bit, KILL_PROCESS;
2. syscalls our tables know but libseccomp 2.5.4 does not (Linux 6.8 and later: statmount ...
   file_setattr, and x86_64's uretprobe/uprobe): libseccomp cannot name them, and a rule on a
   number it does not know fails for its i386 translation, so they are decided here by number,
   with the plan's rule for that syscall: an unconditioned rule is the kernel's answer, a
   conditioned one is notified (the engine then decides by value, as it would), none is the
   default;
3. a number our tables do not know: RET_ERRNO(ENOSYS), whatever the default. Unknown syscalls
   fail closed, the way glibc expects of a kernel that lacks a syscall.

Everything else falls through to libseccomp's program (seccomp_export_bpf), which checks the
architecture again and applies the rules by name. Jumps are forward only, so the two parts need
nothing but their concatenation.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Mapping
from functools import cache

from supervisor._native import ffi, lib
from supervisor.kernel._errors import check_neg
from supervisor.policy import ArgCondition, FilterPlan, KernelAction, KernelRule
from supervisor.policy.tables.syscalls import I386_NUMBERS, X86_64_NUMBERS

ARCH_NAMES: Mapping[int, str] = {
    lib.SCMP_ARCH_X86_64: "x86_64",
    lib.SCMP_ARCH_X86: "i386",
}
# The compat ABI that runs on each native one: filters cover both.
_COMPAT = {lib.SCMP_ARCH_X86_64: (lib.SCMP_ARCH_X86,)}

_OPS = {
    "==": lib.SCMP_CMP_EQ,
    "!=": lib.SCMP_CMP_NE,
    "<": lib.SCMP_CMP_LT,
    "<=": lib.SCMP_CMP_LE,
    ">": lib.SCMP_CMP_GT,
    ">=": lib.SCMP_CMP_GE,
    "&=": lib.SCMP_CMP_MASKED_EQ,
}

SOCK_FILTER_SIZE = 8  # sizeof(struct sock_filter)
BPF_MAXINSNS = 4096
# The syscall numbers of each ABI, from the kernel's tables (audit arch → name → number).
_NUMBERS: Mapping[int, Mapping[str, int]] = {
    lib.SCMP_ARCH_X86_64: X86_64_NUMBERS,
    lib.SCMP_ARCH_X86: I386_NUMBERS,
}
# Classic BPF (linux/bpf_common.h) and seccomp (linux/seccomp.h) constants.
_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JMP_JEQ_K = 0x15
_JMP_JGT_K = 0x25
_JMP_JGE_K = 0x35
_JMP_JSET_K = 0x45
_RET_K = 0x06
_DATA_NR = 0  # offsetof(struct seccomp_data, nr)
_DATA_ARCH = 4  # offsetof(struct seccomp_data, arch)
_X32_SYSCALL_BIT = 0x40000000
_RET_ERRNO = 0x00050000


class FilterError(Exception):
    """libseccomp refused the plan (an unknown syscall name, a rule it cannot express)."""


def native_arch() -> int:
    return int(lib.seccomp_arch_native())


def filter_arches() -> tuple[int, ...]:
    native = native_arch()
    return (native, *_COMPAT.get(native, ()))


@cache
def syscall_names() -> Mapping[tuple[int, int], str]:
    """(audit arch, syscall number) → name, for every ABI the filter covers (the project's
    tables, not libseccomp's). Built once."""
    return {(arch, nr): name for arch in filter_arches() for name, nr in _NUMBERS[arch].items()}


@cache
def libseccomp_gaps() -> Mapping[int, Mapping[str, int]]:
    """Per audit arch, the syscalls of our tables that libseccomp cannot name there: name →
    number. The filter's prefix decides them by number. (libseccomp never names a number
    otherwise: tests/kernel/test_syscall_tables.py checks it.)"""
    gaps: dict[int, dict[str, int]] = {}
    for arch in filter_arches():
        gaps[arch] = {}
        for name, nr in _NUMBERS[arch].items():
            p = lib.seccomp_syscall_resolve_num_arch(arch, nr)
            known = p != ffi.NULL and ffi.string(p).decode() == name
            if p != ffi.NULL:
                lib.free(p)
            if not known:
                gaps[arch][name] = nr
    return gaps


def arch_name(arch: int) -> str:
    return ARCH_NAMES.get(arch, hex(arch))


def _action(action: KernelAction) -> int:
    if action.kind == "allow":
        return int(lib.SCMP_ACT_ALLOW)
    if action.kind == "errno":
        return int(lib.sv_act_errno(action.errno))
    if action.kind == "kill":
        return int(lib.SCMP_ACT_KILL_PROCESS)
    if action.kind == "notify":
        return int(lib.SCMP_ACT_NOTIFY)
    raise FilterError(f"unknown kernel action {action.kind!r}")


def _conditions(conds: tuple[ArgCondition, ...]) -> object:
    arr = ffi.new("struct scmp_arg_cmp[]", max(len(conds), 1))
    for i, c in enumerate(conds):
        arr[i].arg = c.index
        arr[i].op = _OPS[c.op]
        if c.op == "&=":
            arr[i].datum_a = c.mask
            arr[i].datum_b = c.value
        else:
            arr[i].datum_a = c.value
            arr[i].datum_b = 0
    return arr


class _Asm:
    """A forward-only cBPF program with labels (resolved by ``program``)."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, str | int, str | int, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def load(self, offset: int) -> None:
        self.insns.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self.insns.append((code, jt, jf, k))

    def goto(self, label: str) -> None:
        self.insns.append((_JMP_JA, label, 0, 0))

    def ret(self, value: int) -> None:
        self.insns.append((_RET_K, 0, 0, value))

    def program(self) -> bytes:
        out = bytearray()
        for i, (code, jt, jf, k) in enumerate(self.insns):
            if code == _JMP_JA:  # k is the offset; jt held the label
                k, jt = self.labels[str(jt)] - i - 1, 0
            jt = self.labels[jt] - i - 1 if isinstance(jt, str) else jt
            jf = self.labels[jf] - i - 1 if isinstance(jf, str) else jf
            if not (0 <= jt <= 255 and 0 <= jf <= 255 and k >= 0):
                raise FilterError("the filter's prefix has a jump out of range")
            out += struct.pack("=HBBI", code, jt, jf, k)
        return bytes(out)


def _ranges(numbers: set[int]) -> list[tuple[int, int]]:
    """Sorted maximal runs [first, last] of ``numbers``."""
    runs: list[tuple[int, int]] = []
    for nr in sorted(numbers):
        if runs and runs[-1][1] == nr - 1:
            runs[-1] = (runs[-1][0], nr)
        else:
            runs.append((nr, nr))
    return runs


def _gap_action(rules: list[KernelRule], default: int) -> int:
    """What the prefix answers for a syscall libseccomp cannot name, from the plan's rules on
    it: conditions are left to the engine (notify), else the unconditioned rule, else the
    default."""
    if any(r.conditions for r in rules):
        return int(lib.SCMP_ACT_NOTIFY)
    return _action(rules[0].action) if rules else default


def _prefix(plan: FilterPlan, default: int) -> bytes:
    """Our part of the program (the module docstring); it ends where libseccomp's begins."""
    by_name: dict[str, list[KernelRule]] = {}
    for rule in plan.rules:
        by_name.setdefault(rule.syscall, []).append(rule)
    arches = filter_arches()
    asm = _Asm()
    returns: dict[int, str] = {}

    def ret_label(value: int) -> str:
        return returns.setdefault(value, f"ret{len(returns)}")

    kill = ret_label(int(lib.SCMP_ACT_KILL_PROCESS))
    enosys = ret_label(_RET_ERRNO | errno.ENOSYS)
    asm.load(_DATA_ARCH)
    for arch in arches:
        asm.jump(_JMP_JEQ_K, arch, jt=f"arch{arch}")
    asm.goto(kill)
    for arch in arches:
        asm.label(f"arch{arch}")
        asm.load(_DATA_NR)
        if arch == lib.SCMP_ARCH_X86_64:
            asm.jump(_JMP_JSET_K, _X32_SYSCALL_BIT, jt=kill)
        for name, nr in sorted(libseccomp_gaps()[arch].items(), key=lambda i: i[1]):
            value = _gap_action(by_name.get(name, []), default)
            if value != default:
                asm.jump(_JMP_JEQ_K, nr, jt=ret_label(value))
        for first, last in _ranges(set(_NUMBERS[arch].values())):
            if first > 0:
                asm.jump(_JMP_JGE_K, first, jf=enosys)  # below this run: in a hole
            asm.jump(_JMP_JGT_K, last, jf="known")
        asm.goto(enosys)  # above the last run
    for value, label in returns.items():
        asm.label(label)
        asm.ret(value)
    asm.label("known")
    return asm.program()


def build_filter(plan: FilterPlan) -> bytes:
    """The BPF program (an array of struct sock_filter) for ``plan``."""
    default = _action(plan.default)
    prefix = _prefix(plan, default)
    gaps = {name for names in libseccomp_gaps().values() for name in names}
    known = {name for numbers in _NUMBERS.values() for name in numbers}
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise FilterError(f"libseccomp cannot use {plan.default.kind!r} as the default action")
    try:
        for arch in filter_arches()[1:]:
            check_neg(lib.seccomp_arch_add(ctx, arch))
        check_neg(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_ACT_BADARCH, lib.SCMP_ACT_KILL_PROCESS))
        # We set no_new_privs ourselves before installing the exported program.
        check_neg(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_NNP, 0))
        for rule in plan.rules:
            action = _action(rule.action)
            if action == default and not rule.conditions:
                continue
            if rule.syscall not in known:
                raise FilterError(f"the syscall tables do not know {rule.syscall!r}")
            nr = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if nr == lib.__NR_SCMP_ERROR:
                if rule.syscall in gaps:
                    continue  # decided by number in the prefix
                raise FilterError(f"libseccomp does not know the syscall {rule.syscall!r}")
            conds = _conditions(rule.conditions)
            ret = lib.seccomp_rule_add_array(ctx, action, nr, len(rule.conditions), conds)
            if ret < 0:
                raise FilterError(
                    f"libseccomp refused the rule for {rule.syscall}: {os.strerror(-ret)}"
                )
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            check_neg(lib.seccomp_export_bpf(ctx, fd))
            size = os.lseek(fd, 0, os.SEEK_END)
            program = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    if not program or len(program) % SOCK_FILTER_SIZE:
        raise FilterError("libseccomp exported an empty or malformed program")
    program = prefix + program
    if len(program) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
        raise FilterError(f"the policy compiles to more than {BPF_MAXINSNS} BPF instructions")
    return program
