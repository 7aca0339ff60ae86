"""What the MCP server says to its callers: errors (JSON-RPC messages) and tool answers."""

from __future__ import annotations

SERVER_NAME = "edge-worker"
INSTRUCTIONS = (
    "Delegate coding work to the team's agents. create_work starts work on a Linear issue "
    "(or on a new one made from a description); get_status and get_result follow it; "
    "send_feedback steers it; stop ends it. Resources edge-worker://issue/{ref}/plan and "
    "edge-worker://issue/{ref}/report give an issue's plan and report."
)

UNKNOWN_TOOL = "Unknown tool {name!r}: the tools are {known}."
BAD_ARGUMENTS = "Invalid arguments for {name}: {problems}."
NEED_ONE_SOURCE = "Give exactly one of `description` (new work) or `issue` (a Linear issue)."
EMPTY_TEXT = "The {field} is empty."
UNKNOWN_REPOSITORY = "Repository {repo!r} is not configured; configured: {known}."
REPOSITORY_NOT_ALLOWED = "Repository {repo!r} may not be used through MCP; allowed: {allowed}."
NO_TEAM = (
    "Work from a description needs a Linear issue, and no team is configured to create it in: "
    "set EDGE_WORKER_MCP__TEAM_ID, or pass `issue` with an existing issue."
)
TEAM_NOT_ALLOWED = "Issue {ref} is in team {team}, which is not in EDGE_WORKER_ALLOWED_TEAMS."
ISSUE_NOT_FOUND = "Linear has no issue {ref} (or our credentials cannot see it)."
LINEAR_FAILED = "Linear did not answer ({error}); nothing was started, try again."
NO_WORK = "No work on issue {ref} in this daemon's database."
NOT_IN_FLIGHT = "Issue {ref} is not in flight (it is {state}): {action} does not apply."
STORE_FAILED = "The database could not take the request ({error}); nothing changed."
UNKNOWN_RESOURCE = "Unknown resource {uri!r}."

FEEDBACK_FOR_TASK = "About sub-task `{key}`: {text}"
FEEDBACK_ACTOR = "an MCP client"
STARTED = "Work on {identifier} is queued; it starts within seconds and reports on the issue."

NO_RUN = "Sub-task {key!r} of {ref} has no run yet; its sub-tasks: {known}."
NO_BRANCH_OF_RUN = "Sub-task {key!r} of {ref} has no branch to verify (its run kept none)."
NO_BRANCH = "No configured repository has branch {branch!r} (locally or on its origin)."
NO_CHECKOUT = "Branch {branch!r} could not be checked out for verification."
NO_COMMANDS = "Sub-task {key!r} has no verification commands: pass `commands`."
COMMANDS_NOT_ALLOWED = (
    "Running commands of your own is off on this daemon (EDGE_WORKER_MCP__ALLOW_COMMANDS); "
    "leave out `commands` to run the sub-task's own verification."
)
