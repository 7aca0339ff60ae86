"""End to end: the real daemon delivers verified local sub-tasks as GitHub pull requests
(the GitHub stand-in over loopback, real git pushes), linked on Linear."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_worker.delivery import text
from edge_worker.sandbox.anthropic import ToolAnswer
from edge_worker.sandbox.demo_plan import DEMO_SOLUTIONS, demo_plan
from edge_worker.sandbox.github import GitHubStandIn
from edge_worker.sandbox.world import SandboxWorld
from tests.support.e2e import E2E, row_of, wait_until
from tests.support.github import APP_ID, INSTALLATION_ID, app_keys, served_github

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
OWNER, REPO = "acme", "calc"
HOOK_SECRET = "github-hook-secret"


def two_step_plan() -> dict[str, object]:
    """``add-function``, then ``cli`` on top of it (``multiply`` dropped)."""
    plan = demo_plan(sys.executable)
    chosen = [s for s in plan["subtasks"] if s["key"] in ("add-function", "multiply-function")]
    return {"summary": plan["summary"], "subtasks": chosen}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world", plan=two_step_plan()) as started:
        yield started


@pytest.fixture
def github(tmp_path: Path, world: SandboxWorld) -> Iterator[GitHubStandIn]:
    keys = app_keys()
    key_file = tmp_path / "app.pem"
    key_file.write_text(keys.private_pem)
    with served_github(tmp_path / "github", keys, installation_id=INSTALLATION_ID) as stand_in:
        stand_in.add_repository(OWNER, REPO)
        subprocess.run(
            ["git", "push", "--quiet", str(stand_in.repository_path(OWNER, REPO)), "main"],
            cwd=world.repository,
            check=True,
        )
        stand_in.key_file = key_file  # type: ignore[attr-defined]
        yield stand_in


def delivering(
    world: SandboxWorld, github: GitHubStandIn, state_dir: Path, policy: str = "per-subtask"
) -> E2E:
    env = {
        "EDGE_WORKER_STRATEGY": "local-only",
        "EDGE_WORKER_GITHUB__API_URL": github.base_url,
        "EDGE_WORKER_GITHUB__APP_ID": APP_ID,
        "EDGE_WORKER_GITHUB__INSTALLATION_ID": str(INSTALLATION_ID),
        "EDGE_WORKER_GITHUB__PRIVATE_KEY_FILE": str(github.key_file),  # type: ignore[attr-defined]
        "EDGE_WORKER_GITHUB__WEBHOOK_SECRET": HOOK_SECRET,
    }
    e2e = E2E(world, state_dir, **env)
    with (world.root / "edge-worker.toml").open("a") as config:
        config.write(
            "\n[repositories.delivery]\n"
            f'owner = "{OWNER}"\nname = "{REPO}"\nremote_url = "{github.clone_url(OWNER, REPO)}"\n'
            'labels = ["edge-worker"]\nreviewers = ["octocat"]\n'
            f'policy = "{policy}"\n'
        )
    return e2e


def test_each_verified_local_sub_task_becomes_a_linked_pull_request(
    world: SandboxWorld, github: GitHubStandIn, tmp_path: Path
) -> None:
    issue_id = world.new_issue()
    e2e = delivering(world, github, tmp_path / "state").start()
    try:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done", e2e.log()
        parent = world.linear.store.find_issue(issue_id)
        assert e2e.state_name(parent) != "Done"  # delivered, not merged yet
        for n, pull in enumerate(github.pulls[(OWNER, REPO)]):
            event, closed = github.webhook("closed", pull.number, merged=True)
            assert send_github(e2e, event, closed, f"merge-{n}").status_code == 200
        wait_until(lambda: e2e.state_name(parent) == "Done", timeout=30)  # all merged
    finally:
        e2e.daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        e2e.daemon.proc.wait(timeout=30)  # type: ignore[union-attr]

    store = world.linear.store
    pulls = github.pulls[(OWNER, REPO)]
    children = store.children_of(issue_id)
    assert len(pulls) == len(children) == 2
    report = e2e.report(issue_id)
    for child in children:
        [pull] = [p for p in pulls if f"Fixes {child.identifier}\n" in p.body]
        url = f"{github.base_url}/{OWNER}/{REPO}/pull/{pull.number}"
        assert pull.base == "main" and pull.labels == ["edge-worker"]
        assert github.head_sha(OWNER, REPO, pull.head) is not None
        attached = [a for a in store.attachments.values() if a.issue_id == child.id]
        assert [a.url for a in attached] == [url]
        assert url in " ".join(row_of(report, child.identifier))
    assert github.contract_violations == []
    tokens = github.issued_tokens()
    assert len(tokens) == 1  # one installation token, cached across both deliveries
    assert tokens[0] not in e2e.log()


def test_the_per_issue_policy_delivers_the_whole_issue_as_one_linked_pull_request(
    world: SandboxWorld, github: GitHubStandIn, tmp_path: Path
) -> None:
    issue_id = world.new_issue()
    e2e = delivering(world, github, tmp_path / "state", policy="per-issue").start()
    try:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done", e2e.log()
        parent = world.linear.store.find_issue(issue_id)
        assert e2e.state_name(parent) != "Done"
        [pull] = github.pulls[(OWNER, REPO)]
        event, closed = github.webhook("closed", pull.number, merged=True)
        assert send_github(e2e, event, closed, "merge-issue").json()["action"] == "merged"
        wait_until(lambda: e2e.state_name(parent) == "Done", timeout=30)
    finally:
        e2e.daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        e2e.daemon.proc.wait(timeout=30)  # type: ignore[union-attr]

    store = world.linear.store
    children = store.children_of(issue_id)
    [pull] = github.pulls[(OWNER, REPO)]
    url = f"{github.base_url}/{OWNER}/{REPO}/pull/{pull.number}"
    assert pull.head == f"edge-worker/{parent.identifier}" and pull.base == "main"
    assert pull.body.startswith(f"Fixes {parent.identifier}, ")
    for child in children:
        assert child.identifier in pull.body.split("\n")[0]
        assert f"## {child.title}" in pull.body
    bare = github.repository_path(OWNER, REPO)
    tree = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", pull.head],
        cwd=bare,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for solution in ("add-function", "multiply-function"):
        assert set(DEMO_SOLUTIONS[solution]) <= set(tree)  # both sub-tasks' work merged in
    attached = [a.url for a in store.attachments.values() if a.issue_id == issue_id]
    assert attached == [url]
    report = e2e.report(issue_id)
    for child in children:
        assert url in " ".join(row_of(report, child.identifier))
    assert github.contract_violations == []


def test_a_merge_finds_a_sub_issue_the_plan_reused(
    world: SandboxWorld, github: GitHubStandIn, tmp_path: Path
) -> None:
    store = world.linear.store
    issue_id = world.new_issue()
    existing = store.add_issue("Add calc.add(a, b)", "Started earlier.", parent_id=issue_id)
    add = next(s for s in demo_plan(sys.executable)["subtasks"] if s["key"] == "add-function")
    add["reuses"] = existing.identifier
    world.anthropic.default = ToolAnswer({"summary": "Reuse it.", "subtasks": [add]})
    e2e = delivering(world, github, tmp_path / "state").start()
    try:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done", e2e.log()
        assert [c.id for c in store.children_of(issue_id)] == [existing.id]
        [pull] = github.pulls[(OWNER, REPO)]
        assert text.marked_sub_issue(pull.body, "add-function") == existing.identifier
        event, closed = github.webhook("closed", pull.number, merged=True)
        assert send_github(e2e, event, closed, "merge-reused").status_code == 200
        wait_until(lambda: e2e.state_name(existing) == "Done", timeout=30)
        wait_until(lambda: e2e.state_name(store.find_issue(issue_id)) == "Done", timeout=30)
    finally:
        e2e.daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        e2e.daemon.proc.wait(timeout=30)  # type: ignore[union-attr]


def pushed_file(github: GitHubStandIn, branch: str, path: str) -> str:
    """``path`` as pushed on ``branch`` of the stand-in's bare repository."""
    return subprocess.run(
        ["git", "show", f"{branch}:{path}"],
        cwd=github.repository_path(OWNER, REPO),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def send_github(
    e2e: E2E, event: str, body: dict[str, object], delivery: str, secret: str = HOOK_SECRET
) -> httpx.Response:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(
        e2e.daemon.url + "/webhooks/github",
        content=raw,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
    )


def test_review_feedback_reaches_the_same_session_and_merges_close_the_sub_issues(
    world: SandboxWorld, github: GitHubStandIn, tmp_path: Path
) -> None:
    fixed = DEMO_SOLUTIONS["add-function"]["calc/add.py"] + "\n# handles the review\n"
    checked = fixed + "# and the failing check\n"
    world.tasks["add-function"]["runs"] += [
        {"text": "Addressed the review.", "edits": [{"path": "calc/add.py", "content": fixed}]},
        {"text": "Fixed the check.", "edits": [{"path": "calc/add.py", "content": checked}]},
    ]
    store = world.linear.store
    issue_id = world.new_issue()
    e2e = delivering(world, github, tmp_path / "state").start()
    try:
        e2e.send(world.linear.agent_session_created(issue_id))
        assert e2e.wait_end(issue_id) == "done", e2e.log()
        identifier = store.find_issue(issue_id).identifier
        add_branch = f"edge-worker/{identifier}-add-function"
        pulls = {p.head: p for p in github.pulls[(OWNER, REPO)]}
        add, multiply = pulls[add_branch], pulls[f"edge-worker/{identifier}-multiply-function"]
        children = {c.identifier: c for c in store.children_of(issue_id)}
        assert {e2e.state_name(c) for c in children.values()} == {"In Review"}
        pushed = github.head_sha(OWNER, REPO, add_branch)

        event, review = github.webhook("review", add.number, body="Say what add does.")
        forged = send_github(e2e, event, review, "d-1", secret="wrong")
        assert forged.status_code == 401
        assert send_github(e2e, event, review, "d-1").json()["status"] == "accepted"
        assert send_github(e2e, event, review, "d-1").json()["status"] == "duplicate"

        wait_until(lambda: github.head_sha(OWNER, REPO, add_branch) != pushed, timeout=90)
        wait_until(lambda: "2 iterations" in add.body, timeout=60)
        calls = world.agent_calls(identifier, "add-function")
        assert len(calls) == 2 and calls[1]["resume"] == calls[0]["session_id"]
        assert "Say what add does." in calls[1]["prompt"]
        assert len(github.pulls[(OWNER, REPO)]) == 2  # pushed again, no second pull request

        assert e2e.wait_end(issue_id) == "done"  # the continued work ended before the check
        reviewed = github.head_sha(OWNER, REPO, add_branch)
        event, check = github.webhook("check_failed", add.number, name="ci", summary="1 failed")
        assert send_github(e2e, event, check, "d-check").json()["status"] == "accepted"
        wait_until(lambda: "3 iterations" in add.body, timeout=90)
        assert github.head_sha(OWNER, REPO, add_branch) != reviewed
        third = world.agent_calls(identifier, "add-function")[2]
        assert third["resume"] == calls[0]["session_id"] and "`ci` failed" in third["prompt"]
        # The closes come once the continued work ended: a report the orchestration writes
        # after a close shows its own status over the "abandoned" edit, as documented.
        assert e2e.wait_end(issue_id) == "done"

        for number, merged, delivery in (
            (add.number, True, "d-2"),
            (multiply.number, False, "d-3"),
        ):
            event, closed = github.webhook("closed", number, merged=merged)
            assert send_github(e2e, event, closed, delivery).status_code == 200
        by_title = {c.title: c for c in children.values()}
        add_issue = next(c for c in by_title.values() if "add" in c.title.lower())
        other = next(c for c in children.values() if c.id != add_issue.id)
        wait_until(lambda: e2e.state_name(add_issue) == "Done", timeout=30)
        wait_until(lambda: e2e.state_name(other) == "Canceled", timeout=30)
        abandoned = wait_until(
            lambda: [c.body for c in store.comments_on(other.id) if "abandoned" in c.body]
        )
        assert len(abandoned) == 1 and f"/pull/{multiply.number}" in abandoned[0]
        wait_until(lambda: "abandoned" in row_of(e2e.report(issue_id), other.identifier)[2])
        assert "abandoned" not in row_of(e2e.report(issue_id), add_issue.identifier)[2]
        assert e2e.state_name(store.find_issue(issue_id)) != "Done"  # not all merged
        assert github.contract_violations == []
    finally:
        e2e.daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        e2e.daemon.proc.wait(timeout=30)  # type: ignore[union-attr]


def test_an_uninstalled_app_is_a_clear_line_and_the_verified_work_stays_on_its_branch(
    world: SandboxWorld, github: GitHubStandIn, tmp_path: Path
) -> None:
    github.revoke_installation()
    issue_id = world.new_issue()
    e2e = delivering(world, github, tmp_path / "state").start()
    try:
        e2e.assign(issue_id)
        e2e.wait_end(issue_id)
    finally:
        e2e.daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        e2e.daemon.proc.wait(timeout=30)  # type: ignore[union-attr]
    store = world.linear.store
    assert github.pulls[(OWNER, REPO)] == []
    report = e2e.report(issue_id)
    for child in store.children_of(issue_id):
        result = e2e.result_comment(child.id)
        assert "not installed on this repository any more" in result, result
        assert "reinstall" in " ".join(row_of(report, child.identifier)) or "reinstall" in report
        branch = f"edge-worker/{store.find_issue(issue_id).identifier}-"
        listed = subprocess.run(
            ["git", "branch", "--list", branch + "*"],
            cwd=world.repository,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert listed.count(branch) == 2  # both verified branches kept
        assert e2e.state_name(child) != "In Review"


def test_uncommitted_work_is_delivered_and_a_sub_task_that_changed_nothing_gets_no_pull_request(
    world: SandboxWorld, github: GitHubStandIn, tmp_path: Path
) -> None:
    """The agent of ``add-function`` leaves its file uncommitted: verification saw it, so
    the pull request carries it. A checking sub-task on top of it changes nothing: it gets
    no pull request of its dependency's commits, and the report says why."""
    check = {
        "key": "check-add",
        "title": "Check calc.add on the combined change",
        "description": "Objective: confirm `calc.add` works. Change nothing.\n\n"
        "Acceptance criteria:\n- `add(2, 3) == 5`",
        "role": "reviewer",
        "executor": "any",
        "depends_on": ["add-function"],
        "verification": [
            {
                "command": f'{sys.executable} -c "from calc.add import add; assert add(2, 3) == 5"',
                "expect_exit": 0,
            }
        ],
    }
    add = dict(demo_plan(sys.executable)["subtasks"][0])
    assert add["key"] == "add-function"
    world.anthropic.default = ToolAnswer({"summary": "Add, then check.", "subtasks": [add, check]})
    [edit] = world.tasks["add-function"]["runs"][-1]["edits"]
    world.tasks["add-function"] = {"runs": [{"text": "Done.", "edits": [edit], "commit": False}]}
    world.tasks["check-add"] = {"runs": [{"text": "Checked: add works.", "cost_usd": 0.01}]}
    issue_id = world.new_issue()
    e2e = delivering(world, github, tmp_path / "state").start()
    try:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done", e2e.log()
    finally:
        e2e.daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        e2e.daemon.proc.wait(timeout=30)  # type: ignore[union-attr]

    [pull] = github.pulls[(OWNER, REPO)]
    children = {c.identifier: c for c in world.linear.store.children_of(issue_id)}
    added = next(i for i, c in children.items() if c.title == add["title"])
    assert f"Fixes {added}\n" in pull.body
    # the uncommitted file reached the pull request
    assert pushed_file(github, pull.head, edit["path"]) == edit["content"]
    checked = next(i for i, c in children.items() if c.title == check["title"])
    report = e2e.report(issue_id)
    assert f"{checked}: No pull request: this sub-task changed no files." in report, report
    assert "pull/" not in " ".join(row_of(report, checked))
    assert github.contract_violations == []


def test_review_feedback_on_the_per_issue_pull_request_reaches_the_orchestrator(
    world: SandboxWorld, github: GitHubStandIn, tmp_path: Path
) -> None:
    """A change request on the issue's one pull request names no sub-task: it continues
    the issue's work as a follow-up, the planner sees the reviewer's words and adds the
    work they ask for, and the same pull request gets it."""
    fix = {
        "key": "address-review",
        "title": "Document calc.add as the review asks",
        "description": "Objective: add a module comment to `calc/add.py`.\n\n"
        "Acceptance criteria:\n- the comment is there",
        "role": "builder",
        "executor": "any",
        "depends_on": ["add-function"],
        "verification": [{"command": "grep -q 'reviewed' calc/add.py", "expect_exit": 0}],
    }
    reviewed = DEMO_SOLUTIONS["add-function"]["calc/add.py"] + "# reviewed\n"
    world.tasks[fix["key"]] = {  # type: ignore[index]
        "runs": [{"text": "Done.", "edits": [{"path": "calc/add.py", "content": reviewed}]}]
    }
    world.scenario_path()
    store = world.linear.store
    issue_id = world.new_issue()
    e2e = delivering(world, github, tmp_path / "state", policy="per-issue").start()
    try:
        e2e.send(world.linear.agent_session_created(issue_id))
        assert e2e.wait_end(issue_id) == "done", e2e.log()
        [pull] = github.pulls[(OWNER, REPO)]
        before = github.head_sha(OWNER, REPO, pull.head)
        replanned = {**two_step_plan(), "subtasks": [*two_step_plan()["subtasks"], fix]}  # type: ignore[list-item]
        world.anthropic.answers.append(ToolAnswer(replanned))
        planned = len(world.anthropic.requests)

        event, review = github.webhook("review", pull.number, body="Say it was reviewed.")
        assert send_github(e2e, event, review, "issue-review").json()["action"] == "feedback"

        wait_until(lambda: github.head_sha(OWNER, REPO, pull.head) != before, timeout=120)
        assert e2e.wait_end(issue_id) == "done", e2e.log()
    finally:
        e2e.daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        e2e.daemon.proc.wait(timeout=30)  # type: ignore[union-attr]

    asked = json.dumps([r.body for r in world.anthropic.requests[planned:]])
    assert "Say it was reviewed." in asked  # the reviewer's words reached the planner
    assert [p.number for p in github.pulls[(OWNER, REPO)]] == [pull.number]  # the same one
    assert pushed_file(github, pull.head, "calc/add.py") == reviewed
    assert fix["title"] in {c.title for c in store.children_of(issue_id)}
    assert github.contract_violations == []
