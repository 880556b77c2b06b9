"""The rules the policy package keeps (issue 8), read from its source with the ast: every import
counts, inside functions and under TYPE_CHECKING too.

1. policy/ imports nothing outside supervisor.policy and the standard library, and no standard
   module that does I/O, runs things or reads a clock (time comes in Request.now); the one file
   read, load_policy's, is parse/document.py's.
3. No import cycle among its modules.
4. No private name (``_x``) imported from another module.
5. No module over 500 lines, the generated syscall names aside.

And it imports and decides without the C extension, trio or the kernel layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import supervisor.policy

ROOT = Path(supervisor.policy.__file__).parent
PACKAGE = "supervisor.policy"
MAX_LINES = 500
# Standard modules that act on the world: files, processes, sockets, threads, signals, clocks.
ACTING = frozenset(
    {"asyncio", "ctypes", "fcntl", "mmap", "multiprocessing", "select", "selectors", "shutil"}
    | {"signal", "socket", "subprocess", "tempfile", "threading", "time", "io", "sys"}
)
# os and pathlib are for load_policy (it reads the policy file), in one module.
FILE_READERS = {"os", "pathlib"}
LOAD_POLICY = "supervisor.policy.parse.document"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported, or the module a name is taken from
    name: str | None  # the name taken (from X import name), None for a module
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
# Generated tables (tables/_syscall_names.py) say so in their docstring.
GENERATED = {
    m
    for m, p in MODULES.items()
    if "do not edit by hand" in (ast.get_docstring(ast.parse(p.read_text())) or "")
}


def imports(module: str) -> list[Import]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [Import(module, a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in MODULES:  # from . import conditions: the module itself
                    out.append(Import(module, sub, None, node.lineno))
                else:
                    out.append(Import(module, target, a.name, node.lineno))
    return out


ALL = [i for m in MODULES for i in imports(m)]


def where(i: Import) -> str:
    return f"{MODULES[i.module].relative_to(ROOT.parent.parent)}:{i.line}"


def test_the_walk_sees_the_package() -> None:
    """The checks below read what they should: the modules, relative imports resolved."""
    assert {"supervisor.policy.engine", "supervisor.policy.parse.rule"} <= MODULES.keys()
    taken = {(i.module, i.target, i.name) for i in ALL}
    assert ("supervisor.policy.state", "supervisor.policy.request", "Request") in taken
    assert ("supervisor.policy.parse.rule", "supervisor.policy.parse.conditions", None) in taken
    assert ("supervisor.policy.parse.keys", "supervisor.policy.errors", "PolicyError") in taken


def test_imports_only_the_package_and_quiet_stdlib() -> None:
    bad = []
    for i in ALL:
        top = i.target.split(".")[0]
        if i.target == PACKAGE or i.target.startswith(PACKAGE + "."):
            continue
        if top == "__future__":
            continue
        if top not in sys.stdlib_module_names:
            bad.append(f"{where(i)}: imports {i.target} (outside supervisor.policy and stdlib)")
        elif top in ACTING:
            bad.append(f"{where(i)}: imports {i.target} (I/O, processes or a clock)")
        elif top in FILE_READERS and i.module != LOAD_POLICY:
            bad.append(f"{where(i)}: imports {i.target} (only load_policy reads a file)")
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    graph = {m: set() for m in MODULES}
    for i in ALL:
        if i.target in MODULES and i.target != i.module:
            graph[i.module].add(i.target)
    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_no_private_name_from_another_module() -> None:
    bad = [
        f"{where(i)}: takes {i.name} from {i.target}"
        for i in ALL
        if i.name is not None and i.name.startswith("_") and i.target != i.module
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(set(MODULES) - GENERATED))
def test_module_size(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]}: {lines} lines (at most {MAX_LINES})"


def test_decides_without_the_c_extension() -> None:
    """A fresh interpreter where supervisor._native cannot be imported parses a policy and
    decides a request; nothing of trio, cffi or the kernel layer gets imported."""
    code = """
import sys
sys.modules["supervisor._native"] = None  # importing it raises ImportError
from supervisor.policy import Engine, Request, parse_policy
policy = parse_policy('default = "allow"\\n[[rule]]\\nsyscalls = ["openat"]\\n'
                      'path = ["/etc/**"]\\naction = "deny"\\n')
decision = Engine(policy).decide(
    Request(pid=1, syscall="openat", arch="x86_64", args=(0,) * 6, paths=("/etc/shadow",)))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("trio", "cffi", "_cffi_backend")
                or m.startswith(("supervisor.kernel", "supervisor.supervise", "supervisor.target")))
print(decision.action.value, decision.rule, loaded)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["deny", "rule-1", "[]"], out
