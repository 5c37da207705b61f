"""The alert policy: one notification per incident, repeats spaced out, resolves sent.

Modelled on Prometheus Alertmanager's grouping. An alert is identified by its labels
(service, cause, severity); triggers with the same labels belong to one incident:

- a new incident waits ``group_wait_s`` before its first notification, so a breaker
  that opens and closes again within that window (a flap) pages nobody;
- while it fires, further triggers only count affected calls; a reminder goes out no
  sooner than ``repeat_interval_s`` after the last notification, and for failed calls
  only if more calls failed since;
- a service down for ``unavailable_after_s`` raises one more incident, once per
  outage;
- an incident that starts again within ``flap_window_s`` of its last notification
  (a breaker that keeps reopening, say because one endpoint of a service refuses
  the key) waits until that window has passed: a flapping service pages a few times
  an hour, not once a minute;
- when the service's breaker closes, its incidents resolve and channels that want it
  (``send_resolved``) get a resolve notice; an incident that outlived its group wait
  but had not been sent yet is sent first, so no resolve arrives for an unheard alert;
- when the campaign ends, incidents still waiting out ``group_wait_s`` are sent at
  once: nobody will be around to flush them later.

Every notification, sent, failed or suppressed, is a line in ``logs/alerts.jsonl``
and an ``alert_*`` event; a failing channel is logged and never stops the campaign.
Getting a notification to a live channel (retries, its breaker, a worker thread on
the real clock) is :mod:`callagent.alerts.delivery`'s job. On a virtual clock the
sends run inline, and their retry waits are spent on a timeline of their own: a dead
channel must not hold up the simulated calls any more than it holds up real ones.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from callagent.alerts.channels import Channel
from callagent.alerts.delivery import Delivery
from callagent.alerts.model import Alert, Cause, Notification, Severity
from callagent.breaker import CircuitState, Transition
from callagent.clock import Clock, VirtualClock
from callagent.errors import ServiceError
from callagent.events import Emitter, format_timestamp
from callagent.settings import AlertsSettings, BreakerSettings, RetrySettings


class AlertLog:
    """``logs/alerts.jsonl``: one line per notification, whatever became of it."""

    def __init__(self, path: Path, *, run_id: str | None = None) -> None:
        self._run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def write(
        self,
        notification: Notification,
        *,
        channel: str | None,
        mode: str | None,
        delivery: str,
        error: str | None = None,
    ) -> None:
        line: dict[str, Any] = {
            "logged_at": format_timestamp(notification.at),
            # The file is appended to across runs, as system.log is.
            "run_id": self._run_id,
            "delivery": delivery,
            "channel": channel,
            "mode": mode,
            "error": error,
            **notification.as_payload(),
        }
        with self._lock:
            self._file.write(json.dumps(line, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._file.close()


@dataclass(slots=True)
class _Incident:
    alert: Alert
    opened: float
    last_sent: float | None = None
    #: Not announced before this clock time: the same incident was notified too
    #: recently, and a breaker that keeps reopening must not page every time.
    not_before: float = 0.0
    #: ``alert.affected_calls`` when it was last sent.
    affected_when_sent: int = 0


@dataclass(slots=True)
class _Outage:
    """A service whose breaker left CLOSED and has not come back."""

    since: float
    since_at: datetime
    escalated: bool = False


class AlertManager:
    """Turns triggers into notifications, per the policy above."""

    def __init__(
        self,
        settings: AlertsSettings,
        channels: list[Channel],
        clock: Clock,
        events: Emitter,
        log: AlertLog | None = None,
        *,
        retry: RetrySettings | None = None,
        breaker: BreakerSettings | None = None,
        drain_timeout_s: float = 10.0,
    ) -> None:
        """Set up the policy and the delivery to ``channels``.

        ``retry`` and ``breaker`` are the top-level settings of those names; each
        live channel's delivery uses them. ``drain_timeout_s`` bounds how long the
        end of a run (:meth:`flush`, then :meth:`close`) waits for queued sends.
        """
        self._settings = settings
        self._channels = channels
        self._clock = clock
        self._events = events
        self._log = log
        self._incidents: dict[str, _Incident] = {}
        #: When each fingerprint was last notified, firing or resolved.
        self._last_notified: dict[str, float] = {}
        self._outages: dict[str, _Outage] = {}
        self._lock = threading.RLock()
        self._count_lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.suppressed = 0
        virtual = isinstance(clock, VirtualClock)
        send_clock: Clock = _SideTimeline(clock) if virtual else clock
        self._delivery = Delivery(
            channels,
            send_clock,
            events,
            self._delivered,
            retry=retry if retry is not None else RetrySettings(),
            breaker=breaker if breaker is not None else BreakerSettings(),
            background=not virtual,
            drain_timeout_s=drain_timeout_s,
        )

    # Triggers -----------------------------------------------------------------

    def on_transition(self, transition: Transition) -> None:
        """Breaker listener: opening fires, closing resolves."""
        service = transition.service
        if transition.new is CircuitState.OPEN:
            with self._lock:
                if service not in self._outages:
                    self._outages[service] = _Outage(
                        self._clock.monotonic(), self._clock.now()
                    )
            cause = _describe_cause(transition.error)
            self.fire(
                service,
                Cause.CIRCUIT_OPEN,
                Severity.CRITICAL,
                f"{service}: circuit opened ({cause})",
                f"Calls that need {service} are deferred and will be retried once it "
                f"recovers; health probes run every few seconds. Reason: "
                f"{transition.reason}.",
            )
        elif transition.new is CircuitState.CLOSED:
            with self._lock:
                self._outages.pop(service, None)
            self.resolve(service)

    def call_failed(self, service: str, error: ServiceError, call_id: str) -> None:
        """A call failed for good: its contact will not be called again."""
        self.fire(
            service,
            Cause.CALL_FAILED,
            Severity.WARNING,
            f"{service}: calls failing permanently ({type(error).__name__})",
            f"Call {call_id} failed for good: {error}. The contact is marked failed "
            f"and will not be retried; the campaign goes on with the next contact.",
            labels={"error": type(error).__name__},
        )

    def affected(self, service: str) -> None:
        """A call was skipped or deferred because ``service`` is down."""
        with self._lock:
            for incident in self._incidents.values():
                alert = incident.alert
                if alert.service == service and alert.cause is not Cause.CALL_FAILED:
                    alert.affected_calls += 1

    def fire(
        self,
        service: str,
        cause: Cause,
        severity: Severity,
        title: str,
        detail: str,
        *,
        labels: dict[str, str] | None = None,
    ) -> None:
        now = self._clock.monotonic()
        alert = Alert(
            service=service,
            cause=cause,
            severity=severity,
            title=title,
            detail=detail,
            starts_at=self._clock.now(),
            labels=labels or {},
            affected_calls=1 if cause is Cause.CALL_FAILED else 0,
        )
        with self._lock:
            incident = self._incidents.get(alert.fingerprint)
            if incident is None:
                last = self._last_notified.get(alert.fingerprint)
                not_before = (
                    last + self._settings.flap_window_s if last is not None else 0.0
                )
                incident = _Incident(alert, now, not_before=not_before)
                self._incidents[alert.fingerprint] = incident
                if self._settings.group_wait_s == 0 and now >= not_before:
                    self._notify(incident, "firing")
                return
            if cause is Cause.CALL_FAILED:
                incident.alert.affected_calls += 1
            incident.alert.detail = detail
            notification = Notification.of(
                incident.alert, "firing", detail, self._clock.now()
            )
            reason = (
                "grouped: its incident is waiting out the group wait"
                if incident.last_sent is None
                else "duplicate of a firing incident"
            )
            self._suppress(notification, reason)

    def resolve(self, service: str) -> None:
        """The service is healthy again: close its outage incidents."""
        now = self._clock.monotonic()
        with self._lock:
            for key, incident in list(self._incidents.items()):
                alert = incident.alert
                if alert.service != service or alert.cause is Cause.CALL_FAILED:
                    continue
                del self._incidents[key]
                if incident.last_sent is None:
                    flapping = now < incident.not_before
                    if flapping or now - incident.opened < self._settings.group_wait_s:
                        alert.resolved_at = self._clock.now()
                        body = "Recovered before it was announced: not sent."
                        reason = "flapping: reopened soon after its last notice"
                        self._suppress(
                            Notification.of(alert, "resolved", body, alert.resolved_at),
                            reason if flapping else "flap",
                        )
                        continue
                    # Nothing ticked since its group wait ended: say it fired first,
                    # or the resolve would be news of an alert nobody saw.
                    self._notify(incident, "firing")
                alert.resolved_at = self._clock.now()
                self._notify(incident, "resolved")

    # Time-driven ---------------------------------------------------------------

    def tick(self) -> None:
        """Send what waited out its group wait, repeats that are due, escalations."""
        now = self._clock.monotonic()
        with self._lock:
            for service, outage in list(self._outages.items()):
                down_for = now - outage.since
                if (
                    not outage.escalated
                    and down_for >= self._settings.unavailable_after_s
                ):
                    outage.escalated = True
                    self._fire_unavailable(service, outage, down_for)
            for incident in list(self._incidents.values()):
                if incident.last_sent is None:
                    if now >= self._first_due(incident):
                        self._notify(incident, "firing")
                elif (
                    now - incident.last_sent >= self._settings.repeat_interval_s
                    and _still_news(incident)
                ):
                    self._notify(incident, "firing")

    def next_due(self) -> float | None:
        """Clock time of the next thing ``tick`` would do, if any."""
        candidates: list[float] = []
        with self._lock:
            for outage in self._outages.values():
                if not outage.escalated:
                    candidates.append(outage.since + self._settings.unavailable_after_s)
            for incident in self._incidents.values():
                if incident.last_sent is None:
                    candidates.append(self._first_due(incident))
                elif _still_news(incident):
                    candidates.append(
                        incident.last_sent + self._settings.repeat_interval_s
                    )
        return min(candidates) if candidates else None

    def _first_due(self, incident: _Incident) -> float:
        return max(incident.opened + self._settings.group_wait_s, incident.not_before)

    def flush(self) -> None:
        """The campaign is over: send incidents still inside their group wait.

        Returns once every queued delivery is done, or the drain limit ran out, so
        that the sent and failed counters are final for the report.
        """
        with self._lock:
            for incident in list(self._incidents.values()):
                if incident.last_sent is None:
                    self._notify(incident, "firing")
        self._delivery.wait_idle()

    def close(self) -> None:
        """Drain deliveries (bounded in time), then release channels and the log."""
        self._delivery.close()
        for channel in self._channels:
            channel.close()
        if self._log is not None:
            self._log.close()

    # Delivery ------------------------------------------------------------------

    def _fire_unavailable(self, service: str, outage: _Outage, down_for: float) -> None:
        minutes = down_for / 60
        self.fire(
            service,
            Cause.UNAVAILABLE_TOO_LONG,
            Severity.CRITICAL,
            f"{service}: unavailable for {minutes:.0f} min",
            f"{service} has been unavailable since {format_timestamp(outage.since_at)} "
            f"({minutes:.1f} min). Calls that need it are deferred; probes continue "
            f"and the campaign resumes by itself when it recovers.",
        )

    def _notify(self, incident: _Incident, status: str) -> None:
        incident.last_sent = self._clock.monotonic()
        self._last_notified[incident.alert.fingerprint] = incident.last_sent
        incident.affected_when_sent = incident.alert.affected_calls
        alert = incident.alert
        at = alert.resolved_at if status == "resolved" and alert.resolved_at else None
        body = _body(alert, status)
        notification = Notification.of(alert, status, body, at or self._clock.now())
        for channel in self._channels:
            if status == "resolved" and not channel.send_resolved:
                continue
            self._delivery.submit(channel, notification)

    def _delivered(
        self, channel: Channel, notification: Notification, error: str | None
    ) -> None:
        """Delivery's report: counted and logged here, on whichever thread sent it."""
        with self._count_lock:
            if error is None:
                self.sent += 1
            else:
                self.failed += 1
        self._record(
            notification, channel, "sent" if error is None else "failed", error
        )

    def _suppress(self, notification: Notification, reason: str) -> None:
        with self._count_lock:
            self.suppressed += 1
        if self._log is not None:
            self._log.write(
                notification,
                channel=None,
                mode=None,
                delivery="suppressed",
                error=reason,
            )
        self._events.emit(
            "alert_suppressed",
            service=notification.service,
            level="INFO",
            message=f"{notification.title} ({reason})",
        )

    def _record(
        self,
        notification: Notification,
        channel: Channel,
        delivery: str,
        error: str | None,
    ) -> None:
        if self._log is not None:
            self._log.write(
                notification,
                channel=channel.name,
                mode=channel.mode,
                delivery=delivery,
                error=error,
            )
        self._events.emit(
            "alert_sent" if delivery == "sent" else "alert_failed",
            service=notification.service,
            level="WARNING" if delivery == "sent" else "ERROR",
            message=notification.title if error is None else f"{error}",
            alert_channel=channel.name,
        )


class _SideTimeline:
    """A virtual clock's time plus the waits spent on this timeline alone.

    Inline deliveries wait out their backoff here, so the campaign's clock does not
    move while a dead channel is retried. This timeline never runs behind the
    campaign's, so the channels' breakers and backoffs on it stay consistent.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waited = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self._clock.monotonic() + self._waited

    def now(self) -> datetime:
        return self._clock.now() + timedelta(seconds=self._waited)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._waited += seconds

    def wait_for(self, event: threading.Event, seconds: float) -> bool:
        # As on the virtual clock: nothing else moves this timeline, so the wait
        # is a sleep and the event is looked at when it is over.
        self.sleep(seconds)
        return event.is_set()


def _still_news(incident: _Incident) -> bool:
    """Is a reminder worth sending? An outage is, while it lasts; failed calls only
    when more have failed since the last notification."""
    if incident.alert.cause is not Cause.CALL_FAILED:
        return True
    return incident.alert.affected_calls > incident.affected_when_sent


def _describe_cause(error: ServiceError | None) -> str:
    if error is None:
        return "trial call failed"
    return error.code or type(error).__name__


def _body(alert: Alert, status: str) -> str:
    if status == "firing":
        lines = [alert.detail]
    else:
        lines = [
            f"{alert.service} is healthy again; its circuit is closed and deferred "
            "calls are being completed."
        ]
    lines.append(f"Since: {format_timestamp(alert.starts_at)}")
    if alert.resolved_at is not None:
        lines.append(f"Resolved: {format_timestamp(alert.resolved_at)}")
    lines.append(f"Calls affected: {alert.affected_calls}")
    return "\n".join(lines)
