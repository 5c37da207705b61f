"""The alert policy on a virtual clock: what pages whom, how often, and what it logs."""

from __future__ import annotations

import base64
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from callagent.alerts.channels import Channel, MockChannel
from callagent.alerts.email import SmtpChannel
from callagent.alerts.manager import AlertLog, AlertManager
from callagent.alerts.model import Cause, Notification, Severity
from callagent.alerts.telegram import TelegramChannel
from callagent.alerts.webhook import WebhookChannel, decode_secret
from callagent.breaker import CircuitBreaker, CircuitState
from callagent.clock import VIRTUAL_EPOCH, VirtualClock
from callagent.errors import InvalidPayload, ServiceUnavailable
from callagent.events import EventBus
from callagent.settings import (
    AlertsSettings,
    BreakerSettings,
    EmailChannel,
    RetrySettings,
)
from callagent.settings import TelegramChannel as TelegramConfig
from callagent.settings import WebhookChannel as WebhookConfig
from tests.conftest import Recorder

TOKEN = "7000000002:AAF-policy-token-never-in-logs_q7"
SECRET_KEY = b"policy-webhook-key-never-in-logs"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()
LOG = Path("logs/alerts.jsonl")


def channels() -> list[Channel]:
    """Email and webhook want resolve notices; Telegram does not."""
    return [
        MockChannel("email"),
        MockChannel("telegram", send_resolved=False),
        MockChannel("webhook"),
    ]


class Rig:
    """An alert manager listening to one service's breaker, ticked like a campaign."""

    def __init__(
        self,
        clock: VirtualClock,
        recorder: Recorder,
        *,
        settings: AlertsSettings | None = None,
        to: list[Channel] | None = None,
        recovery_timeout_s: float = 60,
        retry: RetrySettings | None = None,
    ) -> None:
        self.clock = clock
        self.bus = EventBus(clock, "run-policy")
        self.bus.subscribe(recorder)
        self.channels = to if to is not None else channels()
        self.manager = AlertManager(
            settings if settings is not None else AlertsSettings(),
            self.channels,
            clock,
            self.bus,
            AlertLog(LOG),
            retry=retry,
        )
        self.breaker = CircuitBreaker(
            "elevenlabs",
            BreakerSettings(recovery_timeout_s=recovery_timeout_s),
            clock,
            probe_driven=False,
            listeners=(self.manager.on_transition,),
        )

    def open(self) -> None:
        for _ in range(4):
            ticket = self.breaker.acquire()
            self.breaker.record_failure(ticket, _down())
        assert self.breaker.state is CircuitState.OPEN

    def trial(self, *, ok: bool) -> None:
        ticket = self.breaker.acquire()
        if ok:
            self.breaker.record_success(ticket)
        else:
            self.breaker.record_failure(ticket, _down())

    def run_until(self, moment: float) -> None:
        """Advance to ``moment`` ticking every virtual second, as the campaign does."""
        while True:
            self.manager.tick()
            # A synchronous delivery's retry waits may have moved the clock past it.
            remaining = moment - self.clock.elapsed
            if remaining <= 0:
                return
            self.clock.advance(min(1.0, remaining))

    def outage(self, start: float, trials_failing: int) -> None:
        """Open at ``start``; trials every recovery timeout fail, then one closes it."""
        self.run_until(start)
        self.open()
        timeout = self.breaker.settings.recovery_timeout_s
        for number in range(1, trials_failing + 2):
            self.run_until(start + number * timeout)
            self.trial(ok=number > trials_failing)
        assert self.breaker.state is CircuitState.CLOSED

    def sent(self, name: str, status: str | None = None) -> list[Notification]:
        [channel] = [c for c in self.channels if c.name == name]
        assert isinstance(channel, MockChannel)
        return [n for n in channel.sent if status is None or n.status == status]

    def close(self) -> None:
        self.manager.flush()
        self.manager.close()


def _down() -> ServiceUnavailable:
    return ServiceUnavailable("elevenlabs", "service unavailable", status=503)


def log_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LOG.read_text(encoding="utf-8").splitlines()]


class TestGrouping:
    def test_three_outages_in_an_hour_page_once_each_and_resolve_once_each(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """Three open/close cycles: 3 firings per channel, resolves where wanted."""
        rig = Rig(clock, recorder)

        for start in (0, 1200, 2400):
            rig.outage(start, trials_failing=2)
        rig.run_until(3600)
        rig.close()

        for name in ("email", "telegram", "webhook"):
            assert len(rig.sent(name, "firing")) == 3
        assert len(rig.sent("email", "resolved")) == 3
        assert len(rig.sent("webhook", "resolved")) == 3
        assert rig.sent("telegram", "resolved") == []
        assert rig.manager.sent == 3 * 3 + 2 * 3
        # Each failed trial reopened the breaker: grouped into its incident, not sent.
        assert rig.manager.suppressed == 3 * 2
        assert rig.manager.failed == 0
        assert len(recorder.named("alert_sent")) == rig.manager.sent
        firing = rig.sent("email", "firing")
        assert [(n.at - VIRTUAL_EPOCH).total_seconds() for n in firing] == [
            30,
            1230,
            2430,
        ]

    def test_a_breaker_reopening_every_minute_pages_once_per_flap_window(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """Open 60 s, closed 1 s, for 30 min: one firing and resolve per 10 min."""
        rig = Rig(clock, recorder)

        # Each cycle: open at t, trial at t + 60 succeeds, reopen at t + 61.
        for cycle in range(30):
            rig.outage(cycle * 61, trials_failing=0)
        rig.run_until(30 * 61)
        rig.close()

        firing = rig.sent("email", "firing")
        # Notices at 30 s (group wait) and 60 s (resolve). The 600 s window then
        # holds every reopening back until 660 s, when the cycle opened at 610 s is
        # announced and resolves at 670 s; the next window ends at 1270 s.
        assert [(n.at - VIRTUAL_EPOCH).total_seconds() for n in firing] == [
            30, 660, 1270,
        ]  # fmt: skip
        assert len(rig.sent("email", "resolved")) == 3
        assert rig.manager.suppressed == 30 - 3
        reasons = {line["error"] for line in log_lines() if line["delivery"] != "sent"}
        assert reasons == {"flapping: reopened soon after its last notice"}

    def test_a_flap_inside_the_group_wait_pages_nobody(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """Open then closed within group_wait_s: nothing sent, one suppressed line."""
        rig = Rig(clock, recorder, recovery_timeout_s=10)

        rig.outage(0, trials_failing=0)
        rig.run_until(600)
        rig.close()

        assert rig.manager.sent == 0
        assert [
            (line["status"], line["delivery"], line["error"]) for line in log_lines()
        ] == [("resolved", "suppressed", "flap")]
        [event] = recorder.named("alert_suppressed")
        assert event.service == "elevenlabs"

    def test_a_resolve_never_precedes_its_firing(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """Closed after the group wait but before any tick: firing, then resolved."""
        rig = Rig(clock, recorder)

        rig.open()
        clock.advance(60)
        rig.trial(ok=True)
        rig.close()

        assert [n.status for n in rig.sent("email")] == ["firing", "resolved"]
        assert [n.status for n in rig.sent("telegram")] == ["firing"]

    def test_open_incidents_are_sent_when_the_campaign_ends(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """flush() sends an incident still inside its group wait."""
        rig = Rig(clock, recorder)

        rig.open()
        rig.run_until(5)
        rig.close()

        assert len(rig.sent("email", "firing")) == 1


class TestRepeats:
    def test_a_long_outage_repeats_no_sooner_than_the_repeat_interval(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """A 2.5 h outage: reminders an hour apart, one resolve at the end."""
        settings = AlertsSettings(unavailable_after_s=10**6)
        rig = Rig(clock, recorder, settings=settings)

        rig.outage(0, trials_failing=149)
        rig.close()

        firing = rig.sent("email", "firing")
        assert len(firing) == 3
        gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(firing)]
        assert gaps == [3600, 3600]
        assert len(rig.sent("email", "resolved")) == 1

    def test_unavailable_too_long_fires_once_per_outage(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """Past unavailable_after_s a second incident fires once, then resolves."""
        rig = Rig(clock, recorder)

        rig.outage(0, trials_failing=14)
        rig.close()

        causes = [(n.cause, n.status) for n in rig.sent("webhook")]
        assert causes == [
            ("circuit_open", "firing"),
            ("unavailable_too_long", "firing"),
            ("circuit_open", "resolved"),
            ("unavailable_too_long", "resolved"),
        ]
        [escalation] = [
            n for n in rig.sent("email", "firing") if n.cause == "unavailable_too_long"
        ]
        assert escalation.title == "elevenlabs: unavailable for 5 min"

    def test_failed_calls_are_repeated_only_when_more_have_failed(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """A call failure reminds after the interval only if more calls failed since."""
        rig = Rig(clock, recorder)
        error = InvalidPayload("llm", "prompt rejected", status=400)

        rig.manager.call_failed("llm", error, "CALL_000001")
        rig.run_until(2 * 3600 + 60)
        quiet = len(rig.sent("email", "firing"))
        rig.manager.call_failed("llm", error, "CALL_000002")
        rig.run_until(3 * 3600 + 120)
        rig.close()

        assert quiet == 1
        firing = rig.sent("email", "firing")
        assert len(firing) == 2
        assert firing[1].affected_calls == 2


class TestFailingChannels:
    def test_every_channel_down_is_logged_and_never_raised(
        self,
        clock: VirtualClock,
        recorder: Recorder,
        httpserver: HTTPServer,
        closed_port: int,
        stalled_port: int,
    ) -> None:
        """SMTP refused, Telegram 500, webhook stalled: three alert_failed, no raise."""
        httpserver.expect_request(f"/bot{TOKEN}/sendMessage").respond_with_json(
            {"ok": False, "error_code": 500, "description": "Internal Server Error"},
            status=500,
        )
        dead: list[Channel] = [
            SmtpChannel(EmailChannel(mode="live", host="127.0.0.1", port=closed_port)),
            TelegramChannel(
                TelegramConfig(
                    mode="live", base_url=httpserver.url_for("/").rstrip("/")
                ),
                TOKEN,
            ),
            WebhookChannel(
                WebhookConfig(
                    mode="live",
                    url=f"http://127.0.0.1:{stalled_port}/hook",
                    timeout_s=0.2,
                ),
                SECRET_KEY,
            ),
        ]
        rig = Rig(clock, recorder, to=dead, retry=RetrySettings(max_retries=1))

        rig.open()
        rig.run_until(31)
        rig.close()

        assert rig.manager.sent == 0
        assert rig.manager.failed == 3
        failed = recorder.named("alert_failed")
        assert {event.extra["alert_channel"] for event in failed} == {
            "email",
            "telegram",
            "webhook",
        }
        by_channel = {e.extra["alert_channel"]: e.extra["message"] for e in failed}
        assert "Connection refused" in by_channel["email"]
        assert "500" in by_channel["telegram"]
        assert "no answer in time" in by_channel["webhook"]
        lines = [line for line in log_lines() if line["delivery"] == "failed"]
        assert len(lines) == rig.manager.failed
        # One retry each, waited on the virtual clock.
        assert len(recorder.named("retry_scheduled")) == rig.manager.failed

    def test_a_dead_channel_fails_fast_once_its_breaker_opens(
        self, clock: VirtualClock, recorder: Recorder, closed_port: int
    ) -> None:
        """After one notification's attempts the channel's breaker refuses at once."""
        dead: list[Channel] = [
            SmtpChannel(EmailChannel(mode="live", host="127.0.0.1", port=closed_port))
        ]
        rig = Rig(
            clock,
            recorder,
            to=dead,
            settings=AlertsSettings(group_wait_s=0),
        )

        rig.manager.fire("crm", Cause.CIRCUIT_OPEN, Severity.CRITICAL, "crm down", "x")
        rig.manager.fire("llm", Cause.CIRCUIT_OPEN, Severity.CRITICAL, "llm down", "x")
        rig.close()

        messages = [e.extra["message"] for e in recorder.named("alert_failed")]
        assert len(messages) == 2
        assert "circuit OPEN" in messages[1]
        assert len(recorder.named("retry_scheduled")) == 3


class TestSecrets:
    def test_token_and_secret_appear_in_no_log_line_event_or_error(
        self,
        clock: VirtualClock,
        recorder: Recorder,
        httpserver: HTTPServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Failed and sent deliveries leave no token or webhook secret anywhere."""
        httpserver.expect_request(f"/bot{TOKEN}/sendMessage").respond_with_json(
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
            status=401,
        )
        httpserver.expect_oneshot_request("/hook").respond_with_data("busy", 503)
        httpserver.expect_oneshot_request("/hook").respond_with_data("ok", 200)
        httpserver.expect_request("/hook").respond_with_data("gone", 410)
        caplog.set_level(logging.DEBUG)
        live: list[Channel] = [
            TelegramChannel(
                TelegramConfig(
                    mode="live", base_url=httpserver.url_for("/").rstrip("/")
                ),
                TOKEN,
            ),
            WebhookChannel(
                WebhookConfig(mode="live", url=httpserver.url_for("/hook")),
                decode_secret(SECRET),
            ),
        ]
        rig = Rig(clock, recorder, to=live)

        rig.outage(0, trials_failing=1)
        rig.manager.call_failed(
            "llm", InvalidPayload("llm", "bad", status=400), "CALL_000009"
        )
        rig.close()

        assert rig.manager.sent >= 1
        assert rig.manager.failed >= 2
        texts = [LOG.read_text(encoding="utf-8")]
        texts += [json.dumps(e.as_record(), default=str) for e in recorder.events]
        texts += [r.getMessage() for r in caplog.records if r.name != "werkzeug"]
        texts += [repr(channel) for channel in live]
        encoded_key = SECRET.removeprefix("whsec_")
        for text in texts:
            assert TOKEN not in text
            assert SECRET not in text
            assert encoded_key not in text
            assert SECRET_KEY.decode() not in text
