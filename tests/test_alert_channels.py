"""Live alert channels against real peers on loopback: SMTP, Telegram, webhook."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from callagent.alerts.channels import Channel, MockChannel, build_channel
from callagent.alerts.delivery import Delivery
from callagent.alerts.email import SmtpChannel
from callagent.alerts.manager import AlertManager
from callagent.alerts.model import Alert, Cause, Notification, Severity
from callagent.alerts.telegram import TelegramChannel
from callagent.alerts.testsend import send_test
from callagent.alerts.webhook import WebhookChannel, decode_secret
from callagent.clock import VIRTUAL_EPOCH, SystemClock, VirtualClock
from callagent.errors import (
    AuthenticationFailed,
    InputError,
    InvalidPayload,
    NetworkError,
    PermanentError,
    RateLimited,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
)
from callagent.events import EventBus
from callagent.settings import (
    AlertsSettings,
    BreakerSettings,
    EmailChannel,
    RetrySettings,
    Settings,
)
from callagent.settings import TelegramChannel as TelegramConfig
from callagent.settings import WebhookChannel as WebhookConfig
from tests.conftest import Recorder
from tests.smtp_peer import Inbox, smtp_server

TOKEN = "7000000001:AAE-token-that-must-never-leak_x9"
SECRET = "whsec_" + base64.b64encode(b"k" * 24 + b"never-leak").decode()


def notification(status: str = "firing") -> Notification:
    alert = Alert(
        service="elevenlabs",
        cause=Cause.CIRCUIT_OPEN,
        severity=Severity.CRITICAL,
        title="elevenlabs: circuit opened (ServiceUnavailable)",
        detail="Calls that need elevenlabs are deferred.",
        starts_at=VIRTUAL_EPOCH,
        affected_calls=3,
    )
    body = "Calls that need elevenlabs are deferred.\nCalls affected: 3"
    return Notification.of(alert, status, body, VIRTUAL_EPOCH + timedelta(minutes=2))


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    yield from smtp_server("pager", "s3cret-pass")


def email_config(port: int, **overrides: Any) -> EmailChannel:
    values: dict[str, Any] = {
        "mode": "live",
        "host": "127.0.0.1",
        "port": port,
        "sender": "callagent@example.org",
        "recipients": ["oncall@example.org", "lead@example.org"],
        "timeout_s": 2.0,
    }
    return EmailChannel(**{**values, **overrides})


def telegram_config(httpserver: HTTPServer, **overrides: Any) -> TelegramConfig:
    values: dict[str, Any] = {
        "mode": "live",
        "base_url": httpserver.url_for("/").rstrip("/"),
        "chat_id": "-1001234567890",
        "timeout_s": 2.0,
    }
    return TelegramConfig(**{**values, **overrides})


def webhook_config(url: str, **overrides: Any) -> WebhookConfig:
    values: dict[str, Any] = {"mode": "live", "url": url, "timeout_s": 2.0}
    return WebhookConfig(**{**values, **overrides})


TELEGRAM_PATH = f"/bot{TOKEN}/sendMessage"


class Outcomes:
    """Delivery's report callback, kept."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, Notification, str | None]] = []

    def __call__(self, channel: Channel, sent: Notification, error: str | None) -> None:
        self.reports.append((channel.name, sent, error))


def sync_delivery(
    channel: Channel, clock: VirtualClock, recorder: Recorder
) -> tuple[Delivery, Outcomes]:
    bus = EventBus(clock, "run-test")
    bus.subscribe(recorder)
    outcomes = Outcomes()
    delivery = Delivery(
        [channel],
        clock,
        bus,
        outcomes,
        retry=RetrySettings(),
        breaker=BreakerSettings(),
    )
    return delivery, outcomes


# Email ---------------------------------------------------------------------------


class TestEmail:
    def test_delivers_to_every_recipient_with_the_title_as_subject(
        self, inbox: tuple[Inbox, int]
    ) -> None:
        """Each recipient gets the title as subject and body plus key facts."""
        handler, port = inbox
        channel = SmtpChannel(email_config(port))

        channel.send(notification())

        envelope = handler.envelopes[0]
        assert envelope.mail_from == "callagent@example.org"
        assert envelope.rcpt_tos == ["oncall@example.org", "lead@example.org"]
        message = handler.message()
        assert message["Subject"] == "elevenlabs: circuit opened (ServiceUnavailable)"
        body = message.get_content()
        assert "Calls that need elevenlabs are deferred." in body
        assert "Service: elevenlabs" in body
        assert "Cause: circuit_open" in body
        assert "Event time: 2026-01-05T09:02:00.000Z" in body

    def test_date_header_is_real_time_while_the_content_keeps_event_time(
        self, inbox: tuple[Inbox, int]
    ) -> None:
        """The Date header comes from the real clock, not the campaign's clock."""
        handler, port = inbox

        SmtpChannel(email_config(port)).send(notification())

        sent_at = parsedate_to_datetime(handler.message()["Date"])
        assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=2)

    def test_logs_in_with_credentials_from_the_environment(
        self, inbox: tuple[Inbox, int]
    ) -> None:
        """Username and password come from the variables the settings name."""
        handler, port = inbox
        alerts = AlertsSettings(
            channels={
                "email": email_config(
                    port, username_env="SMTP_USER", password_env="SMTP_PASS"
                )
            }
        )
        env = {"SMTP_USER": "pager", "SMTP_PASS": "s3cret-pass"}

        build_channel("email", alerts, env).send(notification())

        assert len(handler.envelopes) == 1

    def test_refused_login_is_authentication_failed(
        self, inbox: tuple[Inbox, int]
    ) -> None:
        """A login the server refuses is a permanent, service-wide error."""
        _, port = inbox
        channel = SmtpChannel(email_config(port), login=("pager", "wrong"))

        with pytest.raises(AuthenticationFailed) as caught:
            channel.send(notification())

        assert "wrong" not in str(caught.value)

    def test_every_recipient_refused_is_invalid_payload(
        self, inbox: tuple[Inbox, int]
    ) -> None:
        """A 5xx refusal of every recipient is permanent and names them."""
        handler, port = inbox
        handler.rcpt_reply = "550 no such mailbox"

        with pytest.raises(InvalidPayload, match=r"oncall@example\.org"):
            SmtpChannel(email_config(port)).send(notification())

    def test_4xx_reply_is_transient(self, inbox: tuple[Inbox, int]) -> None:
        """A 4xx SMTP reply (try again later) is worth retrying."""
        handler, port = inbox
        handler.data_reply = "451 local error, try again later"

        with pytest.raises(ServiceUnavailable, match="451"):
            SmtpChannel(email_config(port)).send(notification())

    def test_closed_port_is_a_network_error(self, closed_port: int) -> None:
        """A refused connection is a transient network error."""
        with pytest.raises(NetworkError):
            SmtpChannel(email_config(closed_port)).send(notification())

    def test_stalled_server_is_a_timeout(self, stalled_port: int) -> None:
        """A server that never greets is a timeout after ``timeout_s``."""
        channel = SmtpChannel(email_config(stalled_port, timeout_s=0.2))

        with pytest.raises(ServiceTimeout):
            channel.send(notification())


# Telegram ------------------------------------------------------------------------


class TestTelegram:
    def test_posts_chat_id_and_text(self, httpserver: HTTPServer) -> None:
        """sendMessage receives the configured chat id and the rendered text."""
        httpserver.expect_request(TELEGRAM_PATH, method="POST").respond_with_json(
            {"ok": True, "result": {"message_id": 7}}
        )
        channel = TelegramChannel(telegram_config(httpserver), TOKEN)

        channel.send(notification())
        channel.close()

        request, _ = httpserver.log[0]
        sent = request.get_json()
        assert sent["chat_id"] == "-1001234567890"
        assert sent["text"].startswith("elevenlabs: circuit opened")
        assert "Calls affected: 3" in sent["text"]
        assert "Severity: critical" in sent["text"]

    def test_flood_control_is_rate_limited_with_its_retry_after(
        self, httpserver: HTTPServer
    ) -> None:
        """A 429 body's parameters.retry_after becomes the error's retry_after."""
        httpserver.expect_request(TELEGRAM_PATH).respond_with_json(
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 12",
                "parameters": {"retry_after": 12},
            },
            status=429,
        )
        channel = TelegramChannel(telegram_config(httpserver), TOKEN)

        with pytest.raises(RateLimited) as caught:
            channel.send(notification())
        channel.close()

        assert caught.value.retry_after == 12

    @pytest.mark.parametrize(
        ("status", "description", "expected"),
        [
            (401, "Unauthorized", AuthenticationFailed),
            (404, "Not Found", AuthenticationFailed),
            (403, "Forbidden: bot was blocked by the user", AuthenticationFailed),
            (400, "Bad Request: message text is empty", InvalidPayload),
            (502, "Bad Gateway", ServiceUnavailable),
        ],
    )
    def test_error_bodies_are_classified(
        self,
        httpserver: HTTPServer,
        status: int,
        description: str,
        expected: type[ServiceError],
    ) -> None:
        """Telegram's error_code and description map onto the taxonomy."""
        httpserver.expect_request(TELEGRAM_PATH).respond_with_json(
            {"ok": False, "error_code": status, "description": description},
            status=status,
        )
        channel = TelegramChannel(telegram_config(httpserver), TOKEN)

        with pytest.raises(expected, match=description.split(":", maxsplit=1)[0]):
            channel.send(notification())
        channel.close()

    def test_migrated_group_names_the_new_chat_id(self, httpserver: HTTPServer) -> None:
        """A group upgraded to a supergroup says which chat_id to configure."""
        httpserver.expect_request(TELEGRAM_PATH).respond_with_json(
            {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup",
                "parameters": {"migrate_to_chat_id": -1009876543210},
            },
            status=400,
        )
        channel = TelegramChannel(telegram_config(httpserver), TOKEN)

        with pytest.raises(InvalidPayload, match="-1009876543210"):
            channel.send(notification())
        channel.close()

    def test_flood_control_wait_is_honoured_on_the_clock(
        self, httpserver: HTTPServer, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """Delivery waits the asked 12 s (not the 5 s backoff) and then succeeds."""
        httpserver.expect_oneshot_request(TELEGRAM_PATH).respond_with_json(
            {"ok": False, "error_code": 429, "parameters": {"retry_after": 12}},
            status=429,
        )
        httpserver.expect_request(TELEGRAM_PATH).respond_with_json({"ok": True})
        channel = TelegramChannel(telegram_config(httpserver), TOKEN)
        delivery, outcomes = sync_delivery(channel, clock, recorder)

        delivery.submit(channel, notification())
        channel.close()

        assert outcomes.reports[0][2] is None
        assert clock.elapsed == 12
        [retry] = recorder.named("retry_scheduled")
        assert retry.extra["alert_channel"] == "telegram"
        assert retry.extra["delay_s"] == 12

    def test_token_stays_out_of_errors_and_httpx_log(
        self,
        httpserver: HTTPServer,
        closed_port: int,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Neither error text, repr, cause nor httpx's request log shows the token."""
        httpserver.expect_request(TELEGRAM_PATH).respond_with_json(
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
            status=401,
        )
        caplog.set_level(logging.INFO, logger="httpx")
        served = TelegramChannel(telegram_config(httpserver), TOKEN)
        refused = TelegramChannel(
            telegram_config(httpserver, base_url=f"http://127.0.0.1:{closed_port}"),
            TOKEN,
        )
        errors: list[BaseException] = []

        for channel in (served, refused):
            with pytest.raises(ServiceError) as caught:
                channel.send(notification())
            errors.append(caught.value)
            channel.close()

        # Only httpx's own lines: the test server's access log is the peer's, not ours.
        ours = "\n".join(r.getMessage() for r in caplog.records if r.name == "httpx")
        assert "HTTP Request" in ours
        assert TOKEN not in ours
        for error in errors:
            assert TOKEN not in str(error)
            assert TOKEN not in repr(error)
            assert error.__cause__ is None
            assert error.__context__ is None
        assert TOKEN not in repr(served)


# Webhook -------------------------------------------------------------------------


class TestWebhook:
    def test_signature_is_accepted_by_the_reference_library(
        self, httpserver: HTTPServer
    ) -> None:
        """standardwebhooks' Webhook(secret).verify accepts what we send."""
        httpserver.expect_request("/hook", method="POST").respond_with_data("", 204)
        channel = WebhookChannel(
            webhook_config(httpserver.url_for("/hook")), decode_secret(SECRET)
        )

        channel.send(notification())
        channel.close()

        request, _ = httpserver.log[0]
        payload = Webhook(SECRET).verify(request.get_data(), dict(request.headers))
        assert payload["type"] == "alert.firing"
        assert payload["timestamp"] == "2026-01-05T09:02:00.000Z"
        assert payload["data"]["title"] == notification().title
        assert payload["data"]["affected_calls"] == 3
        assert request.headers["content-type"] == "application/json"

    def test_webhook_id_is_stable_across_a_retried_delivery(
        self, httpserver: HTTPServer, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """A 503 then a 200: both attempts carry one webhook-id, both verify."""
        httpserver.expect_oneshot_request("/hook").respond_with_data("busy", 503)
        httpserver.expect_request("/hook").respond_with_data("ok", 200)
        channel = WebhookChannel(
            webhook_config(httpserver.url_for("/hook")), decode_secret(SECRET)
        )
        delivery, outcomes = sync_delivery(channel, clock, recorder)

        delivery.submit(channel, notification())
        channel.close()

        requests = [request for request, _ in httpserver.log]
        assert len(requests) == 2
        assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]
        for request in requests:
            Webhook(SECRET).verify(request.get_data(), dict(request.headers))
        assert outcomes.reports[0][2] is None
        assert clock.elapsed == 5

    def test_different_notifications_get_different_ids(self) -> None:
        """A firing and its resolve are two messages to the receiver."""
        channel = WebhookChannel(webhook_config("http://127.0.0.1:9/"), b"key")

        firing = channel.message_id(notification("firing"))
        resolved = channel.message_id(notification("resolved"))
        channel.close()

        assert firing != resolved

    def test_410_disables_the_endpoint_for_the_run(
        self, httpserver: HTTPServer
    ) -> None:
        """After a 410 Gone nothing more is sent to the endpoint."""
        httpserver.expect_request("/hook").respond_with_data("gone", 410)
        channel = WebhookChannel(
            webhook_config(httpserver.url_for("/hook")), decode_secret(SECRET)
        )

        for _ in range(3):
            with pytest.raises(PermanentError, match="410"):
                channel.send(notification())
        channel.close()

        assert len(httpserver.log) == 1
        assert channel.disabled

    def test_429_retry_after_is_honoured_on_the_clock(
        self, httpserver: HTTPServer, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """A Retry-After of 7 s replaces the 5 s backoff for the next attempt."""
        httpserver.expect_oneshot_request("/hook").respond_with_data(
            "slow down", 429, headers={"Retry-After": "7"}
        )
        httpserver.expect_request("/hook").respond_with_data("ok", 202)
        channel = WebhookChannel(
            webhook_config(httpserver.url_for("/hook")), decode_secret(SECRET)
        )
        delivery, outcomes = sync_delivery(channel, clock, recorder)

        delivery.submit(channel, notification())
        channel.close()

        assert outcomes.reports[0][2] is None
        assert clock.elapsed == 7

    def test_other_4xx_is_permanent_and_not_retried(
        self, httpserver: HTTPServer, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """A 422 fails the delivery at once with the receiver's complaint."""
        httpserver.expect_request("/hook").respond_with_data("bad schema", 422)
        channel = WebhookChannel(
            webhook_config(httpserver.url_for("/hook")), decode_secret(SECRET)
        )
        delivery, outcomes = sync_delivery(channel, clock, recorder)

        delivery.submit(channel, notification())
        channel.close()

        assert len(httpserver.log) == 1
        error = outcomes.reports[0][2]
        assert error is not None
        assert "422" in error
        assert "bad schema" in error

    def test_a_tampered_body_fails_verification(self, httpserver: HTTPServer) -> None:
        """The signature covers the body: a tampered body fails verification."""
        httpserver.expect_request("/hook").respond_with_data("", 200)
        channel = WebhookChannel(
            webhook_config(httpserver.url_for("/hook")), decode_secret(SECRET)
        )

        channel.send(notification())
        channel.close()

        request, _ = httpserver.log[0]
        tampered = request.get_data().replace(b"elevenlabs", b"llm")
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(tampered, dict(request.headers))


# Building channels ----------------------------------------------------------------


class TestBuild:
    def test_channels_are_mock_by_default(self) -> None:
        """With no settings every channel is a mock that sends nothing."""
        channel = build_channel("webhook", AlertsSettings(), {})

        assert isinstance(channel, MockChannel)

    def test_missing_token_names_the_variable_and_the_key(self) -> None:
        """A live Telegram channel without its token variable is refused at start."""
        alerts = AlertsSettings(channels={"telegram": {"mode": "live"}})

        with pytest.raises(InputError) as caught:
            build_channel("telegram", alerts, {})

        message = str(caught.value)
        assert "TELEGRAM_BOT_TOKEN" in message
        assert "alerts.channels.telegram.token_env" in message

    def test_malformed_webhook_secret_is_refused_without_echoing_it(self) -> None:
        """A secret that is not whsec_ + base64 is refused; the message hides it."""
        alerts = AlertsSettings(channels={"webhook": {"mode": "live"}})
        bad = "whsec_not*base64*at-all"

        with pytest.raises(InputError) as caught:
            build_channel("webhook", alerts, {"WEBHOOK_SECRET": bad})

        assert "alerts.channels.webhook.secret_env" in str(caught.value)
        assert bad not in str(caught.value)

    def test_email_login_needs_both_variables_named(self) -> None:
        """A username variable without a password variable is a settings error."""
        alerts = AlertsSettings(
            channels={"email": {"mode": "live", "username_env": "SMTP_USER"}}
        )

        with pytest.raises(InputError, match="password_env"):
            build_channel("email", alerts, {"SMTP_USER": "pager"})

    def test_missing_smtp_password_names_its_variable(self) -> None:
        """A named password variable that is unset is refused, naming it."""
        alerts = AlertsSettings(
            channels={
                "email": {
                    "mode": "live",
                    "username_env": "SMTP_USER",
                    "password_env": "SMTP_PASS",
                }
            }
        )

        with pytest.raises(InputError, match="SMTP_PASS"):
            build_channel("email", alerts, {"SMTP_USER": "pager"})


# Background delivery on the real clock --------------------------------------------


class TestBackgroundDelivery:
    def test_a_stalled_channel_does_not_hold_up_the_caller(
        self, stalled_port: int, recorder: Recorder
    ) -> None:
        """On the real clock fire() returns at once; the failure is reported later."""
        clock = SystemClock()
        bus = EventBus(clock, "run-test")
        failed = threading.Event()
        bus.subscribe(recorder)
        bus.subscribe(lambda event: event.event == "alert_failed" and failed.set())
        channel = WebhookChannel(
            webhook_config(f"http://127.0.0.1:{stalled_port}/hook", timeout_s=0.3),
            b"key",
        )
        manager = AlertManager(
            AlertsSettings(group_wait_s=0),
            [channel],
            clock,
            bus,
            retry=RetrySettings(max_retries=0),
        )

        manager.fire(
            "crm", Cause.CIRCUIT_OPEN, Severity.CRITICAL, "crm: circuit opened", "x"
        )
        returned_before_failure = not failed.is_set()

        assert failed.wait(timeout=5)
        manager.close()
        assert returned_before_failure
        assert manager.failed == 1
        [event] = recorder.named("alert_failed")
        assert event.extra["alert_channel"] == "webhook"
        assert "no answer in time" in event.extra["message"]

    def test_flush_returns_once_background_sends_are_done(
        self, httpserver: HTTPServer, recorder: Recorder
    ) -> None:
        """After flush() the counters are final: the report can read them."""
        httpserver.expect_request("/hook").respond_with_data("", 204)
        clock = SystemClock()
        bus = EventBus(clock, "run-test")
        bus.subscribe(recorder)
        channel = WebhookChannel(
            webhook_config(httpserver.url_for("/hook")), decode_secret(SECRET)
        )
        manager = AlertManager(AlertsSettings(), [channel], clock, bus)

        manager.fire("crm", Cause.CIRCUIT_OPEN, Severity.CRITICAL, "crm down", "x")
        manager.flush()
        sent = manager.sent
        manager.close()

        assert sent == 1
        assert len(httpserver.log) == 1
        assert [e.extra["alert_channel"] for e in recorder.named("alert_sent")] == [
            "webhook"
        ]

    def test_close_gives_up_after_the_drain_limit(
        self, stalled_port: int, recorder: Recorder
    ) -> None:
        """close() abandons a send still stuck past the limit and reports it failed."""
        clock = SystemClock()
        bus = EventBus(clock, "run-test")
        bus.subscribe(recorder)
        channel = WebhookChannel(
            webhook_config(f"http://127.0.0.1:{stalled_port}/hook", timeout_s=30),
            b"key",
        )
        outcomes = Outcomes()
        delivery = Delivery(
            [channel],
            clock,
            bus,
            outcomes,
            retry=RetrySettings(),
            breaker=BreakerSettings(),
            drain_timeout_s=0.2,
        )

        delivery.submit(channel, notification())
        delivery.submit(channel, notification("resolved"))
        started = clock.monotonic()
        delivery.close()
        took = clock.monotonic() - started

        assert took < 2
        assert [error for _, _, error in outcomes.reports] == [
            "webhook: not delivered: delivery stopped at shutdown"
        ] * 2

    def test_a_full_queue_drops_and_reports_instead_of_growing(
        self, stalled_port: int
    ) -> None:
        """Past the queue bound a notification is reported failed, not queued."""
        clock = SystemClock()
        channel = WebhookChannel(
            webhook_config(f"http://127.0.0.1:{stalled_port}/hook", timeout_s=30),
            b"key",
        )
        outcomes = Outcomes()
        delivery = Delivery(
            [channel],
            clock,
            EventBus(clock, "run-test"),
            outcomes,
            retry=RetrySettings(),
            breaker=BreakerSettings(),
            queue_size=1,
            drain_timeout_s=0.1,
        )

        for _ in range(4):
            delivery.submit(channel, notification())
        full = [error for _, _, error in outcomes.reports]
        delivery.close()

        assert len(full) >= 2
        assert all(error is not None and "queue full" in error for error in full)
        assert len(outcomes.reports) == 4


# alerts test ---------------------------------------------------------------------


class TestSendTest:
    def test_reports_each_channel_and_logs_every_attempt(
        self, httpserver: HTTPServer, inbox: tuple[Inbox, int]
    ) -> None:
        """Email and webhook deliver, Telegram lacks its token: three results."""
        handler, port = inbox
        httpserver.expect_request("/hook").respond_with_data("", 204)
        settings = Settings(
            alerts={
                "channels": {
                    "email": email_config(port).model_dump(),
                    "telegram": {"mode": "live"},
                    "webhook": webhook_config(httpserver.url_for("/hook")).model_dump(),
                }
            }
        )

        results = send_test(settings, environ={"WEBHOOK_SECRET": SECRET})

        by_name = {result.channel: result for result in results}
        assert by_name["email"].delivered
        assert by_name["webhook"].delivered
        assert not by_name["telegram"].delivered
        assert "TELEGRAM_BOT_TOKEN" in (by_name["telegram"].error or "")
        assert handler.message()["Subject"] == "callagent: test notification"
        text = Path("logs/alerts.jsonl").read_text(encoding="utf-8")
        lines = [json.loads(line) for line in text.splitlines()]
        assert [(line["channel"], line["delivery"]) for line in lines] == [
            ("email", "sent"),
            ("telegram", "failed"),
            ("webhook", "sent"),
        ]

    def test_a_named_channel_is_the_only_one_tried(self) -> None:
        """--channel limits the test to that channel; a mock one just logs."""
        results = send_test(Settings(), channel="telegram", environ={})

        assert [(r.channel, r.mode, r.delivered) for r in results] == [
            ("telegram", "mock", True)
        ]

    def test_an_unknown_channel_is_an_input_error(self) -> None:
        """An unknown --channel name is bad usage, naming the known ones."""
        with pytest.raises(InputError, match="email, telegram, webhook"):
            send_test(Settings(), channel="pager")
