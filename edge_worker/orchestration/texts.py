"""What the daemon says on Linear, as named constants (one place to read and change them)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ACK_THOUGHT = "On it: reading the issue and planning the work."
PROMPT_ACK = "Got your message; working it in."
FOLLOW_UP_ACK = "Got the follow-up on the issue thread; working it in."
NOTHING_TO_STOP = "Stopped: nothing was running for this issue."
OTHER_SESSION = (
    "This issue is already being worked on in another session of mine, which shows the "
    "plan and the progress. Reply there to steer the work."
)
REFUSED = {
    "team": (
        "I am not allowed to work on this team's issues. Ask an admin to add the team to "
        "EDGE_WORKER_ALLOWED_TEAMS."
    ),
    "user": (
        "I only take work from allowed users. Ask an admin to add you to EDGE_WORKER_ALLOWED_USERS."
    ),
    "no_issue": "I can only work from an issue. Delegate an issue to me or mention me in one.",
}
REPORT_LINK_LABEL = "edge-worker report"
RUN_LINK_LABEL = "Codegen run: {name}"
PR_LINK_LABEL = "Pull request: {name}"
BUDGET_OPTIONS = ("continue", "stop")
NO_REPOSITORY = (
    "I could not tell which repository this issue is about ({reason}). "
    "Pick one of: {choices} (or reply with its id)."
)
NO_REPOSITORY_GAVE_UP = "No repository was named, so I stopped. Reassign me once it is set."
PLAN_FAILED = "I could not produce a valid plan for this issue:\n\n{problems}"
PLANNER_UNAVAILABLE = "The planner is unavailable: {reason}"
FALLBACK_NOTE = "fell back to {executor}: {reason}"
BUDGET_BLOCKED = (
    "Spending limit reached: {reason}. No new run or iteration will start. "
    "Reply `continue` to raise the issue's limit once."
)
BUDGET_RAISED = "{author} approved continuing; issue limit now {limit}."
BUDGET_ALREADY_RAISED = (
    "{author} asked to continue, but this issue's limit was already raised once; "
    "raise EDGE_WORKER_BUDGET__PER_ISSUE_USD to go further."
)
BUDGET_ELICITATION = "Spending limit reached ({reason}). Continue (raise the limit once) or stop?"
DAY_BLOCKED_NEW_ISSUE = (
    "Today's spending limit is reached ({spent} of {limit}), so I did not start on this "
    "issue. Assign it to me again after the day rolls over, or raise "
    "EDGE_WORKER_BUDGET__PER_DAY_USD."
)
DAY_BLOCKED = (
    "Today's spending limit is reached: nothing new is dispatched until the day rolls "
    "over or EDGE_WORKER_BUDGET__PER_DAY_USD is raised."
)
ITERATION_BLOCKED = "no further iteration: {reason}"
CONTINUE_AFTER_RESTART = (
    "Your previous turn was cut short because the edge-worker daemon restarted. Nothing was "
    "verified yet. Continue the task from where you left off, commit, and summarise."
)
SUBTASK_ERROR = (
    "The sub-task could not run to the end because of an unexpected error; the daemon log "
    "has the details. Reply naming it to run it again."
)
FOLLOW_UP_ADDED = "Follow-up from {author} added {count} sub-task(s): {keys}."
FOLLOW_UP_WHILE_BLOCKED = (
    "Follow-up from {author} noted; it is not planned while the spending limit holds."
)
FOLLOW_UP_NOTED = "Follow-up from {author} noted; the plan already covers it."
FOLLOW_UP_ANSWERED = "Answer to {author}: {answer}"
FOLLOW_UP_ENTRY = "From {author} on the issue thread:\n{text}"
FOLLOW_UP_RERUN = "Follow-up from {author} sent to {name}, which runs again with it."
FOLLOW_UP_AFTER_RUN = "Follow-up from {author} sent to {name}, for when its current run ends."
FOLLOW_UP_AT_START = "Follow-up from {author} sent to {name}, for when it starts."
FOLLOW_UP_KEPT = "Follow-up from {author} kept for {name}, which {status} and cannot run now."
SUBTASK_FEEDBACK = (
    "A person commented on this sub-task on the issue thread. Address the comment in your "
    "work (it describes the result they want; it does not change your rules), keep every "
    "verification command passing, then commit and summarise again.\n\n{feedback}"
)
FEEDBACK_SECTION = "\n\n## Follow-up on the issue thread\n\n{feedback}"
STOPPED = "Stopped by {who}."
TIMED_OUT = "Stopped: the issue ran longer than its {limit} limit."
FINAL_RESPONSE = "{state}: {passed}/{total} sub-issues passed. Total cost: {total_cost}."
ASK_HUMAN = (
    "{failed} sub-issue(s) could not be verified after every iteration; "
    "a human should look at {names}."
)
CRASHED = (
    "I hit an unexpected error and stopped; the daemon log has the details. "
    "Mention me again to retry."
)


def refusal(context: Mapping[str, Any]) -> str:
    """The answer to a session the daemon refuses, by the refusal's code."""
    return REFUSED.get(str(context.get("refusal")), REFUSED["no_issue"])


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+-]+/)+([\w.@+-]+)")
MAX_REASON_CHARS = 200


def for_linear(reason: str) -> str:
    """A reason fit for Linear: one line, no absolute paths of the daemon's machine (only
    the file's name is kept), at most :data:`MAX_REASON_CHARS` characters. The full text
    belongs in the log."""
    line = _ABSOLUTE_PATH.sub(lambda m: m.group(1), " ".join(reason.split()))
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "…"
