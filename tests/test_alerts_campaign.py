"""Alerts over whole campaigns: how many pages, dead channels, real peers, secrets."""

from __future__ import annotations

import base64
import inspect
import itertools
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from typer.testing import CliRunner, Result
from werkzeug import Request, Response

from callagent.alerts import AlertManager
from callagent.campaign import Campaign
from callagent.cli import app
from callagent.clock import VirtualClock
from callagent.journal import MemoryJournal
from callagent.services.faults import Fault, FaultMode, FaultPlan
from callagent.services.simulated import simulated_services
from callagent.settings import parse_settings
from callagent.simulation import synthetic_contacts
from tests.smtp_peer import Inbox, smtp_server

TOKEN = "7000000042:AAH-campaign-token-never-logged_z3"
SECRET_KEY = b"campaign-webhook-key-never-logged"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()
SMTP_USER = "pager"
SMTP_PASSWORD = "smtp-pass-never-logged-9f"
ELEVENLABS_KEY = "sk_el_campaign_key_never_logged_41"
#: What must never be written or printed, whole or in its telling part.
FORBIDDEN = (
    TOKEN,
    TOKEN.partition(":")[2],
    SECRET,
    SECRET.removeprefix("whsec_"),
    SECRET_KEY.decode(),
    SMTP_PASSWORD,
    ELEVENLABS_KEY,
)

CHAT_ID = "-1004200000001"
RECIPIENTS = ["oncall@example.org", "lead@example.org"]
TELEGRAM_PATH = f"/bot{TOKEN}/sendMessage"
VOICE = "voice-for-tests"
CHANNELS = ("email", "telegram", "webhook")
FIRING_TITLE = "elevenlabs: circuit opened (service_unavailable)"
#: How long the end of a run waits for queued alert deliveries (AlertManager's).
DRAIN_LIMIT_S: float = (
    inspect.signature(AlertManager).parameters["drain_timeout_s"].default
)

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


# Fixtures --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets in the environment, as live channels read them; a wide console."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SMTP_USER", SMTP_USER)
    monkeypatch.setenv("SMTP_PASS", SMTP_PASSWORD)
    monkeypatch.setenv("ELEVENLABS_API_KEY", ELEVENLABS_KEY)
    # Rich reads these when a command builds its console: fixed width, no colour.
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def httpserver(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """pytest-httpserver's loopback server, failing the test on an unplanned request."""
    yield httpserver
    httpserver.check_assertions()


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback that accepts our login."""
    yield from smtp_server(SMTP_USER, SMTP_PASSWORD)


@pytest.fixture
def smtp_refusing_login() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback that refuses our password."""
    yield from smtp_server(SMTP_USER, "some-other-password")


# Settings and what a run leaves behind -----------------------------------------------


def email_live(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "mode": "live",
        "host": "127.0.0.1",
        "port": port,
        "sender": "callagent@example.org",
        "recipients": RECIPIENTS,
        "username_env": "SMTP_USER",
        "password_env": "SMTP_PASS",
        "timeout_s": 2,
        **extra,
    }


def telegram_live(base_url: str) -> dict[str, Any]:
    return {"mode": "live", "base_url": base_url, "chat_id": CHAT_ID, "timeout_s": 2}


def webhook_live(url: str, timeout_s: float = 2) -> dict[str, Any]:
    return {"mode": "live", "url": url, "timeout_s": timeout_s}


def write_settings(channels: dict[str, Any], **sections: Any) -> None:
    """./settings.yaml, which the command picks up by itself."""
    data = {**sections, "alerts": {**sections.get("alerts", {}), "channels": channels}}
    Path("settings.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def alert_lines() -> list[dict[str, Any]]:
    """logs/alerts.jsonl, one dict per line."""
    text = Path("logs/alerts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def log_events(run_id: str | None = None) -> list[dict[str, Any]]:
    """logs/system.log, only the lines of ``run_id`` if given."""
    text = Path("logs/system.log").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    return [line for line in lines if run_id is None or line["run_id"] == run_id]


def deliveries(lines: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many alerts.jsonl lines there are per (status, delivery)."""
    return Counter((line["status"], line["delivery"]) for line in lines)


def call_trace(run_id: str) -> list[tuple[float, str, str | None, str | None]]:
    """What happened to the calls of a run, and when: alerting left out."""
    events = log_events(run_id)
    start = at(events[0]["timestamp"])
    trace = []
    for e in events:
        if e["event"].startswith("alert_") or e.get("alert_channel") is not None:
            continue
        offset = (at(e["timestamp"]) - start).total_seconds()
        trace.append((offset, e["event"], e["call_id"], e["service"]))
    return trace


def alert_event_counts(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["event"] for e in events if e["event"].startswith("alert_"))


def read_report(path: str = "report.json") -> dict[str, Any]:
    report: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return report


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in FORBIDDEN:
            assert secret not in text


def everything_written() -> list[str]:
    """Every log, JSON report and state database the runs of this test left."""
    files = [*Path("logs").iterdir(), *Path().glob("*.json")]
    texts = [path.read_text(encoding="utf-8") for path in files if path.is_file()]
    # Latin-1 maps each byte to one character: the ASCII secrets stay findable.
    texts += [
        path.read_bytes().decode("latin-1") for path in Path().glob(".callagent/*")
    ]
    return texts


def our_log_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    # The loopback HTTP server logs request paths, the token among them: that log is
    # the peer's, not callagent's.
    return [r.getMessage() for r in caplog.records if r.name != "werkzeug"]


# Three outages in an hour ------------------------------------------------------------

#: ElevenLabs down three times within the hour, in seconds of virtual time:
#: (start, duration). The second window is just long enough for one call to exhaust
#: its retries (5 + 10 + 20 s) and open the breaker, which then closes at the next
#: probe: a flap.
OUTAGES = ((300.0, 160.0), (1500.0, 40.0), (2400.0, 160.0))


def three_outages(repeat_interval_s: float) -> str:
    """Run the campaign of OUTAGES on a virtual clock; its run id."""
    settings = parse_settings(
        {
            "circuit_breaker": {"recovery_timeout_s": 5},
            "health_check": {"interval_s": 5},
            "alerts": {
                "group_wait_s": 30,
                "repeat_interval_s": repeat_interval_s,
                "unavailable_after_s": 300,
            },
        }
    )
    clock = VirtualClock()
    journal = MemoryJournal("three-outages")
    # About one virtual second per call: enough contacts to outlast the hour.
    journal.add_contacts(synthetic_contacts(2800))
    plan = FaultPlan(
        [Fault("elevenlabs", FaultMode.UNAVAILABLE, s, d) for s, d in OUTAGES]
    )
    campaign = Campaign(
        command="simulate",
        settings=settings,
        clock=clock,
        journal=journal,
        services=simulated_services(settings, clock, plan),
    )
    try:
        report = campaign.run()
    finally:
        campaign.close()
    Path("report.json").write_text(json.dumps(report.as_json()), encoding="utf-8")
    return campaign.run_id


class TestThreeOutagesInAnHour:
    @pytest.mark.parametrize(
        ("repeat_interval_s", "firings_per_long_outage"),
        [(3600, 1), (40, 3)],
        ids=["repeat-1h", "repeat-40s"],
    )
    def test_notifications_are_exactly_what_the_policy_allows(
        self, repeat_interval_s: float, firings_per_long_outage: int
    ) -> None:
        """Three openings in an hour page per incident, never per skipped call.

        Each long outage opens the breaker about 35 s into its window (one call's
        5 + 10 + 20 s of retries) and closes it at the first probe after the window,
        so it stays open about 125 s: past group_wait_s (30) the incident fires at
        +30 s, then every repeat_interval_s while it lasts (+70 s and +110 s with
        40 s; none with an hour), and resolves when the breaker closes. The flap
        closes about 10 s after opening (recovery 5 s, probes every 5 s), inside
        group_wait_s: nothing is sent, one resolved line is suppressed. No outage
        lasts unavailable_after_s (300) and no call fails for good, so no other
        incident exists. Each of the three channels gets every notification.
        """
        run_id = three_outages(repeat_interval_s)

        events = log_events(run_id)
        firings = 3 * 2 * firings_per_long_outage
        resolves = 3 * 2
        lines = alert_lines()
        assert deliveries(lines) == {
            ("firing", "sent"): firings,
            ("resolved", "sent"): resolves,
            ("resolved", "suppressed"): 1,
        }
        assert alert_event_counts(events) == {
            "alert_sent": firings + resolves,
            "alert_suppressed": 1,
        }
        assert read_report()["alerts"] == {
            "sent": firings + resolves,
            "failed": 0,
            "suppressed": 1,
        }
        per_channel = Counter(line["channel"] for line in lines if line["channel"])
        assert per_channel == dict.fromkeys(CHANNELS, (firings + resolves) // 3)

    def test_the_breaker_really_cycled_three_times_within_the_hour(self) -> None:
        """The scenario holds: three openings and closings inside one hour."""
        run_id = three_outages(3600)

        events = log_events(run_id)
        opened = [e["timestamp"] for e in events if e["event"] == "circuit_opened"]
        closed = [e["timestamp"] for e in events if e["event"] == "circuit_closed"]
        assert len(opened) == 3
        assert len(closed) == 3
        assert at(closed[-1]) - at(opened[0]) < timedelta(hours=1)
        skipped = [e for e in events if e["event"] == "call_skipped"]
        # Hundreds of calls waited on the breaker; none of them paged anyone.
        assert len(skipped) > 100
        assert read_report()["contacts"]["completed"] == 2800

    def test_repeats_are_spaced_by_the_repeat_interval(self) -> None:
        """Reminders of one incident are repeat_interval_s apart, never sooner."""
        three_outages(40)

        firing = [
            at(line["at"])
            for line in alert_lines()
            if (line["channel"], line["status"]) == ("email", "firing")
        ]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(firing)]
        # Two incidents of three notifications each, far apart from each other.
        assert gaps[0] == pytest.approx(40)
        assert gaps[1] == pytest.approx(40)
        assert gaps[3] == pytest.approx(40)
        assert gaps[4] == pytest.approx(40)
        assert gaps[2] > 1800


def at(timestamp: str) -> datetime:
    """A log or alerts.jsonl timestamp as a datetime."""
    return datetime.fromisoformat(timestamp)


# Every channel down ------------------------------------------------------------------


def serve_broken_telegram(httpserver: HTTPServer) -> None:
    """A Bot API that fails with 500 and quotes the request path (and so the token)."""
    httpserver.expect_request(TELEGRAM_PATH, method="POST").respond_with_json(
        {
            "ok": False,
            "error_code": 500,
            "description": f"Internal Server Error while handling {TELEGRAM_PATH}",
        },
        status=500,
    )


def dead_channels(
    httpserver: HTTPServer, closed_port: int, stalled_port: int
) -> dict[str, Any]:
    """Email refused, Telegram answering 500, the webhook never answering."""
    serve_broken_telegram(httpserver)
    return {
        "email": email_live(closed_port),
        "telegram": telegram_live(base_url(httpserver)),
        "webhook": webhook_live(f"http://127.0.0.1:{stalled_port}/hook", 0.2),
    }


class TestEveryChannelDown:
    def test_simulate_finishes_with_every_failure_logged(
        self,
        httpserver: HTTPServer,
        closed_port: int,
        stalled_port: int,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """An outage with all channels dead: full campaign, 6 failures on record."""
        caplog.set_level(logging.INFO)
        write_settings(dead_channels(httpserver, closed_port, stalled_port))
        started = time.monotonic()

        result = invoke(
            "simulate", "--fail", "elevenlabs", "--no-live",
            "--json-report", "report.json",
        )  # fmt: skip

        took = time.monotonic() - started
        assert result.exit_code == 0
        assert "alert_failed elevenlabs via webhook" in result.output
        report = read_report()
        assert report["contacts"]["completed"] == 30
        # Firing and resolved, to each of three channels, each failed once.
        assert report["alerts"] == {"sent": 0, "failed": 6, "suppressed": 0}
        events = log_events(report["run_id"])
        assert alert_event_counts(events) == {"alert_failed": 6}
        assert deliveries(alert_lines()) == {
            ("firing", "failed"): 3,
            ("resolved", "failed"): 3,
        }
        failed = [e for e in events if e["event"] == "alert_failed"]
        assert {e["alert_channel"] for e in failed} == set(CHANNELS)
        # Each stalled webhook attempt costs its 0.2 s timeout, and the channel's
        # breaker stops the attempts after four: seconds at most, not minutes.
        assert took < 10
        assert_no_secrets(result.output, *everything_written())
        assert_no_secrets(*our_log_records(caplog))

    def test_simulated_calls_never_wait_on_dead_channels(
        self, httpserver: HTTPServer, closed_port: int, stalled_port: int
    ) -> None:
        """Dead channels leave a simulation's calls and virtual duration unchanged."""
        args = ("simulate", "--fail", "elevenlabs", "--fail", "llm:invalid_payload",
                "--no-live", "--json-report")  # fmt: skip
        quiet = invoke(*args, "quiet.json")
        write_settings(dead_channels(httpserver, closed_port, stalled_port))
        dead = invoke(*args, "dead.json")

        assert quiet.exit_code == dead.exit_code
        normal, paged = read_report("quiet.json"), read_report("dead.json")
        assert paged["alerts"]["failed"] > 0
        assert paged["duration_s"] == normal["duration_s"]
        assert call_trace(paged["run_id"]) == call_trace(normal["run_id"])

    def test_run_finishes_within_its_normal_time_plus_the_drain_limit(
        self,
        httpserver: HTTPServer,
        closed_port: int,
        stalled_port: int,
        tmp_path: Path,
    ) -> None:
        """On the real clock, dead channels delay the end by the drain limit at most."""
        contacts = tmp_path / "contacts.csv"
        contacts.write_text(
            "phone,name\n+14155552671,Ava\n+14155552672,Ben\n+12025550143,Chloe\n"
            "+13125550199,Diego\n+16175550120,Emma\n",
            encoding="utf-8",
        )
        fast = {
            # Quick backoff and recovery, so the outage costs well under a second.
            "retry": {"initial_delay_s": 0.05, "max_delay_s": 0.2},
            "circuit_breaker": {"recovery_timeout_s": 0.3},
            "health_check": {"interval_s": 0.1},
            "services": {
                "crm": {"latency_ms": 0},
                "llm": {"latency_ms": 0},
                "elevenlabs": {
                    "provider": "elevenlabs",
                    "base_url": base_url(httpserver),
                    "voice_id": VOICE,
                    "timeout_s": 2,
                },
            },
            # Page at once: the outage is shorter than the default group wait.
            "alerts": {"group_wait_s": 0},
        }

        def campaign(name: str, *, dead: bool) -> tuple[Result, float]:
            httpserver.clear()
            httpserver.expect_request(re.compile("^/v1/")).respond_with_handler(
                FlakyElevenLabs(failures=4)
            )
            channels = (
                dead_channels(httpserver, closed_port, stalled_port) if dead else {}
            )
            write_settings(channels, **fast)
            started = time.monotonic()
            result = invoke(
                "run", str(contacts), "--campaign", name, "--no-live",
                "--json-report", f"{name}.json",
            )  # fmt: skip
            return result, time.monotonic() - started

        baseline, normal_s = campaign("quiet", dead=False)
        dead, took = campaign("dead", dead=True)

        assert baseline.exit_code == 0
        assert dead.exit_code == 0
        assert read_report("quiet.json")["alerts"]["sent"] == 6
        report = read_report("dead.json")
        assert report["services"]["elevenlabs"]["times_opened"] == 1
        assert report["contacts"]["completed"] == 5
        assert took < normal_s + DRAIN_LIMIT_S
        assert report["alerts"] == {"sent": 0, "failed": 6, "suppressed": 0}
        run_lines = [line for line in alert_lines() if line["delivery"] == "failed"]
        assert len(run_lines) == report["alerts"]["failed"]
        events = log_events(report["run_id"])
        assert alert_event_counts(events) == {"alert_failed": 6}
        assert_no_secrets(baseline.output, dead.output, *everything_written())


class FlakyElevenLabs:
    """ElevenLabs on loopback: the first syntheses get 503, then MP3; voices 200."""

    def __init__(self, failures: int) -> None:
        self._failures = failures
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        if request.method == "GET":
            return Response(
                json.dumps({"voice_id": VOICE}), 200, mimetype="application/json"
            )
        with self._lock:
            down = self._failures > 0
            if down:
                self._failures -= 1
        if down:
            body = {"detail": {"status": "system_busy", "message": "try later"}}
            return Response(json.dumps(body), 503, mimetype="application/json")
        return Response(b"ID3\x03\x00fake-mp3", 200, mimetype="audio/mpeg")


# Live channels delivering -------------------------------------------------------------


class TestLiveDelivery:
    def test_simulated_outage_reaches_every_real_peer(
        self,
        httpserver: HTTPServer,
        smtp: tuple[Inbox, int],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Firing and resolved reach SMTP, the Bot API and a verifying receiver."""
        caplog.set_level(logging.INFO)
        inbox, port = smtp
        httpserver.expect_request(TELEGRAM_PATH, method="POST").respond_with_json(
            {"ok": True, "result": {"message_id": 1}}
        )
        httpserver.expect_request("/hook", method="POST").respond_with_data("", 204)
        write_settings(
            {
                "email": email_live(port),
                "telegram": telegram_live(base_url(httpserver)),
                "webhook": webhook_live(httpserver.url_for("/hook")),
            }
        )

        result = invoke(
            "simulate", "--fail", "elevenlabs", "--no-live",
            "--json-report", "report.json",
        )  # fmt: skip

        assert result.exit_code == 0
        assert read_report()["alerts"] == {"sent": 6, "failed": 0, "suppressed": 0}
        subjects = [message["Subject"] for message in inbox.messages()]
        assert subjects == [FIRING_TITLE, f"RESOLVED: {FIRING_TITLE}"]
        assert [e.rcpt_tos for e in inbox.envelopes] == [RECIPIENTS, RECIPIENTS]
        assert all(e.mail_from == "callagent@example.org" for e in inbox.envelopes)

        telegram = [r for r, _ in httpserver.log if r.path == TELEGRAM_PATH]
        sent = [request.get_json() for request in telegram]
        assert [message["chat_id"] for message in sent] == [CHAT_ID, CHAT_ID]
        assert sent[0]["text"].startswith(FIRING_TITLE)
        assert sent[1]["text"].startswith(f"RESOLVED: {FIRING_TITLE}")

        hooks = [r for r, _ in httpserver.log if r.path == "/hook"]
        verified = [
            Webhook(SECRET).verify(r.get_data(), dict(r.headers)) for r in hooks
        ]
        assert [payload["type"] for payload in verified] == [
            "alert.firing",
            "alert.resolved",
        ]
        assert verified[0]["data"]["service"] == "elevenlabs"
        assert_no_secrets(result.output, *everything_written())
        assert_no_secrets(*our_log_records(caplog))


# callagent alerts test ----------------------------------------------------------------


class TestAlertsTestCommand:
    def test_all_mock_exits_0(self) -> None:
        """With no settings every channel is a mock and the test succeeds."""
        result = invoke("alerts", "test")

        assert result.exit_code == 0

    def test_all_mock_prints_a_row_per_channel(self) -> None:
        """The table names each channel as mock, and says nothing was sent."""
        result = invoke("alerts", "test")

        rows = [line for line in result.output.splitlines() if " mock " in line]
        assert [row.split()[1] for row in rows] == list(CHANNELS)
        assert "Alert channel test" in result.output
        assert "nothing was sent" in result.output
        assert [line["mode"] for line in alert_lines()] == ["mock"] * 3

    def test_a_live_channel_delivers_to_a_local_server(
        self, httpserver: HTTPServer
    ) -> None:
        """A live webhook gets one signed test notification; the row says yes."""
        httpserver.expect_request("/hook", method="POST").respond_with_data("", 204)
        write_settings({"webhook": webhook_live(httpserver.url_for("/hook"))})

        result = invoke("alerts", "test")

        assert result.exit_code == 0
        [row] = [line for line in result.output.splitlines() if "webhook" in line]
        assert "live" in row
        assert "yes" in row
        [(request, _)] = httpserver.log
        payload = Webhook(SECRET).verify(request.get_data(), dict(request.headers))
        assert payload["data"]["title"] == "callagent: test notification"
        assert_no_secrets(result.output, *everything_written())

    def test_a_missing_token_fails_that_channel_only(
        self, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No TELEGRAM_BOT_TOKEN: exit 1, the variable named, the others still tried."""
        monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
        httpserver.expect_request("/hook", method="POST").respond_with_data("", 204)
        write_settings(
            {
                "telegram": telegram_live(base_url(httpserver)),
                "webhook": webhook_live(httpserver.url_for("/hook")),
            }
        )

        result = invoke("alerts", "test")

        assert result.exit_code == 1
        table = [line for line in result.output.splitlines() if line.startswith("│")]
        rows = {line.split()[1]: line for line in table}
        assert "TELEGRAM_BOT_TOKEN" in rows["telegram"]
        assert " no " in rows["telegram"]
        assert " yes " in rows["webhook"]
        assert " yes " in rows["email"]
        assert len(httpserver.log) == 1
        assert [(line["channel"], line["delivery"]) for line in alert_lines()] == [
            ("email", "sent"),
            ("telegram", "failed"),
            ("webhook", "sent"),
        ]

    def test_an_unknown_channel_exits_2(self) -> None:
        """--channel sms is bad usage: exit 2."""
        result = invoke("alerts", "test", "--channel", "sms")

        assert result.exit_code == 2

    def test_an_unknown_channel_names_the_known_ones(self) -> None:
        """--channel sms says which channels exist, without a traceback."""
        result = invoke("alerts", "test", "--channel", "sms")

        assert "unknown channel 'sms'" in result.output
        assert "email, telegram, webhook" in result.output
        assert "Traceback" not in result.output


# Secrets ---------------------------------------------------------------------------


class TestSecrets:
    def test_failing_servers_leave_no_secret_in_output_or_logs(
        self,
        httpserver: HTTPServer,
        smtp_refusing_login: tuple[Inbox, int],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Login refused, token echoed in a 500, webhook 500: no secret anywhere."""
        caplog.set_level(logging.DEBUG)
        _, port = smtp_refusing_login
        serve_broken_telegram(httpserver)
        httpserver.expect_request("/hook", method="POST").respond_with_data(
            "upstream exploded", 500
        )
        write_settings(
            {
                "email": email_live(port),
                "telegram": telegram_live(base_url(httpserver)),
                "webhook": webhook_live(httpserver.url_for("/hook")),
            }
        )

        test_run = invoke("alerts", "test")
        simulated = invoke(
            "simulate", "--fail", "elevenlabs", "--no-live",
            "--json-report", "report.json",
        )  # fmt: skip

        assert test_run.exit_code == 1
        assert simulated.exit_code == 0
        assert test_run.output.count(" no ") == 3
        assert "login refused" in test_run.output
        assert read_report()["alerts"]["failed"] == 6
        assert_no_secrets(test_run.output, simulated.output, *everything_written())
        assert_no_secrets(*our_log_records(caplog))
