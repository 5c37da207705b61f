"""Clocks: the only place callagent reads or waits on time.

Every component that waits (retry backoff, breaker recovery, health-check intervals,
simulated latency and outages) takes a :class:`Clock`. ``run`` and ``health`` use the
:class:`SystemClock`; ``simulate`` and the tests use a :class:`VirtualClock`, on which
a two-hour outage with 5/10/20 s backoffs replays in milliseconds and in the same
order every time.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What components need of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; for measuring durations."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC; for timestamps."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; returns at once for zero or less."""

    def wait_for(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event``; True if it is set."""


class SystemClock:
    """Real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait_for(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(seconds, 0.0))


#: Where virtual time starts unless told otherwise: a fixed instant, so tests and
#: seeded simulations write the same timestamps every time.
VIRTUAL_EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


_PACED_SLICE_S = 0.1


class VirtualClock:
    """Time that moves only when something sleeps on it.

    ``pace`` replays virtual time at that many times real time (``simulate --speed``),
    so a person can watch a live view; ``None`` runs as fast as the CPU allows.
    """

    def __init__(
        self,
        start: datetime = VIRTUAL_EPOCH,
        *,
        pace: float | None = None,
        real: Clock | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock start must be timezone-aware")
        if pace is not None and pace <= 0:
            raise ValueError("VirtualClock pace must be > 0")
        self._start = start
        self._elapsed = 0.0
        self._pace = pace
        self._real = real if real is not None else SystemClock()
        self._lock = threading.Lock()

    @property
    def elapsed(self) -> float:
        """Virtual seconds since the clock started."""
        return self._elapsed

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._pace is None:
            with self._lock:
                self._elapsed += seconds
            return
        # Paced: advance in slices of at most a tenth of a real second, so a live
        # view polling the clock sees countdowns move instead of jumping.
        step = self._pace * _PACED_SLICE_S
        remaining = seconds
        while remaining > 0:
            chunk = min(step, remaining)
            self._real.sleep(chunk / self._pace)
            with self._lock:
                self._elapsed += chunk
            remaining -= chunk

    def wait_for(self, event: threading.Event, seconds: float) -> bool:
        # Nothing else moves virtual time, so the wait is a sleep; the event is
        # looked at when it is over.
        self.sleep(seconds)
        return event.is_set()

    def advance(self, seconds: float) -> None:
        """Move time forward without pacing; for tests."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        with self._lock:
            self._elapsed += seconds


class Stopped(BaseException):
    """A wait was cut short because the campaign is stopping (Ctrl-C, SIGTERM).

    A BaseException, like KeyboardInterrupt, so that no handler meant for service
    failures can swallow it.
    """


class StoppableClock:
    """A clock whose sleeps end early, raising :class:`Stopped`, once told to stop.

    Worker threads wait on it during retry backoff, so a campaign stopping with
    calls in flight does not sit out their 20-second waits first.
    """

    def __init__(self, inner: Clock, stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    def monotonic(self) -> float:
        return self._inner.monotonic()

    def now(self) -> datetime:
        return self._inner.now()

    def sleep(self, seconds: float) -> None:
        if self._stop.is_set() or self._inner.wait_for(self._stop, seconds):
            raise Stopped

    def wait_for(self, event: threading.Event, seconds: float) -> bool:
        return self._inner.wait_for(event, seconds)
