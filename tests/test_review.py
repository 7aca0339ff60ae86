"""Peer review rules (sans I/O): the verdict schema, who reviews, what a verdict leads to."""

from __future__ import annotations

import itertools

import pytest

from edge_worker.orchestration import review

EXECUTORS = ("claude-code", "codex")


def test_a_verdict_is_read_from_a_fenced_block_or_bare_json() -> None:
    fenced = 'Done.\n```json\n{"verdict": "approve", "summary": "fine"}\n```'
    found = review.read_verdict(fenced)
    assert isinstance(found, review.Verdict) and found.verdict == "approve"
    bare = 'x {"verdict": "blocker", "findings": [{"severity": "high", "text": "drops data"}]}'
    found = review.read_verdict(bare)
    assert isinstance(found, review.Verdict) and found.findings[0].severity == "high"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("looks good", "no JSON object"),
        ("{not json}", "invalid JSON"),
        ('{"verdict": "ok"}', "verdict"),
        ('{"verdict": "concerns", "findings": [{"severity": "dire", "text": "x"}]}', "severity"),
        ('{"verdict": "approve", "extra": 1}', "extra"),
    ],
)
def test_an_answer_off_schema_says_what_is_wrong(text: str, problem: str) -> None:
    found = review.read_verdict(text)
    assert isinstance(found, str) and problem in found


def test_malformed_counts_as_concerns_with_the_raw_text() -> None:
    verdict = review.malformed("  I think it is fine  ")
    assert verdict.verdict == "concerns" and verdict.findings[0].text == "I think it is fine"


@pytest.mark.parametrize(
    ("author", "author_model"), list(itertools.product(EXECUTORS, (None, "m1", "m2")))
)
def test_the_reviewer_is_never_the_authors_executor_and_model(
    author: str, author_model: str | None
) -> None:
    for available in (EXECUTORS, (author,)):
        for models in ({}, {"claude-code": "m2", "codex": "m2"}, {author: author_model}):
            chosen = review.choose_reviewer(
                author,
                author_model,
                preference=EXECUTORS,
                available=available,
                models=dict(models),
            )
            if chosen is not None:
                assert (chosen.executor, chosen.model) != (author, author_model)
                assert chosen.executor != author or chosen.model not in (None, author_model)
    other = review.choose_reviewer(
        "claude-code", None, preference=EXECUTORS, available=EXECUTORS, models={}
    )
    assert other == review.Reviewer("codex", None)
    alone = review.choose_reviewer(
        "codex", "gpt-a", preference=EXECUTORS, available=["codex"], models={"codex": "gpt-b"}
    )
    assert alone == review.Reviewer("codex", "gpt-b")
    assert (
        review.choose_reviewer("codex", None, preference=EXECUTORS, available=["codex"], models={})
        is None
    )


def test_which_sub_tasks_are_reviewed() -> None:
    def reviewed(mode: str, **named: list[str]) -> bool:
        return review.is_reviewed(
            mode,
            roles=named.get("roles", []),
            labels=named.get("labels", []),
            repositories=named.get("repositories", []),
            role="builder",
            issue_labels=["Security"],
            repository="app",
        )

    assert not reviewed("off", roles=["builder"])
    assert reviewed("all")
    assert reviewed("named", roles=["builder"])
    assert reviewed("named", labels=["security"])
    assert reviewed("named", repositories=["app"])
    assert not reviewed("named", roles=["debugger"], labels=["ui"], repositories=["web"])


def test_the_policy() -> None:
    approve = review.Verdict(verdict="approve")
    concerns = review.malformed("x")
    blocker = review.Verdict(verdict="blocker")
    assert review.decide(approve, round_=0, iteration_left=True) == "accept"
    assert review.decide(blocker, round_=0, iteration_left=True) == "escalate"
    assert review.decide(concerns, round_=0, iteration_left=True) == "feedback"
    assert review.decide(concerns, round_=0, iteration_left=False) == "accept"
    assert review.decide(concerns, round_=1, iteration_left=True) == "accept"


def test_the_review_section_names_verdict_reviewer_findings_and_cost() -> None:
    verdict = review.Verdict.model_validate(
        {
            "verdict": "concerns",
            "summary": "mostly fine",
            "findings": [{"file": "calc.py", "line": 3, "severity": "low", "text": "naming"}],
        }
    )
    record = review.review_record(verdict, review.Reviewer("codex", "gpt-b"), "$0.05", 2)
    text = review.review_markdown(record)
    assert "concerns by codex (gpt-b), cost $0.05, 2 rounds" in text
    assert "`calc.py:3` (low): naming" in text
    assert review.report_cell(record) == "review: concerns by codex, 1 findings, $0.05"


def test_the_pull_request_hook_gives_the_section_or_nothing() -> None:
    record = review.review_record(
        review.Verdict(verdict="approve"), review.Reviewer("codex", None), "$0.01", 1
    )
    assert review.pull_request_section({"review": None}) is None
    section = review.pull_request_section({"key": "x", "review": record})
    assert section == review.review_markdown(record)
    assert section.startswith("**Peer review**: approve by codex, cost $0.01")
