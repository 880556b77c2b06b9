"""A classic-BPF interpreter for seccomp programs, to run an exported filter over every
(arch, nr) a test wants to check, the way the kernel's seccomp_run_filters would.

Only what seccomp accepts (linux/filter.h, net/core/filter.c's seccomp_check_filter): loads
of 32-bit words of struct seccomp_data, immediate and scratch-memory loads and stores, ALU with
a constant or X, forward jumps, RET. Anything else is an error, not a guess.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

# Classes, sizes, modes, ops and sources of linux/bpf_common.h.
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, ABS, IMM, MEM, LEN = 0x00, 0x20, 0x00, 0x60, 0x80
K, X, A = 0x00, 0x08, 0x10
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0,
)  # fmt: skip
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
TAX, TXA = 0x00, 0x80
U32 = 0xFFFFFFFF
SECCOMP_DATA_SIZE = 64


class BPFError(Exception):
    """The program does something seccomp would not accept."""


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    """struct sock_filter[] → (code, jt, jf, k) tuples."""
    if len(program) % 8:
        raise BPFError("not a whole number of instructions")
    return [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]


def seccomp_data(nr: int, arch: int, ip: int = 0, args: Sequence[int] = (0,) * 6) -> bytes:
    return struct.pack("=iIQ6Q", nr, arch, ip, *args)


def run(program: Sequence[tuple[int, int, int, int]], data: bytes) -> int:
    """The filter's 32-bit return value for one struct seccomp_data."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        if not 0 <= pc < len(program):
            raise BPFError(f"pc {pc} ran off the program")
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls == LD:
            mode = code & 0xE0
            if mode == ABS and code & 0x18 == W:
                if k % 4 or k + 4 > SECCOMP_DATA_SIZE:
                    raise BPFError(f"load at {k}")
                a = struct.unpack_from("=I", data, k)[0]
            elif mode == IMM:
                a = k
            elif mode == MEM:
                a = mem[k]
            elif mode == LEN:
                a = SECCOMP_DATA_SIZE
            else:
                raise BPFError(f"load mode {code:#x}")
        elif cls == LDX:
            mode = code & 0xE0
            if mode == IMM:
                x = k
            elif mode == MEM:
                x = mem[k]
            elif mode == LEN:
                x = SECCOMP_DATA_SIZE
            else:
                raise BPFError(f"ldx mode {code:#x}")
        elif cls == ST:
            mem[k] = a
        elif cls == STX:
            mem[k] = x
        elif cls == ALU:
            op, src = code & 0xF0, (x if code & X else k)
            if op == ADD:
                a = (a + src) & U32
            elif op == SUB:
                a = (a - src) & U32
            elif op == MUL:
                a = (a * src) & U32
            elif op == DIV:
                if src == 0:
                    return 0
                a //= src
            elif op == MOD:
                if src == 0:
                    return 0
                a %= src
            elif op == OR:
                a |= src
            elif op == AND:
                a &= src
            elif op == XOR:
                a ^= src
            elif op == LSH:
                a = (a << src) & U32 if src < 32 else 0
            elif op == RSH:
                a = a >> src if src < 32 else 0
            elif op == NEG:
                a = (-a) & U32
            else:
                raise BPFError(f"alu op {code:#x}")
        elif cls == JMP:
            op, src = code & 0xF0, (x if code & X else k)
            if op == JA:
                pc += k
                continue
            if op == JEQ:
                taken = a == src
            elif op == JGT:
                taken = a > src
            elif op == JGE:
                taken = a >= src
            elif op == JSET:
                taken = bool(a & src)
            else:
                raise BPFError(f"jump op {code:#x}")
            pc += jt if taken else jf
        elif cls == RET:
            src = code & 0x18
            return k if src == K else a if src == A else _bad(code)
        elif cls == MISC:
            if code & 0xF8 == TAX:
                x = a
            elif code & 0xF8 == TXA:
                a = x
            else:
                raise BPFError(f"misc {code:#x}")
        else:
            raise BPFError(f"class {cls}")


def _bad(code: int) -> int:
    raise BPFError(f"ret {code:#x}")
