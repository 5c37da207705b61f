"""Shared HTTP plumbing for the real adapters.

Each real service owns one :class:`httpx.Client` with the connect and read timeouts
of its settings. Every request goes through :func:`send`, which turns httpx's
transport errors into the taxonomy, and every non-2xx answer goes to the provider's
classifier. Nothing here retries or sleeps: a transport that retried on its own would
make attempts the retry engine and the breaker never see.

Messages are built for people and logs, so they name what went wrong and never the
URL (a token or a key can sit in a path or a query string) nor a header.
"""

from __future__ import annotations

import math
import re
import socket
import ssl
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from callagent.clock import Clock
from callagent.errors import (
    NetworkError,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
)
from callagent.settings import ServiceSettings

#: Longest provider description kept in a message; the rest is noise in a log line.
MAX_DESCRIPTION = 200
REDACTED = "[redacted]"

# A key a provider echoes back half-masked, e.g. OpenAI's "sk-proj-****abcd".
_MASKED = re.compile(r"\S*\*{3,}\S*")
# Key shapes of the providers we talk to: OpenAI (sk-...) and HubSpot private apps
# (pat-<region>-<uuid>), in case a description quotes one in full.
_KEY_SHAPES = re.compile(r"\b(?:sk|pat)-[A-Za-z0-9_-]{8,}")


class Classifier(Protocol):
    """A provider's mapping of one error response to the taxonomy."""

    def __call__(
        self,
        service: str,
        status: int,
        headers: Mapping[str, str],
        body: object | None,
        *,
        secrets: Collection[str] = (),
        now: datetime | None = None,
    ) -> ServiceError: ...


def make_client(settings: ServiceSettings, headers: Mapping[str, str]) -> httpx.Client:
    """One service's client: its base URL, its auth headers, its timeouts."""
    timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
    # httpx's default transport makes no retries of its own (retries=0), and it is
    # kept rather than replaced so that proxy settings from the environment apply.
    # Redirects are not followed: httpx strips Authorization on a cross-origin
    # redirect but not a custom header such as ElevenLabs' xi-api-key.
    return httpx.Client(
        base_url=settings.base_url,
        headers=dict(headers),
        timeout=timeout,
        follow_redirects=False,
    )


def send(
    client: httpx.Client,
    service: str,
    method: str,
    path: str,
    *,
    json: object | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send one request; transport failures come back as TransientErrors."""
    try:
        return client.request(method, path, json=json, params=params, headers=headers)
    except httpx.TimeoutException as exc:
        raise _timeout(service, exc, client.timeout) from exc
    except httpx.ConnectError as exc:
        raise _connect_failed(service, exc) from exc
    except (httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
        raise NetworkError(
            service, "connection lost mid-request", code="connection_lost"
        ) from exc
    except httpx.RemoteProtocolError as exc:
        # Typically the server closed the connection without answering.
        raise NetworkError(
            service, "the server broke off the HTTP exchange", code="protocol_error"
        ) from exc
    except httpx.DecodingError as exc:
        raise ServiceUnavailable(
            service, "response body could not be decoded", code="malformed_response"
        ) from exc
    except httpx.HTTPError as exc:
        # The rest (proxy refusals, unsupported schemes): named by type only, since
        # httpx puts the URL into some of these messages.
        raise NetworkError(
            service, f"request failed ({type(exc).__name__})", code="transport_error"
        ) from exc


def _timeout(
    service: str, exc: httpx.TimeoutException, timeout: httpx.Timeout
) -> ServiceTimeout:
    if isinstance(exc, httpx.ConnectTimeout):
        phase, limit = "connect", timeout.connect
    elif isinstance(exc, httpx.WriteTimeout):
        phase, limit = "write", timeout.write
    elif isinstance(exc, httpx.PoolTimeout):
        phase, limit = "pool", timeout.pool
    else:
        phase, limit = "read", timeout.read
    after = f" after {limit:g} s" if limit is not None else ""
    return ServiceTimeout(service, f"{phase} timed out{after}", code=f"{phase}_timeout")


def _connect_failed(service: str, exc: httpx.ConnectError) -> NetworkError:
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return NetworkError(
                service, "host name could not be resolved", code="dns_error"
            )
        if isinstance(cause, ConnectionRefusedError):
            return NetworkError(
                service, "connection refused", code="connection_refused"
            )
        if isinstance(cause, ssl.SSLError):
            return NetworkError(service, "TLS handshake failed", code="tls_error")
    return NetworkError(service, "connection failed", code="connect_error")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from, down to the OS error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def read_json(response: httpx.Response) -> object | None:
    """The parsed body, or None when it is empty or not JSON.

    Error bodies are often HTML from a proxy or a load balancer; those are
    classified by their status alone.
    """
    if not response.content:
        return None
    try:
        body: object = response.json()
    except ValueError:
        return None
    return body


def require_json(service: str, response: httpx.Response) -> dict[str, Any]:
    """The JSON object a successful response must carry.

    A 2xx whose body is not the JSON object we asked for is a ServiceUnavailable,
    transient: the request was accepted, so nothing in it is at fault, and what
    garbles a body (a truncating proxy, a gateway's HTML page) passes. Retries are
    bounded and counted by the breaker, so a service that keeps doing it opens the
    circuit and defers contacts, instead of failing each one for good.
    """
    body = read_json(response)
    if not isinstance(body, dict):
        raise malformed(service, response.status_code)
    return body


def malformed(service: str, status: int) -> ServiceUnavailable:
    """The error for a successful status whose body is not what the API promises."""
    return ServiceUnavailable(
        service,
        "successful status with a malformed body",
        status=status,
        code="malformed_response",
    )


def retry_after_s(
    headers: Mapping[str, str], *, now: datetime | None = None
) -> float | None:
    """Seconds the service asks us to wait, from its headers; None if it does not say.

    OpenAI's ``retry-after-ms`` wins over ``Retry-After``, as in its own SDK.
    ``Retry-After`` is either delta-seconds or an HTTP-date (RFC 9110, 10.2.3).
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = _seconds(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    return _until(value, lowered.get("date"), now)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _until(value: str, date: str | None, now: datetime | None) -> float | None:
    target = _http_date(value)
    if target is None:
        return None
    # Measured from the response's own Date header when it has one: both instants
    # then come from the server's clock, and our clock's skew does not matter.
    reference = _http_date(date) if date is not None else None
    if reference is None:
        reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (target - reference).total_seconds())


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def redact(text: str, secrets: Collection[str] = ()) -> str:
    """A provider's description made safe for a message: no keys, one short line.

    Some providers quote the rejected key back, whole or half-masked (OpenAI's
    "Incorrect API key provided: sk-...abcd"), so the known secrets, masked keys and
    the providers' key shapes are all cut out.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _MASKED.sub(REDACTED, text)
    text = _KEY_SHAPES.sub(REDACTED, text)
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 1].rstrip() + "…"
    return text


class HttpService:
    """One real service: its client, its classifier, and the secrets to keep out."""

    def __init__(
        self,
        name: str,
        provider: str,
        settings: ServiceSettings,
        clock: Clock,
        *,
        headers: Mapping[str, str],
        classify: Classifier,
        secrets: Collection[str],
    ) -> None:
        self._name = name
        self._provider = provider
        self._clock = clock
        self._classify = classify
        self._secrets = tuple(secrets)
        self._client = make_client(settings, headers)

    @property
    def name(self) -> str:
        return self._name

    @property
    def provider(self) -> str:
        return self._provider

    def request(
        self,
        method: str,
        path: str,
        *,
        json: object | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; return a 2xx response or raise its ServiceError."""
        response = send(
            self._client,
            self._name,
            method,
            path,
            json=json,
            params=params,
            headers=headers,
        )
        if response.is_success:
            return response

        raise self._classify(
            self._name,
            response.status_code,
            response.headers,
            read_json(response),
            secrets=self._secrets,
            now=self._clock.now(),
        )

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r})"
