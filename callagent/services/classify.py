"""Provider error responses mapped onto the taxonomy, one pure function per provider.

Each takes the status, the headers and the parsed JSON body (None when the body is
not JSON) and returns the :class:`~callagent.errors.ServiceError` to raise. The
status alone is not enough: ElevenLabs reports spent credits as a 401, OpenAI sends
both a passing and a lasting 429, HubSpot's daily 429 does not clear for hours.
Whatever a provider's body does not explain falls back on HTTP's own meaning: an
unknown 4xx is the request's fault and permanent, an unknown 5xx is transient.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from http import HTTPStatus

from callagent.errors import (
    AuthenticationFailed,
    InvalidPayload,
    QuotaExceeded,
    RateLimited,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
    TransientError,
)
from callagent.services.http import redact, retry_after_s

#: Longest provider error code kept; codes are identifiers, not prose.
MAX_CODE = 64


def classify_elevenlabs(
    service: str,
    status: int,
    headers: Mapping[str, str],
    body: object | None,
    *,
    secrets: Collection[str] = (),
    now: datetime | None = None,
) -> ServiceError:
    """An ElevenLabs error: its ``detail.status`` decides, then the HTTP status."""
    code, description = _elevenlabs_detail(body)
    reply = _Reply(
        service, status, code, description, secrets=secrets, headers=headers, now=now
    )

    # Spent credits come as 401 with detail.status "quota_exceeded", not as 402 or
    # 429: waiting does not help, and no other call can succeed until a top-up.
    if code == "quota_exceeded":
        return reply.error(QuotaExceeded)
    # Any other 401 is the key: invalid_api_key, a key without the permission the
    # endpoint needs (missing_permissions), an account flagged for unusual activity.
    if status in (401, 403):
        return reply.error(AuthenticationFailed)
    # 404 voice_not_found: the voice in the path does not exist for this account.
    # 400 (max_character_limit_exceeded and the like) and 422 (FastAPI's validation
    # list) reject the request body itself.
    if status in (400, 404, 422):
        return reply.error(InvalidPayload)
    # 429 has two meanings told apart by detail.status: system_busy is ElevenLabs
    # overloaded (retry later), too_many_concurrent_requests is us over the plan's
    # concurrency (slow down).
    if status == 429 and code == "system_busy":
        return reply.error(ServiceUnavailable)
    if status == 429:
        return reply.error(RateLimited)
    return reply.by_status()


def classify_openai(
    service: str,
    status: int,
    headers: Mapping[str, str],
    body: object | None,
    *,
    secrets: Collection[str] = (),
    now: datetime | None = None,
) -> ServiceError:
    """An OpenAI-compatible error: ``error.code`` (or ``error.type``), then status."""
    code, description = _openai_error(body)
    reply = _Reply(
        service, status, code, description, secrets=secrets, headers=headers, now=now
    )

    # insufficient_quota arrives as a 429 like a rate limit, but the account is out
    # of credit or over its budget: it does not clear by waiting.
    if code in ("insufficient_quota", "billing_hard_limit_reached"):
        return reply.error(QuotaExceeded)
    # rate_limit_exceeded (requests or tokens per minute) clears; the wait comes in
    # retry-after-ms or retry-after.
    if status == 429:
        return reply.error(RateLimited)
    # 401 is the key (invalid_api_key, a revoked key, a wrong organisation); 403 is
    # the key's standing (unsupported_country_region_territory, a project without
    # access). Either way every request fails alike.
    if status in (401, 403):
        return reply.error(AuthenticationFailed)
    # model_not_found says "does not exist or you do not have access to it": the
    # model comes from settings, so every call would fail the same way. Treated as
    # service-wide, so contacts wait for a fix instead of each failing for good.
    if status == 404 and code == "model_not_found":
        return reply.error(AuthenticationFailed)
    # 400 context_length_exceeded and other invalid_request_error: this prompt.
    if status == 400:
        return reply.error(InvalidPayload)
    # 500 server_error, 503 "engine overloaded" and the 529 overloaded_error some
    # compatible gateways send all mean try again later.
    return reply.by_status()


def classify_hubspot(
    service: str,
    status: int,
    headers: Mapping[str, str],
    body: object | None,
    *,
    secrets: Collection[str] = (),
    now: datetime | None = None,
) -> ServiceError:
    """A HubSpot error: ``policyName`` on 429, then the status."""
    fields = body if isinstance(body, dict) else {}
    policy = _text(fields.get("policyName"))
    code = policy or _text(fields.get("category")) or _text(fields.get("errorType"))
    reply = _Reply(
        service,
        status,
        code,
        _text(fields.get("message")),
        secrets=secrets,
        headers=headers,
        now=now,
    )

    # The DAILY limit resets at midnight in the account's time zone: hours away,
    # far past any backoff, so it is spent quota rather than a rate limit.
    if status == 429 and policy == "DAILY":
        return reply.error(QuotaExceeded)
    # TEN_SECONDLY_ROLLING (the app's burst limit) and SECONDLY (the search API's
    # own per-second limit) clear within seconds.
    if status == 429:
        return reply.error(RateLimited)
    # 401 INVALID_AUTHENTICATION or EXPIRED_AUTHENTICATION: the token.
    # 403 is MISSING_SCOPES or a portal that refuses the app: it is the token's
    # permissions, not this contact, and every request of the kind fails until an
    # admin grants the scope, so it is service-wide like a bad key.
    if status in (401, 403):
        return reply.error(AuthenticationFailed)
    # 400 VALIDATION_ERROR, 404 OBJECT_NOT_FOUND, 409 CONFLICT (e.g. a duplicate
    # unique value): this request.
    if status in (400, 404, 409):
        return reply.error(InvalidPayload)
    # 502 and 504 are HubSpot's own gateway timing out on a slow request.
    return reply.by_status()


class _Reply:
    """What one error response says, ready to become any class of the taxonomy."""

    def __init__(
        self,
        service: str,
        status: int,
        code: str | None,
        description: str | None,
        *,
        secrets: Collection[str],
        headers: Mapping[str, str],
        now: datetime | None,
    ) -> None:
        self.service = service
        self.status = status
        self.code = redact(code, secrets)[:MAX_CODE] if code else None
        message = redact(description, secrets) if description else ""
        self.message = message or _phrase(status)
        self.retry_after = retry_after_s(headers, now=now)

    def error(self, cls: type[ServiceError]) -> ServiceError:
        # A wait is only worth carrying on what the retry engine will retry.
        transient = issubclass(cls, TransientError)
        return cls(
            self.service,
            self.message,
            status=self.status,
            code=self.code,
            retry_after=self.retry_after if transient else None,
        )

    def by_status(self) -> ServiceError:
        """HTTP's own meaning, for what the provider's body did not explain."""
        if self.status == 401:
            return self.error(AuthenticationFailed)
        # 408: the server gave up waiting for our request; sending it again is safe.
        if self.status == 408:
            return self.error(ServiceTimeout)
        if self.status == 429:
            return self.error(RateLimited)
        if 400 <= self.status < 500:
            return self.error(InvalidPayload)
        # 5xx, and anything unexpected such as a redirect we do not follow (usually
        # a base_url without https or /v1): a problem of the service or its setup,
        # never of this contact, so contacts wait behind the breaker, not fail.
        return self.error(ServiceUnavailable)


def _elevenlabs_detail(body: object | None) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    detail = body.get("detail")
    if isinstance(detail, dict):
        code = _text(detail.get("status")) or _text(detail.get("code"))
        return code, _text(detail.get("message"))
    if isinstance(detail, list) and detail:
        return "validation_error", _validation_message(detail[0])
    return None, _text(detail)


def _validation_message(problem: object) -> str | None:
    """One item of FastAPI's 422 list: {"loc": ["body", "text"], "msg": ...}."""
    if not isinstance(problem, dict):
        return None
    message = _text(problem.get("msg"))
    location = problem.get("loc")
    if message and isinstance(location, list):
        return ".".join(str(part) for part in location) + f": {message}"
    return message


def _openai_error(body: object | None) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        code = _text(error.get("code")) or _text(error.get("type"))
        return code, _text(error.get("message"))
    # Some compatible gateways answer {"error": "text"}.
    return None, _text(error)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
