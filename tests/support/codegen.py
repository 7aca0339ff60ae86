"""Test support for the Codegen executor and its stand-in.

- :class:`FakeClock`: time that moves only when someone sleeps on it (shared by the
  executor, its rate limiter and the stand-in server, which reads it from its thread).
- :func:`schema_errors`: a small validator for the OpenAPI 3.1 / JSON Schema subset used by
  Codegen's spec (``$ref``, ``anyOf``, ``type``, ``properties``, ``required``,
  ``additionalProperties``, ``items``, ``enum``, ``minimum``, ``maximum``).
- :func:`codegen_settings` and :func:`make_executor`: an executor wired to a stand-in.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from edge_worker.executors.base import Task, VerificationCommand
from edge_worker.executors.codegen import CodegenExecutor
from edge_worker.executors.rate_limit import OrgRateLimiter
from edge_worker.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "sandbox-codegen-token"
ORG_ID = 7


class FakeClock:
    """A clock that advances by exactly what is slept on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def codegen_settings(base_url: str, **codegen: Any) -> Settings:
    """Settings that point the Codegen executor at a stand-in."""
    section: dict[str, Any] = {
        "base_url": base_url,
        "org_id": ORG_ID,
        "api_token": TOKEN,
        "repo_id": 42,
        "poll_interval_seconds": 15.0,
    }
    section.update(codegen)
    return Settings(codegen=section, prompts_dir=REPO_ROOT / "prompts")


def make_executor(settings: Settings, clock: FakeClock) -> CodegenExecutor:
    """An executor whose time (polling, limits, timeouts) runs on ``clock``."""
    limiter = OrgRateLimiter(
        settings.codegen.creates_per_minute,
        settings.codegen.calls_per_30_seconds,
        clock=clock,
        sleep=clock.sleep,
    )
    return CodegenExecutor(
        settings, limiter=limiter, clock=clock, sleep=clock.sleep, retry_wait_initial=0.01
    )


def make_task(key: str = "api", *, attempt: int = 1, commands: list[str] | None = None) -> Task:
    """A builder sub-task of issue ENG-1."""
    return Task(
        issue_id="issue-uuid-1",
        issue_identifier="ENG-1",
        key=key,
        title=f"Build the {key}",
        description=f"Objective: add the {key}.\nAcceptance: tests pass.",
        role_prompt="You are a careful builder.",
        verification=[VerificationCommand(command=c) for c in (commands or ["pytest -q"])],
        attempt=attempt,
    )


# -- OpenAPI schema checking --------------------------------------------------------------


def load_spec(path: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec


def component(spec: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def response_schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON schema the spec gives for ``status`` answers of ``method path``."""
    responses = spec["paths"][path][method.lower()]["responses"]
    schema: dict[str, Any] = responses[str(status)]["content"]["application/json"]["schema"]
    return schema


def request_schema(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    body = spec["paths"][path][method.lower()]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(
    value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str = "$"
) -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty when it conforms)."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return schema_errors(value, component(spec, name), spec, where)
    if "anyOf" in schema:
        options = [schema_errors(value, option, spec, where) for option in schema["anyOf"]]
        if any(not errors for errors in options):
            return []
        return [f"{where}: matches no anyOf option ({'; '.join(e[0] for e in options)})"]
    errors: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        kinds = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES[kind](value) for kind in kinds):
            return [f"{where}: expected {expected}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in enum")
    if "minimum" in schema and _TYPES["number"](value) and value < schema["minimum"]:
        errors.append(f"{where}: {value} < minimum {schema['minimum']}")
    if "maximum" in schema and _TYPES["number"](value) and value > schema["maximum"]:
        errors.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: missing required {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], spec, f"{where}.{name}")
            elif extra is False:
                errors.append(f"{where}: unexpected property {name!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, spec, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], spec, f"{where}[{index}]")
    return errors
