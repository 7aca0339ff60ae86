"""The Linear stand-in's own schema subset (used where Linear's schema file is absent, as
on a user's machine running ``make demo``) accepts every operation the daemon sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    parse,
    validate,
)
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


FAITHFUL = (
    "Document",
    "DocumentPayload",
    "DocumentCreateInput",
    "TeamFilter",
    "StringComparator",
    "IDComparator",
    "TeamConnection",
    "TeamEdge",
)
FAITHFUL_ROOT_FIELDS = (("Query", "document"), ("Query", "teams"), ("Mutation", "documentCreate"))


def _fields(schema: GraphQLSchema, type_name: str) -> dict[str, Any]:
    named = schema.type_map[type_name]
    assert isinstance(named, GraphQLObjectType | GraphQLInputObjectType), type_name
    return dict(named.fields)


def test_the_document_types_are_a_faithful_subset_of_linears(linear_schema_path: Path) -> None:
    real = build_schema(linear_schema_path.read_text(encoding="utf-8"))
    fallback = build_schema(FALLBACK_SDL)
    pairs = [(name, field) for name in FAITHFUL for field in _fields(fallback, name)]
    for type_name, field_name in [*pairs, *FAITHFUL_ROOT_FIELDS]:
        ours = _fields(fallback, type_name)[field_name]
        theirs = _fields(real, type_name).get(field_name)
        assert theirs is not None, f"{type_name}.{field_name} is not in Linear's schema"
        assert str(ours.type) == str(theirs.type), f"{type_name}.{field_name}"
        for arg_name, arg in getattr(ours, "args", {}).items():
            assert str(arg.type) == str(theirs.args[arg_name].type), f"{field_name}({arg_name})"
