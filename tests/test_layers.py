"""The house's layering, read from the source: no import circles, imports only point down, short files.

Layers, lowest first (docs/code-map.md): ``types`` and ``pretrained`` <- ``models`` <- ``data`` <- ``lit``
<- ``cli``/``commands`` <- ``main``. Every import is read with :mod:`ast`, those inside functions and
``if TYPE_CHECKING:`` blocks included: an import deferred into a function still ties the two rooms
together. Each check runs once per part of the package, so a failure names the part to fix.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
(PACKAGE,) = [p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()]

#: first part of a module's name below the package -> its layer (lower numbers are imported by higher)
LAYERS = {
    "__init__": 0,
    "types": 0,
    "pretrained": 0,
    "models": 1,
    "data": 2,
    "lit": 3,
    "cli": 4,
    "commands": 4,
    "main": 5,
    "__main__": 6,
}
MAX_LINES = 320


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root`` (its parent folder) by dotted name; a package is its
    ``__init__.py``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's own modules that module ``name`` imports, anywhere in its file.

    ``from a.b import c`` is an import of ``a.b.c`` where that is a module, else of ``a.b``; relative
    imports are resolved against ``name``'s package.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1] if node.level else [])
            module = ".".join(p for p in (base, node.module or "") if p)
            named = [f"{module}.{alias.name}" for alias in node.names]
            targets = [n if n in modules else module for n in named]
        else:
            continue
        for target in targets:
            # `import a.b.c` of a name that is not a module (a re-export): its longest module prefix
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = module_names(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_of(module: str, package: str, layers: Mapping[str, int]) -> int:
    """The layer of ``module`` by its first part below the package (the package itself: its ``__init__``)."""
    parts = module.split(".")
    return layers[parts[1] if len(parts) > 1 else "__init__"]


def upward_imports(graph: Mapping[str, set[str]], package: str, layers: Mapping[str, int]) -> list[str]:
    """Every import from a lower layer to a higher one, as ``importer -> imported``."""
    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if layer_of(a, package, layers) < layer_of(b, package, layers)
    )


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan): each holds an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is the import chain's length: a few dozen
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def long_files(root: Path, package: str, max_lines: int) -> list[str]:
    """Every module over ``max_lines`` lines, as ``path: lines``."""
    out = []
    for path in module_names(root, package).values():
        lines = len(path.read_text().splitlines())
        if lines > max_lines:
            out.append(f"{path.relative_to(root)}: {lines} lines")
    return sorted(out)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = import_graph(SRC, PACKAGE)
PARTS = sorted({_part(m) for m in GRAPH})


def test_every_part_has_a_layer() -> None:
    assert set(PARTS) <= set(LAYERS), f"give these a layer in LAYERS: {sorted(set(PARTS) - set(LAYERS))}"


@pytest.mark.parametrize("part", PARTS)
def test_imports_point_down(part: str) -> None:
    mine = {m: t for m, t in GRAPH.items() if _part(m) == part}
    upward = upward_imports(mine, PACKAGE, LAYERS)
    assert not upward, f"{part}: imports from a lower layer to a higher one:\n" + "\n".join(upward)


@pytest.mark.parametrize("part", PARTS)
def test_no_import_circles(part: str) -> None:
    cycles = [c for c in import_cycles(GRAPH) if any(_part(m) == part for m in c)]
    assert not cycles, f"{part}: modules that import each other (in a circle):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


@pytest.mark.parametrize("part", PARTS)
def test_files_are_short(part: str) -> None:
    long = [f for f in long_files(SRC, PACKAGE, MAX_LINES) if Path(f).parts[1] in (part, f"{part}.py")]
    assert not long, f"{part}: files over {MAX_LINES} lines (split them by idea):\n" + "\n".join(long)


def test_the_checker_finds_a_circle_an_upward_import_and_a_long_file(tmp_path: Path) -> None:
    pkg = tmp_path / "toy"
    for sub in ("low", "high"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    # a circle through an import inside a function, and an upward import by a relative import
    (pkg / "low" / "a.py").write_text("from toy.low import b\n")
    (pkg / "low" / "b.py").write_text("def f():\n    from . import a\n    from ..high.c import C\n")
    (pkg / "high" / "c.py").write_text("C = 1\n" + "x = 1\n" * 11)
    (pkg / "high" / "d.py").write_text("from toy.high.c import C\nimport toy.low.a\n")
    graph = import_graph(tmp_path, "toy")
    layers = {"__init__": 0, "low": 0, "high": 1}
    assert graph["toy.low.b"] == {"toy.low.a", "toy.high.c"}
    assert import_cycles(graph) == [["toy.low.a", "toy.low.b"]]
    assert upward_imports(graph, "toy", layers) == ["toy.low.b -> toy.high.c"]
    assert long_files(tmp_path, "toy", 10) == [f"{Path('toy/high/c.py')}: 12 lines"]
    # without the two offending imports, nothing is reported
    (pkg / "low" / "b.py").write_text("def f():\n    return 1\n")
    graph = import_graph(tmp_path, "toy")
    assert import_cycles(graph) == [] and upward_imports(graph, "toy", layers) == []
