"""The known-failure table (``executors/recovery.py``): each pattern as the CLIs print it
maps to its action, reset times are read, and no pattern goes past its bound."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge_worker.executors.recovery import PATTERNS, Action, decide, failure_text, reset_wait

NOW = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
ROOTS = ["/var/lib/edge-worker/worktrees", "/srv/repos/app"]


def pick(executor: str, text: str, used: dict[str, int] | None = None, wait: float = 86400):
    return decide(
        executor, text, now=NOW, used=used or {}, allowed_roots=ROOTS, max_wait_seconds=wait
    )


def test_a_directory_refused_under_the_repository_is_relaunched_with_it_allowed() -> None:
    text = "Error: /srv/repos/app/shared is outside the allowed working directories"
    found = pick("claude-code", text)
    assert found is not None
    assert (found.pattern, found.action) == ("outside_workspace", Action.RELAUNCH)
    assert found.extra_args == ["--add-dir", "/srv/repos/app/shared"]


@pytest.mark.parametrize("path", ["/etc/shadow", "/srv/repos/app/../../etc"])
def test_a_directory_outside_the_allowed_roots_is_escalated(path: str) -> None:
    found = pick("claude-code", f"Path {path} is outside the allowed working directories")
    assert found is not None and found.action is Action.ESCALATE
    assert path not in found.reason


def test_codex_outside_a_git_repository_is_relaunched_with_the_check_off() -> None:
    text = "Not inside a trusted directory and --skip-git-repo-check was not specified."
    found = pick("codex", text)
    assert found is not None and found.action is Action.RELAUNCH
    assert found.extra_args == ["--skip-git-repo-check"]
    assert pick("claude-code", text) is None  # the pattern belongs to Codex


@pytest.mark.parametrize(
    ("executor", "text"),
    [
        ("claude-code", "Invalid API key · Please run /login"),
        ("claude-code", "OAuth token has expired. Please obtain a new token"),
        ("codex", "Your access token could not be refreshed. Please log in again."),
    ],
)
def test_an_expired_login_moves_to_another_executor(executor: str, text: str) -> None:
    found = pick(executor, text)
    assert found is not None and found.action is Action.SWITCH


def test_a_usage_limit_waits_until_its_reset_time() -> None:
    epoch = int(NOW.timestamp()) + 5400
    found = pick("claude-code", f"Claude AI usage limit reached|{epoch}")
    assert found is not None and found.action is Action.WAIT
    assert found.wait_seconds == 5400
    codex = pick("codex", "You've hit your usage limit. Try again in 1 hour 30 minutes.")
    assert codex is not None and codex.wait_seconds == 5400


def test_a_usage_limit_resetting_too_late_moves_to_another_executor() -> None:
    epoch = int(NOW.timestamp()) + 5400
    found = pick("claude-code", f"Claude AI usage limit reached|{epoch}", wait=3600)
    assert found is not None and found.action is Action.SWITCH


def test_reset_times_are_read_in_each_form() -> None:
    assert reset_wait("limit|" + str(int(NOW.timestamp()) + 60), NOW) == 60
    assert reset_wait("try again in 45 seconds", NOW) == 45
    assert reset_wait("try again in 2m", NOW) == 120
    assert reset_wait("try again later", NOW) is None


def test_an_overloaded_model_waits_longer_each_time_then_escalates() -> None:
    text = 'API Error: 529 {"type":"error","error":{"type":"overloaded_error"}}'
    waits = []
    used: dict[str, int] = {}
    while (found := pick("claude-code", text, used)) is not None and found.action is Action.WAIT:
        waits.append(found.wait_seconds)
        used[found.pattern] = used.get(found.pattern, 0) + 1
    assert waits == [30, 60, 120]
    assert found is not None and found.action is Action.ESCALATE


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_no_pattern_goes_past_its_bound(pattern) -> None:  # type: ignore[no-untyped-def]
    found = decide(
        next(iter(pattern.executors)),
        {
            "outside_workspace": "/srv/repos/app/x is outside the allowed working directories",
            "not_a_git_repository": "Not inside a trusted directory and "
            "--skip-git-repo-check was not specified",
            "login_expired": "Please run /login",
            "usage_limit": "usage limit reached|" + str(int(NOW.timestamp()) + 10),
            "overloaded": "overloaded_error",
        }[pattern.name],
        now=NOW,
        used={pattern.name: pattern.bound},
        allowed_roots=ROOTS,
        max_wait_seconds=3600,
    )
    assert found is not None and found.action is Action.ESCALATE


def test_an_unknown_failure_has_no_recovery() -> None:
    assert pick("claude-code", "verification failed: 2 tests") is None
    assert pick("codegen", "usage limit reached") is None


def test_an_agent_summary_about_overloading_or_logins_is_no_known_failure() -> None:
    summary = "Made the parse method overloaded for bytes; users not logged in see a 401."
    assert pick("claude-code", summary) is None


def test_a_summary_that_mentions_a_known_failure_is_not_that_failure() -> None:
    result = {
        "status": "failed",
        "error": "exited with code 1 without a completed turn: no output on stderr",
        "summary": "I checked the retry logic: on 'usage limit reached' it waits. "
        "The model is overloaded sometimes; see overloaded_error. Please run /login first.",
    }
    for executor in ("codex", "claude-code"):
        assert pick(executor, failure_text(result)) is None


def test_the_clis_error_output_is_what_is_matched() -> None:
    result = {
        "status": "failed",
        "error": "exited with code 1 without a result line: Claude AI usage limit reached|"
        + str(int(NOW.timestamp()) + 600),
        "summary": "Working on it.",
    }
    found = pick("claude-code", failure_text(result))
    assert found is not None and (found.pattern, found.action) == ("usage_limit", Action.WAIT)
    assert found.wait_seconds == 600
