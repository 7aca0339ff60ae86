"""GitHub's OpenAPI description, loaded once per process, as JSON-schema checks.

Contract:
- :func:`load_github_spec` reads :func:`spec_path` once (it is 13 MB) and
  rewrites OpenAPI 3.0's ``nullable: true`` into JSON-schema ``null`` types so that
  ``jsonschema``'s Draft 4 validator (the draft OpenAPI 3.0 schemas follow) can check it.
- :func:`request_errors` and :func:`response_errors` return the validation messages for one
  operation's JSON request body or JSON response (empty list: it conforms). Only the
  operations a caller asks about are compiled, and each compiled validator is cached.
- :func:`webhook_errors` checks a webhook payload against ``webhooks.json`` (beside it).
- :func:`example` returns a deep copy of a named example from ``components/examples`` (the
  stand-in fills its responses from GitHub's own examples).
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

_REPO_ROOT = Path(__file__).resolve().parents[2]


def spec_path() -> Path:
    """``$EDGE_WORKER_SHARED_DIR/github/rest-api.json`` (default ``../shared`` beside the repo)."""
    shared = os.environ.get("EDGE_WORKER_SHARED_DIR", str(_REPO_ROOT.parent / "shared"))
    return Path(shared) / "github" / "rest-api.json"


def _nullable_to_null(node: Any) -> Any:
    """A copy of ``node`` with every ``nullable: true`` schema also accepting ``null``."""
    if isinstance(node, list):
        return [_nullable_to_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_null(value) for key, value in node.items()}
    if converted.get("nullable") is True:
        del converted["nullable"]
        if "type" in converted:
            kind = converted["type"]
            converted["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
            if "enum" in converted:
                converted["enum"] = [*converted["enum"], None]
        else:
            return {"anyOf": [{"type": "null"}, converted]}
    return converted


@functools.cache
def load_github_spec() -> dict[str, Any]:
    """The whole description with its ``components`` made checkable (cached per process)."""
    spec: dict[str, Any] = json.loads(spec_path().read_text(encoding="utf-8"))
    spec["components"] = _nullable_to_null(spec["components"])
    return spec


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` itself or the component its ``$ref`` names."""
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        target: Any = spec
        for part in parts:
            target = target[part]
        node = target
    return node


def _operation(path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = load_github_spec()["paths"][path][method.lower()]
    return operation


@functools.cache
def _validator(path: str, method: str, status: int | None) -> Draft4Validator | None:
    spec = load_github_spec()
    operation = _operation(path, method)
    if status is None:
        holder = operation.get("requestBody")
    else:
        holder = operation.get("responses", {}).get(str(status))
    if holder is None:
        raise KeyError(f"{method.upper()} {path} documents no {status or 'request body'}")
    content = _resolve(spec, holder).get("content", {}).get("application/json")
    if content is None:
        return None
    schema = _nullable_to_null(content["schema"])
    root = {**schema, "components": spec["components"]}
    return Draft4Validator(root)


def _errors(validator: Draft4Validator | None, value: Any) -> list[str]:
    if validator is None:
        return [] if value is None else ["the operation documents no JSON body"]
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(value)
    ]


def request_errors(path: str, method: str, body: Any) -> list[str]:
    """Why ``body`` is not a valid request body for ``method path`` (empty: it is)."""
    return _errors(_validator(path, method, None), body)


def response_errors(path: str, method: str, status: int, body: Any) -> list[str]:
    """Why ``body`` is not the documented ``status`` response of ``method path``."""
    try:
        validator = _validator(path, method, status)
    except KeyError as undocumented:
        return [str(undocumented)]
    return _errors(validator, body)


def documents_status(path: str, method: str, status: int) -> bool:
    """Whether ``method path`` documents the response ``status``."""
    return str(status) in _operation(path, method).get("responses", {})


@functools.cache
def _webhooks() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(
        spec_path().with_name("webhooks.json").read_text(encoding="utf-8")
    )
    spec["components"] = _nullable_to_null(spec["components"])
    return spec


@functools.cache
def _webhook_validator(name: str) -> Draft4Validator:
    spec = _webhooks()
    body = spec["webhooks"][name]["post"]["requestBody"]["content"]["application/json"]
    return Draft4Validator({**_nullable_to_null(body["schema"]), "components": spec["components"]})


def webhook_errors(name: str, body: Any) -> list[str]:
    """Why ``body`` is not a valid payload of webhook ``name`` (``webhooks.json``'s key,
    e.g. ``pull-request-closed``); empty when it is."""
    return _errors(_webhook_validator(name), body)


def webhook_example(name: str) -> Any:
    """A fresh copy of ``webhooks.json``'s example ``name`` (e.g. ``check-run-completed``)."""
    return copy.deepcopy(_webhooks()["components"]["examples"][name]["value"])


def example(name: str) -> Any:
    """A fresh copy of ``components/examples/<name>``'s value."""
    return copy.deepcopy(load_github_spec()["components"]["examples"][name]["value"])
