"""Readers for the deployment files, and a map from setting names to the settings model.

Contract:
- :func:`parse_dockerfile` splits a Dockerfile into instructions (line continuations
  joined, comments and parser directives dropped) and raises :class:`DeployFileError`
  naming the line of an unknown instruction or a continuation that never ends.
- :func:`parse_unit` reads a systemd unit into ``{section: {key: [values...]}}``; a key
  line outside a section, or a line that is neither, raises :class:`DeployFileError`.
- :func:`timespan_seconds` converts a systemd time span (``45``, ``45s``, ``1min 30s``).
- :func:`env_example_lines` reads an environment file: ``NAME=value`` lines, commented
  out (``#NAME=value``) or not; prose comments start with ``# `` and are skipped.
- :func:`toml_setting_lines` reads a TOML example line by line, tracking the section of
  each key, for active keys and commented-out ones (``#key = value``, no space after
  ``#``); :func:`uncomment_toml` removes that ``#`` everywhere.
- :func:`setting_path_of_env` and :func:`setting_path_of_toml` map a name to the tuple of
  field names in :class:`~edge_worker.settings.Settings` (``("linear", "api_url")``),
  raising :class:`UnknownSetting` for a name the model does not have.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edge_worker.settings import ENV_PREFIX, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"

CONFIG_ENV = ENV_PREFIX + "CONFIG"
"""The one ``EDGE_WORKER_*`` variable that is not a field: the TOML file's path."""


class DeployFileError(ValueError):
    """A deployment file that does not parse; the message names the line."""


class UnknownSetting(KeyError):
    """A setting name the settings model does not know."""


# --- Dockerfile ----------------------------------------------------------------------------

DOCKERFILE_KEYWORDS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: upper-cased keyword, its arguments, its first line."""

    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, in order."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue  # blank, comment or parser directive
        if pending and stripped.startswith("#"):
            continue  # comments may sit inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = joined.partition(" ")
        if keyword.upper() not in DOCKERFILE_KEYWORDS:
            raise DeployFileError(f"line {start}: unknown instruction {keyword!r}")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    if pending:
        raise DeployFileError(f"line {start}: continuation never ends")
    return instructions


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form argument (``["a", "b"]``), else ``None``."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except json.JSONDecodeError as exc:
        raise DeployFileError(f"malformed JSON array {args!r}: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DeployFileError(f"not an array of strings: {args!r}")
    return value


def split_flags(args: str) -> tuple[dict[str, str], str]:
    """Leading ``--flag=value`` options of an instruction, and the rest."""
    flags: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        name, _, value = flag[2:].partition("=")
        flags[name] = value
        rest = rest.strip()
    return flags, rest


def copy_sources(instruction: Instruction) -> list[str]:
    """The build-context sources of a COPY/ADD (none when it copies from another stage)."""
    flags, rest = split_flags(instruction.args)
    if "from" in flags:
        return []
    parts = exec_form(rest) or rest.split()
    if len(parts) < 2:
        raise DeployFileError(f"line {instruction.line}: {instruction.keyword} needs a destination")
    return parts[:-1]


def stage_copies(instructions: list[Instruction], context: Path, root: Path) -> Path:
    """Replay the build-context COPY instructions into ``root``; return the WORKDIR in force.

    Destinations are taken relative to the WORKDIR in force (absolute ones under ``root``),
    which is what the image build does; a sub-directory destination ends with ``/`` or is
    the target of several sources. Only what the Dockerfile copies ends up in ``root``.
    """
    workdir = root
    for instruction in instructions:
        if instruction.keyword == "WORKDIR":
            workdir = root / instruction.args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword in ("COPY", "ADD"):
            sources = copy_sources(instruction)
            if not sources:
                continue
            _, rest = split_flags(instruction.args)
            destination = (exec_form(rest) or rest.split())[-1]
            if destination.startswith("/"):
                target = root / destination.lstrip("/")
            else:
                target = workdir / destination
            into_directory = destination.endswith("/") or len(sources) > 1
            for source in sources:
                origin = context / source
                final = target / origin.name if into_directory else target
                final.parent.mkdir(parents=True, exist_ok=True)
                if origin.is_dir():
                    shutil.copytree(origin, final, dirs_exist_ok=True)
                else:
                    shutil.copy2(origin, final)
    return workdir


# --- systemd --------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as ``{section: {key: [values in order]}}``."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DeployFileError(f"line {number}: neither a section nor key=value: {line!r}")
        if current is None:
            raise DeployFileError(f"line {number}: {key.strip()!r} outside any section")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


_SPAN_UNITS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
_SPAN_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def timespan_seconds(value: str) -> float:
    """Seconds in a systemd time span; a bare number is seconds."""
    text = value.strip().lower()
    total = 0.0
    position = 0
    for match in _SPAN_PART.finditer(text):
        if text[position : match.start()].strip():
            break
        unit = match.group(2) or "s"
        if unit not in _SPAN_UNITS:
            raise DeployFileError(f"unknown time unit {unit!r} in {value!r}")
        total += float(match.group(1)) * _SPAN_UNITS[unit]
        position = match.end()
    if not text or text[position:].strip():
        raise DeployFileError(f"not a time span: {value!r}")
    return total


def unit_environment(unit: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    """The ``Environment=`` assignments of the [Service] section (last one wins)."""
    env: dict[str, str] = {}
    for assignment in unit.get("Service", {}).get("Environment", []):
        for item in assignment.split():
            name, _, value = item.partition("=")
            env[name] = value
    return env


# --- environment example -------------------------------------------------------------------

_ENV_LINE = re.compile(r"^(#?)([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class EnvLine:
    """One ``NAME=value`` line of an environment file."""

    name: str
    value: str
    commented: bool
    line: int


def env_example_lines(text: str) -> list[EnvLine]:
    """The variable lines of an environment file, commented out or not."""
    lines: list[EnvLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line or line == "#" or line.startswith("# "):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            raise DeployFileError(
                f"line {number}: neither prose ('# ...') nor NAME=value: {line!r}"
            )
        lines.append(EnvLine(match.group(2), match.group(3), bool(match.group(1)), number))
    return lines


# --- TOML example ---------------------------------------------------------------------------

_COMMENTED_SETTING = re.compile(r"^#(?=[^\s#])")


@dataclass(frozen=True)
class TomlLine:
    """A key of a TOML example: its section path (table names), key, value and line."""

    section: tuple[str, ...]
    key: tuple[str, ...]
    value: Any
    commented: bool
    line: int


def uncomment_toml(text: str) -> str:
    """The TOML with every commented-out setting (``#key = ...``, ``#[table]``) active."""
    return "\n".join(_COMMENTED_SETTING.sub("", line) for line in text.splitlines()) + "\n"


def _single_path(tree: Any) -> tuple[tuple[str, ...], Any]:
    """The keys leading to the only leaf of a one-entry TOML document, and the leaf."""
    path: list[str] = []
    node = tree
    while True:
        if isinstance(node, dict) and len(node) == 1:
            ((key, node),) = node.items()
            path.append(key)
        elif isinstance(node, list) and len(node) == 1 and isinstance(node[0], dict):
            node = node[0]
        else:
            return tuple(path), node


def toml_setting_lines(text: str) -> tuple[list[tuple[str, ...]], list[TomlLine]]:
    """Every table header's path, and every key with the table it belongs to."""
    headers: list[tuple[str, ...]] = []
    keys: list[TomlLine] = []
    section: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        commented = bool(_COMMENTED_SETTING.match(line))
        if commented:
            line = line[1:]
        elif not line or line.startswith("#"):
            continue
        try:
            document = tomllib.loads(line)
        except tomllib.TOMLDecodeError as exc:
            raise DeployFileError(f"line {number}: not a TOML setting: {raw!r} ({exc})") from None
        path, leaf = _single_path(document)
        if line.startswith("["):
            section = path
            headers.append(section)
        else:
            keys.append(TomlLine(section, path, leaf, commented, number))
    return headers, keys


# --- the settings model ----------------------------------------------------------------------


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _container_model(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """``("dict", M)`` for ``dict[str, M]``, ``("list", M)`` for ``list[M]``, else None."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is dict and len(args) == 2 and _is_model(args[1]):
        return "dict", args[1]
    if origin is list and len(args) == 1 and _is_model(args[0]):
        return "list", args[0]
    return None


def all_setting_paths(model: type[BaseModel] = Settings) -> set[tuple[str, ...]]:
    """Every field of ``model``, recursively, as a path of field names (dict keys elided)."""
    paths: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        paths.add((name,))
        annotation = _unwrap_optional(info.annotation)
        inner: type[BaseModel] | None = None
        if _is_model(annotation):
            inner = annotation
        elif (container := _container_model(annotation)) is not None:
            inner = container[1]
        if inner is not None:
            paths |= {(name, *sub) for sub in all_setting_paths(inner)}
    return paths


def field_info(path: tuple[str, ...]) -> FieldInfo:
    """The field a setting path names (see :func:`all_setting_paths`)."""
    model: type[BaseModel] = Settings
    info: FieldInfo | None = None
    for index, name in enumerate(path):
        if name not in model.model_fields:
            raise UnknownSetting(".".join(path))
        info = model.model_fields[name]
        if index == len(path) - 1:
            break
        annotation = _unwrap_optional(info.annotation)
        if _is_model(annotation):
            model = annotation
        elif (container := _container_model(annotation)) is not None:
            model = container[1]
        else:
            raise UnknownSetting(".".join(path))
    if info is None:
        raise UnknownSetting("")
    return info


def setting_path_of_env(name: str) -> tuple[str, ...]:
    """The setting an ``EDGE_WORKER_*`` variable sets (``..._LINEAR__API_URL``)."""
    if not name.startswith(ENV_PREFIX):
        raise UnknownSetting(name)
    path = tuple(part.lower() for part in name.removeprefix(ENV_PREFIX).split("__"))
    model: type[BaseModel] = Settings
    for index, part in enumerate(path):
        if part not in model.model_fields:
            raise UnknownSetting(name)
        annotation = _unwrap_optional(model.model_fields[part].annotation)
        if index < len(path) - 1:
            if not _is_model(annotation):
                raise UnknownSetting(name)
            model = annotation
    return path


def setting_path_of_toml(section: tuple[str, ...], key: tuple[str, ...]) -> tuple[str, ...]:
    """The setting a TOML key sets: table path plus key, with ``[prices.<model>]`` keys elided."""
    full = (*section, *key)
    path: list[str] = []
    model: type[BaseModel] = Settings
    skip_next = False
    for part in full:
        if skip_next:
            skip_next = False
            continue
        if part not in model.model_fields:
            raise UnknownSetting(".".join(full))
        path.append(part)
        annotation = _unwrap_optional(model.model_fields[part].annotation)
        if _is_model(annotation):
            model = annotation
        elif (container := _container_model(annotation)) is not None:
            kind, model = container
            skip_next = kind == "dict"
    return tuple(path)


def value_at(settings: BaseModel, path: tuple[str, ...]) -> Any:
    """The value of a setting path in a loaded configuration (no dicts or lists on the way)."""
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


def is_unset_default(info: FieldInfo) -> bool:
    """True when a field is unset by default (``None``, empty or required): examples show a
    sample."""
    if info.is_required():
        return True
    if info.default_factory is not None:
        return False
    return info.default is None or info.default in ([], {}, "")
