"""The ``anthropic`` planner backend: the Messages API over httpx, the plan as a tool call.

Contract:
- ``POST {base_url}/v1/messages`` with ``x-api-key``, ``anthropic-version: 2023-06-01``,
  the orchestrator prompt as a cached ``system`` block, one tool ``submit_plan`` whose
  ``input_schema`` is the plan's JSON schema, forced with
  ``tool_choice: {"type": "tool", "name": "submit_plan"}``.
- Images attached to the issue follow the prompt in the first user message as base64
  ``image`` blocks (a file that cannot be read, or over the API's 5 MB, is left out and
  logged).
- A re-ask continues the conversation: the rejected assistant turn, then a ``tool_result``
  with ``is_error: true`` carrying the validation error (a plain user message when the model
  made no tool call).
- 408, 409, 429, 5xx and 529 (overloaded) and transport errors are retried with stamina's
  jittered backoff, waiting what ``retry-after`` asks when the server says; other errors, or
  retries exhausted, raise :class:`PlannerUnavailable` naming the status and the API's
  message. The API key is never logged.
- Usage: ``input_tokens`` plus ``cache_creation_input_tokens`` count as input,
  ``cache_read_input_tokens`` as cached input; USD comes from the injected ``pricer``.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import stamina
import structlog
from pydantic import SecretStr

from edge_worker.executors.base import Usage
from edge_worker.orchestration.plan import plan_json_schema
from edge_worker.orchestration.planner import (
    PlannerImage,
    PlannerUnavailable,
    Pricer,
    Proposal,
    Rejection,
)

log = structlog.get_logger(__name__)

API_VERSION = "2023-06-01"
TOOL_NAME = "submit_plan"
TOOL_DESCRIPTION = (
    "Submit the plan for this issue. Call it exactly once with the complete plan in the "
    "format your instructions define."
)
RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER_SECONDS = 60.0
MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""The API refuses larger images; those are left out (the planner still sees their names)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry a transient failure (stamina's parameters)."""

    attempts: int = 5
    timeout_seconds: float = 180.0
    wait_initial: float = 1.0
    wait_max: float = 30.0
    wait_jitter: float = 1.0


class TransientAPIError(Exception):
    """A response worth retrying; ``retry_after`` is the server's wish in seconds, if any."""

    def __init__(self, status: int, detail: str, retry_after: float | None) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def retry_backoff(exc: Exception) -> bool | float:
    """stamina's ``on`` hook: retry transient errors, for as long as ``retry-after`` asks."""
    if isinstance(exc, TransientAPIError):
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
        return True
    return isinstance(exc, httpx.TransportError)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``retry-after`` header (seconds or an HTTP date); ``None`` if absent
    or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max((when - now).total_seconds(), 0.0)


def usage_from(payload: Mapping[str, Any] | None) -> Usage:
    """Our :class:`Usage` from the Messages API's ``usage`` object."""
    payload = payload or {}

    def count(name: str) -> int:
        value = payload.get(name)
        return value if isinstance(value, int) else 0

    return Usage(
        input_tokens=count("input_tokens") + count("cache_creation_input_tokens"),
        cached_input_tokens=count("cache_read_input_tokens"),
        output_tokens=count("output_tokens"),
    )


class AnthropicBackend:
    """Plans through the Messages API."""

    name = "anthropic"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr | str,
        model: str,
        max_tokens: int = 8192,
        timeout_seconds: float = 120.0,
        pricer: Pricer | None = None,
        retry: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self.model = model
        self._max_tokens = max_tokens
        self._timeout = timeout_seconds
        self._pricer = pricer
        self._retry = retry or RetryPolicy()
        self._client = client

    def request_body(
        self,
        *,
        system: str,
        prompt: str,
        rejection: Rejection | None,
        images: Sequence[PlannerImage] = (),
    ) -> dict[str, Any]:
        """The Messages API request for a first ask or a re-ask."""
        blocks = image_blocks(images)
        first: str | list[dict[str, Any]] = (
            [{"type": "text", "text": prompt}, *blocks] if blocks else prompt
        )
        messages: list[dict[str, Any]] = [{"role": "user", "content": first}]
        if rejection is not None:
            state = rejection.proposal.state or {}
            content = state.get("content") or []
            tool_use_id = state.get("tool_use_id")
            if content and tool_use_id:
                messages.append({"role": "assistant", "content": content})
                result = {
                    "type": "tool_result",
                    "tool_use_id": tool_use_id,
                    "is_error": True,
                    "content": rejection.message,
                }
                messages.append({"role": "user", "content": [result]})
            elif content:
                messages.append({"role": "assistant", "content": content})
                messages.append({"role": "user", "content": rejection.message})
            else:
                text = f"{prompt}\n\n{rejection.message}"
                again = [{"type": "text", "text": text}, *blocks] if blocks else text
                messages = [{"role": "user", "content": again}]
        return {
            "model": self.model,
            "max_tokens": self._max_tokens,
            # Cached: tools and the orchestrator prompt are the same for every issue and re-ask.
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
            "tools": [
                {
                    "name": TOOL_NAME,
                    "description": TOOL_DESCRIPTION,
                    "input_schema": plan_json_schema(),
                }
            ],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
        }

    async def propose(
        self,
        *,
        system: str,
        prompt: str,
        cwd: str | None,
        rejection: Rejection | None,
        images: Sequence[PlannerImage] = (),
    ) -> Proposal:
        body = self.request_body(system=system, prompt=prompt, rejection=rejection, images=images)
        reply = await self._post(body)
        answered_model = reply.get("model")
        model = answered_model if isinstance(answered_model, str) else self.model
        usage = usage_from(reply.get("usage"))
        cost = self._pricer(model, usage) if self._pricer else None
        content = reply.get("content")
        blocks = [block for block in content if isinstance(block, dict)] if content else []
        call = next(
            (b for b in blocks if b.get("type") == "tool_use" and b.get("name") == TOOL_NAME),
            None,
        )
        state = {"content": blocks, "tool_use_id": call.get("id") if call else None}
        if call is None:
            stop = reply.get("stop_reason")
            return Proposal(
                raw=None,
                usage=usage,
                cost_usd=cost,
                model=model,
                problem=f"you did not call the {TOOL_NAME} tool (stop_reason: {stop}); "
                f"submit the plan with {TOOL_NAME}",
                state=state,
            )
        problem = None
        if reply.get("stop_reason") == "max_tokens":
            problem = (
                "the answer was cut off at the output token limit; submit a shorter plan "
                "(tighter descriptions, fewer sub-tasks)"
            )
        return Proposal(
            raw=call.get("input"),
            usage=usage,
            cost_usd=cost,
            model=model,
            problem=problem,
            state=state,
        )

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "x-api-key": self._api_key.get_secret_value(),
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }
        client = self._client or httpx.AsyncClient(timeout=self._timeout)
        attempts = 0
        try:
            async for attempt in stamina.retry_context(
                on=retry_backoff,
                attempts=self._retry.attempts,
                timeout=self._retry.timeout_seconds,
                wait_initial=self._retry.wait_initial,
                wait_max=self._retry.wait_max,
                wait_jitter=self._retry.wait_jitter,
            ):
                with attempt:
                    attempts += 1
                    response = await client.post(
                        self._url, json=body, headers=headers, timeout=self._timeout
                    )
                    return _checked(response)
        except TransientAPIError as exc:
            raise PlannerUnavailable(
                f"the Anthropic API kept failing ({exc.status} {exc.detail}) after "
                f"{attempts} attempts"
            ) from None
        except httpx.TransportError as exc:
            raise PlannerUnavailable(
                f"the Anthropic API at {self._url} could not be reached after {attempts} "
                f"attempts ({type(exc).__name__}: {exc})"
            ) from None
        finally:
            if self._client is None:
                await client.aclose()
        raise AssertionError("unreachable: stamina returns or raises")  # pragma: no cover


def image_blocks(images: Sequence[PlannerImage]) -> list[dict[str, Any]]:
    """Messages API ``image`` blocks for the images that can be read."""
    blocks = []
    for image in images:
        try:
            data = Path(image.path).read_bytes()
        except OSError as exc:
            log.warning("planner_image_unreadable", name=image.name, error=exc.strerror)
            continue
        if len(data) > MAX_IMAGE_BYTES:
            log.warning("planner_image_too_large", name=image.name, size=len(data))
            continue
        source = {
            "type": "base64",
            "media_type": image.media_type,
            "data": base64.b64encode(data).decode("ascii"),
        }
        blocks.append({"type": "image", "source": source})
    return blocks


def _checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful response; raise for anything else."""
    status = response.status_code
    if status == 200:
        try:
            payload = response.json()
        except ValueError:
            raise PlannerUnavailable(
                "the Anthropic API answered 200 with a non-JSON body"
            ) from None
        if not isinstance(payload, dict):
            raise PlannerUnavailable("the Anthropic API answered 200 with a non-object body")
        return payload
    detail = _error_detail(response)
    if status in RETRY_STATUSES or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        log.info("anthropic_retryable_error", status=status, detail=detail, retry_after=retry_after)
        raise TransientAPIError(status, detail, retry_after)
    raise PlannerUnavailable(f"the Anthropic API refused the request: {status} {detail}")


def _error_detail(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('message', '')}".strip()
    return str(payload)[:200]
