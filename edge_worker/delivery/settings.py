"""Delivery settings: how the daemon reaches GitHub, and each repository's delivery.

Contract: :class:`GitHubSettings` is ``[github]`` in the TOML (``EDGE_WORKER_GITHUB__*`` in
the environment): either a GitHub App (``app_id``, ``private_key_file``,
``installation_id``) or a ``token``; nothing is delivered without one of them.
:class:`DeliverySettings` is ``[repositories.delivery]`` under a repository: the GitHub
``owner``/``name``, the ``remote_url`` git pushes to (no credentials in it), draft or ready,
labels and reviewers, and the policy: ``per-subtask`` (default, one pull request per
sub-task) or ``per-issue`` (the sub-task branches merged in dependency order into one branch
and one pull request, opened once all the issue's sub-tasks passed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class GitHubSettings(BaseModel):
    """The daemon's identity on GitHub (github.com or GitHub Enterprise Server)."""

    api_url: str = "https://api.github.com"
    token: SecretStr | None = None
    app_id: str | None = None
    private_key_file: Path | None = None
    installation_id: int | None = None
    webhook_secret: SecretStr | None = None
    own_logins: list[str] = []
    """The daemon's own GitHub identities (e.g. ``my-app[bot]``): their events are ignored."""
    max_wait_seconds: float = Field(60.0, ge=0)
    """The longest rate-limit wait obeyed inside one delivery; longer ends it with a reason."""

    @property
    def configured(self) -> bool:
        """Whether some credential is set (an app or a token)."""
        app = self.app_id and self.private_key_file and self.installation_id
        return bool(self.token or app)


class DeliverySettings(BaseModel):
    """Where one repository's verified work goes as pull requests."""

    owner: str
    name: str
    remote_url: str
    draft: bool = False
    labels: list[str] = []
    reviewers: list[str] = []
    policy: Literal["per-subtask", "per-issue"] = "per-subtask"
