"""Building the kernel filter with libseccomp, and the syscall number tables.

A plan (``supervisor.policy.FilterPlan``: pure data) becomes a classic-BPF program covering the
native ABI and the 32-bit ABI of the same machine (i386 through ``int $0x80`` on x86_64), so that
switching ABI never bypasses a rule: libseccomp resolves every syscall name per architecture.
Any other architecture (x32, or anything the kernel may add) is killed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from supervisor._native import ffi, lib
from supervisor.kernel._errors import check_neg
from supervisor.policy import ArgCondition, FilterPlan, KernelAction

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


class FilterError(Exception):
    """libseccomp refused the plan (an unknown syscall name, a rule it cannot express)."""


def native_arch() -> int:
    return int(lib.seccomp_arch_native())


def filter_arches() -> tuple[int, ...]:
    native = native_arch()
    return (native, *_COMPAT.get(native, ()))


@cache
def syscall_names() -> Mapping[tuple[int, int], str]:
    """(audit arch, syscall number) → name, for every ABI the filter covers. Built once."""
    table: dict[tuple[int, int], str] = {}
    for arch in filter_arches():
        for nr in range(0, 1024):
            p = lib.seccomp_syscall_resolve_num_arch(arch, nr)
            if p != ffi.NULL:
                table[(arch, nr)] = ffi.string(p).decode()
                lib.free(p)
    return table


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


def build_filter(plan: FilterPlan) -> bytes:
    """The BPF program (an array of struct sock_filter) for ``plan``."""
    default = _action(plan.default)
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
            nr = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if nr == lib.__NR_SCMP_ERROR:
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
    if len(program) // SOCK_FILTER_SIZE > 4096:  # BPF_MAXINSNS
        raise FilterError("the policy compiles to more than 4096 BPF instructions")
    return program
