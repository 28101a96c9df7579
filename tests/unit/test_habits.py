"""The documentation habit of ../shared/STYLE.md, measured on the source: docstrings that say why.

What counts as a public definition: every module-level function and class whose name does not start
with ``_``, and every method not starting with ``_`` of any module-level class (a private class's
public methods are hooks other code calls, socketserver's ``process_request`` for one). Not counted:
dunder methods, functions nested in functions, and stubs whose whole body is ``...`` (a Protocol's
members or an ``@overload``: the protocol's or the implementation's docstring is theirs).
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "sld"
THRESHOLD = 0.85  # tpm2-pytss documents 91 % of its public functions


def _is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return len(node.body) == 1 and isinstance(node.body[0], ast.Expr) and \
        isinstance(node.body[0].value, ast.Constant) and node.body[0].value.value is Ellipsis


def public_definitions(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    """(qualified name, documented) for each public definition of one module, as the module says."""
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in (n for n in tree.body if isinstance(n, defs)):
        if not node.name.startswith("_"):
            yield node.name, ast.get_docstring(node) is not None
        if isinstance(node, ast.ClassDef):
            for method in node.body:
                if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                        not method.name.startswith("_") and not _is_stub(method):
                    yield f"{node.name}.{method.name}", ast.get_docstring(method) is not None


def _trees() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text())


def test_public_definitions_are_documented() -> None:
    found = [(f"{path}: {name}", documented) for path, tree in _trees()
             for name, documented in public_definitions(tree)]
    share = sum(documented for _, documented in found) / len(found)
    missing = "\n".join(name for name, documented in found if not documented)
    assert share >= THRESHOLD, f"{share:.1%} of {len(found)} public definitions documented; undocumented:\n{missing}"


def test_every_module_says_what_it_is_for() -> None:
    assert [path for path, tree in _trees() if ast.get_docstring(tree) is None] == []


def test_the_count_sees_what_it_should() -> None:
    tree = ast.parse(textwrap.dedent('''
        class P:
            def a(self) -> int: ...
            def b(self) -> None:
                """Why."""
        class _Q:
            def c(self) -> None:
                pass
            def __init__(self) -> None:
                pass
        def _f() -> None:
            def g() -> None:
                pass
        '''))
    assert list(public_definitions(tree)) == [("P", False), ("P.b", True), ("_Q.c", False)]
