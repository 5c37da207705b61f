"""Health monitor: probes services whose breaker is open, on the clock.

A probe is one cheap request to the service's health endpoint. A breaker stays OPEN
for at least its recovery timeout, leaving a struggling service alone; from then on a
probe runs on each health-check tick until one passes and moves the breaker to
HALF_OPEN, where a real trial call decides whether it closes. A dead service costs
one probe per interval, not a stream of calls, and its recovery is noticed within
one interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from callagent.breaker import BreakerRegistry, CircuitState
from callagent.clock import Clock
from callagent.errors import ServiceError
from callagent.events import Emitter
from callagent.services.base import Service


@dataclass(frozen=True, slots=True)
class ProbeResult:
    service: str
    healthy: bool
    latency_ms: float | None
    error: str | None
    error_category: str | None = None


def probe(service: Service, clock: Clock) -> ProbeResult:
    """Probe one service once and time it."""
    started = clock.monotonic()
    try:
        service.probe()
    except ServiceError as error:
        elapsed = (clock.monotonic() - started) * 1000
        return ProbeResult(service.name, False, elapsed, str(error), error.category)
    elapsed = (clock.monotonic() - started) * 1000
    return ProbeResult(service.name, True, elapsed, None)


class HealthMonitor:
    """Runs probes every ``interval_s`` for breakers that wait on one."""

    def __init__(
        self,
        services: Mapping[str, Service],
        breakers: BreakerRegistry,
        clock: Clock,
        events: Emitter,
        interval_s: float,
        *,
        on_result: Callable[[ProbeResult], None] | None = None,
    ) -> None:
        self._services = services
        self._breakers = breakers
        self._clock = clock
        self._events = events
        self.interval_s = interval_s
        self._on_result = on_result
        self._next = clock.monotonic() + interval_s
        self.probes_by_service: dict[str, int] = {}
        self.probe_failures_by_service: dict[str, int] = {}

    def next_due(self) -> float:
        """Clock time of the next tick."""
        return self._next

    def run_due(self) -> None:
        """Run the tick if its time has come; cheap to call often."""
        now = self._clock.monotonic()
        if now < self._next:
            return
        # Ticks stay on their grid even when a probe is slow, so the schedule is
        # the same for the same settings whatever the services do.
        missed = int((now - self._next) // self.interval_s) + 1
        self._next += missed * self.interval_s
        for breaker in self._breakers:
            if breaker.state is CircuitState.OPEN and breaker.recovery_due():
                self._probe(breaker.name)

    def _probe(self, name: str) -> None:
        service = self._services.get(name)
        if service is None:
            return
        self.probes_by_service[name] = self.probes_by_service.get(name, 0) + 1
        result = probe(service, self._clock)
        breaker = self._breakers.get(name)
        if result.healthy:
            breaker.probe_succeeded()
            self._events.emit(
                "health_check_passed",
                service=name,
                level="INFO",
                duration_ms=round(result.latency_ms or 0.0, 1),
            )
        else:
            failures = self.probe_failures_by_service
            failures[name] = failures.get(name, 0) + 1
            self._events.emit(
                "health_check_failed",
                service=name,
                error_category=result.error_category,
                level="WARNING",
                message=result.error,
                duration_ms=round(result.latency_ms or 0.0, 1),
            )
        if self._on_result is not None:
            self._on_result(result)
