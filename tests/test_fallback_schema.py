"""The Linear stand-in's own schema subset (used where Linear's schema file is absent, as
on a user's machine running ``make demo``) accepts every operation the daemon sends."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import DocumentNode, build_schema, parse, validate
from graphql.language import FragmentDefinitionNode, OperationDefinitionNode

import edge_worker.linear
from edge_worker.sandbox.linear_schema import FALLBACK_SDL

OPERATIONS = Path(edge_worker.linear.__file__).parent / "operations.graphql"
DOCUMENT = parse(OPERATIONS.read_text(encoding="utf-8"))
FRAGMENTS = tuple(d for d in DOCUMENT.definitions if isinstance(d, FragmentDefinitionNode))
NAMED = {
    d.name.value: d
    for d in DOCUMENT.definitions
    if isinstance(d, OperationDefinitionNode) and d.name is not None
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_every_operation_validates_against_the_fallback_schema(name: str) -> None:
    schema = build_schema(FALLBACK_SDL)
    errors = validate(schema, DocumentNode(definitions=(NAMED[name], *FRAGMENTS)))
    assert [e.message for e in errors if "is never used" not in e.message] == []
