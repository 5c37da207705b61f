"""The webhook channel: a JSON POST signed per the Standard Webhooks scheme.

Each request carries three headers:

- ``webhook-id``: one id per notification, the same on every retry of it, so the
  receiver can drop a duplicate that arrives after a lost answer;
- ``webhook-timestamp``: Unix seconds of this attempt, on the real clock, so the
  receiver can refuse a replayed request;
- ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``
  keyed with the secret's bytes (the base64 part of ``whsec_...``).

The body is the scheme's envelope: ``{"type", "timestamp", "data"}`` with the
notification as ``data`` and the event's own time as ``timestamp``. Answers: any 2xx
is delivered; 410 Gone means the receiver wants nothing more, so the endpoint is
disabled for the rest of the run; 429 and 5xx are transient and their Retry-After is
honoured; any other answer is permanent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os

import httpx

from callagent import __version__
from callagent.alerts._http import (
    HTTPX_ERRORS,
    body_excerpt,
    transport_error,
)
from callagent.alerts.model import Notification
from callagent.clock import Clock, SystemClock
from callagent.errors import (
    AuthenticationFailed,
    InvalidPayload,
    PermanentError,
    RateLimited,
    ServiceError,
    ServiceUnavailable,
)
from callagent.events import format_timestamp
from callagent.services.http import retry_after_s
from callagent.settings import WebhookChannel as WebhookConfig

SECRET_PREFIX = "whsec_"


def decode_secret(text: str) -> bytes:
    """The signing key inside a ``whsec_<base64>`` secret; ValueError if malformed.

    The prefix is optional and missing base64 padding is tolerated, as the scheme's
    reference libraries do.
    """
    encoded = text.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc
    if not key:
        raise ValueError("empty")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one request."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookChannel:
    """POSTs signed notifications to one HTTP endpoint."""

    name = "webhook"
    mode = "live"

    def __init__(
        self,
        config: WebhookConfig,
        key: bytes,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._config = config
        self._key = key
        self._clock = clock if clock is not None else SystemClock()
        # Mixed into message ids so two runs replaying the same virtual timeline do
        # not send ids a receiver has already seen and would drop as duplicates.
        self._run_nonce = os.urandom(16)
        self._gone = False
        self._client = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s),
            follow_redirects=False,
            headers={"user-agent": f"callagent/{__version__}"},
        )

    @property
    def send_resolved(self) -> bool:
        return self._config.send_resolved

    @property
    def disabled(self) -> bool:
        """True once the endpoint answered 410 Gone."""
        return self._gone

    def __repr__(self) -> str:
        return f"WebhookChannel(url={self._config.url!r})"

    def message_id(self, notification: Notification) -> str:
        """The notification's ``webhook-id``: the same for every attempt."""
        identity = "\x1f".join(
            (
                notification.status,
                notification.fingerprint,
                format_timestamp(notification.at),
                notification.title,
            )
        )
        digest = hashlib.sha256(self._run_nonce + identity.encode()).hexdigest()
        return f"msg_{digest[:32]}"

    def send(self, notification: Notification) -> None:
        if self._gone:
            raise _gone_error(self.name)
        body = self.body(notification)
        message_id = self.message_id(notification)
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, message_id, timestamp, body),
        }
        try:
            response = self._client.post(
                self._config.url, content=body, headers=headers
            )
        except HTTPX_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        self._check(response)

    @staticmethod
    def body(notification: Notification) -> bytes:
        """The exact bytes that are signed and sent."""
        envelope = {
            "type": f"alert.{notification.status}",
            "timestamp": format_timestamp(notification.at),
            "data": notification.as_payload(),
        }
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()

    def close(self) -> None:
        self._client.close()

    def _check(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        if response.status_code == 410:
            self._gone = True
            raise _gone_error(self.name)
        raise self._classify(response)

    def _classify(self, response: httpx.Response) -> ServiceError:
        name = self.name
        status = response.status_code
        detail = body_excerpt(response) or response.reason_phrase
        retry_after = retry_after_s(response.headers, now=self._clock.now())
        if status == 429:
            return RateLimited(name, detail, status=status, retry_after=retry_after)
        if status >= 500:
            return ServiceUnavailable(
                name, detail, status=status, retry_after=retry_after
            )
        if status in (401, 403):
            return AuthenticationFailed(
                name, f"receiver refused our signature: {detail}", status=status
            )
        if 400 <= status < 500:
            return InvalidPayload(name, detail, status=status)
        # Redirects are not followed: a signed request belongs to the URL it was
        # configured for.
        return PermanentError(name, f"unexpected answer: {detail}", status=status)


def _gone_error(channel: str) -> PermanentError:
    return PermanentError(
        channel,
        "the endpoint answered 410 Gone; disabled for the rest of this run",
        status=410,
        code="gone",
    )
