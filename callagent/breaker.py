"""Circuit breakers: one per service, so one dead dependency cannot drag down the rest.

::

    CLOSED ──(failure_threshold consecutive failures, a failure-rate trip,
    │         or one service-wide error such as a rejected key)──▶ OPEN
    OPEN ──(recovery_timeout_s passed, then a health probe succeeds)──▶ HALF_OPEN
    HALF_OPEN ──(success_threshold trial successes)──▶ CLOSED
    HALF_OPEN ──(a trial fails)──▶ OPEN

While OPEN nothing is sent: callers get :class:`~callagent.errors.CircuitOpenError` at
once. Who moves OPEN to HALF_OPEN is a choice: for pipeline services the health monitor
does it after a probe succeeds (``probe_driven``), so a dead service costs one cheap
probe per recovery timeout instead of a real call; a breaker with no probe (an alert
channel) lets the first call after the timeout through as its trial.

Each admitted call gets a ticket; a result reported with a ticket from before the last
state change is ignored, so a slow call admitted while CLOSED cannot close a breaker
that opened in the meantime. The lock is never held while a call runs, and listeners
run after it is released.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from callagent.clock import Clock
from callagent.errors import CircuitOpenError, ServiceError
from callagent.settings import BreakerSettings


class CircuitState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change, as listeners see it."""

    service: str
    old: CircuitState
    new: CircuitState
    reason: str
    #: The error that caused the change, when one did.
    error: ServiceError | None = None


Listener = Callable[[Transition], None]


class CircuitBreaker:
    """The breaker of one service."""

    def __init__(
        self,
        name: str,
        settings: BreakerSettings,
        clock: Clock,
        *,
        probe_driven: bool = True,
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        self.name = name
        self.settings = settings
        self._clock = clock
        self._probe_driven = probe_driven
        self._listeners = list(listeners)
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._consecutive_failures = 0
        self._trial_in_flight = 0
        self._trial_successes = 0
        self._opened_at = 0.0
        self._window: deque[bool] | None = (
            deque(maxlen=settings.window_size) if settings.window_size else None
        )
        self.times_opened = 0

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def trials_in_flight(self) -> int:
        return self._trial_in_flight

    def reopens_at(self) -> float | None:
        """Clock time from which the breaker may leave OPEN; None unless OPEN."""
        if self._state is not CircuitState.OPEN:
            return None
        return self._opened_at + self.settings.recovery_timeout_s

    def recovery_due(self) -> bool:
        """True when OPEN and the recovery timeout has passed."""
        due = self.reopens_at()
        return due is not None and self._clock.monotonic() >= due

    def acquire(self) -> int:
        """Admit one call or raise CircuitOpenError; returns the call's ticket."""
        transitions: list[Transition] = []
        with self._lock:
            state = self._state
            if state is CircuitState.CLOSED:
                return self._generation
            if state is CircuitState.OPEN:
                if self._probe_driven or not self._due_locked():
                    raise self._refusal("waiting for the service to recover")
                self._move_locked(
                    CircuitState.HALF_OPEN, "recovery timeout passed", None, transitions
                )
            if self._trial_in_flight >= self.settings.half_open_max_calls:
                raise self._refusal("trial call already in flight")
            self._trial_in_flight += 1
            ticket = self._generation
        self._notify(transitions)
        return ticket

    def is_admitting(self) -> bool:
        """Would a call be let through now? Takes no slot and changes nothing."""
        state = self._state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN:
            return self._trial_in_flight < self.settings.half_open_max_calls
        return not self._probe_driven and self._due_locked()

    def record_success(self, ticket: int) -> None:
        transitions: list[Transition] = []
        with self._lock:
            if ticket != self._generation:
                return
            if self._state is CircuitState.CLOSED:
                self._consecutive_failures = 0
                if self._window is not None:
                    self._window.append(False)
                return
            if self._state is CircuitState.HALF_OPEN:
                self._trial_in_flight -= 1
                self._trial_successes += 1
                if self._trial_successes >= self.settings.success_threshold:
                    self._move_locked(
                        CircuitState.CLOSED, "trial call succeeded", None, transitions
                    )
        self._notify(transitions)

    def record_failure(self, ticket: int, error: ServiceError) -> None:
        transitions: list[Transition] = []
        with self._lock:
            if ticket != self._generation:
                return
            if self._state is CircuitState.CLOSED:
                self._consecutive_failures += 1
                if self._window is not None:
                    self._window.append(True)
                reason = self._trip_reason_locked(error)
                if reason is not None:
                    self._move_locked(CircuitState.OPEN, reason, error, transitions)
            elif self._state is CircuitState.HALF_OPEN:
                self._trial_in_flight -= 1
                self._move_locked(
                    CircuitState.OPEN, "trial call failed", error, transitions
                )
        self._notify(transitions)

    def release(self, ticket: int) -> None:
        """End a call that says nothing about the service's health.

        An interrupted call, or one the service refused as malformed, frees its trial
        slot without counting as a success or a failure.
        """
        with self._lock:
            if ticket == self._generation and self._state is CircuitState.HALF_OPEN:
                self._trial_in_flight -= 1

    def probe_succeeded(self) -> bool:
        """A health probe passed: leave OPEN once the recovery timeout is over."""
        transitions: list[Transition] = []
        with self._lock:
            if self._state is CircuitState.OPEN and self._due_locked():
                self._move_locked(
                    CircuitState.HALF_OPEN, "health probe passed", None, transitions
                )
        self._notify(transitions)
        return bool(transitions)

    def _due_locked(self) -> bool:
        elapsed = self._clock.monotonic() - self._opened_at
        return elapsed >= self.settings.recovery_timeout_s

    def _trip_reason_locked(self, error: ServiceError) -> str | None:
        if error.service_wide:
            return f"{type(error).__name__}: every call would fail the same way"
        threshold = self.settings.failure_threshold
        if self._consecutive_failures >= threshold:
            return f"{self._consecutive_failures} consecutive failures"
        window = self._window
        rate = self.settings.failure_rate
        if (
            window is not None
            and rate is not None
            and len(window) >= min(self.settings.min_calls, window.maxlen or 0)
        ):
            failed = sum(window)
            if failed / len(window) >= rate:
                return f"{failed} of the last {len(window)} attempts failed"
        return None

    def _move_locked(
        self,
        new: CircuitState,
        reason: str,
        error: ServiceError | None,
        transitions: list[Transition],
    ) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._trial_in_flight = 0
        self._trial_successes = 0
        if new is CircuitState.OPEN:
            self._opened_at = self._clock.monotonic()
            self.times_opened += 1
        elif new is CircuitState.CLOSED:
            self._consecutive_failures = 0
            if self._window is not None:
                self._window.clear()
        transitions.append(Transition(self.name, old, new, reason, error))

    def _refusal(self, reason: str) -> CircuitOpenError:
        return CircuitOpenError(self.name, self._state.value, reason)

    def _notify(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            for listener in self._listeners:
                listener(transition)


class BreakerRegistry:
    """The breakers of all services, built from settings on first use."""

    def __init__(
        self,
        factory: Callable[[str], BreakerSettings],
        clock: Clock,
        *,
        probe_driven: bool = True,
    ) -> None:
        self._factory = factory
        self._clock = clock
        self._probe_driven = probe_driven
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
            for breaker in self._breakers.values():
                breaker.add_listener(listener)

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(
                    name,
                    self._factory(name),
                    self._clock,
                    probe_driven=self._probe_driven,
                    listeners=tuple(self._listeners),
                )
                self._breakers[name] = breaker
        return breaker

    def state_of(self, name: str) -> CircuitState | None:
        breaker = self._breakers.get(name)
        return breaker.state if breaker is not None else None

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))
