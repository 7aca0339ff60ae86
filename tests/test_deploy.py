"""The deployment files: systemd unit, container image, compose file, example configuration.

These are the fast checks: the Dockerfile read (instructions, sources, user, health check)
and its health-check command run against a loopback server. The image itself is built and
run in ``tests/test_container.py`` (slow). The unit is checked by ``systemd-analyze`` itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge_worker.sandbox.server import serve_in_thread
from edge_worker.settings import ENV_PREFIX, Settings, load_settings, require_for_serve
from tests.support.deploy import (
    CONFIG_ENV,
    DEPLOY_DIR,
    REPO_ROOT,
    DeployFileError,
    Instruction,
    UnknownSetting,
    all_setting_paths,
    copy_sources,
    env_example_lines,
    exec_form,
    field_info,
    is_unset_default,
    parse_dockerfile,
    parse_unit,
    setting_path_of_env,
    setting_path_of_toml,
    split_flags,
    stage_copies,
    timespan_seconds,
    toml_setting_lines,
    uncomment_toml,
    unit_environment,
    value_at,
)

UNIT = DEPLOY_DIR / "edge-worker.service"
DOCKERFILE = DEPLOY_DIR / "Dockerfile"
COMPOSE = DEPLOY_DIR / "docker-compose.yml"
EXAMPLE_TOML = DEPLOY_DIR / "edge-worker.example.toml"
EXAMPLE_ENV = DEPLOY_DIR / "edge-worker.env.example"

DEFAULT_DRAIN_SECONDS = float(Settings.model_fields["drain_seconds"].default)
STATE_DIR = "/var/lib/edge-worker"

ENVIRONMENT_DEPENDENT_DEFAULTS = {("executor_id",), ("prompts_dir",)}
"""Defaults computed where the daemon runs (host name, checkout path): examples show a sample."""

APT_TIMEOUT_SECONDS = 600


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``EDGE_WORKER_*`` variable of the caller's environment leaks into a load."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    return monkeypatch


# --- systemd ---------------------------------------------------------------------------------


def _run_as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo"):
        return ["sudo", "-n", *command]
    pytest.fail(f"installing systemd needs root and there is no sudo: {' '.join(command)}")


def _apt(args: list[str]) -> None:
    command = _run_as_root(["apt-get", *args])
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=APT_TIMEOUT_SECONDS, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} did not finish in {APT_TIMEOUT_SECONDS} s")
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
        )


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    """Path of ``systemd-analyze``; installed from Debian's packages in CI when missing."""
    found = shutil.which("systemd-analyze")
    if found:
        return found
    if not os.environ.get("CI"):
        pytest.skip(
            "systemd-analyze is not installed (apt-get install systemd); "
            "CI installs it and runs this check"
        )
    _apt(["update"])
    _apt(["install", "-y", "--no-install-recommends", "systemd"])
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.fail("apt-get installed systemd but systemd-analyze is not on PATH")
    return found


def unit_with_existing_binary(tmp_path: Path, text: str) -> Path:
    """A copy of the unit whose ExecStart runs a binary that exists here, arguments kept.

    ``systemd-analyze verify`` refuses an ExecStart that does not exist; only that path
    is rewritten, so every other line is verified as written.
    """
    installed = Path(sys.prefix) / "bin" / "edge-worker"
    binary = str(installed) if os.access(installed, os.X_OK) else "/bin/true"
    lines = []
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            _, _, rest = line.partition("=")
            _, _, arguments = rest.partition(" ")
            line = f"ExecStart={binary} {arguments}"
        lines.append(line)
    copy = tmp_path / UNIT.name
    copy.write_text("\n".join(lines) + "\n")
    return copy


def verify_unit(systemd_analyze: str, unit: Path) -> list[str]:
    """What ``systemd-analyze verify`` says about the unit (empty when it is clean)."""
    done = subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    said = [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line]
    if done.returncode != 0 and not said:
        said = [f"exit status {done.returncode}: {done.stderr.strip()}"]
    return said


@pytest.mark.timeout(2 * APT_TIMEOUT_SECONDS + 60)
def test_unit_passes_systemd_analyze_verify(systemd_analyze: str, tmp_path: Path) -> None:
    unit = unit_with_existing_binary(tmp_path, UNIT.read_text())
    assert verify_unit(systemd_analyze, unit) == []


@pytest.mark.timeout(2 * APT_TIMEOUT_SECONDS + 60)
def test_systemd_analyze_verify_reports_a_misspelt_key(
    systemd_analyze: str, tmp_path: Path
) -> None:
    # The check above is only worth something if a broken unit is reported: systemd prints
    # a warning and still exits 0 for an unknown key, so the warning must be caught.
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    unit = unit_with_existing_binary(tmp_path, broken)
    said = verify_unit(systemd_analyze, unit)
    assert any("ProtectSytem" in line for line in said), said


def _systemd_version(systemd_analyze: str) -> int:
    done = subprocess.run([systemd_analyze, "--version"], capture_output=True, text=True)
    match = re.match(r"systemd (\d+)", done.stdout)
    return int(match.group(1)) if match else 0


@pytest.mark.timeout(2 * APT_TIMEOUT_SECONDS + 60)
def test_unit_exposure_stays_in_the_ok_band(systemd_analyze: str, tmp_path: Path) -> None:
    if _systemd_version(systemd_analyze) < 250:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or later")
    unit = unit_with_existing_binary(tmp_path, UNIT.read_text())
    done = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--threshold=40", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    overall = [line for line in done.stdout.splitlines() if "Overall exposure" in line]
    assert done.returncode == 0, overall or done.stderr


def test_unit_is_hardened_and_outlasts_the_drain() -> None:
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]

    def one(key: str) -> str:
        values = service.get(key, [])
        assert len(values) == 1, f"{key}: {values}"
        return values[0]

    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("ProtectHome") == "yes"
    assert one("PrivateTmp") == "yes"
    assert one("Restart") == "on-failure"
    assert one("KillMode") == "mixed"
    assert one("KillSignal") == "SIGTERM"
    assert one("EnvironmentFile") == "-/etc/edge-worker/edge-worker.env"
    assert one("StateDirectory") == "edge-worker"
    assert service.get("DynamicUser") == ["yes"] or one("User") not in ("", "root", "0")
    assert timespan_seconds(one("TimeoutStopSec")) > DEFAULT_DRAIN_SECONDS
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_environment_names_only_real_settings() -> None:
    unit = parse_unit(UNIT.read_text())
    env = unit_environment(unit)
    assert env["EDGE_WORKER_STATE_DIR"] == STATE_DIR
    assert env["HOME"] == STATE_DIR  # the agent CLIs keep their logins in $HOME
    for name in env:
        if name.startswith(ENV_PREFIX):
            setting_path_of_env(name)  # raises UnknownSetting for a stale or misspelt one
    worktrees = Path(env["EDGE_WORKER_WORKTREES__ROOT"])
    assert worktrees.is_relative_to(STATE_DIR)  # the only writable place besides /tmp


def test_unit_starts_the_daemon_on_loopback() -> None:
    (exec_start,) = parse_unit(UNIT.read_text())["Service"]["ExecStart"]
    binary, *arguments = exec_start.split()
    assert binary == "/opt/edge-worker/.venv/bin/edge-worker"
    assert arguments[:1] == ["serve"]
    assert arguments[arguments.index("--host") + 1] == "127.0.0.1"


@pytest.mark.parametrize(
    ("span", "seconds"),
    [("45", 45.0), ("45s", 45.0), ("1min 30s", 90.0), ("2m", 120.0), ("1h", 3600.0)],
)
def test_timespan_reads_systemd_spans(span: str, seconds: float) -> None:
    assert timespan_seconds(span) == seconds


@pytest.mark.parametrize("span", ["", "soon", "45 parsecs", "45s later"])
def test_timespan_refuses_what_systemd_would_not_read(span: str) -> None:
    with pytest.raises(DeployFileError):
        timespan_seconds(span)


def test_unit_parser_refuses_a_key_outside_a_section() -> None:
    with pytest.raises(DeployFileError, match="outside any section"):
        parse_unit("User=edge-worker\n[Service]\n")


# --- Dockerfile ------------------------------------------------------------------------------


def base_image_default(instructions: list[Instruction]) -> str | None:
    """The first FROM's image with the build arguments at their defaults (``ARG`` lines
    before it), as a build without ``--build-arg`` resolves it."""
    defaults: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            defaults[name.strip()] = default.strip()
        elif instruction.keyword == "FROM":
            image = instruction.args.split()[0]
            return re.sub(
                r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: defaults.get(m.group(1), ""), image
            )
    return None


def dockerfile_problems(text: str, context: Path) -> list[str]:
    """Why the Dockerfile would not build the image we mean (empty when it would)."""
    instructions = parse_dockerfile(text)
    problems: list[str] = []
    by_keyword: dict[str, list[Instruction]] = {}
    for instruction in instructions:
        by_keyword.setdefault(instruction.keyword, []).append(instruction)

    froms = by_keyword.get("FROM", [])
    if not froms or base_image_default(instructions) != "python:3.11-slim":
        problems.append("the base image is not python:3.11-slim by default")
    for instruction in by_keyword.get("COPY", []) + by_keyword.get("ADD", []):
        for source in copy_sources(instruction):
            if not (context / source).exists():
                problems.append(f"line {instruction.line}: {source} is not in the build context")
    users = by_keyword.get("USER", [])
    if not users or users[-1].args.split(":")[0] in ("root", "0"):
        problems.append("the image runs as root (no USER, or USER root)")
    healthchecks = by_keyword.get("HEALTHCHECK", [])
    if len(healthchecks) != 1 or "/healthz" not in healthchecks[0].args:
        problems.append("there is not exactly one HEALTHCHECK on /healthz")
    volumes = " ".join(instruction.args for instruction in by_keyword.get("VOLUME", []))
    if STATE_DIR not in volumes:
        problems.append(f"the state directory {STATE_DIR} is not a VOLUME")
    if not any("git" in instruction.args.split() for instruction in by_keyword.get("RUN", [])):
        problems.append("git is not installed (local executors work in git worktrees)")
    if "8787" not in [i.args for i in by_keyword.get("EXPOSE", [])]:
        problems.append("port 8787 is not exposed")
    cmds = by_keyword.get("CMD", [])
    if not cmds or (exec_form(cmds[-1].args) or [])[:2] != ["edge-worker", "serve"]:
        problems.append('CMD is not ["edge-worker", "serve", ...]')
    return problems


def test_dockerfile_builds_from_files_that_exist() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(), REPO_ROOT) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("COPY prompts ./prompts", "COPY prompt ./prompts"), "prompt is not in the build"),
        (("USER 10001:10001", "USER root"), "runs as root"),
        (("ARG BASE_IMAGE=python:3.11-slim", "ARG BASE_IMAGE=python:3.12"), "python:3.11-slim"),
        (("FROM ${BASE_IMAGE}", "FROM python:3.12"), "python:3.11-slim"),
        (("/healthz", "/health"), "HEALTHCHECK on /healthz"),
        (('VOLUME ["/var/lib/edge-worker"]', "VOLUME /data"), "is not a VOLUME"),
    ],
)
def test_dockerfile_check_reports_each_kind_of_mistake(
    change: tuple[str, str], problem: str
) -> None:
    original = DOCKERFILE.read_text()
    assert change[0] in original
    problems = dockerfile_problems(original.replace(change[0], change[1]), REPO_ROOT)
    assert any(problem in found for found in problems), problems


def test_dockerfile_parser_refuses_unknown_instructions_and_open_continuations() -> None:
    with pytest.raises(DeployFileError, match="line 2: unknown instruction 'FORM'"):
        parse_dockerfile("# comment\nFORM python:3.11-slim\n")
    with pytest.raises(DeployFileError, match="continuation never ends"):
        parse_dockerfile("FROM python:3.11-slim\nRUN apt-get update \\\n")


def test_copy_sources_reads_flags_and_both_forms() -> None:
    instruction = Instruction("COPY", '--chown=1:1 ["a b", "c", "/dest/"]', 1)
    assert copy_sources(instruction) == ["a b", "c"]
    assert copy_sources(Instruction("COPY", "--from=build /x /y", 1)) == []
    assert split_flags("--link --chmod=644 src dst") == ({"link": "", "chmod": "644"}, "src dst")


def test_dockerfile_environment_names_only_real_settings() -> None:
    env: dict[str, str] = {}
    for instruction in parse_dockerfile(DOCKERFILE.read_text()):
        if instruction.keyword == "ENV":
            env |= dict(item.partition("=")[::2] for item in instruction.args.split())
    assert env["EDGE_WORKER_STATE_DIR"] == STATE_DIR
    assert env["HOME"] == STATE_DIR
    for name in env:
        if name.startswith(ENV_PREFIX):
            setting_path_of_env(name)
    assert Path(env["EDGE_WORKER_PROMPTS_DIR"]) == Path("/opt/edge-worker") / "prompts"


@pytest.mark.timeout(300)
def test_the_files_the_image_copies_build_the_package(tmp_path: Path) -> None:
    # What `pip install .` in the image sees: only the files the COPY lines bring in.
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    missing = [
        source
        for instruction in instructions
        if instruction.keyword in ("COPY", "ADD")
        for source in copy_sources(instruction)
        if not (REPO_ROOT / source).exists()
    ]
    if missing:
        pytest.fail(f"the Dockerfile copies files that do not exist: {missing}")
    (install,) = [i for i in instructions if i.keyword == "RUN" and "pip install ." in i.args]
    workdir = stage_copies(instructions[: instructions.index(install)], REPO_ROOT, tmp_path / "i")
    assert (workdir / "pyproject.toml").is_file()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("edge_worker-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "edge-worker = edge_worker.cli:main" in archive.read(entry_points).decode()
    assert {"edge_worker/cli.py", "edge_worker/app.py"} <= names
    assert (workdir / "prompts" / "orchestrator.md").is_file()  # EDGE_WORKER_PROMPTS_DIR


def _healthcheck_command() -> list[str]:
    (healthcheck,) = [
        i for i in parse_dockerfile(DOCKERFILE.read_text()) if i.keyword == "HEALTHCHECK"
    ]
    _, _, cmd = healthcheck.args.partition(" CMD ")
    command = exec_form(cmd.strip())
    assert command is not None, "HEALTHCHECK CMD must be in exec form (no shell in the probe)"
    return command


@pytest.fixture
def health_server() -> Iterator[tuple[str, dict[str, int]]]:
    """A loopback server whose /healthz answers with the status in the returned dict."""
    status = {"code": 200}

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "test"}, status_code=status["code"])

    app = Starlette(routes=[Route("/healthz", healthz)])
    with serve_in_thread(app) as base_url:
        yield base_url, status


def _run_probe(command: list[str], base_url: str) -> subprocess.CompletedProcess[str]:
    probe = [part.replace("http://127.0.0.1:8787", base_url) for part in command]
    assert probe != command, "the probe must target http://127.0.0.1:8787"
    assert probe[0] == "python"
    return subprocess.run([sys.executable, *probe[1:]], capture_output=True, text=True, timeout=30)


def test_healthcheck_probe_passes_on_200_and_fails_otherwise(
    health_server: tuple[str, dict[str, int]],
) -> None:
    base_url, status = health_server
    command = _healthcheck_command()
    assert _run_probe(command, base_url).returncode == 0
    status["code"] = 503
    assert _run_probe(command, base_url).returncode != 0


def test_healthcheck_probe_fails_when_nothing_listens() -> None:
    with serve_in_thread(Starlette()) as base_url:
        pass  # the port was free a moment ago and nothing listens on it now
    assert _run_probe(_healthcheck_command(), base_url).returncode != 0


# --- docker compose --------------------------------------------------------------------------


def _interpolate(value: str) -> str:
    """Compose's ``${NAME}`` / ``${NAME:?message}`` replaced by a sample value."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}", "sample", value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {str(key): str(value) for key, value in env.items()}


def test_compose_runs_the_image_with_postgres() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) >= {"edge-worker", "postgres"}

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "test" in postgres["healthcheck"]

    worker = services["edge-worker"]
    build = worker["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == REPO_ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(volume.endswith(":" + STATE_DIR) for volume in worker["volumes"])
    assert timespan_seconds(worker["stop_grace_period"]) > DEFAULT_DRAIN_SECONDS
    for env_file in worker["env_file"]:
        name = env_file if isinstance(env_file, str) else env_file["path"]
        example = COMPOSE.parent / (name + ".example")
        assert example.is_file(), f"env_file {name} has no {example.name} to copy from"


def test_compose_sets_only_settings_the_daemon_reads(clean_env: pytest.MonkeyPatch) -> None:
    worker = yaml.safe_load(COMPOSE.read_text())["services"]["edge-worker"]
    env = _environment(worker)
    assert env["EDGE_WORKER_DATABASE_URL"].startswith("postgresql://")
    for name, value in env.items():
        assert name.startswith(ENV_PREFIX), f"{name} is not an edge-worker setting"
        setting_path_of_env(name)
        clean_env.setenv(name, _interpolate(value))
    settings = load_settings()
    assert settings.uses_postgres
    assert settings.executor_id == env["EDGE_WORKER_EXECUTOR_ID"]


# --- example configuration -------------------------------------------------------------------


def _toml_headers_and_keys() -> tuple[list[tuple[str, ...]], list[Any]]:
    return toml_setting_lines(EXAMPLE_TOML.read_text())


def test_example_toml_loads_as_a_valid_configuration(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(CONFIG_ENV, str(EXAMPLE_TOML))
    settings = load_settings()
    assert [repo.id for repo in settings.repositories] == ["app"]
    assert settings.prices  # the active [prices.<model>] examples


def test_example_toml_with_everything_uncommented_is_still_valid(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uncommented = tmp_path / "edge-worker.toml"
    uncommented.write_text(uncomment_toml(EXAMPLE_TOML.read_text()))
    clean_env.setenv(CONFIG_ENV, str(uncommented))
    load_settings()


def test_every_key_of_the_example_toml_is_a_setting_with_its_true_default() -> None:
    headers, keys = _toml_headers_and_keys()
    for header in headers:
        setting_path_of_toml(header, ())
    for key in keys:
        path = setting_path_of_toml(key.section, key.key)
        info = field_info(path)
        if is_unset_default(info) or path in ENVIRONMENT_DEPENDENT_DEFAULTS or not key.commented:
            continue  # an example value, validated by loading the file
        expected = info.default
        shown = type(expected)(key.value) if isinstance(expected, Path) else key.value
        assert shown == expected, f"line {key.line}: {'.'.join(path)} shows {key.value!r}"


def test_example_toml_holds_no_secret() -> None:
    _, keys = _toml_headers_and_keys()
    secrets = {
        ".".join(path)
        for path in all_setting_paths()
        if "SecretStr" in str(field_info(path).annotation)
    }
    leaked = [
        f"line {key.line}: {'.'.join(setting_path_of_toml(key.section, key.key))}"
        for key in keys
        if ".".join(setting_path_of_toml(key.section, key.key)) in secrets
    ]
    assert secrets and leaked == []


def test_every_variable_of_the_env_example_is_a_setting_with_its_true_default(
    clean_env: pytest.MonkeyPatch,
) -> None:
    defaults = Settings()
    for line in env_example_lines(EXAMPLE_ENV.read_text()):
        assert line.commented, f"line {line.line}: {line.name} is set; examples stay commented"
        if line.name == CONFIG_ENV:
            continue
        path = setting_path_of_env(line.name)
        clean_env.setenv(line.name, line.value)
        loaded = load_settings()
        clean_env.delenv(line.name)
        info = field_info(path)
        if is_unset_default(info) or path in ENVIRONMENT_DEPENDENT_DEFAULTS:
            assert value_at(loaded, path) not in (None, []), f"line {line.line}: no example"
            continue
        assert value_at(loaded, path) == value_at(defaults, path), (
            f"line {line.line}: {line.name}={line.value} is not the default "
            f"{value_at(defaults, path)!r}"
        )


def test_both_examples_uncommented_together_are_ready_to_serve(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uncommented = tmp_path / "edge-worker.toml"
    uncommented.write_text(uncomment_toml(EXAMPLE_TOML.read_text()))
    for line in env_example_lines(EXAMPLE_ENV.read_text()):
        clean_env.setenv(line.name, line.value)
    clean_env.setenv(CONFIG_ENV, str(uncommented))
    require_for_serve(load_settings())


def test_every_setting_is_documented_in_an_example() -> None:
    mentioned: set[tuple[str, ...]] = set()
    for line in env_example_lines(EXAMPLE_ENV.read_text()):
        if line.name != CONFIG_ENV:
            path = setting_path_of_env(line.name)
            mentioned |= {path[:end] for end in range(1, len(path) + 1)}
    headers, keys = _toml_headers_and_keys()
    for section, key in [(header, ()) for header in headers] + [(k.section, k.key) for k in keys]:
        path = setting_path_of_toml(section, key)
        mentioned |= {path[:end] for end in range(1, len(path) + 1)}
    missing = sorted(".".join(path) for path in all_setting_paths() - mentioned)
    assert missing == []


def test_setting_names_are_checked_against_the_model() -> None:
    assert setting_path_of_env("EDGE_WORKER_LINEAR__API_URL") == ("linear", "api_url")
    assert setting_path_of_toml(("prices", "gpt-5"), ("input",)) == ("prices", "input")
    assert setting_path_of_toml(("repositories",), ("team_keys",)) == ("repositories", "team_keys")
    for name in ["EDGE_WORKER_LINEAR_API_URL", "EDGE_WORKER_LINEAR__NOPE", "LINEAR__API_URL"]:
        with pytest.raises(UnknownSetting):
            setting_path_of_env(name)
    with pytest.raises(UnknownSetting):
        setting_path_of_toml(("budget",), ("per_week_usd",))


def test_env_example_reader_refuses_lines_that_are_neither_prose_nor_settings() -> None:
    with pytest.raises(DeployFileError, match="line 2"):
        env_example_lines("# prose\n#EDGE WORKER=1\n")


# --- operator guide --------------------------------------------------------------------------

OPERATIONS_GUIDE = REPO_ROOT / "docs" / "operations.md"


def test_operator_guide_names_only_real_settings() -> None:
    text = OPERATIONS_GUIDE.read_text()
    names = set(re.findall(r"\bEDGE_WORKER_[A-Z0-9_]*[A-Z0-9]", text))
    assert names, "the guide names no setting at all"
    unknown = []
    for name in sorted(names - {CONFIG_ENV}):
        try:
            setting_path_of_env(name)
        except UnknownSetting:
            unknown.append(name)
    assert unknown == []


def test_operator_guide_links_to_files_that_exist() -> None:
    text = OPERATIONS_GUIDE.read_text()
    targets = re.findall(r"\]\((\.\./[^)#\s]+)\)", text)
    assert targets
    missing = [t for t in targets if not (OPERATIONS_GUIDE.parent / t).exists()]
    assert missing == []
