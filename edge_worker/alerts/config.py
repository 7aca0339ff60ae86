"""The channels and delivery policy the settings ask for.

Contract: :func:`channels_from_settings` returns one :class:`Channel` per configured
destination (a credential file wins over the direct value); a Telegram token without a
chat id, or a credential file that cannot be read, raises :class:`AlertConfigError`
naming the setting, never its value.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from edge_worker.alerts.channels import Channel
from edge_worker.alerts.notifier import DeliveryPolicy
from edge_worker.settings import ENV_PREFIX, AlertSettings


class AlertConfigError(Exception):
    """An alert setting that cannot be used; the message names it."""


def _secret(value: SecretStr | None, file: Path | None, name: str) -> str | None:
    if file is not None:
        try:
            text = file.expanduser().read_text(encoding="utf-8").strip()
        except OSError:
            raise AlertConfigError(
                f"{ENV_PREFIX}ALERTS__{name.upper()}_FILE: cannot read"
            ) from None
        return text or None
    return value.get_secret_value() if value is not None else None


def channels_from_settings(alerts: AlertSettings) -> list[Channel]:
    """The configured channels, in a fixed order (slack, telegram, webhook)."""
    channels: list[Channel] = []
    slack = _secret(alerts.slack_webhook_url, alerts.slack_webhook_url_file, "slack_webhook_url")
    if slack:
        channels.append(Channel("slack", "slack", slack))
    token = _secret(alerts.telegram_bot_token, alerts.telegram_bot_token_file, "telegram_bot_token")
    if token:
        if not alerts.telegram_chat_id:
            raise AlertConfigError(
                f"{ENV_PREFIX}ALERTS__TELEGRAM_CHAT_ID: needed with a Telegram bot token"
            )
        url = f"{alerts.telegram_api_url.rstrip('/')}/bot{token}"
        channels.append(Channel("telegram", "telegram", url, chat_id=alerts.telegram_chat_id))
    webhook = _secret(alerts.webhook_url, alerts.webhook_url_file, "webhook_url")
    if webhook:
        secret = _secret(alerts.webhook_secret, alerts.webhook_secret_file, "webhook_secret")
        channels.append(Channel("webhook", "webhook", webhook, secret=secret))
    return channels


def policy_from_settings(alerts: AlertSettings) -> DeliveryPolicy:
    return DeliveryPolicy(
        per_minute=alerts.per_channel_per_minute,
        retry_attempts=alerts.retry_attempts,
        retry_initial_seconds=alerts.retry_initial_seconds,
    )
