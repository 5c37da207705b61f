"""Alert channels: where notifications go.

A channel in ``mock`` mode delivers nothing: the alert manager writes every
notification to ``logs/alerts.jsonl`` whatever the mode, so a mock channel's line is
the whole delivery, and a paging set-up can be rehearsed without paging anyone. A
``live`` channel is email (SMTP), Telegram or a signed webhook; its secrets come from
the environment variables its settings name, read once when it is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from callagent.alerts._http import check_http_url
from callagent.alerts.email import SmtpChannel
from callagent.alerts.model import Notification
from callagent.alerts.telegram import TelegramChannel
from callagent.alerts.webhook import SECRET_PREFIX, WebhookChannel, decode_secret
from callagent.errors import InputError
from callagent.settings import AlertsSettings
from callagent.settings import EmailChannel as EmailConfig
from callagent.settings import TelegramChannel as TelegramConfig
from callagent.settings import WebhookChannel as WebhookConfig


class Channel(Protocol):
    """One destination for notifications."""

    @property
    def name(self) -> str: ...

    @property
    def mode(self) -> str: ...

    @property
    def send_resolved(self) -> bool: ...

    def send(self, notification: Notification) -> None:
        """Deliver, or raise a ServiceError saying why not."""

    def close(self) -> None: ...


class MockChannel:
    """A channel that records instead of sending."""

    mode = "mock"

    def __init__(self, name: str, *, send_resolved: bool = True) -> None:
        self._name = name
        self._send_resolved = send_resolved
        self.sent: list[Notification] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def send_resolved(self) -> bool:
        return self._send_resolved

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    def close(self) -> None:
        return None


#: The channels settings can configure, in the order they are built and reported.
CHANNEL_NAMES = ("email", "telegram", "webhook")

_KEY = "alerts.channels"


def build_channels(
    settings: AlertsSettings, environ: Mapping[str, str] | None = None
) -> list[Channel]:
    """One channel per configured destination, mock unless set to live.

    Raises InputError, naming the variable and its settings key, when a live channel
    lacks a secret it needs: better to refuse at start than to page nobody later.
    """
    return [build_channel(name, settings, environ) for name in CHANNEL_NAMES]


def build_channel(
    name: str, settings: AlertsSettings, environ: Mapping[str, str] | None = None
) -> Channel:
    """The channel called ``name``, with its secrets read from ``environ``."""
    if name not in CHANNEL_NAMES:
        known = ", ".join(CHANNEL_NAMES)
        raise InputError(f"unknown alert channel {name!r} (known: {known})")
    config: EmailConfig | TelegramConfig | WebhookConfig = getattr(
        settings.channels, name
    )
    if config.mode == "mock":
        return MockChannel(name, send_resolved=config.send_resolved)

    env = os.environ if environ is None else environ
    if isinstance(config, EmailConfig):
        return SmtpChannel(config, login=_smtp_login(config, env))
    if isinstance(config, TelegramConfig):
        return _telegram(config, env)
    return _webhook(config, env)


def _telegram(config: TelegramConfig, env: Mapping[str, str]) -> Channel:
    check_http_url(config.base_url, f"{_KEY}.telegram.base_url")
    token = _secret(env, config.token_env, "telegram.token_env")
    # The token becomes a URL path segment: anything that would change the path is
    # a pasting mistake, better caught here than as a puzzling 404.
    if any(char.isspace() or char == "/" for char in token):
        raise InputError(
            f"{_KEY}.telegram.token_env: {config.token_env} does not hold a bot "
            "token (it has spaces or slashes)"
        )
    return TelegramChannel(config, token)


def _webhook(config: WebhookConfig, env: Mapping[str, str]) -> Channel:
    check_http_url(config.url, f"{_KEY}.webhook.url")
    secret = _secret(env, config.secret_env, "webhook.secret_env")
    try:
        key = decode_secret(secret)
    except ValueError as exc:
        raise InputError(
            f"{_KEY}.webhook.secret_env: {config.secret_env} does not hold a "
            f"Standard Webhooks secret ({SECRET_PREFIX} and base64)"
        ) from exc
    return WebhookChannel(config, key)


def _secret(env: Mapping[str, str], variable: str, key: str) -> str:
    value = env.get(variable, "")
    if not value.strip():
        raise InputError(
            f"{_KEY}.{key}: environment variable {variable} is not set; "
            "live mode needs it"
        )
    return value


def _smtp_login(config: EmailConfig, env: Mapping[str, str]) -> tuple[str, str] | None:
    if config.username_env is None and config.password_env is None:
        return None
    if config.username_env is None or config.password_env is None:
        raise InputError(
            f"{_KEY}.email: username_env and password_env are set together"
        )
    return (
        _secret(env, config.username_env, "email.username_env"),
        _secret(env, config.password_env, "email.password_env"),
    )
