"""The peer reviewer runs a real CLI (the stand-in reviewer) on a read-only copy of the
author's worktree: it cannot write, the worktree is unchanged, its verdict is validated,
a bad answer is asked for once more and then counts as concerns."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_worker.executors.claude_code import ClaudeCodeExecutor
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.orchestration import review
from edge_worker.orchestration.review_runner import ReviewOutcome, fingerprint, review_worktree
from edge_worker.sandbox import fake_reviewer
from edge_worker.settings import ClaudeSettings, ReviewSettings
from tests.support.local_agents import traversable_dir

APPROVE = json.dumps({"verdict": "approve", "summary": "meets the criteria"})
CONCERNS = json.dumps(
    {
        "verdict": "concerns",
        "findings": [{"file": "calc.py", "line": 3, "severity": "medium", "text": "no floats"}],
    }
)
TASK = {
    "title": "Add add()",
    "description": "Acceptance: add(a, b) returns a + b.",
    "verification": [{"command": "python -c 'import calc'", "expect_exit": 0}],
}


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may traverse (the reviewer may run unprivileged)."""
    with traversable_dir("edge-worker-review-test-") as root:
        yield root


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (repo / "calc.py").write_text("def add(a, b):\n    return 0\n")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "base")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    return repo


def run_review(worktree: Path, shared: Path, answers: list[str]) -> tuple[ReviewOutcome, Path]:
    state = shared / "state"
    binary = fake_reviewer.install(shared / "bin", state, answers)
    cli = ClaudeCodeExecutor(ClaudeSettings(), WorktreeManager(worktree.parent / "wt"))
    outcome = asyncio.run(
        review_worktree(
            cli,
            review.Reviewer("claude-code", "reviewer-model"),
            binary=str(binary),
            worktree=worktree,
            base="main",
            task=TASK,
            role_prompt="# Role: reviewer",
            settings=ReviewSettings(),
        )
    )
    return outcome, state


def test_the_reviewer_cannot_write_and_the_worktree_is_unchanged(
    worktree: Path, shared: Path
) -> None:
    before = fingerprint(worktree)
    outcome, state = run_review(worktree, shared, [APPROVE])
    calls = fake_reviewer.calls(state)
    assert len(calls) == 1
    writes = calls[0]["writes"]
    assert isinstance(writes, list) and len(writes) == 2
    assert all(str(w).startswith("refused") for w in writes), writes
    assert calls[0]["cwd"] != str(worktree)  # a copy, never the author's worktree
    assert calls[0]["permission_mode"] == "plan" and calls[0]["model"] == "reviewer-model"
    assert "return a + b" in str(calls[0]["prompt"])  # the diff reached the reviewer
    assert "Acceptance: add(a, b)" in str(calls[0]["prompt"])
    assert fingerprint(worktree) == before
    assert outcome.worktree_unchanged and outcome.copy_unchanged
    assert outcome.verdict.verdict == "approve"
    assert [r.cost_usd for r in outcome.runs] == [0.05]


def test_a_bad_answer_is_asked_again_once_then_counts_as_concerns(
    worktree: Path, shared: Path
) -> None:
    outcome, state = run_review(worktree, shared, ["LGTM!", '{"verdict": "maybe"}'])
    calls = fake_reviewer.calls(state)
    assert len(calls) == 2
    assert "did not match the verdict schema" in str(calls[1]["prompt"])
    verdict = outcome.verdict
    assert verdict.verdict == "concerns" and verdict.summary == review.MALFORMED_SUMMARY
    assert verdict.findings[0].text == '{"verdict": "maybe"}'
    assert len(outcome.runs) == 2


def test_a_second_answer_in_schema_is_taken(worktree: Path, shared: Path) -> None:
    outcome, _ = run_review(worktree, shared, ["no json here", f"```json\n{CONCERNS}\n```"])
    verdict = outcome.verdict
    assert verdict.verdict == "concerns"
    assert verdict.findings[0].file == "calc.py" and verdict.findings[0].line == 3


def test_each_cli_is_started_in_its_read_only_mode(tmp_path: Path) -> None:
    from edge_worker.orchestration.review_runner import reviewer_argv

    claude = reviewer_argv(
        "claude-code", "claude", prompt="p", role_prompt="r", model="m", workdir=tmp_path
    )
    assert claude[claude.index("--permission-mode") + 1] == "plan"
    assert "Edit,Write,NotebookEdit" in claude
    codex = reviewer_argv(
        "codex", "codex", prompt="p", role_prompt="r", model=None, workdir=tmp_path
    )
    assert codex[codex.index("--sandbox") + 1] == "read-only"
    assert codex[codex.index("-C") + 1] == str(tmp_path) and codex[-1] == "r\n\np"
