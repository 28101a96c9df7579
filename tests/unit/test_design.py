"""docs/design.md's import rules hold for the code: the imports of every sld module are read from its
source (ast), not assumed, and checked against the table the document gives.

An import is *at load* when it runs as the module is imported (module level, class bodies, and
``if TYPE_CHECKING:`` blocks, which mypy reads as such), and *lazy* when it sits inside a function:
it costs nothing until that function runs, which is how ``sld inspect`` avoids loading pyroute2 or
prometheus-client. ``python tests/unit/test_design.py`` prints each module with the first line of its
docstring, grouped by the table's stages: the listing docs/design.md's stages are written from.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "sld"
DESIGN = ROOT / "docs" / "design.md"
# The standard library modules that reach files, processes or sockets: a parser never needs them.
IO_MODULES = frozenset({"os", "io", "mmap", "pathlib", "socket", "subprocess", "shutil", "tempfile", "fcntl"})


@dataclass(frozen=True)
class Import:
    """One ``import`` statement's target inside sld: the module it loads and the names it takes from it."""

    module: str
    names: tuple[str, ...]
    lazy: bool
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _owner(name: str) -> str:
    """The sld module an imported name lives in (``sld.formats.names.ALG_ID`` -> ``sld.formats.names``)."""
    while name not in modules():
        name = name.rpartition(".")[0]
    return name


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if modules()[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports(module: str) -> tuple[Import, ...]:
    """The sld imports of ``module``, at load and lazy, each resolved to the module it loads."""
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(_owner(a.name), (), inner, child.lineno)
                             for a in child.names if a.name.split(".")[0] == "sld")
            elif isinstance(child, ast.ImportFrom):
                source = _absolute(module, child)
                if source.split(".")[0] != "sld":
                    continue
                for alias in child.names:  # `from sld.formats import heap` loads the submodule sld.formats.heap
                    target = f"{source}.{alias.name}"
                    owner = target if target in modules() else _owner(source)
                    found.append(Import(owner, () if owner == target else (alias.name,), inner, child.lineno))
            visit(child, inner)

    visit(ast.parse(modules()[module].read_text()), False)
    return tuple(i for i in found if i.module != module)


@dataclass(frozen=True)
class Stage:
    """A row of the design's import table: the modules of one stage and what they may import."""

    name: str
    patterns: tuple[str, ...]
    at_load: frozenset[str]
    lazily: frozenset[str]

    def holds(self, module: str) -> bool:
        """Whether ``module`` is one of this stage's (``sld.formats.*`` is the package and everything in it)."""
        return any(module == p or fnmatchcase(module, p) or (p.endswith(".*") and module == p[:-2])
                   for p in self.patterns)


def _names(cell: str) -> frozenset[str]:
    return frozenset(n.strip() for n in cell.split(",") if n.strip() not in ("", "-"))


def _table(heading: str) -> list[list[str]]:
    """The body rows of the first table under docs/design.md's ``## heading``, cells stripped."""
    section = DESIGN.read_text().partition(f"\n## {heading}\n")[2].partition("\n## ")[0]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("|")]
    assert rows and rows[0][:2] == ["stage", "modules"], f"design.md: no stage table under '## {heading}'"
    return rows[2:]


@cache
def stages() -> tuple[Stage, ...]:
    """The rows of the table under docs/design.md's ``## Import rules``."""
    return tuple(Stage(name, tuple(re.findall(r"`([^`]+)`", mods)), _names(at_load) | {name}, _names(lazily))
                 for name, mods, at_load, lazily in (row[:2] + row[-2:] for row in _table("Import rules")))


def stage_of(module: str) -> Stage:
    """The one stage ``module`` belongs to."""
    owners = [s for s in stages() if s.holds(module)]
    assert len(owners) == 1, f"{module} is in {len(owners)} rows of design.md's import table: {owners}"
    return owners[0]


def test_every_module_is_in_exactly_one_stage_and_every_row_names_code() -> None:
    for module in modules():
        stage_of(module)
    names = {s.name for s in stages()}
    for stage in stages():
        assert stage.at_load | stage.lazily <= names, f"{stage.name}: unknown stages named"
        for pattern in stage.patterns:
            assert any(stage.holds(m) and (m == pattern or pattern.endswith("*")) for m in modules()), \
                f"design.md names {pattern}, which is not in sld/"


def test_the_stage_table_and_the_import_table_list_the_same_modules() -> None:
    assert [row[:2] for row in _table("Stages and modules")] == [row[:2] for row in _table("Import rules")]


def test_imports_obey_the_table() -> None:
    broken = set()
    for module in modules():
        stage = stage_of(module)
        for imp in imports(module):
            target = stage_of(imp.module).name
            allowed = stage.at_load | stage.lazily if imp.lazy else stage.at_load
            if target not in allowed:
                when = "lazily" if imp.lazy else "at load"
                broken.add(f"{module}:{imp.line} ({stage.name}) imports {imp.module} ({target}) {when}")
    assert not broken, "imports design.md's table does not allow:\n" + "\n".join(sorted(broken))


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph``, or [] (depth-first, the path kept)."""
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return []
        for nxt in sorted(graph.get(node, ())):
            if found := walk(nxt, [*path, node]):
                return found
        done.add(node)
        return []

    return next((c for c in (walk(n, []) for n in sorted(graph)) if c), [])


def test_no_import_cycle_at_load_and_none_in_the_service_even_lazily() -> None:
    at_load = {m: {i.module for i in imports(m) if not i.lazy} for m in modules()}
    assert _cycle(at_load) == [], "an import cycle at load"
    service = {m: {i.module for i in imports(m) if i.module.startswith("sld.service")}
               for m in modules() if m.startswith("sld.service")}
    assert _cycle(service) == [], "a cycle among sld.service.*"


def test_the_service_never_parses_bytes_itself() -> None:
    # From formats the service takes name tables only (metrics labels a register's bits with them); from
    # platform only the source spec's grammar, which preflight checks a configuration with.
    for module in (m for m in modules() if m.startswith("sld.service")):
        for imp in imports(module):
            if imp.module.startswith("sld.formats"):
                assert imp.names and all(n.isupper() for n in imp.names), f"{module}:{imp.line} {imp}"
            if imp.module.startswith("sld.platform"):
                assert imp.names == ("parse_spec",), f"{module}:{imp.line} {imp}"


def test_parsers_and_replay_do_no_io() -> None:
    for module in (m for m in modules() if m.startswith("sld.formats") or m == "sld.replay"):
        tree = ast.parse(modules()[module].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & IO_MODULES, f"{module}:{node.lineno}"
            elif isinstance(node, ast.ImportFrom) and not node.level:
                assert (node.module or "").split(".")[0] not in IO_MODULES, f"{module}:{node.lineno}"
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{module}:{node.lineno} opens a file"


def test_the_cli_loads_its_subcommands_lazily() -> None:
    loaded = {i.module for i in imports("sld.cli") if not i.lazy}
    assert not {m for m in loaded if m.startswith("sld.commands")}, loaded
    handlers = re.findall(r'"(sld\.commands\.\w+):\w+"', modules()["sld.cli"].read_text())
    assert handlers and set(handlers) <= set(modules()), "the CLI's handler strings name missing modules"


def _listing() -> str:
    out = []
    for stage in stages():
        out.append(f"{stage.name}:")
        for module in (m for m in modules() if stage.holds(m)):
            doc = ast.get_docstring(ast.parse(modules()[module].read_text())) or ""
            out.append(f"  {module:28} {doc.splitlines()[0] if doc else '(no docstring)'}")
    return "\n".join(out)


if __name__ == "__main__":
    print(_listing())
