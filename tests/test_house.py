"""The house rules of ``src/modelotel`` (docs/architecture.md): imports form no cycle, no
module hides an import of the package inside a function, and no module grows past 600 lines.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "modelotel"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = ("modelotel", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _target(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer if is_package else importer.rsplit(".", 1)[0]
    for _ in range(node.level - 1):
        base = base.rsplit(".", 1)[0]
    return f"{base}.{node.module}" if node.module else base


def _imports(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("modelotel")}
        elif isinstance(node, ast.ImportFrom):
            target = _target(name, is_package, node)
            if not target.startswith("modelotel"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


@functools.cache
def _graph(top_level_only: bool) -> dict[str, frozenset[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, frozenset[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        # ``if TYPE_CHECKING:`` blocks never run
        body = [
            n for n in tree.body
            if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
        ]
        if top_level_only:
            body = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom, ast.Try))]
        scope = ast.Module(body=body, type_ignores=[])
        graph[name] = frozenset(_imports(scope, name, path.name == "__init__.py", known))
    return graph


def module_imports(*, top_level_only: bool = True) -> dict[str, frozenset[str]]:
    """Module -> the package modules it imports (at module level unless told otherwise)."""
    return dict(_graph(top_level_only))


def _cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_module_imports_form_no_cycle() -> None:
    graph = module_imports()
    assert len(graph) > 40  # the walk found the package
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_cycle_finder_reports_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_module_is_under_the_size_limit() -> None:
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert {n: c for n, c in long.items() if c > MAX_LINES} == {}


@pytest.mark.parametrize("name", sorted(_modules()))
def test_imports_inside_functions_add_no_edge_that_would_close_a_cycle(name: str) -> None:
    """A lazy import is fine for cost (the SDK, ``testing``), never to hide a cycle: with
    every import counted, wherever it is, the graph still has none through this module."""
    full = module_imports(top_level_only=False)
    top = module_imports()
    graph = {**top, name: full[name]}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
