"""A campaign run: wires clock, breakers, guards, logs, alerts and the orchestrator.

``run`` and ``simulate`` differ only in what they hand in (clock, journal, services);
everything else about a run is built here, the same way for both.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from callagent.alerts import AlertLog, AlertManager, Channel, build_channels
from callagent.breaker import BreakerRegistry, CircuitState, Transition
from callagent.clock import Clock, StoppableClock
from callagent.errors import InputError
from callagent.eventlog import EventLog, SheetsLog
from callagent.events import Event, EventBus
from callagent.health import HealthMonitor, ProbeResult
from callagent.journal import Journal
from callagent.orchestrator import Orchestrator, WaitState
from callagent.report import Report, ServiceSummary
from callagent.retry import Guard
from callagent.services.base import ServiceSet
from callagent.settings import SERVICE_NAMES, Settings
from callagent.sheets_upload import SheetUploader, build_sheet_uploader

_TRANSITION_EVENTS = {
    CircuitState.OPEN: ("circuit_opened", "ERROR"),
    CircuitState.HALF_OPEN: ("circuit_half_opened", "WARNING"),
    CircuitState.CLOSED: ("circuit_closed", "INFO"),
}


def new_run_id() -> str:
    """A run id that sorts by start time and does not collide."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


@dataclass
class Hooks:
    """Optional observers: the live view, and the journal's health bookkeeping."""

    subscribers: list[Callable[[Event], None]] = field(default_factory=list)
    on_transition: list[Callable[[Transition], None]] = field(default_factory=list)
    on_probe: Callable[[ProbeResult], None] | None = None
    on_wait: Callable[[WaitState | None], None] | None = None


class Campaign:
    """Everything one run of a campaign needs, built from settings."""

    def __init__(
        self,
        *,
        command: str,
        settings: Settings,
        clock: Clock,
        journal: Journal,
        services: ServiceSet,
        seed: int = 0,
        hooks: Hooks | None = None,
        channels: list[Channel] | None = None,
        run_id: str | None = None,
    ) -> None:
        hooks = hooks or Hooks()
        self.command = command
        self.settings = settings
        self.clock = clock
        self.journal = journal
        self.services = services
        self.run_id = run_id or new_run_id()
        self.breakers = BreakerRegistry(settings.breaker_for, clock)
        self.events = EventBus(clock, self.run_id, self._state_of)

        # Built before any log file is opened: a missing extra or key file is an
        # InputError that leaves nothing half-open.
        sheets = settings.logging.google_sheets
        self.sheet_upload: SheetUploader | None = (
            build_sheet_uploader(sheets) if sheets is not None else None
        )
        log_dir = Path(settings.logging.dir)
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.event_log = EventLog(log_dir, rotation_mb=settings.logging.rotation_mb)
            self.sheets_log = SheetsLog(log_dir)
            alert_log = AlertLog(log_dir / "alerts.jsonl", run_id=self.run_id)
        except OSError as exc:
            if self.sheet_upload is not None:
                self.sheet_upload.close()
            raise InputError(
                f"logging.dir: cannot write logs to {log_dir} ({exc.strerror})"
            ) from exc
        self.events.subscribe(self.event_log)
        self.events.subscribe(self.sheets_log)
        if self.sheet_upload is not None:
            self.events.subscribe(self.sheet_upload)
        for subscriber in hooks.subscribers:
            self.events.subscribe(subscriber)

        # Set when the campaign must stop: worker threads' backoff waits end early.
        self.stop = threading.Event()
        worker_clock = StoppableClock(clock, self.stop)
        self.guards = {
            name: Guard(
                name,
                self.breakers.get(name),
                settings.retry_for(name),
                worker_clock,
                self.events,
                rng=random.Random(f"{seed}:{name}:jitter"),
                max_concurrency=settings.services[name].max_concurrency,
            )
            for name in SERVICE_NAMES
        }
        self.alerts = AlertManager(
            settings.alerts,
            channels if channels is not None else build_channels(settings.alerts),
            clock,
            self.events,
            alert_log,
            retry=settings.retry,
            breaker=settings.circuit_breaker,
        )
        self.breakers.add_listener(self._log_transition)
        self.breakers.add_listener(self.alerts.on_transition)
        for listener in hooks.on_transition:
            self.breakers.add_listener(listener)

        self.health = HealthMonitor(
            {service.name: service for service in services.all()},
            self.breakers,
            clock,
            self.events,
            settings.health_check.interval_s,
            on_result=hooks.on_probe,
        )
        self.orchestrator = Orchestrator(
            journal=journal,
            services=services,
            guards=self.guards,
            breakers=self.breakers,
            health=self.health,
            alerts=self.alerts,
            events=self.events,
            clock=clock,
            settings=settings.campaign,
            on_wait=hooks.on_wait,
            stop=self.stop,
        )
        self._started_at = clock.now()
        self._started = clock.monotonic()

    def _state_of(self, service: str) -> str | None:
        state = self.breakers.state_of(service)
        return state.value if state is not None else None

    def _log_transition(self, transition: Transition) -> None:
        name, level = _TRANSITION_EVENTS[transition.new]
        error = transition.error
        self.events.emit(
            name,
            service=transition.service,
            error_category=error.category if error is not None else None,
            level=level,
            error=type(error).__name__ if error is not None else None,
            message=f"{transition.old.value} -> {transition.new.value}: "
            f"{transition.reason}",
        )

    def run(self) -> Report:
        """Run to the end; on Ctrl-C, close the books and raise CampaignInterrupted."""
        total = sum(self.journal.counts().values())
        self.events.emit(
            "campaign_started",
            level="INFO",
            message=f"{self.command} campaign {self.journal.campaign!r}: "
            f"{total} contacts",
        )
        interrupted = False
        try:
            self.orchestrator.run()
        except KeyboardInterrupt:
            interrupted = True
        self.alerts.flush()
        report = self.report(interrupted=interrupted)
        contacts = report.contacts
        self.events.emit(
            "campaign_finished",
            level="INFO" if report.exit_code() == 0 else "WARNING",
            message=(
                f"completed {contacts['completed']}, failed {contacts['failed']}, "
                f"deferred {contacts['deferred']}, invalid {contacts['invalid']}, "
                f"interrupted {contacts['interrupted']}"
            ),
            duration_ms=round(report.duration_s * 1000, 1),
        )
        if interrupted:
            raise CampaignInterrupted(report)
        return report

    def report(self, *, interrupted: bool = False) -> Report:
        services = {}
        for name, guard in self.guards.items():
            breaker = guard.breaker
            services[name] = ServiceSummary(
                # Probes are requests too: the report counts what the service saw.
                requests=guard.stats.requests
                + self.health.probes_by_service.get(name, 0),
                failures=guard.stats.failures
                + self.health.probe_failures_by_service.get(name, 0),
                retries=guard.stats.retries,
                times_opened=breaker.times_opened,
                circuit_state=breaker.state.value,
            )
        notes = []
        if self.orchestrator.gave_up_waiting:
            notes.append(
                f"Stopped waiting after {self.settings.campaign.max_wait_s:g} s for "
                "services to recover; deferred contacts are called on the next run."
            )
        return Report(
            run_id=self.run_id,
            command=self.command,
            campaign=self.journal.campaign,
            started_at=self._started_at,
            finished_at=self.clock.now(),
            duration_s=self.clock.monotonic() - self._started,
            contacts=Report.contact_counts(self.journal.counts()),
            services=services,
            alerts={
                "sent": self.alerts.sent,
                "failed": self.alerts.failed,
                "suppressed": self.alerts.suppressed,
            },
            interrupted=interrupted,
            notes=notes,
        )

    def close(self) -> None:
        self.alerts.close()
        self.event_log.close()
        self.sheets_log.close()
        if self.sheet_upload is not None:
            # After the alerts: their delivery failures at close are rows too.
            self.sheet_upload.close()
        self.services.close()


class CampaignInterrupted(Exception):
    """Ctrl-C stopped the campaign; the books are closed and the report is ready."""

    def __init__(self, report: Report) -> None:
        super().__init__("campaign interrupted")
        self.report = report
