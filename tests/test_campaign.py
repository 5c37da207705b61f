"""Whole campaigns on simulated services and a virtual clock: the error flow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from callagent.campaign import Campaign, Hooks
from callagent.clock import VirtualClock
from callagent.events import Event
from callagent.journal import MemoryJournal
from callagent.report import Report
from callagent.services.faults import Fault, FaultMode, FaultPlan
from callagent.services.simulated import SimulatedService, simulated_services
from callagent.settings import Settings, parse_settings
from callagent.simulation import synthetic_contacts
from tests.conftest import Recorder


@dataclass
class Outcome:
    report: Report
    events: Recorder
    campaign: Campaign

    def named(self, name: str) -> list[Event]:
        return self.events.named(name)

    def requests_to(self, service: str) -> int:
        tts = {"crm": self.campaign.services.crm, "llm": self.campaign.services.llm,
               "elevenlabs": self.campaign.services.tts}[service]  # fmt: skip
        assert isinstance(tts, SimulatedService)
        return tts.requests


def simulate(
    *faults: Fault,
    contacts: int = 20,
    seed: int = 0,
    settings: Settings | None = None,
    overrides: dict[str, Any] | None = None,
) -> Outcome:
    settings = settings or parse_settings(overrides or {})
    clock = VirtualClock()
    recorder = Recorder()
    journal = MemoryJournal("test")
    journal.add_contacts(synthetic_contacts(contacts))
    services = simulated_services(
        settings, clock, FaultPlan(list(faults), seed=seed), seed=seed
    )
    campaign = Campaign(
        command="simulate",
        settings=settings,
        clock=clock,
        journal=journal,
        services=services,
        seed=seed,
        hooks=Hooks(subscribers=[recorder]),
    )
    try:
        report = campaign.run()
    finally:
        campaign.close()
    return Outcome(report, recorder, campaign)


def outage(mode: FaultMode, duration: float | None = 120.0, **kw: Any) -> Fault:
    return Fault("elevenlabs", mode, start_s=10.0, duration_s=duration, **kw)


@pytest.fixture(scope="module")
def run() -> Outcome:
    """One ElevenLabs outage from 10 s to 130 s, shared by the tests that read it."""
    return simulate(outage(FaultMode.UNAVAILABLE))


class TestOutageAndRecovery:
    def test_first_failing_call_backs_off_5_10_20(self, run: Outcome) -> None:
        """The first call to hit the outage retries after 5, 10 and 20 s."""
        retries = run.named("retry_scheduled")
        first_call = retries[0].call_id
        delays = [e.extra["delay_s"] for e in retries if e.call_id == first_call]
        assert delays == [5, 10, 20]
        assert {e.service for e in retries} == {"elevenlabs"}

    def test_that_call_fails_transient_with_3_retries_and_opens(
        self, run: Outcome
    ) -> None:
        """call_failed says Transient after 3 retries, and the breaker opens."""
        failed = run.named("call_failed")[0]
        assert (failed.service, failed.error_category) == ("elevenlabs", "Transient")
        assert failed.retry_count == 3
        assert failed.circuit_state == "OPEN"
        opened = run.named("circuit_opened")
        assert [e.service for e in opened] == ["elevenlabs"]

    def test_only_probes_reach_the_service_while_open(self, run: Outcome) -> None:
        """Between opening and half-opening, ElevenLabs sees only health probes."""
        names = run.events.names()
        opened = names.index("circuit_opened")
        half = names.index("circuit_half_opened")
        between = run.events.events[opened:half]
        kinds = {e.event for e in between}
        assert not kinds & {"service_error", "call_started", "call_completed"}
        assert "call_skipped" in kinds
        probes = [e for e in between if e.event.startswith("health_check")]
        assert probes
        assert {e.service for e in probes} == {"elevenlabs"}

    def test_skipped_calls_cost_nothing_and_are_deferred(self, run: Outcome) -> None:
        """Each skipped call is deferred, and no skipped call sent a request."""
        skipped = run.named("call_skipped")
        deferred = {e.call_id for e in run.named("call_deferred")}
        assert skipped
        assert {e.call_id for e in skipped} <= deferred
        assert all(e.circuit_state == "OPEN" for e in skipped)
        started = {e.call_id for e in run.named("call_started")}
        assert not started & {e.call_id for e in skipped}

    def test_breaker_closes_and_deferred_calls_complete(self, run: Outcome) -> None:
        """After the outage: half-open, closed, and every contact completed."""
        names = run.events.names()
        assert names.index("circuit_half_opened") < names.index("circuit_closed")
        assert run.report.contacts == {
            "total": 20, "completed": 20, "failed": 0, "deferred": 0,
            "invalid": 0, "interrupted": 0,
        }  # fmt: skip
        assert run.report.exit_code() == 0

    def test_one_alert_per_opening_and_a_resolve(self, run: Outcome) -> None:
        """One firing and one resolved notice per channel, however many skips."""
        sent = run.named("alert_sent")
        assert len(sent) == 6
        assert {e.extra["alert_channel"] for e in sent} == {
            "email", "telegram", "webhook",
        }  # fmt: skip
        assert run.report.alerts["sent"] == 6

    def test_report_counts_requests_and_openings(self, run: Outcome) -> None:
        """The report's service figures match what the service actually saw."""
        tts = run.report.services["elevenlabs"]
        assert tts.requests == run.requests_to("elevenlabs")
        # Four failed attempts of the first call, and the one probe that failed.
        assert (tts.failures, tts.retries, tts.times_opened) == (5, 3, 1)
        assert tts.circuit_state == "CLOSED"


class TestServiceWideFailures:
    @pytest.mark.parametrize("mode", [FaultMode.AUTH, FaultMode.QUOTA])
    def test_no_retries_one_alert_rest_deferred(self, mode: FaultMode) -> None:
        """A revoked key: opens at once, one alert, the rest wait, exit 1."""
        run = simulate(outage(mode, duration=None))
        assert run.named("retry_scheduled") == []
        failed = run.named("call_failed")
        assert len(failed) == 1
        assert failed[0].error_category == "Permanent"
        assert failed[0].retry_count == 0
        assert run.campaign.breakers.get("elevenlabs").times_opened == 1
        firing = {
            e.extra["message"] for e in run.named("alert_sent") if "opened" in
            e.extra["message"]
        }  # fmt: skip
        assert len(firing) == 1
        assert run.report.contacts["deferred"] > 0
        assert run.report.contacts["failed"] == 0
        assert run.report.exit_code() == 1
        assert run.campaign.orchestrator.gave_up_waiting

    def test_waits_max_wait_s_then_leaves_contacts_deferred(self) -> None:
        """With the key never fixed, the run ends after max_wait_s of waiting."""
        run = simulate(
            outage(FaultMode.AUTH, duration=None),
            overrides={"campaign": {"max_wait_s": 300}},
        )
        finished = run.named("campaign_finished")[0]
        opened = run.named("circuit_opened")[0]
        waited = (finished.timestamp - opened.timestamp).total_seconds()
        assert 300 <= waited < 300 + 30 + 1
        assert "Stopped waiting after 300 s" in run.report.notes[0]

    def test_down_longer_than_unavailable_after_raises_its_alert(self) -> None:
        """A service down past unavailable_after_s gets its own alert."""
        run = simulate(outage(FaultMode.AUTH, duration=None))
        titles = [e.extra["message"] for e in run.named("alert_sent")]
        assert any("unavailable for" in title for title in titles)


class TestRequestLevelFailures:
    def test_invalid_payload_fails_only_the_affected_calls(self) -> None:
        """Malformed requests fail their calls; the breaker stays closed."""
        run = simulate(
            outage(FaultMode.INVALID_PAYLOAD, duration=None, error_rate=0.3),
            contacts=40,
        )
        contacts = run.report.contacts
        assert contacts["failed"] > 0
        assert contacts["completed"] + contacts["failed"] == 40
        assert run.named("circuit_opened") == []
        assert run.named("retry_scheduled") == []
        assert all(e.error_category == "Permanent" for e in run.named("call_failed"))

    def test_call_failed_alerts_are_grouped(self) -> None:
        """Many permanent call failures raise one incident, the rest suppressed."""
        run = simulate(
            outage(FaultMode.INVALID_PAYLOAD, duration=None, error_rate=0.3),
            contacts=40,
        )
        failures = run.report.contacts["failed"]
        assert run.report.alerts["sent"] == 3
        assert run.report.alerts["suppressed"] == failures - 1

    def test_rate_limited_honours_retry_after(self) -> None:
        """A simulated 429 carries Retry-After 12 s; the first wait is 12 s."""
        run = simulate(outage(FaultMode.RATE_LIMITED, duration=30))
        assert run.named("retry_scheduled")[0].extra["delay_s"] == 12
        assert run.report.contacts["completed"] == 20

    def test_flaky_service_completes_through_retries(self) -> None:
        """20 % flaky: nearly every call completes and the breaker never opens."""
        run = simulate(
            outage(FaultMode.FLAKY, duration=None, error_rate=0.2), contacts=100
        )
        assert run.named("retry_scheduled")
        assert run.named("circuit_opened") == []
        assert run.report.contacts["completed"] >= 98

    @pytest.mark.parametrize(
        "mode", [FaultMode.TIMEOUT, FaultMode.NETWORK, FaultMode.UNAVAILABLE]
    )
    def test_transient_modes_recover(self, mode: FaultMode) -> None:
        """Timeouts, refused connections and 503s all heal into a full campaign."""
        run = simulate(outage(mode))
        assert run.named("circuit_closed")
        assert run.report.contacts["completed"] == 20


class TestAttempts:
    def test_contact_fails_after_max_call_attempts(self) -> None:
        """A contact whose calls keep failing is failed after max_call_attempts."""
        run = simulate(
            Fault("llm", FaultMode.UNAVAILABLE, start_s=0, duration_s=None),
            contacts=1,
            overrides={
                "campaign": {"max_call_attempts": 2},
                "circuit_breaker": {"failure_threshold": 100},
            },
        )
        assert run.report.contacts["failed"] == 1
        assert len(run.named("call_started")) == 2

    def test_crm_outcome_failure_never_redials(self) -> None:
        """A call dialled but not recorded is retried without dialling again."""
        run = simulate(
            Fault("crm", FaultMode.UNAVAILABLE, start_s=2.0, duration_s=60),
            contacts=3,
        )
        assert run.report.contacts["completed"] == 3
        tts_calls = run.requests_to("elevenlabs")
        # One synthesis per contact: nobody's call was prepared and dialled twice.
        assert tts_calls == 3


def test_same_seed_same_events() -> None:
    """Two runs with the same seed and faults log the same event sequence."""
    faults = (
        outage(FaultMode.FLAKY, duration=None, error_rate=0.3),
        Fault("crm", FaultMode.UNAVAILABLE, start_s=40, duration_s=90),
    )

    def trace(seed: int) -> list[tuple[str, str | None, str | None]]:
        run = simulate(*faults, contacts=60, seed=seed)
        return [(e.event, e.call_id, e.service) for e in run.events.events]

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)
