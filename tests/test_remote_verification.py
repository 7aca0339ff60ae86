"""Remote verification, sans I/O: the prompt, and the strict reading of the agent's answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_worker.executors.base import Evidence, VerificationCommand
from edge_worker.verification.remote import (
    COMMANDS_PLACEHOLDER,
    build_verification_prompt,
    commands_from_prompt,
    load_verifier_template,
    parse_verification_answer,
)
from tests.support.codegen import REPO_ROOT

COMMANDS = [
    VerificationCommand(command="pytest -q"),
    VerificationCommand(command="ruff check ."),
]


def fenced(checks: object, language: str = "json") -> str:
    return f"Here are the results.\n\n```{language}\n{json.dumps({'checks': checks})}\n```\n"


def check(command: str, exit_code: object = 0, tail: object = "ok") -> dict[str, object]:
    return {"command": command, "exit_code": exit_code, "output_tail": tail}


def outcome(evidence: list[Evidence]) -> list[tuple[str, int | None, bool]]:
    return [(e.command, e.exit_code, e.passed) for e in evidence]


# -- the prompt ----------------------------------------------------------------------------


def test_the_verifier_prompt_lists_exactly_the_commands() -> None:
    template = load_verifier_template(REPO_ROOT / "prompts")
    prompt = build_verification_prompt(template, COMMANDS)
    assert COMMANDS_PLACEHOLDER not in prompt
    assert commands_from_prompt(prompt) == ["pytest -q", "ruff check ."]
    assert '"checks"' in prompt and '"exit_code"' in prompt and '"output_tail"' in prompt


def test_commands_with_quotes_survive_the_round_trip() -> None:
    tricky = [VerificationCommand(command='grep -q "a\\"b" file && echo `date`')]
    prompt = build_verification_prompt("run:\n{{commands}}\n", tricky)
    assert commands_from_prompt(prompt) == [tricky[0].command]


def test_a_template_without_the_placeholder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "verifier.md").write_text("Run the commands.\n")
    with pytest.raises(ValueError, match="commands"):
        load_verifier_template(tmp_path)
    with pytest.raises(ValueError):
        build_verification_prompt("no placeholder", COMMANDS)


def test_a_prompt_without_commands_is_not_a_verification() -> None:
    assert commands_from_prompt("Please fix the failing test.") is None


# -- valid answers -------------------------------------------------------------------------


def test_valid_fenced_answer() -> None:
    answer = fenced([check("pytest -q", 0, "5 passed"), check("ruff check .", 0, "")])
    evidence = parse_verification_answer(answer, COMMANDS)
    assert outcome(evidence) == [("pytest -q", 0, True), ("ruff check .", 0, True)]
    assert evidence[0].output_tail == "5 passed"
    assert all(e.reason is None for e in evidence)


def test_valid_bare_answer_in_any_order() -> None:
    body = json.dumps({"checks": [check("ruff check ."), check("pytest -q", 1, "1 failed")]})
    evidence = parse_verification_answer(f"Done: {body} That is all.", COMMANDS)
    assert outcome(evidence) == [("pytest -q", 1, False), ("ruff check .", 0, True)]
    assert evidence[0].reason is None  # it ran and failed: the exit code says so


def test_unlabelled_fence_is_read() -> None:
    answer = fenced([check("pytest -q"), check("ruff check .")], language="")
    assert all(e.passed for e in parse_verification_answer(answer, COMMANDS))


def test_json_in_another_fence_is_read_as_a_bare_block() -> None:
    answer = fenced([check("pytest -q"), check("ruff check .", 2)], language="text")
    assert outcome(parse_verification_answer(answer, COMMANDS)) == [
        ("pytest -q", 0, True),
        ("ruff check .", 2, False),
    ]


def test_the_expected_exit_code_decides() -> None:
    commands = [VerificationCommand(command="grep -q TODO src", expect_exit=1)]
    assert parse_verification_answer(fenced([check("grep -q TODO src", 1)]), commands)[0].passed
    assert not parse_verification_answer(fenced([check("grep -q TODO src", 0)]), commands)[0].passed


def test_the_last_checks_block_is_the_answer() -> None:
    example = fenced([check("pytest -q", 1), check("ruff check .", 1)])
    final = fenced([check("pytest -q", 0), check("ruff check .", 0)])
    assert all(e.passed for e in parse_verification_answer(example + final, COMMANDS))


def test_surrounding_whitespace_in_commands_is_ignored() -> None:
    answer = fenced([check("  pytest -q "), check("ruff check .\n")])
    assert all(e.passed for e in parse_verification_answer(answer, COMMANDS))


def test_long_output_is_cut_to_its_tail() -> None:
    answer = fenced([check("pytest -q", 0, "x" * 10_000 + "END"), check("ruff check .")])
    tail = parse_verification_answer(answer, COMMANDS)[0].output_tail
    assert tail.endswith("END") and len(tail) == 4000


def test_identical_duplicates_are_accepted() -> None:
    answer = fenced([check("pytest -q"), check("pytest -q"), check("ruff check .")])
    assert all(e.passed for e in parse_verification_answer(answer, COMMANDS))


# -- nothing unstated passes ---------------------------------------------------------------


def test_partial_answer_fails_the_missing_command() -> None:
    evidence = parse_verification_answer(fenced([check("pytest -q")]), COMMANDS)
    assert outcome(evidence) == [("pytest -q", 0, True), ("ruff check .", None, False)]
    assert evidence[1].reason == "not reported by the agent"


def test_only_other_commands_fails_every_check() -> None:
    evidence = parse_verification_answer(fenced([check("make test"), check("ls")]), COMMANDS)
    assert not any(e.passed for e in evidence)
    assert all(
        e.reason == "not reported by the agent (it reported 2 other command(s))" for e in evidence
    )


@pytest.mark.parametrize("exit_code", ["0", 0.0, True, None, [0]])
def test_non_integer_exit_codes_fail(exit_code: object) -> None:
    evidence = parse_verification_answer(
        fenced([check("pytest -q", exit_code), check("ruff check .")]), COMMANDS
    )
    assert evidence[0].exit_code is None and not evidence[0].passed
    assert evidence[0].reason is not None and "exit_code is not an integer" in evidence[0].reason
    assert evidence[1].passed


def test_missing_exit_code_fails() -> None:
    answer = fenced([{"command": "pytest -q", "output_tail": "ok"}, check("ruff check .")])
    assert not parse_verification_answer(answer, COMMANDS)[0].passed


def test_non_string_output_fails() -> None:
    answer = fenced([check("pytest -q", 0, ["line"]), check("ruff check .")])
    evidence = parse_verification_answer(answer, COMMANDS)[0]
    assert not evidence.passed and evidence.reason == "output_tail is not a string: list"


def test_conflicting_duplicates_fail() -> None:
    answer = fenced([check("pytest -q", 1), check("pytest -q", 0), check("ruff check .")])
    evidence = parse_verification_answer(answer, COMMANDS)[0]
    assert not evidence.passed
    assert evidence.reason == "reported 2 times with different exit codes"


def test_malformed_json_fails_every_check() -> None:
    answer = 'Results:\n```json\n{"checks": [{"command": "pytest -q", "exit_code": 0,}]}\n```'
    evidence = parse_verification_answer(answer, COMMANDS)
    assert not any(e.passed for e in evidence)
    assert all(
        e.reason and e.reason.startswith("the answer's JSON block is malformed") for e in evidence
    )


def test_malformed_bare_json_fails_every_check() -> None:
    evidence = parse_verification_answer('{"checks": [{"command": "pytest -q",', COMMANDS)
    assert not any(e.passed for e in evidence)
    assert all(e.reason and "malformed" in e.reason for e in evidence)


@pytest.mark.parametrize(
    "answer",
    [
        "All commands passed!",
        '```json\n{"result": "all green"}\n```',
        '```json\n{"result": {"checks": []}}\n```',
    ],
    ids=["prose", "json-without-checks", "checks-nested-deeper"],
)
def test_missing_block_fails_every_check(answer: str) -> None:
    evidence = parse_verification_answer(answer, COMMANDS)
    assert not any(e.passed for e in evidence)
    assert all(e.exit_code is None and e.reason for e in evidence)


@pytest.mark.parametrize("answer", [None, "", "   \n"])
def test_no_answer_fails_every_check(answer: str | None) -> None:
    evidence = parse_verification_answer(answer, COMMANDS)
    assert [e.reason for e in evidence] == ["the agent gave no answer"] * 2


@pytest.mark.parametrize("checks", [{"pytest -q": 0}, "pytest -q: 0", None])
def test_checks_that_are_not_a_list_fail(checks: object) -> None:
    evidence = parse_verification_answer(fenced(checks), COMMANDS)
    assert not any(e.passed for e in evidence)
    assert all(e.reason == '"checks" in the answer is not a list' for e in evidence)


def test_entries_that_are_not_objects_are_not_evidence() -> None:
    answer = fenced(["pytest -q", 0, check("ruff check .")])
    evidence = parse_verification_answer(answer, COMMANDS)
    assert outcome(evidence) == [("pytest -q", None, False), ("ruff check .", 0, True)]


def test_no_commands_means_no_checks() -> None:
    assert parse_verification_answer(fenced([check("pytest -q")]), []) == []
