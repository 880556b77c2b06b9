"""The architecture rules of issue 8, checked on the source: every module under supervisor/ is
parsed (never imported) and its AST walked, imports inside functions and under TYPE_CHECKING
included. Each checker takes the root of a tree (the directory holding supervisor/) and returns
one line per violation, ``path:line: what (rule N)``, so a failure says which module breaks which
rule; the tests at the end feed each checker a small synthetic tree that breaks its rule.

1. supervisor/policy/ imports nothing outside supervisor.policy and the standard library, and does
   no os-level I/O. "I/O" here: importing a module whose job is I/O or processes (IO_MODULES),
   using ``os`` for anything but path-name helpers (OS_PURE), calling ``open``/``print``/``input``,
   touching ``sys.stdin/stdout/stderr``, or calling a filesystem method (FS_METHODS: ``read_text``,
   ``exists``, ...). The one exemption is the parser's read of the policy file: ``open()`` and
   the filesystem methods are allowed inside ``load_policy`` in supervisor/policy/parse.py (or
   a module of a supervisor/policy/parse/ package).
2. Only supervisor/kernel/ imports supervisor._native, and only supervisor/kernel/ names /proc
   paths (a string literal, or the first part of an f-string, starting with "/proc"; docstrings
   aside).
3. No import cycle among supervisor modules.
4. No private name (``_x``) imported from another supervisor module, nor used as an attribute of
   an imported supervisor module (``cli._fail``). A private *module* (``_errors``) may be imported
   by its siblings in the same package; ``_native`` is rule 2's business.
5. No module over 500 lines; GENERATED names the generated tables exempted.
6. Every answer to the kernel goes through supervisor/supervise/reply.py: outside it and
   supervisor/kernel/, no call of a ListenerFd method that answers a notification (found in
   ListenerFd's source: its ``send_*`` methods and every method that calls one, or calls a native
   answering function) nor of those native functions (``sv_notif_send``, ``sv_notif_addfd``, ...).
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NATIVE = "supervisor._native"
MAX_LINES = 500
# Rule 5's exemption: generated data, not code (scripts/gen_syscall_names.py writes it).
GENERATED = frozenset({"supervisor/policy/tables/_syscall_names.py"})
# Rule 6: the one module that answers the kernel, besides the kernel layer itself.
REPLY = "supervisor/supervise/reply.py"

IO_MODULES = frozenset(
    {
        "asyncio", "ctypes", "fcntl", "glob", "http", "io", "mmap", "multiprocessing", "pty",
        "select", "selectors", "shutil", "signal", "socket", "socketserver", "sqlite3", "ssl",
        "subprocess", "tempfile", "termios", "threading", "urllib",
    }
)  # fmt: skip
OS_PURE = frozenset({"PathLike", "fspath", "fsencode", "fsdecode", "sep", "altsep", "curdir"})
OS_PATH_PURE = frozenset(
    {"join", "basename", "dirname", "split", "splitext", "normpath", "isabs", "commonpath", "sep"}
)
FS_METHODS = frozenset(
    {
        "read_text", "read_bytes", "write_text", "write_bytes", "open", "iterdir", "glob",
        "rglob", "stat", "lstat", "exists", "is_file", "is_dir", "is_symlink", "unlink", "mkdir",
        "rmdir", "touch", "rename", "chmod", "readlink", "symlink_to", "samefile", "realpath",
        "isfile", "isdir", "islink", "getsize", "listdir", "scandir",
    }
)  # fmt: skip
POLICY_READER = "load_policy"


@dataclass(frozen=True)
class Module:
    name: str  # supervisor.policy.engine
    rel: str  # supervisor/policy/engine.py
    tree: ast.Module
    is_package: bool
    lines: int

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Edge:
    """One import: ``target`` is the module it loads (a submodule when the imported name is
    one), ``name`` the name taken from it (None for a plain ``import``)."""

    target: str
    name: str | None
    line: int
    bound: str | None = None  # the local name bound to the module ``target``, if any


def load_modules(root: Path) -> dict[str, Module]:
    modules = {}
    for path in sorted((root / "supervisor").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        parts = rel[: -len(".py")].split("/")
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        text = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        modules[name] = Module(name, rel, ast.parse(text, rel), is_package, len(text.splitlines()))
    return modules


def imports_of(mod: Module, modules: dict[str, Module]) -> Iterator[Edge]:
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(alias.name, None, node.lineno, alias.asname)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            for alias in node.names:
                sub = f"{base_name}.{alias.name}"
                if sub in modules or sub == NATIVE:
                    yield Edge(sub, None, node.lineno, alias.asname or alias.name)
                else:
                    yield Edge(base_name, alias.name, node.lineno)


def docstring_nodes(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def ordered(found: list[str]) -> list[str]:
    """Violations by file, then line number."""

    def key(line: str) -> tuple[str, int, str]:
        path, _, rest = line.partition(":")
        number, _, _ = rest.partition(":")
        return (path, int(number) if number.isdigit() else 0, line)

    return sorted(set(found), key=key)


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def in_layer(mod: Module, layer: str) -> bool:
    return mod.name == layer or mod.name.startswith(layer + ".")


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def functions_named(tree: ast.Module, name: str) -> list[ast.AST]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
    ]


# -- the checkers ---------------------------------------------------------------------------------
def check_policy_pure(root: Path) -> list[str]:
    modules = load_modules(root)
    out = []
    for mod in modules.values():
        if not in_layer(mod, "supervisor.policy"):
            continue
        where = f"{mod.rel}:{{}}: {{}} (rule 1)"
        for e in imports_of(mod, modules):
            top = e.target.split(".")[0]
            if top == "supervisor":
                if not (
                    e.target == "supervisor.policy" or e.target.startswith("supervisor.policy.")
                ):
                    out.append(where.format(e.line, f"imports {e.target} (outside policy)"))
            elif top not in sys.stdlib_module_names:
                out.append(where.format(e.line, f"imports {e.target} (not the standard library)"))
            elif top in IO_MODULES:
                out.append(where.format(e.line, f"imports {e.target} (os-level I/O)"))
            elif top == "os" and e.name is not None and e.name not in OS_PURE | {"path"}:
                out.append(where.format(e.line, f"imports os.{e.name} (os-level I/O)"))
        reader_nodes: set[int] = set()
        if mod.name in ("supervisor.policy.parse",) or mod.name.startswith(
            "supervisor.policy.parse."
        ):
            for fn in functions_named(mod.tree, POLICY_READER):
                reader_nodes.update(id(n) for n in ast.walk(fn))
        inner = {id(n.value) for n in ast.walk(mod.tree) if isinstance(n, ast.Attribute)}
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Attribute) and id(node) not in inner:
                name = dotted(node) or ""
                parts = name.split(".")
                if parts[0] == "os" and not (
                    parts[1] in OS_PURE
                    or (parts[1] == "path" and len(parts) > 2 and parts[2] in OS_PATH_PURE)
                ):
                    out.append(where.format(node.lineno, f"uses {name} (os-level I/O)"))
                if parts[:2] == ["sys", "stdin"] or parts[:2] in (
                    ["sys", "stdout"],
                    ["sys", "stderr"],
                ):
                    out.append(where.format(node.lineno, f"uses {'.'.join(parts[:2])} (I/O)"))
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            reads_policy = id(node) in reader_nodes
            if (
                isinstance(func, ast.Name)
                and func.id in ("open", "print", "input")
                and not (func.id == "open" and reads_policy)
            ):
                out.append(where.format(node.lineno, f"calls {func.id}() (I/O)"))
            if isinstance(func, ast.Attribute) and func.attr in FS_METHODS and not reads_policy:
                out.append(where.format(node.lineno, f"calls .{func.attr}() (filesystem I/O)"))
    return ordered(out)


def check_kernel_boundary(root: Path) -> list[str]:
    modules = load_modules(root)
    out = []
    for mod in modules.values():
        if in_layer(mod, "supervisor.kernel"):
            continue
        for e in imports_of(mod, modules):
            if e.target == NATIVE or e.target.startswith(NATIVE + "."):
                out.append(f"{mod.rel}:{e.line}: imports {NATIVE} outside kernel/ (rule 2)")
        docs = docstring_nodes(mod.tree)
        for node in ast.walk(mod.tree):
            value = proc_literal(node, docs)
            if value is not None:
                shown = value if len(value) < 40 else value[:37] + "..."
                out.append(f"{mod.rel}:{node.lineno}: names {shown!r} outside kernel/ (rule 2)")
    return ordered(out)


def proc_literal(node: ast.AST, docs: set[int]) -> str | None:
    """The text of a string literal (or an f-string's first part) naming a /proc path."""
    first: ast.AST = node
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
    elif not isinstance(node, ast.Constant) or id(node) in docs:
        return None
    if not isinstance(first, ast.Constant):
        return None
    value = first.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str) and (value == "/proc" or value.startswith("/proc/")):
        return value
    return None


def check_no_cycles(root: Path) -> list[str]:
    modules = load_modules(root)
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for mod in modules.values():
        for e in imports_of(mod, modules):
            if e.target in modules:
                graph[mod.name].setdefault(e.target, e.line)
    out = []
    for scc in strongly_connected(graph):
        if len(scc) == 1 and scc[0] not in graph[scc[0]]:
            continue
        cycle = a_cycle(graph, set(scc))
        steps = ", ".join(
            f"{modules[a].rel}:{graph[a][b]} imports {b}" for a, b in itertools.pairwise(cycle)
        )
        out.append(
            f"import cycle among {{{', '.join(sorted(scc))}}}: "
            f"{' -> '.join(cycle)} ({steps}) (rule 3)"
        )
    return ordered(out)


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    scc = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        scc.append(member)
                        if member == node:
                            break
                    result.append(sorted(scc))
    return result


def a_cycle(graph: dict[str, dict[str, int]], scc: set[str]) -> list[str]:
    """The shortest cycle through the first module of a strongly connected set (breadth first)."""
    start = min(scc)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child in scc and child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle in {scc}")


def check_no_private_imports(root: Path) -> list[str]:
    modules = load_modules(root)
    out = []
    for mod in modules.values():
        aliases: dict[str, str] = {}  # local name -> the supervisor module it is bound to
        for e in imports_of(mod, modules):
            if not e.target.startswith("supervisor"):
                continue
            if e.bound is not None:
                aliases[e.bound] = e.target
            elif e.name is None:  # import supervisor.a.b binds "supervisor"
                aliases[e.target.split(".")[0]] = e.target.split(".")[0]
            if e.name is not None and is_private(e.name):
                out.append(f"{mod.rel}:{e.line}: imports {e.name} from {e.target} (rule 4)")
            parts = e.target.split(".")
            for i, part in enumerate(parts):
                owner = ".".join(parts[:i])
                if is_private(part) and e.target != NATIVE and mod.package != owner:
                    out.append(
                        f"{mod.rel}:{e.line}: imports the private module {e.target} "
                        f"from outside {owner} (rule 4)"
                    )
        for node in ast.walk(mod.tree):
            if not isinstance(node, ast.Attribute) or not is_private(node.attr):
                continue
            base = dotted(node.value)
            if base is None:
                continue
            head, _, rest = base.partition(".")
            if head not in aliases:
                continue
            target = aliases[head] + ("." + rest if rest else "")
            if target in modules and target != mod.name:
                out.append(
                    f"{mod.rel}:{node.lineno}: uses {base}.{node.attr}, "
                    f"private to {target} (rule 4)"
                )
    return ordered(out)


def check_module_size(root: Path) -> list[str]:
    return sorted(
        f"{mod.rel}: {mod.lines} lines, over {MAX_LINES} (rule 5)"
        for mod in load_modules(root).values()
        if mod.lines > MAX_LINES and mod.rel not in GENERATED
    )


def answering_calls(root: Path) -> frozenset[str]:
    """The names whose call answers a notification: the ListenerFd methods that send (directly
    or through another of its methods) and the native functions they call to do it."""
    modules = load_modules(root)
    classes = [
        node
        for mod in modules.values()
        if in_layer(mod, "supervisor.kernel")
        for node in ast.walk(mod.tree)
        if isinstance(node, ast.ClassDef) and node.name == "ListenerFd"
    ]
    if len(classes) != 1:
        raise AssertionError(f"expected one class ListenerFd in supervisor/kernel/, {len(classes)}")
    methods = {
        m.name: m for m in classes[0].body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    calls: dict[str, set[str]] = {}
    native = set()
    for name, fn in methods.items():
        called = {
            (dotted(c.func.value), c.func.attr)
            for c in ast.walk(fn)
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
        }
        calls[name] = {attr for base, attr in called if base == "self"}
        native |= {
            attr
            for base, attr in called
            if base == "lib" and any(w in attr for w in ("send", "addfd", "answer"))
        }
    answering = {
        name
        for name, fn in methods.items()
        if name.startswith("send_")
        or "addfd" in name
        or any(
            isinstance(c, ast.Call)
            and isinstance(c.func, ast.Attribute)
            and dotted(c.func.value) == "lib"
            and c.func.attr in native
            for c in ast.walk(fn)
        )
    }
    while True:
        more = {name for name in methods if calls[name] & answering} - answering
        if not more:
            break
        answering |= more
    return frozenset(answering | native | {"addfd"})


def check_one_reply(root: Path) -> list[str]:
    names = answering_calls(root)
    out = []
    for mod in load_modules(root).values():
        if in_layer(mod, "supervisor.kernel") or mod.rel == REPLY:
            continue
        for node in ast.walk(mod.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in names
            ):
                shown = dotted(node.func) or node.func.attr
                out.append(f"{mod.rel}:{node.lineno}: calls {shown}() outside {REPLY} (rule 6)")
    return ordered(out)


# -- the rules, on this tree ----------------------------------------------------------------------
def report(checker: Callable[[Path], list[str]]) -> None:
    found = checker(ROOT)
    if found:
        pytest.fail(f"{len(found)} violation(s):\n" + "\n".join(found), pytrace=False)


def test_rule1_policy_is_pure() -> None:
    report(check_policy_pure)


def test_rule2_only_kernel_touches_native_and_proc() -> None:
    report(check_kernel_boundary)


def test_rule3_no_import_cycles() -> None:
    report(check_no_cycles)


def test_rule4_no_private_names_across_modules() -> None:
    report(check_no_private_imports)


def test_rule5_no_module_over_500_lines() -> None:
    report(check_module_size)


def test_rule6_one_place_answers_the_kernel() -> None:
    report(check_one_reply)


def test_the_tree_is_walked() -> None:
    """The checkers see the real tree: every layer, and the answering methods of ListenerFd."""
    names = set(load_modules(ROOT))
    for layer in ("policy", "kernel", "target", "supervise", "daemon", "cli"):
        assert f"supervisor.{layer}" in names
    assert {"send_value", "send_error", "send_continue"} <= answering_calls(ROOT)


# -- the tests of the checkers, on synthetic trees ------------------------------------------------
LISTENER = """
class ListenerFd:
    def recv(self):
        return lib.sv_notif_recv(self.fd)

    def send_error(self, i, err):
        return lib.sv_notif_send(self.fd, i, 0, -err, 0)

    def deny_then_next(self, i, err):
        return lib.sv_lane_answer_next(self.fd, i, err)

    def install(self, i, fd):
        ret = lib.sv_notif_addfd(self.fd, i, fd)
        return self.send_error(i, 0) if ret < 0 else ret
"""


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in {"supervisor/kernel/seccomp.py": LISTENER, **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            init = root / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.write_text("")
        path.write_text(text)
    return root


def test_checker_rule1(tmp_path: Path) -> None:
    good = make_tree(
        tmp_path / "good",
        {
            "supervisor/policy/engine.py": "import re\nfrom .model import Rule\n",
            "supervisor/policy/model.py": "import os\nfrom os import path\n"
            "def f(p: os.PathLike) -> str:\n    return os.path.join(os.fspath(p), 'x')\n",
            "supervisor/policy/parse/__init__.py": "from .files import load_policy\n",
            "supervisor/policy/parse/files.py": "def load_policy(p):\n"
            "    with open(p) as f:\n        return f.read()\n",
            "supervisor/policy/parse/paths.py": "from pathlib import Path\n"
            "def load_policy(p):\n    return Path(p).read_text()\n",
        },
    )
    assert check_policy_pure(good) == []
    bad = make_tree(
        tmp_path / "bad",
        {
            "supervisor/policy/engine.py": "import trio\n"
            "def f():\n    from supervisor.kernel import seccomp\n",
            "supervisor/policy/state.py": "import socket\nimport os\nx = os.getpid()\n",
            "supervisor/policy/parse.py": "from pathlib import Path\n"
            "def load_policy(p):\n    return Path(p).read_text()\n"
            "def other(p):\n    return Path(p).exists() or open(p)\n",
        },
    )
    found = check_policy_pure(bad)
    assert found == [
        "supervisor/policy/engine.py:1: imports trio (not the standard library) (rule 1)",
        "supervisor/policy/engine.py:3: imports supervisor.kernel.seccomp (outside policy) "
        "(rule 1)",
        "supervisor/policy/parse.py:5: calls .exists() (filesystem I/O) (rule 1)",
        "supervisor/policy/parse.py:5: calls open() (I/O) (rule 1)",
        "supervisor/policy/state.py:1: imports socket (os-level I/O) (rule 1)",
        "supervisor/policy/state.py:3: uses os.getpid (os-level I/O) (rule 1)",
    ]


def test_checker_rule2(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "supervisor/kernel/proc.py": "from supervisor._native import lib\nP = '/proc/self'\n",
            "supervisor/target/a.py": '"""/proc/PID/mem is read here."""\n'
            "from supervisor._native import ffi\n",
            "supervisor/target/b.py": "from .. import _native\n"
            "def f(pid):\n    return open(f'/proc/{pid}/stat')\n",
            "supervisor/supervise/c.py": "import os\nP = os.path.join('/', 'x')\nQ = b'/proc'\n",
        },
    )
    assert check_kernel_boundary(root) == [
        "supervisor/supervise/c.py:3: names '/proc' outside kernel/ (rule 2)",
        "supervisor/target/a.py:2: imports supervisor._native outside kernel/ (rule 2)",
        "supervisor/target/b.py:1: imports supervisor._native outside kernel/ (rule 2)",
        "supervisor/target/b.py:3: names '/proc/' outside kernel/ (rule 2)",
    ]


def test_checker_rule3(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "supervisor/cli/main.py": "from supervisor.cli import attach\n",
            "supervisor/cli/attach.py": "def f():\n    from . import main\n",
            "supervisor/daemon/server.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from ..daemon.systemd import Hooks\n",
            "supervisor/daemon/systemd.py": "from .protocol import X\n",
            "supervisor/daemon/protocol.py": "import supervisor.daemon.server\n",
            "supervisor/policy/engine.py": "from .state import S\n",
            "supervisor/policy/state.py": "X = 1\n",
        },
    )
    assert check_no_cycles(root) == [
        "import cycle among {supervisor.cli.attach, supervisor.cli.main}: "
        "supervisor.cli.attach -> supervisor.cli.main -> supervisor.cli.attach "
        "(supervisor/cli/attach.py:2 imports supervisor.cli.main, "
        "supervisor/cli/main.py:1 imports supervisor.cli.attach) (rule 3)",
        "import cycle among {supervisor.daemon.protocol, supervisor.daemon.server, "
        "supervisor.daemon.systemd}: supervisor.daemon.protocol -> supervisor.daemon.server -> "
        "supervisor.daemon.systemd -> supervisor.daemon.protocol "
        "(supervisor/daemon/protocol.py:1 imports supervisor.daemon.server, "
        "supervisor/daemon/server.py:3 imports supervisor.daemon.systemd, "
        "supervisor/daemon/systemd.py:1 imports supervisor.daemon.protocol) (rule 3)",
    ]


def test_checker_rule4(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "supervisor/kernel/_errors.py": "def check(r): return r\n",
            "supervisor/kernel/memory.py": "from ._errors import check\n"
            "from supervisor._native import ffi\nimport errno as _errno\n",
            "supervisor/target/procfs.py": "from supervisor.target.resolve import _walk, ok\n"
            "from supervisor.kernel._errors import check\n",
            "supervisor/target/resolve.py": "def _walk(): pass\ndef ok(): pass\n"
            "def _own(): pass\nx = _own()\n",
            "supervisor/cli/attach.py": "from supervisor.cli import main as cli\n"
            "import supervisor.target.resolve\n"
            "def f(self):\n    cli._fail(1)\n    self._x = 1\n"
            "    supervisor.target.resolve._own()\n    cli.__name__\n",
            "supervisor/cli/main.py": "def _fail(x): pass\n",
        },
    )
    assert check_no_private_imports(root) == [
        "supervisor/cli/attach.py:4: uses cli._fail, private to supervisor.cli.main (rule 4)",
        "supervisor/cli/attach.py:6: uses supervisor.target.resolve._own, "
        "private to supervisor.target.resolve (rule 4)",
        "supervisor/target/procfs.py:1: imports _walk from supervisor.target.resolve (rule 4)",
        "supervisor/target/procfs.py:2: imports the private module supervisor.kernel._errors "
        "from outside supervisor.kernel (rule 4)",
    ]


def test_checker_rule5(tmp_path: Path) -> None:
    long = "x = 1\n" * (MAX_LINES + 1)
    root = make_tree(
        tmp_path,
        {
            "supervisor/daemon/server.py": long,
            "supervisor/daemon/protocol.py": "x = 1\n" * MAX_LINES,
            "supervisor/policy/tables/_syscall_names.py": long,
        },
    )
    assert check_module_size(root) == [
        f"supervisor/daemon/server.py: {MAX_LINES + 1} lines, over {MAX_LINES} (rule 5)"
    ]


def test_checker_rule6(tmp_path: Path) -> None:
    assert answering_calls(make_tree(tmp_path / "names", {})) == {
        "send_error",
        "deny_then_next",
        "install",
        "sv_notif_send",
        "sv_lane_answer_next",
        "sv_notif_addfd",
        "addfd",
    }
    root = make_tree(
        tmp_path / "tree",
        {
            "supervisor/supervise/reply.py": "def deny(l, n, e):\n    l.send_error(n.id, e)\n",
            "supervisor/supervise/loop.py": "def f(self, n):\n"
            "    self.listener.recv()\n    self.events.send_nowait(n)\n"
            "    self.listener.send_error(n.id, 1)\n",
            "supervisor/supervise/net.py": "def g(listener, n, fd):\n"
            "    listener.install(n.id, fd)\n    lib.sv_notif_send(3, n.id, 0, 0, 0)\n",
            "supervisor/kernel/memory.py": "def h(l):\n    l.send_error(1, 1)\n",
        },
    )
    assert check_one_reply(root) == [
        "supervisor/supervise/loop.py:4: calls self.listener.send_error() outside "
        "supervisor/supervise/reply.py (rule 6)",
        "supervisor/supervise/net.py:2: calls listener.install() outside "
        "supervisor/supervise/reply.py (rule 6)",
        "supervisor/supervise/net.py:3: calls lib.sv_notif_send() outside "
        "supervisor/supervise/reply.py (rule 6)",
    ]
