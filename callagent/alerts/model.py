"""What an alert is: labels that identify an incident, and what a human reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from callagent.events import format_timestamp


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class Cause(StrEnum):
    """Why an alert fires; with the service, it names the incident."""

    CIRCUIT_OPEN = "circuit_open"
    CALL_FAILED = "call_failed"
    UNAVAILABLE_TOO_LONG = "unavailable_too_long"
    TEST = "test"


def fingerprint(labels: dict[str, str]) -> str:
    """A stable id for an incident: the same labels give the same fingerprint."""
    text = "\x1f".join(f"{key}={labels[key]}" for key in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Alert:
    """One incident, firing until resolved."""

    service: str
    cause: Cause
    severity: Severity
    title: str
    detail: str
    starts_at: datetime
    labels: dict[str, str] = field(default_factory=dict)
    #: Calls this incident failed, skipped or deferred so far.
    affected_calls: int = 0
    resolved_at: datetime | None = None

    def __post_init__(self) -> None:
        self.labels = {
            "service": self.service,
            "cause": self.cause.value,
            "severity": self.severity.value,
            **self.labels,
        }

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def firing(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about an alert, as every channel renders it."""

    status: str  # "firing" or "resolved"
    fingerprint: str
    service: str
    cause: str
    severity: str
    title: str
    body: str
    starts_at: datetime
    #: When the event behind the message happened, on the campaign's clock.
    at: datetime
    affected_calls: int
    labels: dict[str, str]

    @classmethod
    def of(cls, alert: Alert, status: str, body: str, at: datetime) -> Notification:
        title = alert.title if status == "firing" else f"RESOLVED: {alert.title}"
        return cls(
            status=status,
            fingerprint=alert.fingerprint,
            service=alert.service,
            cause=alert.cause.value,
            severity=alert.severity.value,
            title=title,
            body=body,
            starts_at=alert.starts_at,
            at=at,
            affected_calls=alert.affected_calls,
            labels=dict(alert.labels),
        )

    def as_payload(self) -> dict[str, Any]:
        """The JSON document a webhook or the alerts log receives."""
        return {
            "status": self.status,
            "fingerprint": self.fingerprint,
            "service": self.service,
            "cause": self.cause,
            "severity": self.severity,
            "title": self.title,
            "body": self.body,
            "starts_at": format_timestamp(self.starts_at),
            "at": format_timestamp(self.at),
            "affected_calls": self.affected_calls,
            "labels": self.labels,
        }
