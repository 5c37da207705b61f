"""The orchestrator: works through the call queue, one contact at a time.

A call has five steps::

    CRM lookup ─▶ LLM script ─▶ ElevenLabs speech ─▶ dial ─▶ CRM outcome

Script and audio are prepared before the dial, so an LLM or TTS outage never leaves a
person on a silent line; the dial is journalled before it happens, so a later attempt
after a crash or a CRM failure only records the outcome and never dials again.

Each step goes through its service's :class:`~callagent.retry.Guard`. What happens
when one fails:

- a request-level permanent error (``InvalidPayload``): the contact fails for good and
  the campaign moves on;
- a service-wide error (exhausted transient retries, a rejected key, spent quota): the
  call fails, the contact is deferred and called again once the service is back, up
  to ``campaign.max_call_attempts`` calls that reached a service;
- a breaker that is not admitting calls: the call is skipped before anything is sent,
  costs no attempt, and the contact is deferred.

When only deferred contacts remain, the orchestrator waits on the clock, letting the
health monitor probe, until the breakers admit calls again or ``campaign.max_wait_s``
passes; then what is left stays deferred for the next run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from callagent.alerts import AlertManager
from callagent.breaker import BreakerRegistry, CircuitState
from callagent.clock import Clock, Stopped
from callagent.contacts import mask_phone
from callagent.errors import CircuitOpenError, ServiceError, TransientError
from callagent.events import Emitter
from callagent.health import HealthMonitor
from callagent.journal import ContactState, Job, Journal, Stage
from callagent.retry import Guard
from callagent.services.base import CallOutcome, ServiceSet
from callagent.settings import CampaignSettings

#: The services a call still needs, by how far it has got.
_NEEDS = {
    Stage.DIAL: ("crm", "llm", "elevenlabs"),
    Stage.RECORD: ("crm",),
}


@dataclass(slots=True)
class WaitState:
    """What the orchestrator is waiting for, for the live view's countdown."""

    reason: str
    until: float


class Orchestrator:
    """Runs a campaign from its journal to the end, or until it must stop."""

    def __init__(
        self,
        *,
        journal: Journal,
        services: ServiceSet,
        guards: dict[str, Guard],
        breakers: BreakerRegistry,
        health: HealthMonitor,
        alerts: AlertManager,
        events: Emitter,
        clock: Clock,
        settings: CampaignSettings,
        on_wait: Callable[[WaitState | None], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._journal = journal
        self._services = services
        self._guards = guards
        self._breakers = breakers
        self._health = health
        self._alerts = alerts
        self._events = events
        self._clock = clock
        self._settings = settings
        self._on_wait = on_wait
        self._stop = stop if stop is not None else threading.Event()
        self.gave_up_waiting = False

    def run(self) -> None:
        """Process every pending contact, then the deferred ones as services recover."""
        if self._settings.workers > 1:
            self._run_parallel(self._settings.workers)
        else:
            self._run_serial()

    def _run_serial(self) -> None:
        while True:
            job = self._journal.next_pending()
            if job is not None:
                self._tick()
                self._process(job)
            elif not self._next_round():
                return

    def _next_round(self) -> bool:
        """The queue is empty: requeue deferred contacts once services admit calls.

        False when the campaign is over: nothing was deferred, or the services did
        not recover within ``max_wait_s``.
        """
        if self._journal.deferred_count() == 0:
            return False
        if not self._wait_for_services():
            self.gave_up_waiting = True
            return False
        self._journal.release_deferred()
        return True

    def _run_parallel(self, workers: int) -> None:
        """Up to ``workers`` calls in flight, each on its own thread.

        This thread dispatches, runs health checks and alert timers, and waits for
        the breakers when only deferred contacts are left. While a breaker is
        HALF_OPEN it lets one call through at a time: the trial decides for all.
        """
        in_flight: set[Future[None]] = set()
        with ThreadPoolExecutor(workers, thread_name_prefix="callagent-call") as pool:
            try:
                while True:
                    self._tick()
                    while len(in_flight) < workers and self._may_dispatch(in_flight):
                        job = self._journal.next_pending()
                        if job is None:
                            break
                        in_flight.add(pool.submit(self._process, job))
                    if in_flight:
                        done, in_flight = wait(
                            in_flight,
                            timeout=self._until_next_tick(),
                            return_when=FIRST_COMPLETED,
                        )
                        for future in done:
                            future.result()
                    elif not self._next_round():
                        return
            except BaseException:
                self._stop.set()
                self._drain(in_flight)
                raise

    def _may_dispatch(self, in_flight: set[Future[None]]) -> bool:
        if not in_flight:
            return True
        return not any(
            self._breakers.get(name).state is CircuitState.HALF_OPEN
            for name in _NEEDS[Stage.DIAL]
        )

    def _until_next_tick(self) -> float:
        due = self._health.next_due()
        alert_due = self._alerts.next_due()
        if alert_due is not None:
            due = min(due, alert_due)
        return min(max(due - self._clock.monotonic(), 0.01), 1.0)

    @staticmethod
    def _drain(in_flight: set[Future[None]]) -> None:
        """Let calls in flight end: each journals its contact as it stops."""
        for future in in_flight:
            try:
                future.result()
            except (Stopped, KeyboardInterrupt):
                continue

    # Waiting -------------------------------------------------------------------

    def _tick(self) -> None:
        self._health.run_due()
        self._alerts.tick()

    def _blocked_by(self, needs: tuple[str, ...]) -> str | None:
        for name in needs:
            if not self._breakers.get(name).is_admitting():
                return name
        return None

    def _wait_for_services(self) -> bool:
        """Wait until every service admits calls; False after ``max_wait_s``."""
        started = self._clock.monotonic()
        deadline = started + self._settings.max_wait_s
        try:
            while True:
                self._tick()
                blocked = self._blocked_by(_NEEDS[Stage.DIAL])
                if blocked is None:
                    return True
                now = self._clock.monotonic()
                if now >= deadline:
                    return False
                wake = min(self._health.next_due(), deadline)
                alert_due = self._alerts.next_due()
                if alert_due is not None and alert_due > now:
                    wake = min(wake, alert_due)
                if self._on_wait is not None:
                    self._on_wait(WaitState(f"waiting for {blocked} to recover", wake))
                self._clock.sleep(wake - now)
        finally:
            if self._on_wait is not None:
                self._on_wait(None)

    # One contact ---------------------------------------------------------------

    def _process(self, job: Job) -> None:
        call_id = self._journal.new_call_id()
        blocked = self._blocked_by(_NEEDS[job.stage])
        if blocked is not None:
            self._skip(job, call_id, blocked)
            return

        self._journal.start(job)
        started = self._clock.monotonic()
        self._events.emit(
            "call_started",
            call_id=call_id,
            level="INFO",
            contact=mask_phone(job.contact.phone),
            attempt=job.attempts + 1,
        )
        steps = [0]
        try:
            self._call(job, call_id, steps)
        except CircuitOpenError as refused:
            # Refused mid-call: an earlier step already reached its service.
            if steps[0]:
                job.attempts += 1
            self._skip(job, call_id, refused.service)
        except ServiceError as error:
            job.attempts += 1
            self._failed(job, call_id, error)
        except BaseException:
            self._interrupted(job)
            raise
        else:
            job.attempts += 1
            self._journal.finish(job, ContactState.COMPLETED)
            self._events.emit(
                "call_completed",
                call_id=call_id,
                level="INFO",
                contact=mask_phone(job.contact.phone),
                attempt=job.attempts,
                duration_ms=round((self._clock.monotonic() - started) * 1000, 1),
            )

    def _call(self, job: Job, call_id: str, steps: list[int]) -> None:
        """Run the steps the job still needs; ``steps`` counts those that succeeded."""
        contact = job.contact
        services = self._services
        guards = self._guards
        # Looked up again when only the outcome is left: the CRM's id is needed to
        # attach the outcome to the right record, and a lookup is cheap.
        record = guards["crm"].call(
            lambda: services.crm.lookup(contact), call_id=call_id
        )
        steps[0] += 1
        if job.stage is Stage.DIAL:
            script = guards["llm"].call(
                lambda: services.llm.write_script(contact, record), call_id=call_id
            )
            steps[0] += 1
            guards["elevenlabs"].call(
                lambda: services.tts.synthesize(call_id, script), call_id=call_id
            )
            steps[0] += 1
            # Journalled before the dial: after a crash the contact may have been
            # called, so it must not be called again.
            self._journal.mark_dialled(job, "answered")
        outcome = CallOutcome(call_id, job.outcome or "answered", "call completed")
        guards["crm"].call(
            lambda: services.crm.record_outcome(contact, record, outcome),
            call_id=call_id,
        )

    def _skip(self, job: Job, call_id: str, service: str) -> None:
        self._journal.finish(
            job, ContactState.DEFERRED, reason=f"{service} circuit not closed"
        )
        self._alerts.affected(service)
        self._events.emit(
            "call_skipped",
            call_id=call_id,
            service=service,
            level="INFO",
            contact=mask_phone(job.contact.phone),
            message=f"{service} circuit is not closed; call not placed",
        )
        self._emit_deferred(job, call_id, service)

    def _failed(self, job: Job, call_id: str, error: ServiceError) -> None:
        service_down = isinstance(error, TransientError) or error.service_wide
        if service_down and job.attempts < self._settings.max_call_attempts:
            state = ContactState.DEFERRED
        else:
            state = ContactState.FAILED
        self._journal.finish(job, state, reason=str(error))
        self._events.emit(
            "call_failed",
            call_id=call_id,
            service=error.service,
            error_category=error.category,
            retry_count=error.retry_count,
            level="ERROR",
            error=type(error).__name__,
            message=str(error),
            contact=mask_phone(job.contact.phone),
            attempt=job.attempts,
        )
        if state is ContactState.DEFERRED:
            self._alerts.affected(error.service)
            self._emit_deferred(job, call_id, error.service)
        else:
            self._alerts.call_failed(error.service, error, call_id)

    def _emit_deferred(self, job: Job, call_id: str, service: str) -> None:
        self._events.emit(
            "call_deferred",
            call_id=call_id,
            service=service,
            level="INFO",
            contact=mask_phone(job.contact.phone),
            attempt=job.attempts,
            message=f"will call again once {service} recovers",
        )

    def _interrupted(self, job: Job) -> None:
        # Only a contact that may have been dialled is "interrupted"; one stopped
        # before its dial goes back to the queue, as if never started.
        if job.stage is Stage.RECORD:
            self._journal.finish(job, ContactState.INTERRUPTED, reason="interrupted")
        else:
            self._journal.finish(job, ContactState.PENDING, reason="interrupted")
