"""The Telegram channel: the Bot API's ``sendMessage`` to one chat.

The Bot API puts the token in the URL path (``/bot<token>/sendMessage``), so this
module never lets a request, its URL or an httpx exception escape: errors are rebuilt
from Telegram's own error body, and the token is scrubbed from anything else.

Telegram answers every call with ``{"ok": ..., "error_code": ..., "description": ...,
"parameters": {...}}``; flood control is a 429 whose ``parameters.retry_after`` says
how long to wait, and a group that became a supergroup is a 400 naming the new chat in
``parameters.migrate_to_chat_id``.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from callagent.alerts._http import (
    HTTPX_ERRORS,
    RedactingFilter,
    body_excerpt,
    transport_error,
)
from callagent.alerts.model import Notification
from callagent.alerts.render import message_text
from callagent.errors import (
    AuthenticationFailed,
    InvalidPayload,
    PermanentError,
    RateLimited,
    ServiceError,
    ServiceUnavailable,
)
from callagent.services.http import redact, retry_after_s
from callagent.settings import TelegramChannel as TelegramConfig

#: Telegram refuses message texts longer than this many characters.
MAX_TEXT = 4096

_HTTPX_LOGGER = logging.getLogger("httpx")


class TelegramChannel:
    """Sends notifications to a Telegram chat through a bot."""

    name = "telegram"
    mode = "live"

    def __init__(self, config: TelegramConfig, token: str) -> None:
        self._config = config
        self._token = token
        self._url = f"{config.base_url.rstrip('/')}/bot{token}/sendMessage"
        self._client = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s),
            follow_redirects=False,
        )
        self._log_filter = RedactingFilter([token])
        _HTTPX_LOGGER.addFilter(self._log_filter)

    @property
    def send_resolved(self) -> bool:
        return self._config.send_resolved

    def __repr__(self) -> str:
        return f"TelegramChannel(chat_id={self._config.chat_id!r})"

    def send(self, notification: Notification) -> None:
        outcome = self._post(
            {
                "chat_id": self._config.chat_id,
                "text": message_text(notification, MAX_TEXT),
            }
        )
        if isinstance(outcome, ServiceError):
            # Raised here, outside the handler, so that neither __cause__ nor
            # __context__ holds the httpx exception: its request's URL holds the
            # token, and a printed traceback would show it.
            raise outcome
        self._check(outcome)

    def _post(self, payload: dict[str, str]) -> httpx.Response | ServiceError:
        try:
            return self._client.post(self._url, json=payload)
        except HTTPX_ERRORS as exc:
            return transport_error(self.name, exc, [self._token])

    def close(self) -> None:
        self._client.close()
        _HTTPX_LOGGER.removeFilter(self._log_filter)

    def _check(self, response: httpx.Response) -> None:
        body = _json_object(response)
        status = response.status_code
        if response.is_success and body.get("ok") is not False:
            return
        code = body.get("error_code")
        error_code = code if isinstance(code, int) else status
        raw = body.get("description")
        description = (
            redact(str(raw), [self._token])
            if raw
            else body_excerpt(response, [self._token])
        )
        parameters = body.get("parameters")
        raise self._classify(
            error_code,
            description or response.reason_phrase,
            parameters if isinstance(parameters, dict) else {},
            response,
        )

    def _classify(
        self,
        code: int,
        description: str,
        parameters: dict[str, Any],
        response: httpx.Response,
    ) -> ServiceError:
        name = self.name
        if code == 429:
            return RateLimited(
                name,
                description,
                status=code,
                code="flood_control",
                retry_after=_retry_after(parameters, response),
            )
        if code in (401, 404):
            # An unknown or malformed token gets 401 or 404: no method exists at a URL
            # without a valid bot in it.
            return AuthenticationFailed(
                name, f"bot token rejected: {description}", status=code
            )
        if code == 403:
            # The bot was blocked, removed from the group or never added: every
            # message to this chat fails until a person fixes it.
            return AuthenticationFailed(
                name, f"bot may not post to the chat: {description}", status=code
            )
        if code == 400:
            new_chat = parameters.get("migrate_to_chat_id")
            if new_chat is not None:
                description = f"{description}; set chat_id to {new_chat}"
            return InvalidPayload(name, description, status=code)
        if code >= 500:
            return ServiceUnavailable(
                name,
                description,
                status=code,
                retry_after=_retry_after(parameters, response),
            )
        return PermanentError(name, description, status=code)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(parameters: dict[str, Any], response: httpx.Response) -> float | None:
    value = parameters.get("retry_after")
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    return retry_after_s(response.headers)
