"""Provider error responses classified into the taxonomy, one row per behaviour.

The rows are the providers' real error shapes (bodies and headers as they send
them); ``test_adapters.py`` replays the same rows over HTTP through each adapter.
A ``str`` body stands for a response that is not JSON (an HTML page from a proxy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from callagent.errors import (
    AuthenticationFailed,
    InvalidPayload,
    QuotaExceeded,
    RateLimited,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
)
from callagent.services.classify import (
    classify_elevenlabs,
    classify_hubspot,
    classify_openai,
)
from callagent.services.http import REDACTED, redact, retry_after_s

KEY = "sk-proj-TESTKEY0123456789abcdefghijklmnop"
HTML_502 = "<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass(frozen=True)
class Row:
    """One classification: what the provider sends, what callagent makes of it."""

    id: str
    status: int
    body: object | None
    expected: type[ServiceError]
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    @property
    def parsed(self) -> object | None:
        return None if isinstance(self.body, str) else self.body


def _eleven(status: str, message: str) -> dict[str, object]:
    return {"detail": {"status": status, "message": message}}


def _openai(message: str, kind: str, code: str | None) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _hubspot(message: str, **fields: str) -> dict[str, object]:
    return {
        "status": "error",
        "message": message,
        "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
        **fields,
    }


ELEVENLABS_ROWS = [
    Row(
        "401-quota_exceeded",
        401,
        _eleven(
            "quota_exceeded",
            "This request exceeds your quota of 10000. You have 0 credits "
            "remaining, while 91 credits are required for this request.",
        ),
        QuotaExceeded,
        "quota_exceeded",
    ),
    Row(
        "401-invalid_api_key",
        401,
        _eleven("invalid_api_key", "Invalid API key"),
        AuthenticationFailed,
        "invalid_api_key",
    ),
    Row(
        "401-missing_permissions",
        401,
        _eleven(
            "missing_permissions",
            "The API key you used is missing the permission text_to_speech.",
        ),
        AuthenticationFailed,
        "missing_permissions",
    ),
    Row("401-not-json", 401, "Unauthorized", AuthenticationFailed),
    Row(
        "404-voice_not_found",
        404,
        _eleven("voice_not_found", "A voice with the voice_id xyz was not found."),
        InvalidPayload,
        "voice_not_found",
    ),
    Row(
        "400-max_character_limit_exceeded",
        400,
        _eleven(
            "max_character_limit_exceeded",
            "This request's text has 12000 characters and exceeds the limit.",
        ),
        InvalidPayload,
        "max_character_limit_exceeded",
    ),
    Row(
        "422-validation",
        422,
        {
            "detail": [
                {"loc": ["body", "text"], "msg": "Field required", "type": "missing"}
            ]
        },
        InvalidPayload,
        "validation_error",
    ),
    Row(
        "429-too_many_concurrent_requests",
        429,
        _eleven(
            "too_many_concurrent_requests",
            "Too many concurrent requests for your plan.",
        ),
        RateLimited,
        "too_many_concurrent_requests",
    ),
    Row(
        "429-too_many_concurrent_requests-retry-after",
        429,
        _eleven("too_many_concurrent_requests", "Too many concurrent requests."),
        RateLimited,
        "too_many_concurrent_requests",
        headers={"Retry-After": "3"},
        retry_after=3.0,
    ),
    Row(
        "429-system_busy",
        429,
        _eleven("system_busy", "We are experiencing heavy traffic, try again."),
        ServiceUnavailable,
        "system_busy",
    ),
    Row("500", 500, {"detail": "Internal Server Error"}, ServiceUnavailable),
    Row("502-html", 502, HTML_502, ServiceUnavailable),
    Row(
        "503-retry-after",
        503,
        None,
        ServiceUnavailable,
        headers={"Retry-After": "7"},
        retry_after=7.0,
    ),
    Row("unknown-4xx", 418, {"detail": "I'm a teapot"}, InvalidPayload),
    Row("unknown-5xx", 520, None, ServiceUnavailable),
]

OPENAI_ROWS = [
    Row(
        "429-rate_limit_exceeded-retry-after-ms",
        429,
        _openai(
            "Rate limit reached for gpt-4o-mini on requests per min (RPM): "
            "Limit 3, Used 3, Requested 1. Please try again in 1.5s.",
            "requests",
            "rate_limit_exceeded",
        ),
        RateLimited,
        "rate_limit_exceeded",
        headers={"retry-after-ms": "1500", "retry-after": "2"},
        retry_after=1.5,
    ),
    Row(
        "429-rate_limit_exceeded-retry-after",
        429,
        _openai(
            "Rate limit reached for gpt-4o-mini on tokens per min (TPM).",
            "tokens",
            "rate_limit_exceeded",
        ),
        RateLimited,
        "rate_limit_exceeded",
        headers={"retry-after": "20"},
        retry_after=20.0,
    ),
    Row(
        "429-insufficient_quota",
        429,
        _openai(
            "You exceeded your current quota, please check your plan and billing "
            "details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        QuotaExceeded,
        "insufficient_quota",
        headers={"retry-after": "20"},
    ),
    Row(
        "401-invalid_api_key",
        401,
        _openai(
            "Incorrect API key provided: sk-proj-****************mnop. You can "
            "find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        AuthenticationFailed,
        "invalid_api_key",
    ),
    Row(
        "403-unsupported_country",
        403,
        _openai(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        AuthenticationFailed,
        "unsupported_country_region_territory",
    ),
    Row(
        "404-model_not_found",
        404,
        _openai(
            "The model `gpt-9` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        AuthenticationFailed,
        "model_not_found",
    ),
    Row(
        "400-context_length_exceeded",
        400,
        _openai(
            "This model's maximum context length is 128000 tokens. However, your "
            "messages resulted in 130000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
        InvalidPayload,
        "context_length_exceeded",
    ),
    Row(
        "500-server_error",
        500,
        _openai(
            "The server had an error while processing your request.",
            "server_error",
            None,
        ),
        ServiceUnavailable,
        "server_error",
    ),
    Row(
        "503-overloaded",
        503,
        _openai(
            "The engine is currently overloaded, please try again later",
            "server_error",
            None,
        ),
        ServiceUnavailable,
        "server_error",
    ),
    Row(
        "529-overloaded_error",
        529,
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        },
        ServiceUnavailable,
        "overloaded_error",
    ),
    Row("502-html", 502, HTML_502, ServiceUnavailable),
    Row("408-request-timeout", 408, None, ServiceTimeout),
    Row(
        "unknown-4xx",
        422,
        {"error": "unprocessable request"},
        InvalidPayload,
    ),
    Row("unknown-5xx", 599, None, ServiceUnavailable),
    Row("redirect", 307, None, ServiceUnavailable),
]

HUBSPOT_ROWS = [
    Row(
        "429-DAILY",
        429,
        _hubspot(
            "You have reached your daily limit.",
            errorType="RATE_LIMIT",
            policyName="DAILY",
        ),
        QuotaExceeded,
        "DAILY",
    ),
    Row(
        "429-TEN_SECONDLY_ROLLING",
        429,
        _hubspot(
            "You have reached your ten_secondly_rolling limit.",
            errorType="RATE_LIMIT",
            policyName="TEN_SECONDLY_ROLLING",
        ),
        RateLimited,
        "TEN_SECONDLY_ROLLING",
    ),
    Row(
        "429-SECONDLY",
        429,
        _hubspot(
            "You have reached your secondly limit.",
            errorType="RATE_LIMIT",
            policyName="SECONDLY",
        ),
        RateLimited,
        "SECONDLY",
        headers={"Retry-After": "1"},
        retry_after=1.0,
    ),
    Row(
        "401-INVALID_AUTHENTICATION",
        401,
        _hubspot(
            "Authentication credentials not found.",
            category="INVALID_AUTHENTICATION",
        ),
        AuthenticationFailed,
        "INVALID_AUTHENTICATION",
    ),
    Row(
        "403-MISSING_SCOPES",
        403,
        _hubspot(
            "This app hasn't been granted all required scopes to make this call.",
            category="MISSING_SCOPES",
        ),
        AuthenticationFailed,
        "MISSING_SCOPES",
    ),
    Row(
        "400-VALIDATION_ERROR",
        400,
        _hubspot("Invalid input JSON on line 1", category="VALIDATION_ERROR"),
        InvalidPayload,
        "VALIDATION_ERROR",
    ),
    Row(
        "404-OBJECT_NOT_FOUND",
        404,
        _hubspot("resource not found", category="OBJECT_NOT_FOUND"),
        InvalidPayload,
        "OBJECT_NOT_FOUND",
    ),
    Row(
        "409-CONFLICT",
        409,
        _hubspot("Contact already exists. Existing ID: 501", category="CONFLICT"),
        InvalidPayload,
        "CONFLICT",
    ),
    Row("502-html", 502, HTML_502, ServiceUnavailable),
    Row(
        "504",
        504,
        _hubspot("The request timed out.", category="GATEWAY_TIMEOUT"),
        ServiceUnavailable,
        "GATEWAY_TIMEOUT",
    ),
    Row("unknown-4xx", 415, None, InvalidPayload),
    Row("unknown-5xx", 507, None, ServiceUnavailable),
]

CLASSIFIERS = {
    "elevenlabs": (classify_elevenlabs, ELEVENLABS_ROWS),
    "openai": (classify_openai, OPENAI_ROWS),
    "hubspot": (classify_hubspot, HUBSPOT_ROWS),
}
CASES = [
    pytest.param(provider, row, id=f"{provider}-{row.id}")
    for provider, (_, rows) in CLASSIFIERS.items()
    for row in rows
]


class TestClassification:
    @pytest.mark.parametrize(("provider", "row"), CASES)
    def test_row(self, provider: str, row: Row) -> None:
        """Each provider response maps to its class, code and Retry-After."""
        classify = CLASSIFIERS[provider][0]

        error = classify("svc", row.status, row.headers, row.parsed)

        assert type(error) is row.expected
        assert error.service == "svc"
        assert error.status == row.status
        assert error.code == row.code
        assert error.retry_after == row.retry_after

    def test_message_is_the_providers_description(self) -> None:
        """The message is the provider's own description of the failure."""
        error = classify_hubspot(
            "crm", 429, {}, _hubspot("You have reached your daily limit.")
        )

        assert error.message == "You have reached your daily limit."
        assert str(error) == "crm 429: You have reached your daily limit."

    def test_message_falls_back_to_the_status_phrase(self) -> None:
        """A body with no description gives the HTTP status phrase."""
        error = classify_openai("llm", 502, {}, None)

        assert error.message == "Bad Gateway"

    def test_permanent_errors_carry_no_retry_after(self) -> None:
        """A wait on an error that is never retried would only mislead."""
        row = OPENAI_ROWS[2]

        error = classify_openai("llm", row.status, row.headers, row.parsed)

        assert isinstance(error, QuotaExceeded)
        assert error.retry_after is None

    def test_validation_message_names_the_field(self) -> None:
        """ElevenLabs' 422 names the field that failed validation."""
        row = next(r for r in ELEVENLABS_ROWS if r.id == "422-validation")

        error = classify_elevenlabs("elevenlabs", row.status, {}, row.parsed)

        assert error.message == "body.text: Field required"

    @pytest.mark.parametrize(("provider", "row"), CASES)
    def test_key_echoed_in_a_body_never_reaches_the_error(
        self, provider: str, row: Row
    ) -> None:
        """A key the provider quotes back is cut from message, str and repr."""
        echoed = f"Incorrect API key provided: {KEY}"
        body = {
            "detail": {"status": "invalid_api_key", "message": echoed},
            "error": {"message": echoed, "code": KEY},
            "message": echoed,
            "category": KEY,
        }
        classify = CLASSIFIERS[provider][0]

        error = classify("svc", row.status, row.headers, body, secrets=(KEY,))

        for text in (error.message, str(error), repr(error), str(error.code)):
            assert KEY not in text
            assert "TESTKEY" not in text


class TestRetryAfter:
    def test_delta_seconds(self) -> None:
        """Retry-After in seconds, fractions allowed."""
        assert retry_after_s({"Retry-After": "2.5"}) == 2.5

    def test_openai_milliseconds_win(self) -> None:
        """retry-after-ms is preferred over retry-after, as OpenAI's SDK does."""
        headers = {"retry-after-ms": "250", "retry-after": "9"}

        assert retry_after_s(headers) == 0.25

    def test_http_date_against_the_date_header(self) -> None:
        """An HTTP-date is measured from the response's own Date header."""
        headers = {
            "Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT",
            "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
        }
        far_off = datetime(2030, 1, 1, tzinfo=UTC)

        assert retry_after_s(headers, now=far_off) == 30.0

    def test_http_date_against_now_without_a_date_header(self) -> None:
        """Without a Date header, an HTTP-date is measured from ``now``."""
        headers = {"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"}
        now = datetime(2026, 10, 21, 7, 28, 20, tzinfo=UTC)

        assert retry_after_s(headers, now=now) == 10.0

    def test_past_http_date_is_zero(self) -> None:
        """A date already past means retry now, not a negative wait."""
        headers = {
            "Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT",
            "Date": "Wed, 21 Oct 2026 07:29:00 GMT",
        }

        assert retry_after_s(headers) == 0.0

    @pytest.mark.parametrize("value", ["soon", "-5", "nan", "inf", ""])
    def test_unusable_values_are_ignored(self, value: str) -> None:
        """A value that is neither seconds nor an HTTP-date means no advice."""
        assert retry_after_s({"Retry-After": value}) is None

    def test_absent(self) -> None:
        """No header, no advice."""
        assert retry_after_s({}) is None


class TestRedact:
    def test_known_secret_is_removed(self) -> None:
        """The adapter's own key is cut wherever it appears."""
        assert redact(f"bad key {KEY}!", (KEY,)) == f"bad key {REDACTED}!"

    def test_half_masked_key_is_removed(self) -> None:
        """OpenAI's masked echo of a key is cut too: it is part of the key."""
        text = "Incorrect API key provided: sk-proj-****mnop. See docs."

        assert redact(text) == f"Incorrect API key provided: {REDACTED} See docs."

    def test_key_shapes_are_removed_without_knowing_the_key(self) -> None:
        """Full OpenAI and HubSpot key shapes are cut even when not ours."""
        text = "keys sk-abcdefghijkl and pat-na1-1234abcd-12ab"

        assert redact(text) == f"keys {REDACTED} and {REDACTED}"

    def test_one_short_line(self) -> None:
        """Descriptions become one line of bounded length."""
        text = redact("line one\nline two " + "x" * 500)

        assert "\n" not in text
        assert len(text) <= 200
        assert text.startswith("line one line two")
