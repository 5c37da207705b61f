"""What the HTTP channels share: Retry-After, transport errors, URL checks, redaction.

Error messages are built from the status, the peer's own error text and the
exception's class, never from the request: a Telegram bot token travels in the URL
path, and httpx names the URL in some of its messages and in its INFO log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from callagent.errors import InputError, NetworkError, ServiceError, ServiceTimeout

#: What a secret becomes wherever text might carry it.
REDACTED = "***"

#: Failures httpx raises for a request: its own tree, plus an URL it cannot parse.
HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.

    Both forms are allowed by RFC 9110 section 10.2.3; an unreadable value is
    ignored rather than trusted.
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return max(seconds, 0.0)


def transport_error(
    channel: str, exc: Exception, secrets: Iterable[str] = ()
) -> ServiceError:
    """The taxonomy's error for a request that got no HTTP answer."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return ServiceTimeout(channel, f"no answer in time ({kind})", code="timeout")
    detail = redact(str(exc), secrets)
    message = f"{kind}: {detail}" if detail else kind
    return NetworkError(channel, message, code="network")


def body_excerpt(response: httpx.Response, secrets: Iterable[str] = ()) -> str:
    """The start of a response body, enough to say what the peer objected to."""
    text = " ".join(response.text.split())
    if len(text) > 200:
        text = text[:199] + "…"
    return redact(text, secrets)


def check_http_url(url: str, key: str) -> None:
    """Refuse at start an URL no request could go to, naming its settings key."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InputError(f"{key}: not a valid URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError(f"{key}: must be an http:// or https:// URL")


class RedactingFilter(logging.Filter):
    """Rewrites log records that would print a secret.

    httpx logs every request's URL at INFO on the ``httpx`` logger; for Telegram
    that URL holds the bot token, and any handler the application installs would
    write it out.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(secret for secret in secrets if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self._secrets)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
