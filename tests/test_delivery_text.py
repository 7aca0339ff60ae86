"""The pull request's text and base branch (sans-I/O rules)."""

from __future__ import annotations

from edge_worker.delivery import text


def facts(**overrides: object) -> text.PullRequestFacts:
    values: dict[str, object] = {
        "issue_identifier": "ENG-7",
        "subtask_key": "db",
        "title": "Add   the\norders table",
        "issue_url": "https://linear.app/acme/issue/ENG-7",
        "acceptance_criteria": ("a migration creates orders",),
        "checks": (
            text.CheckEvidence("pytest -q", 0, "\n".join(f"line {n}" for n in range(40))),
            text.CheckEvidence("ruff check", 1, "E501 ```"),
        ),
        "iterations": 3,
        "cost": "$1.20",
    }
    values.update(overrides)
    return text.PullRequestFacts(**values)  # type: ignore[arg-type]


def test_the_body_links_the_sub_issue_with_a_magic_word_and_carries_the_evidence() -> None:
    body = text.pull_request_body(facts())
    assert body.splitlines()[0] == "Fixes ENG-7"
    assert "[ENG-7](https://linear.app/acme/issue/ENG-7)" in body
    assert "- [x] a migration creates orders" in body
    assert "`pytest -q`: exit 0 (passed)" in body and "`ruff check`: exit 1 (failed)" in body
    assert "line 39" in body and "line 24" not in body  # only the tail
    assert "3 iterations, cost $1.20" in body
    assert body.rstrip().endswith(text.marker("ENG-7", "db"))
    assert text.has_marker(body, "ENG-7", "db") and not text.has_marker(body, "ENG-7", "api")


def test_the_body_says_plainly_when_there_are_no_criteria_or_checks() -> None:
    body = text.pull_request_body(facts(acceptance_criteria=(), checks=(), iterations=1, cost=""))
    assert text.NO_CRITERIA in body and text.NO_EVIDENCE in body and "- 1 iteration\n" in body


def test_the_title_is_the_identifier_and_a_one_line_title_trimmed() -> None:
    assert text.pull_request_title(facts()) == "ENG-7: Add the orders table"
    long = text.pull_request_title(facts(title="x" * 500))
    assert len(long) == text.TITLE_LIMIT and long.endswith("…")


def test_the_base_is_the_dependency_branch_only_while_it_is_unmerged() -> None:
    assert text.base_branch("main", None, False) == "main"
    assert text.base_branch("main", "edge-worker/ENG-7-db", False) == "edge-worker/ENG-7-db"
    assert text.base_branch("main", "edge-worker/ENG-7-db", True) == "main"


def test_acceptance_criteria_are_the_bullets_under_the_acceptance_line() -> None:
    description = (
        "Add the table.\n\nAcceptance criteria:\n- a migration exists\n* rows have ids\n"
        "\nNotes: keep it small.\n- not a criterion\n"
    )
    assert text.acceptance_criteria(description) == ["a migration exists", "rows have ids"]
    assert text.acceptance_criteria("No heading here.\n- a bullet\n") == []


def test_the_peer_review_its_findings_and_cost_are_in_the_body_when_there_was_one() -> None:
    from edge_worker.orchestration import review

    verdict = review.Verdict(
        verdict="concerns",
        summary="Works; one edge case left.",
        findings=[review.Finding(file="calc.py", line=3, severity="low", text="no None check")],
    )
    record = review.review_record(verdict, review.Reviewer("codex", "gpt-5-codex"), "$0.05", 2)
    section = review.pull_request_section({"review": record})
    assert section is not None
    body = text.pull_request_body(facts(review=section))
    assert "### Review" in body and "concerns by codex (gpt-5-codex), cost $0.05" in body
    assert "calc.py" in body and "no None check" in body
    assert body.index("### Review") < body.index("### Work")
    unreviewed = text.pull_request_body(facts())
    assert "### Review" not in unreviewed
    assert review.pull_request_section({"review": None}) is None
