"""The plan: what the orchestrator prompt returns, and the checks it must pass.

Contract:
- :class:`Plan` is the typed form of the JSON documented in ``prompts/orchestrator.md``.
- :func:`validate_plan` accepts the model's answer as JSON text, bytes, a dict (a tool's
  input) or a :class:`Plan`, and returns a :class:`Plan` or raises :class:`PlanError`.
  The error lists *every* problem found, one per line, in words a model can act on when it
  is re-asked (field paths like ``subtasks[2].role``, the offending key, the cycle named).
- :func:`topological_layers` and :func:`dependents_of` read the dependency graph of a
  valid plan (acyclic, every dependency known).

Pure functions over plain data: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_worker.executors.base import Role, VerificationCommand

ExecutorHint = Literal["any", "local", "cloud"]
CODE_ROLES: frozenset[str] = frozenset({"builder", "debugger"})
KEY_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
MAX_KEY_LENGTH = 48
MAX_TITLE_LENGTH = 200


class PlanError(ValueError):
    """A plan that cannot be accepted; ``problems`` lists each reason, ``str()`` all of them."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems) or ["the plan was rejected"]
        lines = "\n".join(f"- {problem}" for problem in self.problems)
        super().__init__(f"The plan was rejected:\n{lines}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle (DBOS checkpoints step errors) rebuilds from the problems, not the message.
        return (type(self), (self.problems,))


class Verification(BaseModel):
    """A shell command run where the work lives, and the exit code that means it passed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    command: str = Field(
        min_length=1,
        description="A non-interactive shell command run from the repository root.",
    )
    expect_exit: int = Field(
        0, ge=0, le=255, description="The exit code that means the check passed."
    )

    def to_command(self) -> VerificationCommand:
        """The executor protocol's form of this check."""
        return VerificationCommand(command=self.command, expect_exit=self.expect_exit)


class Subtask(BaseModel):
    """One atomic piece of work that becomes one sub-issue."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=KEY_PATTERN,
        description="Stable slug, unique in the plan: lowercase letters, digits, - or _.",
    )
    title: str = Field(min_length=1, max_length=MAX_TITLE_LENGTH)
    description: str = Field(
        min_length=1,
        description="Objective, context, acceptance criteria; enough to work without the issue.",
    )
    role: Role
    executor: ExecutorHint = "any"
    depends_on: list[str] = Field(
        [], description="Keys of sub-tasks that must pass before this one starts."
    )
    verification: list[Verification] = Field(
        [], description="Checks that prove the work; required for builder and debugger."
    )
    reuses: str | None = Field(
        None,
        description="Identifier of an existing sub-issue of the issue that this sub-task "
        "continues (instead of a new sub-issue); omit it otherwise.",
    )

    @property
    def is_code_task(self) -> bool:
        """True for roles that change code (they must carry verification)."""
        return self.role in CODE_ROLES

    def verification_commands(self) -> list[VerificationCommand]:
        """The checks in the executor protocol's form."""
        return [check.to_command() for check in self.verification]


class Plan(BaseModel):
    """A summary and the sub-tasks that carry it out."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    summary: str = Field(min_length=1, description="What the plan achieves, in a few sentences.")
    subtasks: list[Subtask] = Field(min_length=1)
    answer: str | None = Field(
        None,
        description=(
            "Only when the latest follow-up from a person asks a question: the answer, in a "
            "few sentences, from the issue, the work so far and the repository. Omit otherwise."
        ),
    )

    def subtask(self, key: str) -> Subtask:
        """The sub-task with ``key``; :class:`KeyError` when there is none."""
        for subtask in self.subtasks:
            if subtask.key == key:
                return subtask
        raise KeyError(key)

    @property
    def keys(self) -> list[str]:
        return [subtask.key for subtask in self.subtasks]


def plan_json_schema() -> dict[str, Any]:
    """The plan's JSON schema with every ``$ref`` inlined (tool and CLI schemas want one object)."""
    schema = Plan.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


def validate_plan(raw: object, *, max_subtasks: int, max_depth: int = 4) -> Plan:
    """Parse and check a plan; raise :class:`PlanError` naming every problem found.

    Checks, in this order of reporting: JSON and shape; more than ``max_subtasks``
    sub-tasks; duplicate keys; dependencies on unknown keys; cycles (named, e.g.
    ``a -> b -> a``); a dependency chain longer than ``max_depth`` sub-tasks; a code task
    (builder or debugger) without verification.
    """
    plan = _parse(raw)
    problems: list[str] = []
    count = len(plan.subtasks)
    if count > max_subtasks:
        problems.append(
            f"the plan has {count} sub-tasks; at most {max_subtasks} are allowed: merge "
            "closely related work into one sub-task"
        )
    keys = plan.keys
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    for key in duplicates:
        problems.append(f'duplicate key "{key}": every sub-task needs its own key')
    known = set(keys)
    unknown = [
        (subtask.key, dependency)
        for subtask in plan.subtasks
        for dependency in subtask.depends_on
        if dependency not in known
    ]
    for key, dependency in unknown:
        problems.append(
            f'sub-task "{key}" depends on unknown key "{dependency}"; '
            f"known keys: {', '.join(dict.fromkeys(keys))}"
        )
    if not duplicates and not unknown:
        cycle = _find_cycle(plan)
        if cycle:
            problems.append(
                f"the dependencies form a cycle: {_describe_cycle(cycle)}; "
                "remove one of these dependencies"
            )
        else:
            depth, chain = _longest_chain(plan)
            if depth > max_depth:
                problems.append(
                    f"the dependency chain {' -> '.join(chain)} (each waits for the one "
                    f"before) is {depth} sub-tasks deep; "
                    f"at most {max_depth} are allowed: let independent work run in parallel"
                )
    for subtask in plan.subtasks:
        if subtask.is_code_task and not subtask.verification:
            problems.append(
                f'sub-task "{subtask.key}" is a {subtask.role} task without verification: '
                "add at least one command whose exit code proves the work"
            )
    if problems:
        raise PlanError(problems)
    return plan


def topological_layers(plan: Plan) -> list[list[Subtask]]:
    """Sub-tasks grouped so each layer depends only on earlier layers (plan order inside).

    Raises :class:`PlanError` on a cycle or an unknown dependency (a plan that did not pass
    :func:`validate_plan`).
    """
    remaining = {subtask.key: set(subtask.depends_on) for subtask in plan.subtasks}
    unknown = {dep for deps in remaining.values() for dep in deps} - remaining.keys()
    if unknown:
        raise PlanError([f"unknown dependency keys: {', '.join(sorted(unknown))}"])
    layers: list[list[Subtask]] = []
    done: set[str] = set()
    while remaining:
        ready = [
            subtask
            for subtask in plan.subtasks
            if subtask.key in remaining and remaining[subtask.key] <= done
        ]
        if not ready:
            cycle = _find_cycle(plan) or sorted(remaining)
            raise PlanError([f"the dependencies form a cycle: {_describe_cycle(cycle)}"])
        layers.append(ready)
        for subtask in ready:
            done.add(subtask.key)
            del remaining[subtask.key]
    return layers


def dependents_of(plan: Plan, key: str) -> list[Subtask]:
    """Every sub-task that depends on ``key`` directly or transitively, in plan order.

    Raises :class:`KeyError` for a key the plan does not have.
    """
    plan.subtask(key)
    needed_by: dict[str, list[str]] = {}
    for subtask in plan.subtasks:
        for dependency in subtask.depends_on:
            needed_by.setdefault(dependency, []).append(subtask.key)
    reached = _reachable(key, needed_by)
    return [subtask for subtask in plan.subtasks if subtask.key in reached]


def dependencies_of(plan: Plan, key: str) -> list[Subtask]:
    """Every sub-task ``key`` depends on directly or transitively, in plan order.

    Raises :class:`KeyError` for a key the plan does not have.
    """
    plan.subtask(key)
    reached = _reachable(key, {s.key: list(s.depends_on) for s in plan.subtasks})
    return [subtask for subtask in plan.subtasks if subtask.key in reached]


def _reachable(start: str, edges: dict[str, list[str]]) -> set[str]:
    """The keys reachable from ``start`` along ``edges`` (``start`` itself excluded)."""
    reached: set[str] = set()
    stack = [start]
    while stack:
        for following in edges.get(stack.pop(), []):
            if following not in reached and following != start:
                reached.add(following)
                stack.append(following)
    return reached


def _parse(raw: object) -> Plan:
    if isinstance(raw, Plan):
        return raw
    if isinstance(raw, bytes | bytearray):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            raise PlanError(["the plan is not UTF-8 text"]) from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PlanError(
                [f"the plan is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
            ) from None
    if not isinstance(raw, dict):
        raise PlanError(
            [
                'the plan must be a JSON object with the keys "summary" and "subtasks", '
                f"not {_json_type(raw)}"
            ]
        )
    try:
        return Plan.model_validate(raw)
    except ValidationError as exc:
        raise PlanError(_describe_errors(exc, raw)) from None


def _describe_errors(exc: ValidationError, raw: dict[str, Any]) -> list[str]:
    problems = []
    for error in exc.errors():
        location = _location(error["loc"], raw)
        message = error["msg"]
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a known field; remove it"
        elif error["type"] == "string_pattern_mismatch":
            message = "must be a slug: lowercase letters and digits separated by - or _"
        problem = f"{location}: {message}"
        if error["type"] not in {"missing", "extra_forbidden"} and "input" in error:
            problem += f" (got {_short(error['input'])})"
        problems.append(problem)
    return problems


def _location(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    text = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            key = node[part].get("key") if _indexable(node, part) else None
            if isinstance(key, str) and key:
                text += f' ("{_short_text(key)}")'
        else:
            text += f".{part}" if text else part
        node = _child(node, part)
    return text or "plan"


def _indexable(node: Any, index: int) -> bool:
    return isinstance(node, list) and 0 <= index < len(node) and isinstance(node[index], dict)


def _child(node: Any, part: int | str) -> Any:
    if isinstance(part, int):
        return node[part] if isinstance(node, list) and 0 <= part < len(node) else None
    return node.get(part) if isinstance(node, dict) else None


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def _short(value: object) -> str:
    return _short_text(json.dumps(value, ensure_ascii=False, default=str))


def _short_text(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _find_cycle(plan: Plan) -> list[str] | None:
    """A cycle as a closed path of keys, ``[a, b, a]`` when a waits for b and b for a.

    ``None`` when the graph is acyclic; dependencies on unknown keys are ignored.
    """
    edges = {subtask.key: list(subtask.depends_on) for subtask in plan.subtasks}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = fully explored
    path: list[str] = []

    def visit(key: str) -> list[str] | None:
        state[key] = 1
        path.append(key)
        for dependency in edges.get(key, []):
            if dependency not in edges:
                continue
            if state.get(dependency) == 1:
                return [*path[path.index(dependency) :], dependency]
            if state.get(dependency) is None:
                found = visit(dependency)
                if found:
                    return found
        path.pop()
        state[key] = 2
        return None

    for subtask in plan.subtasks:
        if state.get(subtask.key) is None:
            found = visit(subtask.key)
            if found:
                return found
    return None


def _describe_cycle(cycle: list[str]) -> str:
    return ", ".join(f'"{waiting}" depends on "{awaited}"' for waiting, awaited in pairwise(cycle))


def _longest_chain(plan: Plan) -> tuple[int, list[str]]:
    """Length and keys of the longest dependency chain, root first (acyclic plans only)."""
    best: dict[str, list[str]] = {}
    for layer in topological_layers(plan):
        for subtask in layer:
            longest_before: list[str] = []
            for dependency in subtask.depends_on:
                if len(best[dependency]) > len(longest_before):
                    longest_before = best[dependency]
            best[subtask.key] = [*longest_before, subtask.key]
    chain = max(best.values(), key=len, default=[])
    return len(chain), chain
