"""The GraphQL documents in ``operations.graphql``, split into one request text each.

Contract: :func:`operations` parses the file once per process and returns
``{operation name: document text}``, each text holding one named operation plus exactly
the fragments it uses (transitively), ready to POST. An unnamed operation, a duplicate
name or a missing fragment raises :class:`ValueError` at load time, not at first use.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    Node,
    OperationDefinitionNode,
    Visitor,
    parse,
    print_ast,
    visit,
)

OPERATIONS_PATH = Path(__file__).with_name("operations.graphql")


class _SpreadCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: object) -> None:
        self.names.add(node.name.value)


def _spreads(node: Node) -> set[str]:
    collector = _SpreadCollector()
    visit(node, collector)
    return collector.names


def split_operations(document: DocumentNode) -> dict[str, str]:
    """One self-contained request text per named operation in ``document``."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    result: dict[str, str] = {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if definition.name is None:
            raise ValueError("every operation in operations.graphql must be named")
        name = definition.name.value
        if name in result:
            raise ValueError(f"operation {name!r} is defined twice")
        needed: list[str] = []
        pending = sorted(_spreads(definition))
        while pending:
            fragment_name = pending.pop()
            if fragment_name in needed:
                continue
            if fragment_name not in fragments:
                raise ValueError(f"operation {name!r} uses unknown fragment {fragment_name!r}")
            needed.append(fragment_name)
            pending.extend(sorted(_spreads(fragments[fragment_name])))
        parts = [print_ast(definition)] + [print_ast(fragments[f]) for f in sorted(needed)]
        result[name] = "\n\n".join(parts)
    return result


@cache
def operations(path: Path = OPERATIONS_PATH) -> dict[str, str]:
    """The operations in ``path`` (default: the packaged file), loaded once."""
    return split_operations(parse(path.read_text(encoding="utf-8")))
