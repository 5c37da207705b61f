"""The retry engine: one guarded request to one service, through its breaker.

A healthy call pays for one breaker check and one success record, nothing more: the
first attempt runs outside tenacity. Only when it fails with a transient error does
the call enter a tenacity loop, which replays that first failure so its accounting
starts at attempt one, then waits 5 s, 10 s, 20 s (from settings) on the injected
clock. Before every attempt the breaker is asked again, and the loop stops as soon as
the breaker stops admitting calls: retrying into an open circuit only adds load.

A Retry-After longer than the policy's longest wait is not slept on: the error goes
back to the caller, which defers the call.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from callagent.breaker import CircuitBreaker
from callagent.clock import Clock
from callagent.errors import (
    CircuitOpenError,
    InvalidPayload,
    ServiceError,
    TransientError,
)
from callagent.events import Emitter
from callagent.settings import RetrySettings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with a cap and optional additive jitter."""

    initial_s: float
    multiplier: float
    max_s: float
    jitter_s: float = 0.0

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> Backoff:
        return cls(
            settings.initial_delay_s,
            settings.multiplier,
            settings.max_delay_s,
            settings.jitter_s,
        )

    def delay(self, retry_number: int, rng: random.Random) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry)."""
        base = min(self.initial_s * self.multiplier ** (retry_number - 1), self.max_s)
        if self.jitter_s:
            base += rng.uniform(0, self.jitter_s)
        return base


def exceeds_cap(error: BaseException, backoff: Backoff) -> bool:
    """Does the service ask for a longer pause than the policy is willing to wait?"""
    retry_after = getattr(error, "retry_after", None)
    return retry_after is not None and retry_after > backoff.max_s


class _Wait(wait_base):
    """Backoff that honours a Retry-After within the cap."""

    def __init__(self, backoff: Backoff, rng: random.Random) -> None:
        self._backoff = backoff
        self._rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._backoff.delay(retry_state.attempt_number, self._rng)
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


class _StopWhen(stop_base):
    """Stop on a Retry-After beyond the cap, or once the breaker stops admitting."""

    def __init__(self, breaker: CircuitBreaker, backoff: Backoff) -> None:
        self._breaker = breaker
        self._backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if error is not None and exceeds_cap(error, self._backoff):
            return True
        return not self._breaker.is_admitting()


class ServiceStats:
    """Counters the report shows for one service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.failures = 0
        self.retries = 0

    def add(self, *, requests: int = 0, failures: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.failures += failures
            self.retries += retries


class Guard:
    """Breaker plus retry policy for one service."""

    def __init__(
        self,
        service: str,
        breaker: CircuitBreaker,
        settings: RetrySettings,
        clock: Clock,
        events: Emitter,
        *,
        rng: random.Random | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.service = service
        self.breaker = breaker
        # A bulkhead: a step waits for a slot rather than draw a 429 from a provider
        # that caps concurrent requests. Held only while a request is on the wire,
        # never during a backoff wait.
        self._bulkhead = (
            threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        )
        self.backoff = Backoff.from_settings(settings)
        self.stats = ServiceStats()
        self._events = events
        self._retrying = Retrying(
            sleep=clock.sleep,
            stop=stop_after_attempt(settings.max_retries + 1)
            | _StopWhen(breaker, self.backoff),
            wait=_Wait(self.backoff, rng if rng is not None else random.Random(0)),
            retry=retry_if_exception_type(TransientError),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        self._local = threading.local()

    def call(self, fn: Callable[[], T], *, call_id: str | None = None) -> T:
        """Run ``fn`` through the breaker, retrying transient failures.

        Raises CircuitOpenError when the breaker refuses the first attempt, otherwise
        the last ServiceError with ``retry_count`` set to the retries made.
        """
        try:
            return self._attempt(fn, call_id, 1)
        except TransientError as first:
            if exceeds_cap(first, self.backoff):
                raise
            return self._retry(fn, call_id, first)

    def _attempt(self, fn: Callable[[], T], call_id: str | None, attempt: int) -> T:
        bulkhead = self._bulkhead
        if bulkhead is None:
            return self._send(fn, call_id, attempt)
        with bulkhead:
            return self._send(fn, call_id, attempt)

    def _send(self, fn: Callable[[], T], call_id: str | None, attempt: int) -> T:
        ticket = self.breaker.acquire()
        self.stats.add(requests=1)
        try:
            result = fn()
        except InvalidPayload as error:
            # The request's fault, not the service's: it must not trip the breaker.
            self.breaker.release(ticket)
            self._failed(error, call_id, attempt)
            raise
        except ServiceError as error:
            # Logged before the breaker hears of it, so the log reads in causal
            # order: the failed request, then the circuit opening it caused.
            self._failed(error, call_id, attempt)
            self.breaker.record_failure(ticket, error)
            raise
        except BaseException:
            # Ctrl-C or a bug in our own code says nothing about the service.
            self.breaker.release(ticket)
            raise
        self.breaker.record_success(ticket)
        return result

    def _retry(
        self, fn: Callable[[], T], call_id: str | None, first: ServiceError
    ) -> T:
        self._local.call_id = call_id
        pending: ServiceError | None = first
        last: ServiceError = first
        sent = 1
        try:
            for attempt in self._retrying:
                with attempt:
                    if pending is not None:
                        # Replays the failure the fast path already saw and logged.
                        error, pending = pending, None
                        raise error
                    number = attempt.retry_state.attempt_number
                    try:
                        return self._attempt(fn, call_id, number)
                    except ServiceError as error:
                        last, sent = error, number
                        raise
        except CircuitOpenError:
            # The breaker opened while we waited: the call failed with what the
            # service last said, not with our own refusal.
            pass
        except ServiceError as error:
            last = error
        last.retry_count = sent - 1
        raise last

    def _failed(self, error: ServiceError, call_id: str | None, attempt: int) -> None:
        self.stats.add(failures=1)
        self._events.emit(
            "service_error",
            call_id=call_id,
            service=self.service,
            error_category=error.category,
            retry_count=attempt - 1,
            level="WARNING",
            error=type(error).__name__,
            message=str(error),
            attempt=attempt,
        )

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        delay = retry_state.upcoming_sleep
        self.stats.add(retries=1)
        self._events.emit(
            "retry_scheduled",
            call_id=getattr(self._local, "call_id", None),
            service=self.service,
            error_category=getattr(error, "category", None),
            retry_count=retry_state.attempt_number,
            level="INFO",
            error=type(error).__name__ if error is not None else None,
            message=f"retry {retry_state.attempt_number} in {delay:g} s",
            attempt=retry_state.attempt_number + 1,
            delay_s=delay,
        )
