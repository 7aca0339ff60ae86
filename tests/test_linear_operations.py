"""Every document the Linear client sends validates against Linear's real schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema, parse, validate

from edge_worker.linear.documents import OPERATIONS_PATH, operations, split_operations

EXPECTED = {
    "Viewer",
    "Issue",
    "IssueRef",
    "TeamStates",
    "TeamByKey",
    "IssueCreate",
    "IssueUpdate",
    "CommentCreate",
    "CommentUpdate",
    "CommentById",
    "DocumentCreate",
    "DocumentById",
    "AgentActivityCreate",
    "AgentActivityById",
    "AgentSessionUpdate",
    "RepositorySuggestions",
    "AttachmentLinkURL",
}


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    from tests.conftest import require_shared_file

    path = require_shared_file("linear/schema.graphql")
    return build_schema(Path(path).read_text(encoding="utf-8"))


def test_the_file_holds_exactly_the_operations_the_client_uses() -> None:
    assert set(operations()) == EXPECTED


def test_the_whole_file_validates(schema: GraphQLSchema) -> None:
    errors = validate(schema, parse(OPERATIONS_PATH.read_text(encoding="utf-8")))
    assert errors == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_request_document_validates_on_its_own(schema: GraphQLSchema, name: str) -> None:
    # What is POSTed is the operation plus its fragments: that text must stand alone.
    document = parse(operations()[name])
    assert [error.message for error in validate(schema, document)] == []


def test_a_document_the_schema_rejects_is_caught(schema: GraphQLSchema) -> None:
    # The check above can fail: a wrong input type and an unknown field are reported.
    bad = parse(
        "mutation IssueCreate($input: IssueCreateInput!) {"
        " issueCreate(input: $input) { success issue { id nope } } }"
        " query CommentById($id: Int!) { comment(id: $id) { id } }"
    )
    messages = [error.message for error in validate(schema, bad)]
    assert any("nope" in message for message in messages)
    assert any("Int!" in message for message in messages)


def test_each_request_carries_only_the_fragments_it_uses() -> None:
    texts = split_operations(
        parse(
            "fragment A on Issue { id } fragment B on Issue { ...A title }"
            ' query One { issue(id: "x") { ...B } } query Two { viewer { id } }'
        )
    )
    assert "fragment A" in texts["One"] and "fragment B" in texts["One"]
    assert "fragment" not in texts["Two"]


def test_unnamed_operations_are_refused_at_load_time() -> None:
    with pytest.raises(ValueError, match="named"):
        split_operations(parse("{ viewer { id } }"))
