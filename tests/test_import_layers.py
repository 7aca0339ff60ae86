"""Imports run one way: entry points down to the core, never back up.

The graph is built from the source with :mod:`ast` (nothing is imported): one node per
module of ``edge_worker``, one edge per ``import`` / ``from ... import`` anywhere in the
file, at module level, inside functions and under ``if TYPE_CHECKING`` alike, since a
deferred import still ties the two modules together. ``from package import name`` is an
edge to ``package.name`` when that is a module, else to ``package``.

Each test names a layering rule that once had a circle: the lower module (or package) must
not reach the upper one through any chain of imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "edge_worker"

Graph = dict[str, set[str]]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> Iterable[str]:
    """The ``edge_worker`` modules one import statement names."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor if is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            yield submodule if submodule in modules else base


@cache
def import_graph() -> Graph:
    """Module -> the ``edge_worker`` modules it imports (see the module docstring)."""
    paths = {_module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    modules = set(paths)
    graph: Graph = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[module] = {
            target
            for node in ast.walk(tree)
            for target in _targets(node, module, is_package, modules)
            if target in modules and target != module
        }
    return graph


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def import_chain(lower: tuple[str, ...], upper: tuple[str, ...]) -> list[str] | None:
    """A shortest chain of imports from a module in ``lower`` to one in ``upper``, if any.

    ``lower`` and ``upper`` are module names, each covering its submodules too.
    """
    graph = import_graph()
    starts = [module for module in graph if _in(module, lower)]
    previous: dict[str, str | None] = dict.fromkeys(starts)
    frontier = list(starts)
    while frontier:
        following: list[str] = []
        for module in frontier:
            for target in sorted(graph[module]):
                if target in previous:
                    continue
                previous[target] = module
                if _in(target, upper):
                    chain = [target]
                    while (step := previous[chain[-1]]) is not None:
                        chain.append(step)
                    return chain[::-1]
                following.append(target)
        frontier = following
    return None


def test_the_graph_sees_the_imports_it_is_checked_against() -> None:
    graph = import_graph()
    assert "edge_worker.storage.db" in graph["edge_worker.costs.ledger"]
    assert "edge_worker.orchestration.planner" in graph["edge_worker.orchestration.planner_claude"]
    assert "edge_worker.orchestration.planner" in graph["edge_worker.orchestration.wiring"]
    # a function-level import counts: create_tables imports the table list when called
    assert "edge_worker.storage.tables" in graph["edge_worker.storage.db"]


def test_storage_imports_neither_costs_nor_alerts() -> None:
    chain = import_chain(("edge_worker.storage",), ("edge_worker.costs", "edge_worker.alerts"))
    assert chain is None, " -> ".join(chain or [])


def test_the_planner_protocol_does_not_import_its_back_ends() -> None:
    back_ends = (
        "edge_worker.orchestration.planner_anthropic",
        "edge_worker.orchestration.planner_claude",
    )
    chain = import_chain(("edge_worker.orchestration.planner",), back_ends)
    assert chain is None, " -> ".join(chain or [])


def test_the_runtime_and_queue_names_import_no_workflow() -> None:
    workflows = (
        "edge_worker.orchestration.workflows",
        "edge_worker.costs.daily_workflow",
        "edge_worker.reporting.daily_report_post",
        "edge_worker.workflow_registry",
    )
    for lower in ("edge_worker.runtime", "edge_worker.queues"):
        chain = import_chain((lower,), workflows)
        assert chain is None, " -> ".join(chain or [])
    assert import_graph()["edge_worker.queues"] == set()


ALLOWED_CYCLES = [
    # ``create_tables`` imports the list of table modules when called, and they declare
    # their tables on ``db.METADATA``: one package, one concern, on purpose.
    frozenset(
        {"edge_worker.storage.db", "edge_worker.storage.tables"}
        | {
            f"edge_worker.storage.{name}"
            for name in (
                "access",
                "activity_log",
                "alert_outbox",
                "cost_entries",
                "events",
                "intake_pause",
                "issue_links",
                "stops",
                "tokens",
                "work",
            )
        }
    ),
]


def import_cycles() -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                target = pending.pop()
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, sorted(graph[target])))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    """Every import runs one way, except the storage tables' registration (above)."""
    unexpected = [sorted(c) for c in import_cycles() if c not in ALLOWED_CYCLES]
    assert unexpected == [], unexpected
