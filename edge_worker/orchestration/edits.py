"""An edit of the issue's title or description during the work (sans-I/O).

The trigger classifier turns an ``Issue`` update whose ``updatedFrom`` names ``title`` or
``description`` into a follow-up carrying ``context["edit"]`` (the fields and their new
values). The orchestration acknowledges it (:func:`acknowledgement`), re-plans with the new
text (the planner sees it as the issue's text and as a follow-up) and sends
:func:`feedback` to the running sub-tasks for their next iteration.

Contract: :func:`edit_of` reads the edit from a control message (``None`` when the
message is not an edit); the texts never carry anything but the issue's own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EDIT_TOPIC = "issue-edit"
"""The topic a running sub-task receives edits on (drained before each new iteration)."""

EDIT_THOUGHT = (
    "The issue's {fields} changed while I work on it: the remaining plan and the running "
    "sub-tasks will take the new text into account."
)
EDIT_FEEDBACK = (
    "The issue's {fields} changed while the work was under way. Take the new text into "
    "account for what remains; keep what already matches it."
)
EDIT_NOTE = "The issue's {fields} changed during the work (by {author}); the work was told."


@dataclass(frozen=True)
class IssueEdit:
    """Which fields changed and their new values."""

    fields: tuple[str, ...]
    title: str | None
    description: str | None

    @property
    def fields_text(self) -> str:
        return " and ".join(self.fields)


def edit_of(message: dict[str, Any]) -> IssueEdit | None:
    """The edit a control message carries, or ``None``."""
    context = message.get("context")
    edit = context.get("edit") if isinstance(context, dict) else None
    if not isinstance(edit, dict):
        return None
    fields = tuple(f for f in edit.get("fields") or [] if f in ("title", "description"))
    if not fields:
        return None
    title = edit.get("title")
    description = edit.get("description")
    return IssueEdit(
        fields=fields,
        title=title if isinstance(title, str) else None,
        description=description if isinstance(description, str) else None,
    )


def acknowledgement(edit: IssueEdit) -> str:
    """The thought (or comment) that says the edit was seen."""
    return EDIT_THOUGHT.format(fields=edit.fields_text)


def feedback(edit: IssueEdit) -> str:
    """What the planner and the agents are told: the change and the new text."""
    parts = [EDIT_FEEDBACK.format(fields=edit.fields_text)]
    if "title" in edit.fields and edit.title:
        parts.append(f"New title: {edit.title}")
    if "description" in edit.fields:
        parts.append("New description:\n" + (edit.description or "(now empty)"))
    return "\n\n".join(parts)


def apply_to_snapshot(issue: dict[str, Any], edit: IssueEdit) -> None:
    """Update the workflow's issue snapshot with the new title and description."""
    if "title" in edit.fields and edit.title:
        issue["title"] = edit.title
    if "description" in edit.fields:
        issue["description"] = edit.description
