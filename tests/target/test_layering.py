"""supervisor/target/ acts in the target's view through supervisor/kernel/ (issue 8's rules for
this folder): no module imports ``supervisor._native`` or names a /proc path, none takes a
private name from another module, none is over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parents[2] / "supervisor" / "target"
MODULES = sorted(TARGET.rglob("*.py"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(TARGET)) for p in paths]


@pytest.mark.parametrize("module", MODULES, ids=_ids(MODULES))
def test_target_module_keeps_the_rules(module: Path) -> None:
    text = module.read_text()
    assert len(text.splitlines()) < 500, "over 500 lines"
    problems: list[str] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            problems += [f"imports {a.name}" for a in node.names if a.name == "supervisor._native"]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod == "supervisor._native" or (
                mod == "supervisor" and "_native" in {a.name for a in node.names}
            ):
                problems.append(f"line {node.lineno}: imports supervisor._native")
            problems += [
                f"line {node.lineno}: imports the private {a.name} from {mod}"
                for a in node.names
                if a.name.startswith("_") and a.name != "__future__"
            ]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("/proc")
        ):
            problems.append(f"line {node.lineno}: names {node.value!r}")
    assert not problems, problems


def test_the_modules_were_found() -> None:
    assert {"emulate.py", "launch.py", "procfs.py", "recover.py"} <= {m.name for m in MODULES}
    assert (TARGET / "resolve" / "__init__.py") in MODULES
