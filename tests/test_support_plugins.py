"""The fixture modules in ``tests/support`` that test modules load with ``pytest_plugins``
are registered for the whole session, and of two fixtures of one name the last registered
wins: no two of them may define the same fixture name."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

SUPPORT = Path(__file__).parent / "support"


def fixture_names(module: Path) -> list[str]:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
    ]


def test_no_two_support_plugins_define_the_same_fixture() -> None:
    plugins = sorted(SUPPORT.glob("*_fixtures.py"))
    assert len(plugins) >= 2
    counts = Counter(name for plugin in plugins for name in fixture_names(plugin))
    assert [name for name, count in counts.items() if count > 1] == []
