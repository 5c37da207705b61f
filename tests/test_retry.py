"""The retry engine: schedule, classification, Retry-After and the breaker's say."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from callagent.breaker import CircuitBreaker, CircuitState
from callagent.clock import VirtualClock
from callagent.errors import (
    AuthenticationFailed,
    CircuitOpenError,
    InvalidPayload,
    QuotaExceeded,
    RateLimited,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
)
from callagent.events import EventBus
from callagent.retry import Backoff, Guard
from callagent.settings import BreakerSettings, RetrySettings
from tests.conftest import Recorder


def script(*outcomes: ServiceError | str) -> Callable[[], str]:
    """A request that fails or answers as scripted, one outcome per attempt."""
    queue = list(outcomes)

    def request() -> str:
        outcome = queue.pop(0)
        if isinstance(outcome, ServiceError):
            raise outcome
        return outcome

    return request


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("tts", "down", status=503)


class Rig:
    def __init__(
        self,
        clock: VirtualClock,
        recorder: Recorder,
        *,
        retry: RetrySettings | None = None,
        breaker: BreakerSettings | None = None,
    ) -> None:
        self.clock = clock
        self.breaker = CircuitBreaker("tts", breaker or BreakerSettings(), clock)
        bus = EventBus(clock, "run", lambda name: self.breaker.state.value)
        bus.subscribe(recorder)
        self.guard = Guard(
            "tts", self.breaker, retry or RetrySettings(), clock, bus,
            rng=random.Random(1),
        )  # fmt: skip


@pytest.fixture
def rig(clock: VirtualClock, recorder: Recorder) -> Rig:
    return Rig(clock, recorder)


class TestSchedule:
    def test_healthy_call_runs_once_with_no_events(
        self, rig: Rig, recorder: Recorder
    ) -> None:
        """A first-attempt success costs no wait and logs nothing."""
        assert rig.guard.call(script("ok"), call_id="C1") == "ok"
        assert recorder.events == []
        assert rig.guard.stats.requests == 1
        assert rig.clock.monotonic() == 0

    def test_waits_5_10_20_then_gives_up(self, rig: Rig, recorder: Recorder) -> None:
        """Four failed attempts: waits of 5, 10 and 20 s, retry_count 3 on the error."""
        with pytest.raises(ServiceUnavailable) as caught:
            rig.guard.call(script(*(unavailable() for _ in range(4))), call_id="C1")
        delays = [e.extra["delay_s"] for e in recorder.named("retry_scheduled")]
        assert delays == [5, 10, 20]
        assert rig.clock.monotonic() == 35
        assert caught.value.retry_count == 3
        errors = recorder.named("service_error")
        assert [e.retry_count for e in errors] == [0, 1, 2, 3]
        assert all(e.error_category == "Transient" for e in errors)
        assert rig.guard.stats.retries == 3
        assert rig.guard.stats.failures == 4

    def test_success_on_a_retry_returns_the_result(
        self, rig: Rig, recorder: Recorder
    ) -> None:
        """A transient failure then a success returns the success after one wait."""
        result = rig.guard.call(script(ServiceTimeout("tts", "slow"), "ok"))
        assert result == "ok"
        assert rig.clock.monotonic() == 5
        assert rig.breaker.consecutive_failures == 0

    def test_settings_drive_the_schedule(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """max_retries, initial delay, multiplier and cap all come from settings."""
        retry = RetrySettings(
            max_retries=4, initial_delay_s=1, multiplier=3, max_delay_s=10
        )
        rig = Rig(
            clock, recorder, retry=retry, breaker=BreakerSettings(failure_threshold=10)
        )
        with pytest.raises(ServiceUnavailable):
            rig.guard.call(script(*(unavailable() for _ in range(5))))
        delays = [e.extra["delay_s"] for e in recorder.named("retry_scheduled")]
        assert delays == [1, 3, 9, 10]

    def test_jitter_adds_at_most_jitter_seconds(self) -> None:
        """Jitter adds between 0 and jitter_s to each wait."""
        backoff = Backoff(5, 2, 20, jitter_s=2)
        rng = random.Random(3)
        delays = [backoff.delay(n, rng) for n in (1, 2, 3) for _ in range(50)]
        assert all(5 <= d <= 7 for d in delays[:50])
        assert all(20 <= d <= 22 for d in delays[100:])
        assert len(set(delays)) > 3


class TestClassification:
    def test_permanent_error_is_not_retried(self, rig: Rig, recorder: Recorder) -> None:
        """A rejected key fails at once: no wait, no retry."""
        with pytest.raises(AuthenticationFailed) as caught:
            rig.guard.call(script(AuthenticationFailed("tts", "bad key", status=401)))
        assert caught.value.retry_count == 0
        assert recorder.named("retry_scheduled") == []
        assert rig.clock.monotonic() == 0
        assert rig.breaker.state is CircuitState.OPEN

    def test_invalid_payload_does_not_count_against_the_breaker(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """The request's own fault never trips the service's breaker."""
        rig = Rig(clock, recorder, breaker=BreakerSettings(failure_threshold=1))
        with pytest.raises(InvalidPayload):
            rig.guard.call(script(InvalidPayload("tts", "bad text", status=422)))
        assert rig.breaker.state is CircuitState.CLOSED
        assert recorder.named("service_error")[0].error_category == "Permanent"

    def test_keyboard_interrupt_is_not_a_service_failure(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """Ctrl-C inside a call propagates and is not counted as a failure."""
        rig = Rig(clock, recorder, breaker=BreakerSettings(failure_threshold=1))

        def interrupted() -> str:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            rig.guard.call(interrupted)
        assert rig.breaker.state is CircuitState.CLOSED
        assert rig.guard.stats.failures == 0

    def test_permanent_error_during_retries_stops_them(
        self, rig: Rig, recorder: Recorder
    ) -> None:
        """A 503 then spent quota: one wait, then the quota error, not retried."""
        quota = QuotaExceeded("tts", "quota", status=401)
        with pytest.raises(QuotaExceeded) as caught:
            rig.guard.call(script(unavailable(), quota))
        assert caught.value.retry_count == 1
        assert rig.clock.monotonic() == 5


class TestRetryAfter:
    def test_retry_after_within_cap_is_honoured(
        self, rig: Rig, recorder: Recorder
    ) -> None:
        """A 429 asking for 12 s waits 12 s, longer than the 5 s backoff."""
        limited = RateLimited("tts", "slow down", status=429, retry_after=12)
        assert rig.guard.call(script(limited, "ok")) == "ok"
        assert recorder.named("retry_scheduled")[0].extra["delay_s"] == 12
        assert rig.clock.monotonic() == 12

    def test_shorter_retry_after_keeps_the_backoff(self, rig: Rig) -> None:
        """A Retry-After shorter than the backoff does not shorten the wait."""
        limited = RateLimited("tts", "slow down", status=429, retry_after=1)
        rig.guard.call(script(limited, "ok"))
        assert rig.clock.monotonic() == 5

    def test_retry_after_beyond_cap_is_not_slept_on(
        self, rig: Rig, recorder: Recorder
    ) -> None:
        """A Retry-After of an hour returns the error at once for deferral."""
        limited = RateLimited("tts", "daily", status=429, retry_after=3600)
        with pytest.raises(RateLimited):
            rig.guard.call(script(limited))
        assert rig.clock.monotonic() == 0
        assert recorder.named("retry_scheduled") == []


class TestBreakerInteraction:
    def test_refused_when_open_without_sending(self, rig: Rig) -> None:
        """An OPEN breaker refuses before the request runs."""
        rig.breaker.record_failure(
            rig.breaker.acquire(), AuthenticationFailed("tts", "x", status=401)
        )
        sent: list[int] = []

        def request() -> str:
            sent.append(1)
            return "ok"

        with pytest.raises(CircuitOpenError):
            rig.guard.call(request)
        assert sent == []

    def test_stops_retrying_once_the_breaker_opens(
        self, clock: VirtualClock, recorder: Recorder
    ) -> None:
        """With threshold 2, the second failure opens it and ends the retries."""
        rig = Rig(clock, recorder, breaker=BreakerSettings(failure_threshold=2))
        with pytest.raises(ServiceUnavailable) as caught:
            rig.guard.call(script(*(unavailable() for _ in range(4))))
        assert caught.value.retry_count == 1
        assert rig.guard.stats.requests == 2
        assert len(recorder.named("retry_scheduled")) == 1

    def test_default_policy_opens_the_breaker_on_the_last_attempt(
        self, rig: Rig
    ) -> None:
        """Threshold 4 and 3 retries: a call that exhausts its retries opens it."""
        with pytest.raises(ServiceUnavailable):
            rig.guard.call(script(*(unavailable() for _ in range(4))))
        assert rig.breaker.state is CircuitState.OPEN
