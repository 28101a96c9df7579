"""Public definitions say why they exist (STYLE.md): every module, module-level function, class and
public method of the listed modules has a docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = [*sorted((ROOT / "sld/quarantine").glob("*.py")),
           *(ROOT / "sld" / p for p in ("config.py", "paths.py", "service/http.py", "service/passwords.py",
                                        "service/preflight.py"))]


def _undocumented(body: list[ast.stmt], prefix: str = "") -> list[str]:
    missing = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            if ast.get_docstring(node) is None:
                missing.append(f"{prefix}{node.name} (line {node.lineno})")
            if isinstance(node, ast.ClassDef):
                missing += _undocumented(node.body, f"{node.name}.")
    return missing


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_public_definitions_have_docstrings(path: Path) -> None:
    tree = ast.parse(path.read_text())
    missing = ([] if ast.get_docstring(tree) else ["the module"]) + _undocumented(tree.body)
    assert missing == []
