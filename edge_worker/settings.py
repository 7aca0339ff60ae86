"""Configuration: environment variables (prefix ``EDGE_WORKER_``, nested ``__``) over an
optional TOML file named by ``EDGE_WORKER_CONFIG``, over embedded defaults.

Contract:
- ``load_settings()`` returns a validated :class:`Settings` or raises :class:`ConfigError`
  whose message names the offending setting as the user would write it
  (``EDGE_WORKER_LINEAR__WEBHOOK_SECRET``), never its value.
- Secrets are ``SecretStr``: they print as ``**********`` and are never logged.
- Comma-separated lists are accepted for list settings in the environment
  (``EDGE_WORKER_ALLOWED_TEAMS=ENG,OPS``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge_worker.agent_config import AgentLayer, AgentPolicy
from edge_worker.approval_policy import parse_policy
from edge_worker.delivery.settings import DeliverySettings, GitHubSettings
from edge_worker.mcp.config import McpSettings

ENV_PREFIX = "EDGE_WORKER_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ConfigError(Exception):
    """A configuration that cannot start the daemon; ``str()`` is the one-line message."""


class LinearSettings(BaseModel):
    """How we reach Linear and who we are there."""

    api_url: str = "https://api.linear.app/graphql"
    oauth_url: str = "https://api.linear.app"
    webhook_secret: SecretStr | None = None
    api_key: SecretStr | None = None
    access_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    oauth_scopes: str = "read,write,app:assignable,app:mentionable"
    agent_user_id: str | None = None
    requests_per_hour: int | None = Field(None, ge=1)
    """The client's own hourly request budget; unset, Linear's figure for the auth mode
    (2,500 with an API key, 5,000 with an OAuth token)."""
    activity_interval_seconds: float = Field(10.0, ge=0)
    heartbeat_seconds: float = Field(1200.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    outage_patience_seconds: float = Field(1800.0, gt=0)
    """How long the daemon's work keeps retrying while Linear is unreachable or answers
    5xx, before an issue ends failed."""


class WebhookSettings(BaseModel):
    """Intake limits."""

    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    tolerance_seconds: float = Field(60.0, gt=0)


class CodegenSettings(BaseModel):
    """Codegen cloud agent API."""

    base_url: str = "https://api.codegen.com"
    org_id: int | None = None
    api_token: SecretStr | None = None
    repo_id: int | None = None
    cost_per_run_usd: float | None = Field(None, ge=0)
    poll_interval_seconds: float = Field(15.0, gt=0)
    creates_per_minute: int = Field(10, ge=1)
    calls_per_30_seconds: int = Field(60, ge=1)
    run_timeout_seconds: float = Field(3600.0, gt=0)
    dedupe_lookback_seconds: float = Field(86400.0, gt=0)


class ClaudeSettings(BaseModel):
    """Local Claude Code CLI."""

    binary: str = "claude"
    model: str | None = None
    max_turns: int | None = Field(None, ge=1)
    permission_mode: str = "acceptEdits"
    allowed_tools: CommaList = []
    disallowed_tools: CommaList = []
    pass_env: CommaList = []
    timeout_seconds: float = Field(1800.0, gt=0)
    kill_grace_seconds: float = Field(5.0, ge=0)

    _split = field_validator("allowed_tools", "disallowed_tools", "pass_env", mode="before")(
        _split_commas
    )


class CodexSettings(BaseModel):
    """Local Codex CLI."""

    binary: str = "codex"
    model: str | None = None
    pass_env: CommaList = []
    timeout_seconds: float = Field(1800.0, gt=0)
    kill_grace_seconds: float = Field(5.0, ge=0)

    _split = field_validator("pass_env", mode="before")(_split_commas)


class GeminiSettings(BaseModel):
    """Local Gemini CLI."""

    binary: str = "gemini"
    model: str | None = None
    max_turns: int | None = Field(None, ge=1)
    approval_mode: Literal["default", "auto_edit", "yolo", "plan"] = "yolo"
    auth_type: str | None = None
    """``security.auth.selectedType`` in the per-run settings (e.g. ``gemini-api-key``);
    unset: the CLI's own choice from its environment and settings."""
    allowed_tools: CommaList = []
    pass_env: CommaList = []
    timeout_seconds: float = Field(1800.0, gt=0)
    kill_grace_seconds: float = Field(5.0, ge=0)

    _split = field_validator("allowed_tools", "pass_env", mode="before")(_split_commas)


class AnthropicSettings(BaseModel):
    """Messages API used by the ``anthropic`` planner backend."""

    base_url: str = "https://api.anthropic.com"
    api_key: SecretStr | None = None
    model: str = "claude-sonnet-4-5"
    max_tokens: int = Field(8192, ge=256)
    timeout_seconds: float = Field(120.0, gt=0)


class BudgetSettings(BaseModel):
    """Spending limits in USD; ``None`` means no limit."""

    per_task_usd: float | None = Field(None, gt=0)
    per_issue_usd: float | None = Field(None, gt=0)
    per_day_usd: float | None = Field(None, gt=0)
    warn_ratio: float = Field(0.75, gt=0, le=1)
    continue_step_usd: float | None = Field(None, gt=0)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value


class ConsoleSettings(BaseModel):
    """The operator console under ``/console``: off unless an operator token is set.

    Each token is given directly or as a file holding it (the file wins when both are
    set); the viewer token is optional and grants read-only access.
    """

    token: SecretStr | None = None
    token_file: Path | None = None
    viewer_token: SecretStr | None = None
    viewer_token_file: Path | None = None
    report_linear_issue: str | None = None
    """An issue (``ENG-12`` or its id) that gets each day's report as a comment, once the
    day has ended in the budget's time zone; ``None``: no report comment."""
    report_linear_team: str | None = None
    """A team (its key like ``ENG``, or its id) that gets each ended day's report as a
    Linear document titled ``edge-worker daily report <YYYY-MM-DD>``; ``None``: no report
    document. Both may be set: the day's report is then commented and a document."""


class Price(BaseModel):
    """USD per million tokens.

    ``cache_write_input`` is the rate of prompt tokens written to the cache; ``None`` means
    unknown, and a run that wrote to the cache is then unpriced rather than guessed.
    """

    input: float = Field(ge=0)
    cached_input: float = Field(0.0, ge=0)
    output: float = Field(ge=0)
    cache_write_input: float | None = Field(None, ge=0)


class Repository(BaseModel):
    """A repository the agents may work in, and how issues are routed to it."""

    id: str
    path: Path | None = None
    base_branch: str = "main"
    remote: str = "origin"
    """The git remote Codegen pushes its pull request branches to (fetched for local
    sub-tasks that depend on cloud work)."""
    codegen_repo_id: int | None = None
    team_keys: list[str] = []
    labels: list[str] = []
    full_name: str | None = None
    """``owner/name`` on the Git host, for Linear's repository suggestions (which rank the
    choices when the daemon asks which repository an issue is about)."""
    hostname: str = "github.com"
    agents: AgentLayer = AgentLayer()
    """This repository's agent configuration (over ``[agents]``)."""
    approval: str | None = None
    """Plan approval for issues routed here (``always``, ``never``, ``above <USD>``);
    the team's or the default policy when unset."""

    _approval = field_validator("approval")(lambda v: _approval_policy(v))
    delivery: DeliverySettings | None = None
    """Push verified local work and open pull requests (``[repositories.delivery]``)."""


class AttachmentSettings(BaseModel):
    """Files attached to issues: what is fetched (with the Linear token) and how much."""

    max_bytes: int = Field(3_000_000, ge=0)
    """Per file; a larger file is not fetched and the report says so."""
    max_files: int = Field(10, ge=0)
    upload_hosts: CommaList = ["uploads.linear.app"]
    """Hosts (``host`` or ``host:port``) the Linear token may be sent to for a file."""
    keep_days: float = Field(7.0, ge=0)
    """Fetched files untouched this long are removed at start-up (fetched again if needed)."""

    _split = field_validator("upload_hosts", mode="before")(_split_commas)


def _approval_policy(value: str | None) -> str | None:
    if value is not None:
        parse_policy(value)
    return value


class ApprovalSettings(BaseModel):
    """Plan approval: when a plan waits for a human before anything is dispatched."""

    default: str = "never"
    teams: dict[str, str] = {}
    """Policy per team key (``{"ENG": "above 5"}``); a repository's own policy wins."""
    remind_after_seconds: float = Field(3600.0, gt=0)
    """No answer this long: one reminder, then the issue waits (state ``waiting``)."""

    _policy = field_validator("default")(lambda v: _approval_policy(v))

    @field_validator("teams")
    @classmethod
    def _team_policies(cls, value: dict[str, str]) -> dict[str, str]:
        for policy in value.values():
            _approval_policy(policy)
        return value


class ReviewSettings(BaseModel):
    """Peer review of a passed sub-task by another executor or model, read-only."""

    mode: Literal["off", "all", "named"] = "off"
    """``off``; ``all`` sub-tasks; ``named``: those whose role, issue label or repository
    is listed below."""
    roles: CommaList = []
    labels: CommaList = []
    repositories: CommaList = []
    reviewers: CommaList = ["codex", "claude-code"]
    """Preference order; the first available one that is not the author's executor."""
    claude_model: str | None = None
    codex_model: str | None = None
    """Models the reviewer is told to use; with a single executor, a model other than the
    author's is what makes the review independent."""
    claude_binary: str | None = None
    codex_binary: str | None = None
    """The reviewer's CLI; unset: the executor's own binary."""
    pass_env: CommaList = []
    timeout_seconds: float = Field(600.0, gt=0)
    run_as_user: str = "nobody"
    """When the daemon runs as root (file modes do not bind root), the reviewer runs as
    this user so its read-only copy of the worktree really is read-only."""

    _split = field_validator(
        "roles", "labels", "repositories", "reviewers", "pass_env", mode="before"
    )(_split_commas)


class WorktreeSettings(BaseModel):
    """Where local executors work."""

    root: Path | None = None
    keep_failed_days: float = Field(7.0, ge=0)


class AlertSettings(BaseModel):
    """Human alerts outside Linear; a channel is on when its URL or token is set.

    Each credential is given directly or as a file holding it (the file wins when both
    are set). None of them is ever logged or shown in an alert.
    """

    slack_webhook_url: SecretStr | None = None
    slack_webhook_url_file: Path | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_bot_token_file: Path | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    webhook_url: SecretStr | None = None
    webhook_url_file: Path | None = None
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None
    per_channel_per_minute: int = Field(20, ge=1)
    retry_attempts: int = Field(5, ge=1)
    retry_initial_seconds: float = Field(1.0, gt=0)
    unavailable_minutes: float = Field(15.0, gt=0)
    """Linear or Codegen unreachable this long raises one alert per outage."""


class RecoverySettings(BaseModel):
    """Recovery from known agent failures (``edge_worker/executors/recovery.py``)."""

    enabled: bool = True
    max_wait_seconds: float = Field(6 * 3600.0, ge=0)
    """A usage limit resetting later than this moves the sub-task to another executor."""
    overload_wait_seconds: float = Field(30.0, ge=0)
    """The first pause after an overloaded model (doubled on each repeat)."""


Strategy = Literal["local-only", "cloud-only", "hybrid-smart", "hybrid-parallel", "cost-optimized"]


class Settings(BaseSettings):
    """Everything the daemon reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    state_dir: Path = Path("~/.local/state/edge-worker")
    database_url: str | None = None
    log_format: Literal["json", "console", "auto"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    executor_id: str = Field(default_factory=socket.gethostname)
    drain_seconds: float = Field(30.0, gt=0)
    allowed_teams: CommaList = []
    allowed_users: CommaList = []

    planner: Literal["anthropic", "claude-code", "static"] = "anthropic"
    planner_static_plan: str | None = None  # JSON text or a JSON file, for planner "static"
    strategy: Strategy = "hybrid-smart"
    fallback_to_local: bool = True
    max_subtasks: int = Field(8, ge=1, le=50)
    max_parallel: int = Field(3, ge=1)
    global_parallel: int = Field(8, ge=1)
    max_iterations: int = Field(2, ge=0)
    issue_timeout_seconds: float = Field(4 * 3600.0, gt=0)
    review_state: str = "In Review"
    failed_subtask_state: str | None = None
    """The state (by name) a sub-issue goes back to when its sub-task failed or could not
    go on; the team's first unstarted state when unset."""
    prompts_dir: Path = PROJECT_ROOT / "prompts"

    linear: LinearSettings = LinearSettings()
    webhook: WebhookSettings = WebhookSettings()
    codegen: CodegenSettings = CodegenSettings()
    claude: ClaudeSettings = ClaudeSettings()
    codex: CodexSettings = CodexSettings()
    gemini: GeminiSettings = GeminiSettings()
    agents: AgentPolicy = AgentPolicy()
    anthropic: AnthropicSettings = AnthropicSettings()
    budget: BudgetSettings = BudgetSettings()
    worktrees: WorktreeSettings = WorktreeSettings()
    console: ConsoleSettings = ConsoleSettings()
    attachments: AttachmentSettings = AttachmentSettings()
    mcp: McpSettings = McpSettings()
    approval: ApprovalSettings = ApprovalSettings()
    review: ReviewSettings = ReviewSettings()
    alerts: AlertSettings = AlertSettings()
    recovery: RecoverySettings = RecoverySettings()
    prices: dict[str, Price] = {}
    repositories: list[Repository] = []
    github: GitHubSettings = GitHubSettings()

    _split = field_validator("allowed_teams", "allowed_users", mode="before")(_split_commas)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = os.environ.get(ENV_PREFIX + "CONFIG")
        if config_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_path)))
        return tuple(sources)

    @property
    def resolved_state_dir(self) -> Path:
        """The state directory with ``~`` expanded."""
        return self.state_dir.expanduser()

    @property
    def resolved_database_url(self) -> str:
        """The configured database URL, or the default SQLite file in the state directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_state_dir / 'edge-worker.sqlite'}"

    @property
    def uses_postgres(self) -> bool:
        """True when the database is PostgreSQL (several daemons may share it)."""
        return self.resolved_database_url.startswith("postgresql")


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a validation-error location corresponds to."""
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc if not isinstance(part, int))


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the configuration, raising :class:`ConfigError` on any problem."""
    config_path = os.environ.get(ENV_PREFIX + "CONFIG")
    if config_path and not Path(config_path).is_file():
        raise ConfigError(f"{ENV_PREFIX}CONFIG: file not found: {config_path}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = env_name(tuple(err["loc"]))
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    except ValueError as exc:  # malformed TOML or an undecodable env value
        raise ConfigError(f"invalid configuration: {exc}") from None


def require_for_serve(settings: Settings) -> None:
    """Check what ``serve`` cannot run without; raise :class:`ConfigError` naming it."""
    missing = []
    if settings.linear.webhook_secret is None:
        missing.append(ENV_PREFIX + "LINEAR__WEBHOOK_SECRET")
    if settings.linear.agent_user_id is None:
        missing.append(ENV_PREFIX + "LINEAR__AGENT_USER_ID")
    if (
        settings.linear.api_key is None
        and settings.linear.access_token is None
        and not (settings.linear.client_id and settings.linear.client_secret)
    ):
        missing.append(
            ENV_PREFIX + "LINEAR__API_KEY (or __ACCESS_TOKEN, or __CLIENT_ID and __CLIENT_SECRET)"
        )
    if settings.planner == "anthropic" and settings.anthropic.api_key is None:
        missing.append(ENV_PREFIX + "ANTHROPIC__API_KEY (needed by EDGE_WORKER_PLANNER=anthropic)")
    if settings.planner == "static" and not settings.planner_static_plan:
        missing.append(ENV_PREFIX + "PLANNER_STATIC_PLAN (needed by EDGE_WORKER_PLANNER=static)")
    if missing:
        raise ConfigError("missing required setting: " + ", ".join(missing))
