"""The layers of ARCHITECTURE.md, checked on the source: no module imports upward, none is in a cycle.

Every `import univg...` of every module counts, the ones inside functions and `TYPE_CHECKING` blocks
too: an import deferred to a function still ties the two modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "univg"

# Lowest first. A package may import its own modules and those of any lower layer, nothing else;
# packages that share a layer do not import each other.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core"}),
    frozenset({"data"}),
    frozenset({"models"}),
    frozenset({"inference"}),
    frozenset({"training", "evaluation"}),
    frozenset({"cot", "serving", "demo"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),  # `python -m univg`
)
ROOT = "univg"  # the package itself (its version) sits below every layer


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_names(path: Path, name: str) -> Iterator[str]:
    """Every module or name the file of module `name` imports, relative imports resolved, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)


def resolve(name: str) -> str | None:
    """The univg module an imported name lives in (`univg.core.boxes.iou` -> `univg.core.boxes`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {resolve(imported) for imported in imported_names(path, name) if imported.startswith(ROOT)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def layer_of(package: str) -> int:
    if package == ROOT:
        return -1
    for position, members in enumerate(LAYERS):
        if package in members:
            return position
    raise AssertionError(f"package univg.{package} is in no layer: add it to LAYERS and ARCHITECTURE.md")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in graph.items():
        here = package_of(module)
        for target in sorted(targets):
            there = package_of(target)
            if there != here and layer_of(there) >= layer_of(here):
                found.append(f"{module} imports {target}")
    return found


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.add(frozenset(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from univg.core.boxes import iou\n"
        "def late():\n    import univg.data.schema\n    from ..inference import predictor\n"
    )
    names = set(imported_names(source, "univg.evaluation.mod"))
    assert names == {"univg.core.boxes.iou", "univg.data.schema", "univg.inference.predictor"}
    assert resolve("univg.core.boxes.iou") == "univg.core.boxes"
    assert resolve("univg.inference.predictor") == "univg.inference.predictor"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, set()),
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, {frozenset({"a", "b"})}),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}, {frozenset({"a", "b", "c"})}),
    ],
)
def test_cycle_finder(graph: dict[str, set[str]], expected: set[frozenset[str]]) -> None:
    assert cycles(graph) == expected


def test_layer_rule_flags_an_upward_and_a_sideways_import() -> None:
    graph = {
        "univg.core.boxes": {"univg.data.schema"},
        "univg.training.grpo": {"univg.evaluation.harness", "univg.core.boxes"},
        "univg.cli.eval": {"univg.evaluation.harness"},
    }
    assert upward_imports(graph) == [
        "univg.core.boxes imports univg.data.schema",
        "univg.training.grpo imports univg.evaluation.harness",
    ]


def test_every_package_has_a_layer() -> None:
    for module in MODULES:
        layer_of(package_of(module))


def test_nothing_imports_upward() -> None:
    assert upward_imports(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == set()
