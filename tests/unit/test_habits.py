"""Habits of ../shared/STYLE.md, measured on the source: docstrings that say why, and no dead names.

What counts as a public definition: every module-level function and class whose name does not start
with ``_``, and every method not starting with ``_`` of any module-level class (a private class's
public methods are hooks other code calls, socketserver's ``process_request`` for one). Not counted:
dunder methods, functions nested in functions, and stubs whose whole body is ``...`` (a Protocol's
members or an ``@overload``: the protocol's or the implementation's docstring is theirs).
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "sld"
USERS = ("sld", "tests", "benchmarks", "fuzz", "packaging")  # where a name of sld may be used
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
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text())


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


def _defined_names(tree: ast.Module, local_classes: set[str]) -> Iterator[tuple[int, str]]:
    """Module-level names, and the methods of classes that override nothing outside sld."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.lineno, node.name
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in (n for t in targets for n in ast.walk(t)):
                if isinstance(name, ast.Name):
                    yield node.lineno, name.id
        if isinstance(node, ast.ClassDef) and {ast.unparse(b) for b in node.bases} <= local_classes | {"Protocol"}:
            for method in node.body:
                if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield method.lineno, method.name


def test_no_name_is_dead() -> None:
    # A name written nowhere but where it is defined is dead (a use in a test counts). Not asked: dunders;
    # subcommand handlers (``run``, ``run_*`` in sld.commands), which sld.cli names in handler strings, some
    # made with f-strings; methods of a class with a base from outside sld (socketserver, wsgiref and
    # pyroute2 call their hooks); an enum's members, which are vocabulary rather than module-level names.
    words = Counter(w for d in USERS for p in (ROOT / d).rglob("*.py") for w in re.findall(r"\w+", p.read_text()))
    trees = list(_trees())
    local = {n.name for _, tree in trees for n in tree.body if isinstance(n, ast.ClassDef)}
    dead = [f"{path}:{line} {name}" for path, tree in trees for line, name in _defined_names(tree, local)
            if words[name] <= 1 and not name.startswith("__")
            and not (path.startswith("sld/commands/") and re.fullmatch(r"run(_\w+)?", name))]
    assert dead == []
