"""The circuit breaker: every transition, and its invariants under random outcomes."""

from __future__ import annotations

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from callagent.breaker import BreakerRegistry, CircuitBreaker, CircuitState, Transition
from callagent.clock import VirtualClock
from callagent.errors import (
    AuthenticationFailed,
    CircuitOpenError,
    QuotaExceeded,
    ServiceError,
    ServiceUnavailable,
)
from callagent.settings import BreakerSettings

DOWN = ServiceUnavailable("tts", "down", status=503)


def make(
    clock: VirtualClock, *, probe_driven: bool = True, **overrides: object
) -> tuple[CircuitBreaker, list[Transition]]:
    seen: list[Transition] = []
    settings = BreakerSettings.model_validate(overrides)
    breaker = CircuitBreaker(
        "tts", settings, clock, probe_driven=probe_driven, listeners=(seen.append,)
    )
    return breaker, seen


def fail(breaker: CircuitBreaker, error: ServiceError = DOWN) -> None:
    breaker.record_failure(breaker.acquire(), error)


def open_it(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.settings.failure_threshold):
        fail(breaker)
    assert breaker.state is CircuitState.OPEN


class TestClosed:
    def test_threshold_consecutive_failures_open_it(self, clock: VirtualClock) -> None:
        """Four consecutive failures open it; three do not."""
        breaker, seen = make(clock)
        for _ in range(3):
            fail(breaker)
        assert breaker.state is CircuitState.CLOSED
        fail(breaker)
        assert breaker.state is CircuitState.OPEN
        assert [(t.old, t.new) for t in seen] == [
            (CircuitState.CLOSED, CircuitState.OPEN)
        ]
        assert seen[0].reason == "4 consecutive failures"
        assert seen[0].error is DOWN

    def test_success_resets_the_consecutive_count(self, clock: VirtualClock) -> None:
        """A success between failures starts the count again."""
        breaker, _ = make(clock)
        for _ in range(3):
            fail(breaker)
        breaker.record_success(breaker.acquire())
        for _ in range(3):
            fail(breaker)
        assert breaker.state is CircuitState.CLOSED

    @pytest.mark.parametrize("error_type", [AuthenticationFailed, QuotaExceeded])
    def test_service_wide_error_opens_it_at_once(
        self, clock: VirtualClock, error_type: type[ServiceError]
    ) -> None:
        """A rejected key or spent quota opens the breaker on the first failure."""
        breaker, seen = make(clock)
        fail(breaker, error_type("tts", "no", status=401))
        assert breaker.state is CircuitState.OPEN
        assert error_type.__name__ in seen[0].reason

    def test_failure_rate_window_opens_it(self, clock: VirtualClock) -> None:
        """Half of the last ten attempts failing opens it, though never 4 in a row."""
        breaker, seen = make(clock, window_size=10, failure_rate=0.5, min_calls=10)
        for _ in range(5):
            assert breaker.state is CircuitState.CLOSED
            breaker.record_success(breaker.acquire())
            fail(breaker)
        assert breaker.state is CircuitState.OPEN
        assert seen[0].reason == "5 of the last 10 attempts failed"

    def test_failure_rate_waits_for_min_calls(self, clock: VirtualClock) -> None:
        """Below min_calls attempts the rate does not trip the breaker."""
        breaker, _ = make(
            clock, window_size=20, failure_rate=0.5, min_calls=20, failure_threshold=100
        )
        for _ in range(9):
            fail(breaker)
            breaker.record_success(breaker.acquire())
        assert breaker.state is CircuitState.CLOSED


class TestOpen:
    def test_refuses_calls_saying_state_and_reason(self, clock: VirtualClock) -> None:
        """While OPEN every call is refused without being run."""
        breaker, _ = make(clock)
        open_it(breaker)
        with pytest.raises(CircuitOpenError) as refused:
            breaker.acquire()
        assert refused.value.state == "OPEN"
        assert "tts: circuit OPEN" in str(refused.value)
        assert not breaker.is_admitting()

    def test_probe_before_recovery_timeout_changes_nothing(
        self, clock: VirtualClock
    ) -> None:
        """A passing probe cannot half-open the breaker before the timeout."""
        breaker, _ = make(clock)
        open_it(breaker)
        clock.advance(59)
        assert not breaker.recovery_due()
        assert breaker.probe_succeeded() is False
        assert breaker.state is CircuitState.OPEN

    def test_probe_after_recovery_timeout_half_opens(self, clock: VirtualClock) -> None:
        """After 60 s a passing probe moves it to HALF_OPEN."""
        breaker, seen = make(clock)
        open_it(breaker)
        clock.advance(60)
        assert breaker.probe_succeeded() is True
        assert breaker.state is CircuitState.HALF_OPEN
        assert seen[-1].reason == "health probe passed"

    def test_later_probe_can_half_open_after_failed_ones(
        self, clock: VirtualClock
    ) -> None:
        """Once the timeout has passed, each later probe may half-open it."""
        breaker, _ = make(clock)
        open_it(breaker)
        clock.advance(60)
        assert breaker.recovery_due()
        clock.advance(30)
        assert breaker.probe_succeeded() is True

    def test_probe_driven_breaker_never_half_opens_on_a_call(
        self, clock: VirtualClock
    ) -> None:
        """With probes in charge, a call after the timeout is still refused."""
        breaker, _ = make(clock)
        open_it(breaker)
        clock.advance(600)
        with pytest.raises(CircuitOpenError):
            breaker.acquire()

    def test_call_driven_breaker_lets_one_trial_through(
        self, clock: VirtualClock
    ) -> None:
        """Without probes, the first call after the timeout is the trial."""
        breaker, seen = make(clock, probe_driven=False)
        open_it(breaker)
        clock.advance(60)
        assert breaker.is_admitting()
        breaker.acquire()
        assert breaker.state is CircuitState.HALF_OPEN
        assert seen[-1].reason == "recovery timeout passed"
        with pytest.raises(CircuitOpenError, match="trial call already in flight"):
            breaker.acquire()


class TestHalfOpen:
    def half_open(self, clock: VirtualClock, **overrides: object) -> CircuitBreaker:
        breaker, _ = make(clock, **overrides)
        open_it(breaker)
        clock.advance(breaker.settings.recovery_timeout_s)
        breaker.probe_succeeded()
        return breaker

    def test_trial_success_closes_it(self, clock: VirtualClock) -> None:
        """One successful trial closes it and resets the failure count."""
        breaker = self.half_open(clock)
        breaker.record_success(breaker.acquire())
        assert breaker.state is CircuitState.CLOSED
        assert breaker.consecutive_failures == 0

    def test_trial_failure_reopens_it(self, clock: VirtualClock) -> None:
        """A failed trial reopens it and restarts the recovery timeout."""
        breaker = self.half_open(clock)
        fail(breaker)
        assert breaker.state is CircuitState.OPEN
        assert breaker.times_opened == 2
        assert not breaker.recovery_due()

    def test_limits_trials_in_flight(self, clock: VirtualClock) -> None:
        """No more than half_open_max_calls trials run at once."""
        breaker = self.half_open(clock, half_open_max_calls=2)
        breaker.acquire()
        breaker.acquire()
        with pytest.raises(CircuitOpenError, match="trial call already in flight"):
            breaker.acquire()

    def test_success_threshold_needs_that_many_trials(
        self, clock: VirtualClock
    ) -> None:
        """With success_threshold 2, one success leaves it HALF_OPEN."""
        breaker = self.half_open(clock, success_threshold=2)
        breaker.record_success(breaker.acquire())
        assert breaker.state is CircuitState.HALF_OPEN
        breaker.record_success(breaker.acquire())
        assert breaker.state is CircuitState.CLOSED

    def test_release_frees_the_slot_without_deciding(self, clock: VirtualClock) -> None:
        """An interrupted trial frees its slot and leaves the state alone."""
        breaker = self.half_open(clock)
        breaker.release(breaker.acquire())
        assert breaker.state is CircuitState.HALF_OPEN
        assert breaker.trials_in_flight == 0
        breaker.acquire()


def test_stale_result_is_ignored(clock: VirtualClock) -> None:
    """A slow call admitted while CLOSED cannot close a breaker opened since."""
    breaker, _ = make(clock)
    slow_ticket = breaker.acquire()
    open_it(breaker)
    clock.advance(60)
    breaker.probe_succeeded()
    breaker.record_success(slow_ticket)
    assert breaker.state is CircuitState.HALF_OPEN


def test_registry_builds_one_breaker_per_service(clock: VirtualClock) -> None:
    """The registry hands out one breaker per name, with listeners attached."""
    seen: list[Transition] = []
    registry = BreakerRegistry(lambda name: BreakerSettings(failure_threshold=1), clock)
    registry.add_listener(seen.append)
    crm = registry.get("crm")
    assert registry.get("crm") is crm
    assert registry.state_of("llm") is None
    crm.record_failure(crm.acquire(), DOWN)
    assert registry.state_of("crm") is CircuitState.OPEN
    assert [t.service for t in seen] == ["crm"]


class BreakerMachine(RuleBasedStateMachine):
    """Random calls, outcomes, probes and time against a model of the rules."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = VirtualClock()
        self.transitions: list[Transition] = []
        self.settings = BreakerSettings(
            failure_threshold=3, recovery_timeout_s=10, half_open_max_calls=2,
            success_threshold=2,
        )  # fmt: skip
        self.breaker = CircuitBreaker(
            "svc", self.settings, self.clock, listeners=(self.transitions.append,)
        )
        self.tickets: list[int] = []
        self.refused_while_open = 0

    @rule()
    def call(self) -> None:
        state = self.breaker.state
        try:
            self.tickets.append(self.breaker.acquire())
        except CircuitOpenError:
            assert state is not CircuitState.CLOSED
            return
        assert state is not CircuitState.OPEN

    @precondition(lambda self: self.tickets)
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "fail", "auth", "release"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        index = data.draw(st.integers(0, len(self.tickets) - 1))
        ticket = self.tickets.pop(index)
        if outcome == "ok":
            self.breaker.record_success(ticket)
        elif outcome == "fail":
            self.breaker.record_failure(ticket, DOWN)
        elif outcome == "auth":
            self.breaker.record_failure(
                ticket, AuthenticationFailed("svc", "bad key", status=401)
            )
        else:
            self.breaker.release(ticket)

    @rule(seconds=st.floats(0, 15))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def probe_passes(self) -> None:
        was_due = self.breaker.recovery_due()
        assert self.breaker.probe_succeeded() == was_due

    @invariant()
    def closed_means_below_threshold(self) -> None:
        if self.breaker.state is CircuitState.CLOSED:
            assert self.breaker.consecutive_failures < self.settings.failure_threshold

    @invariant()
    def trials_within_limit(self) -> None:
        in_flight = self.breaker.trials_in_flight
        assert 0 <= in_flight <= self.settings.half_open_max_calls
        if self.breaker.state is not CircuitState.HALF_OPEN:
            assert in_flight == 0

    @invariant()
    def transitions_follow_the_diagram(self) -> None:
        allowed = {
            (CircuitState.CLOSED, CircuitState.OPEN),
            (CircuitState.OPEN, CircuitState.HALF_OPEN),
            (CircuitState.HALF_OPEN, CircuitState.CLOSED),
            (CircuitState.HALF_OPEN, CircuitState.OPEN),
        }
        previous = CircuitState.CLOSED
        for transition in self.transitions:
            assert transition.old is previous
            assert (transition.old, transition.new) in allowed
            previous = transition.new
        assert previous is self.breaker.state

    @invariant()
    def opened_count_matches_transitions(self) -> None:
        opened = sum(t.new is CircuitState.OPEN for t in self.transitions)
        assert self.breaker.times_opened == opened


BreakerMachine.TestCase.settings = hypothesis_settings(
    max_examples=200, stateful_step_count=40, deadline=None
)
TestBreakerStateMachine = BreakerMachine.TestCase
