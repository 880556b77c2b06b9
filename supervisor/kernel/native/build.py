"""cffi build script for ``supervisor._native``: every kernel and libseccomp call the project makes.

The C lives beside this file, one ``*.c`` per kernel interface, and is compiled as C (with
warnings as errors). cffi is told about it from the same text the compiler reads: the cdef is
``kernel.cdef`` (what the project uses of the kernel's and libseccomp's headers; constants are
``...``, taken from the compiler) followed by the part of ``native.h`` between its cffi markers
(the project's own structs, constants and functions, written once for both).

setup.py names this file in ``cffi_modules``. Run from the project's top directory,
``python supervisor/kernel/native/build.py`` builds the module in place, for a quick look at the
compiler's output.
"""

from __future__ import annotations

import os
from pathlib import Path

from cffi import FFI

# Relative to the current directory (the project's, when setup.py runs this): setuptools wants
# relative paths in an extension's sources.
HERE = Path(os.path.relpath(Path(__file__).resolve().parent))
# One file per kernel interface; native.h says which function is where.
SOURCES = [
    "seccomp.c",
    "pidfd.c",
    "memory.c",
    "creds.c",
    "spawn.c",
    "resolve.c",
    "lane.c",
    "answer.c",
    "fsops.c",
    "ptrace.c",
]
BEGIN, END = "/* cffi:begin */", "/* cffi:end */"
CFLAGS = ["-Wall", "-Wextra", "-Werror", "-Werror=incompatible-pointer-types"]


def header_cdef(text: str) -> str:
    """The declarations between the cffi markers of native.h (exactly one pair)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"native.h must hold {BEGIN!r} and {END!r} once each")
    body = text.partition(BEGIN)[2].partition(END)[0]
    if any(line.lstrip().startswith("#") for line in body.splitlines()):
        raise ValueError("native.h: no preprocessor lines between the cffi markers")
    return body


def check_sources() -> None:
    """Every .c beside this file is in SOURCES, so a new one cannot be left out of the build."""
    found = {p.name for p in HERE.glob("*.c")}
    if found != set(SOURCES):
        raise ValueError(f"{HERE}: *.c files {sorted(found)} differ from SOURCES {SOURCES}")


def cdef() -> str:
    header = (HERE / "native.h").read_text()
    return (HERE / "kernel.cdef").read_text() + header_cdef(header)


check_sources()
ffibuilder = FFI()
ffibuilder.cdef(cdef())
ffibuilder.set_source(
    "supervisor._native",
    '#include "native.h"\n',
    sources=[str(HERE / name) for name in SOURCES],
    include_dirs=[str(HERE)],
    libraries=["seccomp"],
    extra_compile_args=CFLAGS,
    depends=[str(HERE / "native.h"), str(HERE / "kernel.cdef")],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=False)
