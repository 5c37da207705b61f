"""What the HTTP channels share: transport errors, URL checks, redacted log lines.

Redaction and Retry-After parsing are the service adapters' own
(:mod:`callagent.services.http`). Error messages are built from the status, the
peer's own error text and the exception's class, never from the request: a Telegram
bot token travels in the URL path, and httpx names the URL in some of its messages
and in its INFO log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import httpx

from callagent.errors import InputError, NetworkError, ServiceError, ServiceTimeout
from callagent.services.http import redact

#: Failures httpx raises for a request: its own tree, plus an URL it cannot parse.
HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL)


def transport_error(
    channel: str, exc: Exception, secrets: Iterable[str] = ()
) -> ServiceError:
    """The taxonomy's error for a request that got no HTTP answer."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return ServiceTimeout(channel, f"no answer in time ({kind})", code="timeout")
    detail = redact(str(exc), tuple(secrets))
    message = f"{kind}: {detail}" if detail else kind
    return NetworkError(channel, message, code="network")


def body_excerpt(response: httpx.Response, secrets: Iterable[str] = ()) -> str:
    """The start of a response body, enough to say what the peer objected to."""
    return redact(response.text, tuple(secrets))


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
