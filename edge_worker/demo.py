"""``edge-worker demo``: the whole flow on loopback stand-ins, start to finish.

It starts stand-ins of Linear (validating every request against Linear's schema when the
schema file is present), the Anthropic Messages API (the planner) and Codegen, makes a
small git repository, starts the real daemon (``edge-worker serve``) on a fresh SQLite
file, gives an issue to the agent with signed webhooks, waits for the orchestration to
end, and prints the report comment the daemon left on the issue, its sub-issues, the cost
ledger and the number of Linear requests it took.

App mode (the default): the issue is delegated to the agent, so Linear sends the three
webhooks of a delegation (the agent session's ``created``, the inbox notification, the
``delegateId`` update). Two repositories are configured and the issue names neither, so
the agent asks which one with a ``select`` question; the demo answers it as the user
would. It then prints the session: its activities (with the state each left it in), its
plan and its links. ``user_mode=True`` assigns the issue to a bot user instead (comments,
no session).

The mix of agents: the daemon runs under ``hybrid-smart`` and the planner stand-in returns
the plan with a hybrid plan's executor hints (:func:`demo_mix_plan`), so one sub-task runs
on Codegen beside local ones. ``agents`` (``--agents gemini,codex,claude``) adds a scoping
sub-task and gives the daemon agent profiles per role (``[agents.roles.<role>]``), the
named agents taken in turn for the scoper, builder and reviewer roles, so each named agent
runs at least one sub-task. The report shows each sub-task's executor.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from edge_worker.agent_config import EXECUTOR_ALIASES
from edge_worker.sandbox.daemon import Daemon
from edge_worker.sandbox.demo_plan import DEMO_ISSUE_DESCRIPTION, demo_mix_plan
from edge_worker.sandbox.github_demo import demo_github, print_pull_requests
from edge_worker.sandbox.linear import WebhookDelivery, send_webhook
from edge_worker.sandbox.world import WEBHOOK_SECRET, SandboxWorld
from edge_worker.storage.work import TERMINAL_STATES

DEMO_TIMEOUT_SECONDS = 180.0
QUESTION_TIMEOUT_SECONDS = 60.0
DEMO_ANSWER = "demo"
DEMO_STRATEGY = "hybrid-smart"
DEMO_ROLES = ("scoper", "builder", "reviewer")
UNKNOWN_DEMO_AGENT = "unknown agent {name!r}: choose from {choices}"
TOO_MANY_DEMO_AGENTS = "at most {count} agents, one per role of the demo plan ({roles})"
NO_DEMO_AGENTS = "name at least one agent, e.g. gemini,codex,claude"


def parse_agents(text: str) -> list[str]:
    """The executors named in ``text`` (comma-separated, aliases like ``claude`` allowed).

    Raises :class:`ValueError` with a one-line reason for an unknown name, none at all, or
    more names than the demo plan has roles.
    """
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(NO_DEMO_AGENTS)
    agents: list[str] = []
    for name in names:
        if name not in EXECUTOR_ALIASES:
            choices = ", ".join(sorted(EXECUTOR_ALIASES))
            raise ValueError(UNKNOWN_DEMO_AGENT.format(name=name, choices=choices))
        agents.append(EXECUTOR_ALIASES[name])
    if len(agents) > len(DEMO_ROLES):
        raise ValueError(
            TOO_MANY_DEMO_AGENTS.format(count=len(DEMO_ROLES), roles=", ".join(DEMO_ROLES))
        )
    return agents


def role_profiles(agents: Sequence[str]) -> dict[str, dict[str, str]]:
    """``[agents.roles]`` giving the demo plan's roles to ``agents`` in turn."""
    return {role: {"executor": agents[i % len(agents)]} for i, role in enumerate(DEMO_ROLES)}


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def wait_for_end(daemon: Daemon, issue_id: str, timeout: float) -> str | None:
    """The issue's terminal work state once the daemon reaches one, else ``None``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.sqlite_path.exists():
            with sqlite3.connect(daemon.sqlite_path) as conn:
                try:
                    row = conn.execute(
                        "SELECT state FROM ew_work_items WHERE issue_id = ?", (issue_id,)
                    ).fetchone()
                except sqlite3.OperationalError:
                    row = None
            if row and row[0] in TERMINAL_STATES:
                return str(row[0])
        time.sleep(0.25)
    return None


def _send(daemon: Daemon, delivery: WebhookDelivery) -> None:
    response = send_webhook(daemon.url + "/webhooks/linear", WEBHOOK_SECRET, delivery)
    kind = delivery.payload.get("type")
    action = delivery.payload.get("action")
    print(f"   {kind}/{action}: {response.status_code} {response.json()}")


def _wait_for_question(world: SandboxWorld, session_id: str) -> bool:
    """Wait until the session asks something (``awaitingInput``) or ends."""
    deadline = time.monotonic() + QUESTION_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        status = world.linear.store.sessions[session_id].status
        if status == "awaitingInput":
            return True
        if status in ("complete", "error"):
            return False
        time.sleep(0.1)
    return False


def run_demo(
    *,
    keep: bool = False,
    root: Path | None = None,
    user_mode: bool = False,
    agents: Sequence[str] = (),
) -> int:
    """Run the demo; returns 0 when the issue ended done and the report is on Linear.

    ``agents`` (executor names, see :func:`parse_agents`) run the roles of the demo plan
    in turn; empty: the strategy's own mix of Codegen and local agents.
    """
    temp = None if (keep or root) else tempfile.TemporaryDirectory(prefix="edge-worker-demo-")
    base = root or (Path(temp.name) if temp else Path(tempfile.mkdtemp(prefix="edge-worker-demo-")))
    try:
        plan = demo_mix_plan(sys.executable, scoping=bool(agents))
        with (
            SandboxWorld(base, plan=plan) as world,
            demo_github(base / "github", world.repository) as gh,
        ):
            _say("stand-ins up: Linear, Anthropic (planner), Codegen; demo repository created")
            print(
                f"   Linear stand-in {world.urls['linear']} (schema validation: "
                f"{'on' if world.linear.validates else 'off, schema file not found'})"
            )
            console_token = secrets.token_hex(16)  # this demo's own, gone with it
            env = {
                "EDGE_WORKER_LOG_LEVEL": "warning",
                "EDGE_WORKER_CONSOLE__TOKEN": console_token,
                "EDGE_WORKER_STRATEGY": DEMO_STRATEGY,
            }
            if agents:
                env["EDGE_WORKER_AGENTS"] = json.dumps({"roles": role_profiles(agents)})
                _say(
                    "agents per role: "
                    + ", ".join(
                        f"{role} {profile['executor']}"
                        for role, profile in role_profiles(agents).items()
                    )
                )
            if user_mode:
                issue_id = world.new_issue()
            else:  # no [repo=...] tag and two repositories: the agent has to ask
                description = DEMO_ISSUE_DESCRIPTION.replace("[repo=demo]", "").strip()
                issue_id = world.new_issue(description=description)
                env["EDGE_WORKER_REPOSITORIES"] = json.dumps(
                    [
                        {
                            "id": "demo",
                            "path": str(world.repository),
                            "full_name": "acme/calc",
                            "codegen_repo_id": 42,
                        },
                        {"id": "website", "path": str(world.repository)},
                    ]
                )
            if gh is not None:  # verified local work becomes pull requests, linked on Linear
                env.update(gh.env)
                demo = {"id": "demo", "path": str(world.repository), "codegen_repo_id": 42}
                repositories = json.loads(env.get("EDGE_WORKER_REPOSITORIES", json.dumps([demo])))
                repositories[0]["delivery"] = gh.delivery
                env["EDGE_WORKER_REPOSITORIES"] = json.dumps(repositories)
            issue = world.linear.store.find_issue(issue_id)
            daemon = Daemon(base / "state", **world.daemon_env(**env))
            daemon.start()
            session_id: str | None = None
            try:
                _say(f"daemon up at {daemon.url} (SQLite: {daemon.sqlite_path})")
                if user_mode:
                    _say(f"assigning {issue.identifier} '{issue.title}' to the bot user")
                    _send(daemon, world.linear.issue_assigned(issue_id, field="assigneeId"))
                else:
                    _say(f"delegating {issue.identifier} '{issue.title}' to the agent")
                    created, notified, updated = world.linear.delegation(issue_id)
                    session_id = str(created.payload["agentSession"]["id"])
                    for delivery in (updated, created, notified):  # as they may arrive
                        _send(daemon, delivery)
                    if _wait_for_question(world, session_id):
                        _print_question(world, session_id)
                        _say(f"answering the question as the user: {DEMO_ANSWER}")
                        _send(daemon, world.linear.agent_session_prompted(session_id, DEMO_ANSWER))
                _say("waiting for the orchestration to end ...")
                state = wait_for_end(daemon, issue_id, DEMO_TIMEOUT_SECONDS)
                print(f"   final state: {state or 'did not end in time'}")
                if session_id is not None:
                    _print_session(world, session_id)
                _print_linear(world, issue_id)
                print_pull_requests(gh, world.linear.store)
                _print_costs(daemon)
                _say(f"operator console: {daemon.url}/console/ (sign in with {console_token})")
                if keep and sys.stdin.isatty():
                    _keep_open()
            finally:
                daemon.stop()
            if state != "done":
                print("\n-- daemon log (tail) --\n" + daemon.log_text()[-4000:], file=sys.stderr)
            return 0 if state == "done" else 1
    finally:
        if temp is not None:
            temp.cleanup()
        elif keep:
            print(f"\n(kept {base})")


def _keep_open() -> None:
    """Leave the daemon (and its console) up until Ctrl-C."""
    print("   the daemon stays up for a look at the console; Ctrl-C ends the demo")
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


def _print_question(world: SandboxWorld, session_id: str) -> None:
    question = world.linear.store.activities_of(session_id)[-1]
    _say(f"the agent asks (elicitation, signal {question.signal}):")
    print(f"   {question.content.get('body')}")
    for option in (question.signal_metadata or {}).get("options", []):
        print(f"     [ {option.get('label') or option.get('value')} ]")


def _print_session(world: SandboxWorld, session_id: str) -> None:
    store = world.linear.store
    session = store.sessions[session_id]
    _say(f"the agent session ({session.status}): its activities")
    for activity in store.activities_of(session_id):
        content = activity.content
        kind = content.get("type")
        text = content.get("body") or f"{content.get('action')} {content.get('parameter', '')}"
        first = " ".join(str(text).split())
        first = first if len(first) <= 110 else first[:109] + "…"
        extra = f" [{activity.signal}]" if activity.signal else ""
        print(f"   {kind:<11}{extra} {first}   -> {activity.status_after or 'prompt'}")
    _say("the session's plan")
    for step in session.plan or []:
        print(f"   [{step.get('status')}] {step.get('content')}")
    _say("the session's links")
    for link in session.external_urls:
        print(f"   {link.get('label')}: {link.get('url')}")


def _print_linear(world: SandboxWorld, issue_id: str) -> None:
    store = world.linear.store
    _say("the report comment on the issue")
    for comment in store.comments_on(issue_id):
        if "edge-worker:report" in comment.body:
            print(comment.body)
    _say("sub-issues")
    for child in store.children_of(issue_id):
        state = store.states[child.state_id]
        print(f"   {child.identifier}  [{state.name}]  {child.title}")
    counts = world.linear.operation_counts()
    _say(f"Linear requests for this issue: {sum(counts.values())}  {dict(sorted(counts.items()))}")


def _print_costs(daemon: Daemon) -> None:
    from edge_worker.costs.cli import run_costs_command
    from edge_worker.settings import Settings

    _say("edge-worker costs")
    out = io.StringIO()
    settings = Settings(state_dir=daemon.state_dir)
    run_costs_command(settings, day=None, issue=None, as_json=False, out=out)
    print(out.getvalue())
