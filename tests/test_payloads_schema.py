"""The payload builders produce what Linear's schema says a webhook body holds.

Every non-null field of the webhook type is present (recursively through child objects),
and no field is present that the type does not declare, so tests that use the builders
feed the daemon real shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    build_schema,
)

from edge_worker.sandbox import payloads as p

UNION_MEMBERS: dict[str, Any] = {
    "EntityActorWebhookPayload": "UserActorWebhookPayload",
    "NotificationWebhookPayload": {
        "issueAssignedToYou": "IssueAssignedToYouNotificationWebhookPayload",
        "issueUnassignedFromYou": "IssueUnassignedFromYouNotificationWebhookPayload",
    },
}
DATA_TYPES = {"Issue": "IssueWebhookPayload", "Comment": "CommentWebhookPayload"}


@pytest.fixture(scope="module")
def schema(linear_schema_path: Path) -> GraphQLSchema:
    return build_schema(linear_schema_path.read_text())


def _check(schema: GraphQLSchema, type_name: str, value: dict[str, Any], path: str) -> None:
    gtype = schema.get_type(type_name)
    assert isinstance(gtype, GraphQLObjectType), type_name
    for name, field in gtype.fields.items():
        if isinstance(field.type, GraphQLNonNull):
            assert value.get(name) is not None, f"{path}.{name} is required by {type_name}"
    for name, item in value.items():
        assert name in gtype.fields, f"{path}.{name} is not a field of {type_name}"
        if item is None:
            continue
        inner = gtype.fields[name].type
        if isinstance(inner, GraphQLNonNull):
            inner = inner.of_type
        if isinstance(inner, GraphQLList):
            continue
        if isinstance(inner, GraphQLUnionType):
            member = UNION_MEMBERS[inner.name]
            if isinstance(member, dict):
                member = member[item["type"]]
            _check(schema, member, item, f"{path}.{name}")
        elif isinstance(inner, GraphQLObjectType):
            _check(schema, inner.name, item, f"{path}.{name}")


@pytest.mark.parametrize(
    "payload",
    [
        p.issue_assigned("iss-1", "agent"),
        p.issue_unassigned("iss-1", "agent", field="delegateId"),
        p.issue_removed("iss-1"),
        p.comment_created("c-1", "iss-1", "hello"),
        p.issue_edited("iss-1", previous={"title": "Old", "description": "old"}),
    ],
    ids=["issue-assigned", "issue-undelegated", "issue-removed", "comment-created", "edited"],
)
def test_entity_payloads_match_schema(schema: GraphQLSchema, payload: dict[str, Any]) -> None:
    UNION_MEMBERS["DataWebhookPayload"] = DATA_TYPES[payload["type"]]
    _check(schema, "EntityWebhookPayload", payload, "payload")


@pytest.mark.parametrize(
    "payload",
    [
        p.agent_session_created("s-1", "iss-1", "agent"),
        p.agent_session_prompted("s-1", "iss-1", "agent", "more please"),
        p.agent_session_created(
            "s-1",
            "iss-1",
            "agent",
            guidance=[
                p.guidance_rule("Be brief."),
                p.guidance_rule("Tests!", team_payload=p.team()),
            ],
            previous_comments=[p.previous_comment("c-1", "iss-1", "Look at parse().")],
        ),
    ],
    ids=["created", "prompted", "created-in-thread"],
)
def test_agent_session_payloads_match_schema(
    schema: GraphQLSchema, payload: dict[str, Any]
) -> None:
    _check(schema, "AgentSessionEventWebhookPayload", payload, "payload")


@pytest.mark.parametrize("action", ["issueAssignedToYou", "issueUnassignedFromYou"])
def test_notification_payloads_match_schema(schema: GraphQLSchema, action: str) -> None:
    _check(schema, "AppUserNotificationWebhookPayload", p.notification(action, "i", "a"), "n")


def test_lifecycle_payloads_match_schema(schema: GraphQLSchema) -> None:
    change = p.permission_change("agent", removed_team_ids=["team-eng"])
    _check(schema, "AppUserTeamAccessChangedWebhookPayload", change, "permission")
    _check(schema, "OAuthAppWebhookPayload", p.oauth_app_revoked(), "revoked")


def test_checker_rejects_a_missing_required_field(schema: GraphQLSchema) -> None:
    payload = p.agent_session_created("s-1", "iss-1", "agent")
    del payload["agentSession"]["appUserId"]
    with pytest.raises(AssertionError, match="appUserId is required"):
        _check(schema, "AgentSessionEventWebhookPayload", payload, "payload")
