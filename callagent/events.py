"""Events: every thing that happens in a campaign, with stable names and flat fields.

The orchestrator, the retry engine, the breakers and the alert manager emit events on
one :class:`EventBus`; the JSON event log, the Sheets CSV, the live view and the report
subscribe to it. Producers never format text for a particular sink.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from callagent.clock import Clock

EVENT_NAMES = frozenset(
    {
        "campaign_started",
        "campaign_finished",
        "contact_invalid",
        "call_started",
        "call_completed",
        "call_failed",
        "call_deferred",
        "call_skipped",
        "retry_scheduled",
        "service_error",
        "circuit_opened",
        "circuit_half_opened",
        "circuit_closed",
        "health_check_passed",
        "health_check_failed",
        "alert_sent",
        "alert_failed",
        "alert_suppressed",
    }
)

#: The keys every log line carries, in this order, null where they do not apply.
REQUIRED_FIELDS = (
    "timestamp",
    "event",
    "run_id",
    "call_id",
    "service",
    "error_category",
    "retry_count",
    "circuit_state",
)
#: Keys a line may add, in this order.
OPTIONAL_FIELDS = (
    "level",
    "error",
    "message",
    "contact",
    "attempt",
    "delay_s",
    "duration_ms",
    "alert_channel",
)


@dataclass(slots=True)
class Event:
    """One thing that happened. Subscribers must treat it as read-only."""

    timestamp: datetime
    event: str
    run_id: str
    call_id: str | None = None
    service: str | None = None
    error_category: str | None = None
    retry_count: int | None = None
    circuit_state: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _record: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def as_record(self) -> dict[str, Any]:
        """The flat mapping the log and the CSV write: required keys first.

        Built once and shared, since every sink of a busy campaign asks for it.
        """
        if self._record is None:
            record: dict[str, Any] = {
                "timestamp": format_timestamp(self.timestamp),
                "event": self.event,
                "run_id": self.run_id,
                "call_id": self.call_id,
                "service": self.service,
                "error_category": self.error_category,
                "retry_count": self.retry_count,
                "circuit_state": self.circuit_state,
            }
            record.update(self.extra)
            self._record = record
        return self._record


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z`` and millisecond precision."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


class Emitter(Protocol):
    """What producers need: a way to say something happened."""

    def emit(
        self,
        event: str,
        *,
        call_id: str | None = None,
        service: str | None = None,
        error_category: str | None = None,
        retry_count: int | None = None,
        **extra: Any,
    ) -> None: ...


Subscriber = Callable[[Event], None]


class EventBus:
    """Stamps events with time, run and breaker state, then hands them to sinks.

    ``state_of`` tells the breaker state of a service after the event, so every line
    about a service says whether its circuit is open. Delivery is synchronous and
    ordered; a lock keeps lines whole when calls run on several threads.
    """

    def __init__(
        self,
        clock: Clock,
        run_id: str,
        state_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self._clock = clock
        self.run_id = run_id
        self._state_of = state_of
        self._subscribers: list[Subscriber] = []
        self._lock = threading.RLock()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def set_state_source(self, state_of: Callable[[str], str | None]) -> None:
        self._state_of = state_of

    def emit(
        self,
        event: str,
        *,
        call_id: str | None = None,
        service: str | None = None,
        error_category: str | None = None,
        retry_count: int | None = None,
        **extra: Any,
    ) -> None:
        if event not in EVENT_NAMES:
            raise ValueError(f"unknown event name {event!r}")
        state = None
        if service is not None and self._state_of is not None:
            state = self._state_of(service)
        with self._lock:
            record = Event(
                timestamp=self._clock.now(),
                event=event,
                run_id=self.run_id,
                call_id=call_id,
                service=service,
                error_category=error_category,
                retry_count=retry_count,
                circuit_state=state,
                extra={k: v for k, v in extra.items() if v is not None},
            )
            for subscriber in self._subscribers:
                subscriber(record)
