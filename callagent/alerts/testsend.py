"""``callagent alerts test``: one test notification through each channel, on demand.

Each channel gets a single attempt, with no retry and no breaker: whoever runs the
test wants the channel's own answer now, not after a backoff schedule hides it. A
live channel that cannot even be built (a secret missing from the environment) is a
failed result naming the variable, so the other channels are still tried. Every
attempt is a line in ``logs/alerts.jsonl``, like any other notification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callagent.alerts.channels import CHANNEL_NAMES, Channel, build_channel
from callagent.alerts.manager import AlertLog
from callagent.alerts.model import Alert, Cause, Notification, Severity
from callagent.clock import Clock, SystemClock
from callagent.errors import CallAgentError, InputError
from callagent.settings import Settings


@dataclass(frozen=True, slots=True)
class ChannelTestResult:
    """What became of the test notification on one channel."""

    channel: str
    #: ``mock`` (written to alerts.jsonl only) or ``live``.
    mode: str
    delivered: bool
    #: Why it was not delivered; None when it was.
    error: str | None
    duration_ms: float


def send_test(
    settings: Settings,
    *,
    channel: str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> list[ChannelTestResult]:
    """Send one test notification through each channel, or only ``channel``.

    Raises InputError for an unknown channel name; every other problem is a result.
    """
    if channel is not None and channel not in CHANNEL_NAMES:
        known = ", ".join(CHANNEL_NAMES)
        raise InputError(f"--channel: unknown channel {channel!r} (known: {known})")
    names = CHANNEL_NAMES if channel is None else (channel,)
    clock = clock if clock is not None else SystemClock()
    notification = build_test_notification(clock)
    log = AlertLog(Path(settings.logging.dir) / "alerts.jsonl")
    try:
        return [
            _try(
                name, settings, environ, notification=notification, clock=clock, log=log
            )
            for name in names
        ]
    finally:
        log.close()


def build_test_notification(clock: Clock) -> Notification:
    """The notification a test sends: plainly a test, about no real service."""
    alert = Alert(
        service="callagent",
        cause=Cause.TEST,
        severity=Severity.WARNING,
        title="callagent: test notification",
        detail=(
            "This is a test sent by `callagent alerts test`. If you can read it, "
            "this channel will reach you when a service of the campaign fails."
        ),
        starts_at=clock.now(),
    )
    return Notification.of(alert, "firing", alert.detail, alert.starts_at)


def _try(
    name: str,
    settings: Settings,
    environ: Mapping[str, str] | None,
    *,
    notification: Notification,
    clock: Clock,
    log: AlertLog,
) -> ChannelTestResult:
    configured_mode: str = getattr(settings.alerts.channels, name).mode
    started = clock.monotonic()
    built: Channel | None = None
    error: str | None = None
    try:
        built = build_channel(name, settings.alerts, environ)
        built.send(notification)
    except CallAgentError as exc:
        error = str(exc)
    finally:
        if built is not None:
            built.close()
    elapsed_ms = round((clock.monotonic() - started) * 1000, 1)
    log.write(
        notification,
        channel=name,
        mode=configured_mode,
        delivery="sent" if error is None else "failed",
        error=error,
    )
    return ChannelTestResult(name, configured_mode, error is None, error, elapsed_ms)
