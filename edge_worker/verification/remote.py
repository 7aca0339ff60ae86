"""Remote verification, sans I/O: the prompt that asks a cloud agent to run the commands,
and the strict reading of its answer.

Contract:
- :func:`build_verification_prompt` puts the commands, as a fenced JSON block
  ``{"commands": [...]}``, where the template (``prompts/verifier.md``) says ``{{commands}}``.
- :func:`parse_verification_answer` returns one :class:`Evidence` per requested command, in
  the requested order. It reads the last fenced (or, failing that, bare) JSON object with a
  ``"checks"`` key: ``{"checks": [{"command": str, "exit_code": int, "output_tail": str}]}``.
  Commands are matched exactly (surrounding whitespace ignored). A command that is missing,
  reported with a non-integer exit code or a non-string output, reported twice with
  different results, or an answer that is absent or malformed, yields a failed check
  (``exit_code`` None) whose ``reason`` says why. Nothing the agent failed to state is
  ever counted as a pass. Reported commands that were not requested are ignored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edge_worker.executors.base import Evidence, VerificationCommand

VERIFIER_PROMPT_FILE = "verifier.md"
COMMANDS_PLACEHOLDER = "{{commands}}"
OUTPUT_TAIL_CHARS = 4000

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def load_verifier_template(prompts_dir: Path) -> str:
    """The verifier prompt template from ``prompts_dir``; raises if it cannot be used."""
    path = prompts_dir / VERIFIER_PROMPT_FILE
    template = path.read_text(encoding="utf-8")
    if COMMANDS_PLACEHOLDER not in template:
        raise ValueError(f"{path} must contain {COMMANDS_PLACEHOLDER} where the commands go")
    return template


def commands_block(commands: list[VerificationCommand]) -> str:
    """The fenced JSON block that lists the commands to run, exactly."""
    body = json.dumps({"commands": [check.command for check in commands]}, indent=2)
    return f"```json\n{body}\n```"


def build_verification_prompt(template: str, commands: list[VerificationCommand]) -> str:
    """The verifier prompt for ``commands`` (the template must contain ``{{commands}}``)."""
    if COMMANDS_PLACEHOLDER not in template:
        raise ValueError(f"the verifier template must contain {COMMANDS_PLACEHOLDER}")
    return template.replace(COMMANDS_PLACEHOLDER, commands_block(commands))


def commands_from_prompt(prompt: str) -> list[str] | None:
    """The commands a verification prompt asks for, or None if it is not one."""
    for value in _objects_with_key(prompt, "commands", fenced_only=True)[0]:
        commands = value["commands"]
        if isinstance(commands, list) and all(isinstance(c, str) for c in commands):
            return list(commands)
    return None


def failed_checks(commands: list[VerificationCommand], reason: str) -> list[Evidence]:
    """Every command as a failed check with the same ``reason``."""
    return [
        Evidence(command=check.command, expect_exit=check.expect_exit, reason=reason)
        for check in commands
    ]


def parse_verification_answer(
    answer: str | None, commands: list[VerificationCommand]
) -> list[Evidence]:
    """Strictly read the agent's answer into one :class:`Evidence` per requested command."""
    if answer is None or not answer.strip():
        return failed_checks(commands, "the agent gave no answer")
    found, malformed = _objects_with_key(answer, "checks", fenced_only=False)
    if not found:
        if malformed:
            return failed_checks(commands, f"the answer's JSON block is malformed: {malformed}")
        return failed_checks(commands, 'the answer has no JSON block with "checks"')
    checks = found[-1]["checks"]
    if not isinstance(checks, list):
        return failed_checks(commands, '"checks" in the answer is not a list')

    reports: dict[str, list[Evidence | str]] = {}
    for entry in checks:
        if isinstance(entry, dict) and isinstance(entry.get("command"), str):
            reports.setdefault(entry["command"].strip(), []).append(_read_entry(entry))
    unrequested = len(reports.keys() - {check.command.strip() for check in commands})
    return [
        _evidence_for(check, reports.get(check.command.strip(), []), unrequested=unrequested)
        for check in commands
    ]


def _read_entry(entry: dict[str, Any]) -> Evidence | str:
    """A well-formed check as Evidence (expectation filled later), or why it is not one."""
    exit_code = entry.get("exit_code")
    # bool is an int in Python, but `true` is not an exit code.
    if not isinstance(exit_code, int) or isinstance(exit_code, bool):
        return f"exit_code is not an integer: {exit_code!r}"
    tail = entry.get("output_tail", "")
    if tail is None:
        tail = ""
    if not isinstance(tail, str):
        return f"output_tail is not a string: {type(tail).__name__}"
    return Evidence(
        command=entry["command"], exit_code=exit_code, output_tail=tail[-OUTPUT_TAIL_CHARS:]
    )


def _evidence_for(
    check: VerificationCommand, entries: list[Evidence | str], *, unrequested: int
) -> Evidence:
    failed = Evidence(command=check.command, expect_exit=check.expect_exit)
    if not entries:
        suffix = f" (it reported {unrequested} other command(s))" if unrequested else ""
        return failed.model_copy(update={"reason": "not reported by the agent" + suffix})
    problems = [entry for entry in entries if isinstance(entry, str)]
    if problems:
        return failed.model_copy(update={"reason": problems[0]})
    results = {(e.exit_code, e.output_tail) for e in entries if isinstance(e, Evidence)}
    if len({code for code, _ in results}) > 1:
        return failed.model_copy(
            update={"reason": f"reported {len(entries)} times with different exit codes"}
        )
    first = entries[0]
    assert isinstance(first, Evidence)
    return first.model_copy(update={"command": check.command, "expect_exit": check.expect_exit})


def _objects_with_key(
    text: str, key: str, *, fenced_only: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """JSON objects carrying ``key``: from fenced blocks, else (unless ``fenced_only``) bare.

    Also returns the decoding error of a block that mentions ``key`` but is not valid JSON.
    """
    found: list[dict[str, Any]] = []
    malformed: str | None = None
    quoted_key = f'"{key}"'
    for match in _FENCE.finditer(text):
        language, body = match.group(1).lower(), match.group(2)
        if language not in ("", "json") or quoted_key not in body:
            continue
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            malformed = str(exc)
            continue
        if isinstance(value, dict) and key in value:
            found.append(value)
    if found or fenced_only:
        return found, malformed
    position = text.find("{")
    while position != -1:
        try:
            value, end = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict) and key in value:
            found.append(value)
        position = text.find("{", end)
    if not found and malformed is None and quoted_key in text:
        malformed = f"{quoted_key} appears but not in a valid JSON object"
    return found, malformed
